package server

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/livechat/livechat/pkg/history"
	"github.com/livechat/livechat/pkg/protocol"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Server. Only AppID is required; every other field has
// the default stated on it, applied by New when the field is zero.
type Config struct {
	// AppID names this server in the cluster (welcome, heartbeat, message
	// "server" field, presence). Required.
	AppID string
	// Addr is the advertised address put in heartbeats; informational only.
	// Default: "".
	Addr string
	// Prefix is the subject prefix shared by the deployment.
	// Default: protocol.DefaultPrefix ("livechat").
	Prefix string
	// Version is the build version announced in welcome frames and
	// heartbeats. Default: "dev".
	Version string
	// AllowedOrigins lists the Origin hosts allowed at the WebSocket
	// handshake, as path.Match patterns on host[:port] ("chat.example.com",
	// "*.example.com", "localhost:1007"); "*" allows any origin. A request
	// without Origin (a non-browser client) and a same-host origin are always
	// allowed. Default: empty, same host only.
	AllowedOrigins []string
	// TrustProxy makes the per-address connection limit use the last address
	// in X-Forwarded-For (the one the trusted proxy saw) instead of the TCP
	// peer address. Default: false.
	TrustProxy bool
	// Static is the web client, served at "/" when non-nil. Default: nil
	// (no "/" route).
	Static fs.FS
	// MaxConnsPerIP bounds the open WebSockets per client address; the next
	// handshake gets HTTP 429. Default: 200.
	MaxConnsPerIP int
	// MaxRoomsPerConn bounds the rooms one connection is in at once.
	// Default: 20.
	MaxRoomsPerConn int
	// ReadLimit is the largest inbound frame in bytes; a bigger one closes
	// the connection with 1009. Default: 16 KiB.
	ReadLimit int64
	// SendQueue is the length of each connection's outbound queue; when it
	// is full and the socket has taken no whole write for half a second
	// (or four times as many frames wait), the client is disconnected with
	// 1013 as too slow. Default: 256.
	SendQueue int
	// WriteTimeout is the deadline of each write to a client. Default: 10s.
	WriteTimeout time.Duration
	// PongWait is how long a connection may stay silent (no frame, no pong)
	// before it is closed (up to 1/64 longer: the deadline is moved in
	// steps). Default: 60s.
	PongWait time.Duration
	// PingPeriod is the interval of server pings; it must be shorter than
	// PongWait. Default: PongWait*9/10.
	PingPeriod time.Duration
	// RatePerSec is the sustained rate of inbound frames allowed per
	// connection. Default: 20.
	RatePerSec float64
	// RateBurst is the burst of inbound frames allowed per connection.
	// Default: 40.
	RateBurst int
	// RateStrikes is how many rate_limited errors a connection gets before
	// it is closed with 1008. Default: 20.
	RateStrikes int
	// HeartbeatInterval is the period of the stats heartbeat. Default: 2s.
	// (The clients' heartbeat frames are ClientHeartbeat.)
	HeartbeatInterval time.Duration
	// ClientHeartbeat is the longest a connection goes without a frame from
	// the server, announced in the welcome frame (heartbeat_ms): a
	// connection that has been sent nothing for a while gets the frame
	// {"type":"heartbeat"}, so that a client that hears nothing for twice
	// this knows the server froze or the path to it died (browsers never
	// show WebSocket pings to the page). A busy connection gets none. It
	// must be at least 10ms; negative turns heartbeats off.
	// Default: 10s.
	ClientHeartbeat time.Duration
	// PresenceInterval is the period of presence snapshots; a server's
	// snapshot expires after 3 periods. Default: 3s.
	PresenceInterval time.Duration
	// DrainDelay is how long /readyz answers 503 during Shutdown before the
	// connections are closed. Default: 0.
	DrainDelay time.Duration
	// BrokerLossGrace is how long the broker may be unreachable before the
	// server closes its connections (1001) and refuses new ones (503) until
	// it is back, so that clients reconnect to a server that has a broker.
	// Keep it above the load balancer's time to mark a server down (/readyz
	// is 503 from the first moment of the loss), so that the reconnects go
	// elsewhere, and above a broker restart. A Redis Cluster counts as lost
	// only when none of its masters answers (broker.Unreachable), not while
	// one fails over. Default: 5s.
	BrokerLossGrace time.Duration
	// History stores every room's messages with per-room seqs. When set, a
	// send is persisted before it is acknowledged and published, joins
	// replay what the client missed (Inbound.Since) or the latest messages,
	// gaps in the live stream are filled from it and clients may page
	// backwards with history requests. The server does not close it.
	// Default: nil, no history: delivery is at most once.
	History history.Store
	// HistoryPublishes says that History, when it can (history.AppendPublisher),
	// publishes each stored message on the broker in the round trip that
	// appends it, instead of the server publishing it after the append: set
	// it only when the store's Pub/Sub is the broker's (the same Redis).
	// Default: false, append then publish.
	HistoryPublishes bool
	// JoinHistory is how many of the latest messages a join without since
	// replays. Default: 50.
	JoinHistory int
	// ReplayLimit bounds the messages a join with since replays; beyond it
	// the joined frame says truncated and the client pages with history
	// requests. Default: 1000 (history.MaxPage at most).
	ReplayLimit int
	// HistoryTimeout bounds each store call made for a client (append,
	// replay, history page). Default: 3s.
	HistoryTimeout time.Duration
	// GapTimeout is how long a live message that arrived ahead of a gap
	// waits for the gap to be filled from the store (retried while the
	// store fails) before it is delivered anyway and the gap counted as
	// lost. It should outlast a store restart: a message whose append
	// committed as the store went down is acknowledged (and published) only
	// when its sender's retry succeeds, after the restart, and a gap
	// skipped before that loses it. While the store is down no new message
	// is stored, so the wait holds back only what was in flight.
	// Default: 30s.
	GapTimeout time.Duration
	// SweepInterval is how often every room is compared with the store and
	// caught up, so a stored message whose publish was lost (a broker outage
	// or a server crash between store and publish) reaches a quiet room
	// without waiting for the room's next message. A broker reconnect
	// triggers a sweep at once. Default: 5s.
	SweepInterval time.Duration
	// NoBatchedWrites makes the flushers write each connection with its own
	// writev(2). By default, where the kernel allows io_uring (Linux; a
	// container's default seccomp profile refuses it), they hand the kernel
	// the writes of up to 64 connections in one system call, which saves
	// most of a small write's CPU where system calls are dear (virtual
	// machines). Default: false.
	NoBatchedWrites bool
	// NoWriteBurst applies the write interval (20 ms, up to 250 ms on a
	// busy server) to every write. By default a connection that had no
	// write for half a second may be written twice at once: a joining
	// client's welcome and its join's answer both go out without waiting
	// (engine.Options.NoWriteBurst). Default: false.
	NoWriteBurst bool
	// NoFlusher makes each connection's own writer goroutine write its
	// queue, one writev(2) per write that may block under WriteTimeout, as
	// gorilla's writePump does. By default the flushers (one per
	// processor) write the queues of many connections without blocking.
	// Default: false.
	NoFlusher bool
	// NoInlineReads makes the read pollers start a goroutine for each read
	// even when the broker and the history store declare that they never
	// block (broker.NeverBlocks, history.NeverBlocks: the in-process
	// backends). By default the pollers then run the readers on their own
	// goroutines, with no goroutine start per read. Default: false.
	NoInlineReads bool
	// NoReadPoller gives every connection a reader goroutine for its whole
	// life. By default (Linux), the server watches its connections'
	// sockets in one epoll(7) set and a connection has a reader goroutine
	// only while its client's bytes are read and handled, so an idle
	// connection holds no goroutine stack. Default: false.
	NoReadPoller bool
	// Auth establishes who a connection is (Authenticator; pkg/account
	// implements it). With it the WebSocket handshake is authenticated
	// before the upgrade (a refused session or token gets HTTP 401), every
	// connection has one identity whose name is on everything it sends,
	// tokens expire (close 4002) and the server applies the users' events
	// (protocol.UserEvent on protocol.UserSubject: sign-outs, bans,
	// removals from rooms) to its connections. Its calls may block: with
	// it (or Access) the engine's pollers do not run the readers
	// themselves (NoInlineReads). Default: nil, no identities: every
	// connection is a guest named by its joins, and may join each room
	// under another name.
	Auth Authenticator
	// Access decides who may enter which room (Authorizer; pkg/rooms
	// implements it), asked on every join. Default: nil, every room is
	// public, but the reserved rooms (protocol.ReservedRoomPrefix, "_") are
	// refused with not_found.
	Access Authorizer
	// Files attaches uploaded files to sends (FileAttacher; pkg/files
	// implements it). Default: nil, a send with files gets invalid_files.
	Files FileAttacher
	// GuestUploadToken, when set, lets guests send files: it mints the
	// upload token a guest's welcome carries (upload_token; pkg/account's
	// UploadToken), with which the guest uploads over HTTP. Default: nil,
	// guests send no files.
	GuestUploadToken func(guestID string) (string, error)
	// NoGuests refuses connections without credentials: with Auth set, a
	// handshake without a session or a token is upgraded unauthenticated
	// (the welcome says auth_required) and must send an auth frame with a
	// valid token within AuthTimeout, or is closed with 4001. It requires
	// Auth. Default: false, guests allowed.
	NoGuests bool
	// AuthTimeout is how long an unauthenticated connection (NoGuests) has
	// to send a valid auth frame. Default: 5s.
	AuthTimeout time.Duration
	// API is served under "/api/" (pkg/cli mounts the account and room
	// endpoints there). Default: nil, no "/api/" route.
	API http.Handler
	// Logger receives connection and broker events. Default: slog.Default().
	Logger *slog.Logger
	// Registerer receives the server's metrics. Default: a new registry per
	// Server, with the Go and process collectors; /metrics serves it. When
	// set, /metrics serves it if it is also a prometheus.Gatherer, else
	// prometheus.DefaultGatherer.
	Registerer prometheus.Registerer
}

// Defaults.
const (
	defaultVersion           = "dev"
	defaultMaxConnsPerIP     = 200
	defaultMaxRoomsPerConn   = 20
	defaultReadLimit         = 16 << 10
	defaultSendQueue         = 256
	defaultWriteTimeout      = 10 * time.Second
	defaultPongWait          = 60 * time.Second
	defaultRatePerSec        = 20
	defaultRateBurst         = 40
	defaultRateStrikes       = 20
	defaultHeartbeatInterval = 2 * time.Second
	defaultClientHeartbeat   = 10 * time.Second
	defaultPresenceInterval  = 3 * time.Second
	defaultBrokerLossGrace   = 5 * time.Second
	// presenceDebounce delays a snapshot after a local change so that a burst
	// of joins costs one publish.
	presenceDebounce = 100 * time.Millisecond
	// bigPresenceEvery is the least time between two presence frames of a
	// room above protocol.PresenceListMax members: during a burst of joins
	// each frame costs every member a write (and HAProxy two system calls).
	bigPresenceEvery = time.Second
	// presenceTTLPeriods is how many presence intervals a snapshot lives.
	presenceTTLPeriods = 3
	// typingEvery is the minimum interval between typing frames of one
	// connection in one room; more frequent ones are ignored.
	typingEvery = time.Second
	// publishTimeout bounds a broker publish made for a client frame.
	publishTimeout = 5 * time.Second

	defaultJoinHistory    = 50
	defaultReplayLimit    = 1000
	defaultHistoryTimeout = 3 * time.Second
	defaultGapTimeout     = 30 * time.Second
	defaultSweepInterval  = 5 * time.Second
	defaultAuthTimeout    = 5 * time.Second
	// accessTimeout bounds each call to Config.Auth or Config.Access made
	// for a client frame (a guest's name, Enter).
	accessTimeout = 3 * time.Second
	// userEventsRetry is the interval of the retries of the user events
	// subscription while the broker refuses it.
	userEventsRetry = time.Second
	// eventMemory is how long an applied user event is remembered, so
	// that a connection or a join that was being established when it came
	// does not escape it (Server.marks).
	eventMemory = time.Minute
	// gapReadTimeout bounds a store read made by a room's delivery to fill
	// a gap; it runs on the room's subscription goroutine.
	gapReadTimeout = time.Second
	// gapRetry is the interval of gap fill retries while the store fails.
	gapRetry = 100 * time.Millisecond
	// gapWait is how long a gap in the live stream waits for the missing
	// message before it is read from the store: publishes of two servers
	// often cross by a millisecond or two, and a read per crossing would
	// cost the store a call and the room its lock.
	gapWait = 15 * time.Millisecond
	// brokerPoll is how often the recovery loop checks the broker's state
	// for a reconnect.
	brokerPoll = 100 * time.Millisecond
	// maxPending bounds the live messages held back behind a gap.
	maxPending = 4096
	// recentSeqs is the size of the ring of recently delivered seqs and ids
	// that tells a duplicate from a restarted seq.
	recentSeqs = 1024
)

// ErrConfig is wrapped by every configuration error returned by New.
var ErrConfig = errors.New("server: invalid config")

// DefaultConfig returns the Config that New uses for the zero Config: every
// field with the default stated on it (PingPeriod derived from PongWait,
// Logger slog.Default()), AppID empty and Registerer nil (New makes a
// registry per Server). Callers such as a command line read their defaults
// from it rather than repeating them; a Config built from it with AppID set
// is valid. Each call returns a new value; it is safe to call concurrently.
func DefaultConfig() Config {
	var c Config
	c.setDefaults()
	return c
}

// fill applies the defaults to the zero fields of c and checks it.
func (c *Config) fill() error {
	if c.AppID == "" {
		return fmt.Errorf("%w: AppID is required", ErrConfig)
	}
	c.setDefaults()
	if c.PingPeriod >= c.PongWait {
		return fmt.Errorf("%w: PingPeriod %v must be shorter than PongWait %v", ErrConfig, c.PingPeriod, c.PongWait)
	}
	if c.NoGuests && c.Auth == nil {
		return fmt.Errorf("%w: NoGuests requires Auth (nobody could sign in)", ErrConfig)
	}
	if c.ClientHeartbeat > 0 && c.ClientHeartbeat < minClientHeartbeat {
		return fmt.Errorf("%w: ClientHeartbeat %v must be at least %v (or negative: off)", ErrConfig, c.ClientHeartbeat, minClientHeartbeat)
	}
	return nil
}

// setDefaults gives every field left zero (or, where zero or negative
// means nothing useful, negative) the default stated on it. It is the one
// place the defaults are applied: fill and DefaultConfig both call it.
func (c *Config) setDefaults() {
	c.Prefix = cmp.Or(c.Prefix, protocol.DefaultPrefix)
	c.Version = cmp.Or(c.Version, defaultVersion)
	orDefault(&c.MaxConnsPerIP, defaultMaxConnsPerIP)
	orDefault(&c.MaxRoomsPerConn, defaultMaxRoomsPerConn)
	orDefault(&c.ReadLimit, defaultReadLimit)
	orDefault(&c.SendQueue, defaultSendQueue)
	orDefault(&c.WriteTimeout, defaultWriteTimeout)
	orDefault(&c.PongWait, defaultPongWait)
	orDefault(&c.PingPeriod, c.PongWait*9/10)
	orDefault(&c.RatePerSec, defaultRatePerSec)
	orDefault(&c.RateBurst, defaultRateBurst)
	orDefault(&c.RateStrikes, defaultRateStrikes)
	orDefault(&c.HeartbeatInterval, defaultHeartbeatInterval)
	// Negative turns client heartbeats off: only zero takes the default.
	c.ClientHeartbeat = cmp.Or(c.ClientHeartbeat, defaultClientHeartbeat)
	orDefault(&c.PresenceInterval, defaultPresenceInterval)
	c.DrainDelay = max(c.DrainDelay, 0)
	orDefault(&c.BrokerLossGrace, defaultBrokerLossGrace)
	orDefault(&c.JoinHistory, defaultJoinHistory)
	orDefault(&c.ReplayLimit, defaultReplayLimit)
	c.ReplayLimit = min(c.ReplayLimit, history.MaxPage)
	c.JoinHistory = min(c.JoinHistory, c.ReplayLimit)
	orDefault(&c.HistoryTimeout, defaultHistoryTimeout)
	orDefault(&c.SweepInterval, defaultSweepInterval)
	orDefault(&c.GapTimeout, defaultGapTimeout)
	orDefault(&c.AuthTimeout, defaultAuthTimeout)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// orDefault sets *v to def when *v is zero or negative.
func orDefault[T int | int64 | float64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}
