// Package server is livechat's HTTP and WebSocket server: it accepts client
// connections, joins them to rooms, publishes their messages on the broker and
// fans out what the broker delivers to the local members of each room, keeps
// a cluster-wide member list per room, enforces limits, and exposes health
// and Prometheus metrics.
//
// Each room is subscribed once per server while it has local members; a
// broker message is encoded into one WebSocket frame and queued to every
// local member without blocking. A connection whose bounded queue is full is
// disconnected (close 1013) so nobody else waits.
//
// Without a history store (Config.History) delivery is at most once. With
// one, a send is stored (getting the room's next seq) before it is
// acknowledged and published, each server delivers a room's messages in seq
// order without gap or duplicate (filling gaps from the store), and a join
// replays what the client missed since the last seq it saw.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livechat/livechat/internal/engine"
	"github.com/livechat/livechat/internal/httpapi"
	"github.com/livechat/livechat/pkg/auth"
	"github.com/livechat/livechat/pkg/broker"
	"github.com/livechat/livechat/pkg/history"
	"github.com/livechat/livechat/pkg/protocol"
)

// Server is one livechat node. Create it with New, serve Handler, call Start
// to run its background loops and Shutdown to drain it. All methods are safe
// for concurrent use.
type Server struct {
	b    broker.Broker
	hist history.Store // nil: no history
	// appendPub is hist when it publishes what it appends
	// (Config.HistoryPublishes); nil otherwise.
	appendPub history.AppendPublisher
	cfg       Config
	log       *slog.Logger
	eng       *engine.Engine // reads and writes the clients' sockets
	mux       *http.ServeMux
	metrics   *metrics
	welcome   *engine.Frame // encoded once (without Config.Auth)
	// hello is the welcome frame's content; with Config.Auth each
	// connection's welcome is encoded from it with the connection's user.
	hello protocol.Welcome
	// inprocBroker and inprocHist are set when the broker or the history
	// store declares that its calls never block (broker.NeverBlocks,
	// history.NeverBlocks): the send path then gives them no deadline (a
	// context.WithTimeout per call is a timer start and stop per message),
	// and the engine's pollers run the readers themselves (Inline).
	inprocBroker bool
	inprocHist   bool

	started  time.Time
	idPrefix string // AppID + "-" + base36(start ms) + "-"
	idSeq    atomic.Uint64

	draining atomic.Bool
	// cutOff is set while the broker has been lost for longer than
	// Config.BrokerLossGrace (brokerLossLoop).
	cutOff  atomic.Bool
	cutOffs atomic.Uint64 // times cutOff was set
	// silent suppresses presence "bye" (test kill path: a server that dies).
	silent atomic.Bool

	// hot-path counters
	nconns    atomic.Int64
	msgsIn    atomic.Uint64
	brokerIn  atomic.Uint64
	slowDrops atomic.Uint64
	outClosed atomic.Uint64 // frames written by connections already closed
	// heartbeatsSent counts the heartbeat frames queued to clients
	// (heartbeat.go).
	heartbeatsSent atomic.Uint64
	// userEventsOn is set once the user events subscription is in place
	// (revoke.go); for tests.
	userEventsOn atomic.Bool

	// history counters
	dupsDropped atomic.Uint64 // live messages dropped as already delivered
	gapsFilled  atomic.Uint64 // gaps in a live stream filled from the store
	gapLost     atomic.Uint64 // seqs skipped: not in the store, or store down
	resets      atomic.Uint64 // room histories that restarted their seqs
	replayed    atomic.Uint64 // messages replayed to joining clients

	connWG sync.WaitGroup

	// presenceKick asks the presence loop for an early (debounced) snapshot.
	presenceKick chan struct{}
	// presMu is held while the presence loop's batch of snapshots is
	// published, and while a room that unsubscribes publishes its last
	// presence frame, which must follow the batch (publishSnapshots).
	// Lock order: room.mu, then presMu.
	presMu sync.Mutex

	mu    sync.Mutex
	conns map[*session]struct{}
	perIP map[string]int
	rooms map[string]*room
	// users indexes the connections of known users (accounts and tokens,
	// not guests) by user id, for the user events (revoke.go).
	users map[string]map[*session]struct{}
	// evSeq numbers the user events applied; marks remembers the recent
	// ones (revoke.go).
	evSeq    uint64
	marks    map[string]eventMark
	closing  bool // Shutdown or kill began: no new connections
	loopStop context.CancelFunc
	loopWG   sync.WaitGroup
	started2 bool // Start was called
}

// New returns a Server using b for pub/sub. It does not start any goroutine:
// Handler serves at once, and Start runs the heartbeat and presence loops.
func New(b broker.Broker, cfg Config) (*Server, error) {
	if b == nil {
		return nil, fmt.Errorf("%w: nil broker", ErrConfig)
	}
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	now := time.Now()
	s := &Server{
		b:            b,
		hist:         cfg.History,
		cfg:          cfg,
		log:          cfg.Logger.With("app_id", cfg.AppID),
		started:      now,
		idPrefix:     cfg.AppID + "-" + strconv.FormatInt(now.UnixMilli(), 36) + "-",
		presenceKick: make(chan struct{}, 1),
		conns:        make(map[*session]struct{}),
		perIP:        make(map[string]int),
		rooms:        make(map[string]*room),
		users:        make(map[string]map[*session]struct{}),
		marks:        make(map[string]eventMark),
	}
	s.inprocBroker = broker.NeverBlocks(b)
	s.inprocHist = cfg.History != nil && history.NeverBlocks(cfg.History)
	if ap, ok := cfg.History.(history.AppendPublisher); ok && cfg.HistoryPublishes {
		s.appendPub = ap
	}
	s.eng = engine.New(engine.Options{
		ReadLimit:    cfg.ReadLimit,
		PongWait:     cfg.PongWait,
		PingPeriod:   cfg.PingPeriod,
		WriteTimeout: cfg.WriteTimeout,
		SendQueue:    cfg.SendQueue,
		// With backends that never block no handler waits on the
		// network, so the pollers run the readers themselves. The
		// identity services (a store behind them) may block.
		Inline: !cfg.NoInlineReads && s.inprocBroker && (s.hist == nil || s.inprocHist) &&
			cfg.Auth == nil && cfg.Access == nil,
		NoPoller:        cfg.NoReadPoller,
		NoFlusher:       cfg.NoFlusher,
		NoBatchedWrites: cfg.NoBatchedWrites,
		NoWriteBurst:    cfg.NoWriteBurst,
		CheckOrigin:     s.checkOrigin,
		Logger:          s.log,
	})
	m, err := newMetrics(s, cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	hello := protocol.Welcome{
		Type:     protocol.TypeWelcome,
		Server:   cfg.AppID,
		Version:  cfg.Version,
		Protocol: protocol.Version,
		Limits: protocol.Limits{
			MaxText:     protocol.MaxTextLen,
			MaxFrame:    int(cfg.ReadLimit),
			MaxRooms:    cfg.MaxRoomsPerConn,
			RatePerSec:  cfg.RatePerSec,
			RateBurst:   cfg.RateBurst,
			MaxNameRune: protocol.MaxNameLen,
		},
	}
	if cfg.ClientHeartbeat > 0 {
		hello.HeartbeatMillis = cfg.ClientHeartbeat.Milliseconds()
	}
	welcome, err := json.Marshal(hello)
	if err != nil {
		return nil, fmt.Errorf("server: encode welcome: %w", err)
	}
	s.welcome = engine.TextFrame(welcome)
	s.hello = hello
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", s.serveWS)
	mux.HandleFunc("/healthz", s.serveHealthz)
	mux.HandleFunc("/readyz", s.serveReadyz)
	mux.Handle("/metrics", m.handler)
	if cfg.API != nil {
		mux.Handle("/api/", cfg.API)
	}
	if cfg.Static != nil {
		mux.Handle("/", http.FileServerFS(cfg.Static))
	}
	s.mux = mux
	return s, nil
}

// Handler returns the HTTP handler: "/" (the web client, when Config.Static
// is set), "/api/" (Config.API, when set), "/ws", "/healthz", "/readyz" and
// "/metrics".
func (s *Server) Handler() http.Handler { return s.mux }

// Start runs the background loops until ctx is done or Shutdown is called:
// the stats heartbeat, presence, the broker watch (brokerLossLoop), the
// history sweep (with a store), the clients' heartbeat frames (unless Config.ClientHeartbeat is off) and,
// with Config.Auth, the users' events (one subscription to
// "<prefix>.user.*", retried while the broker refuses it). It does not
// block. Calling it twice is an error.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started2 {
		return errors.New("server: already started")
	}
	if s.closing {
		return errors.New("server: shut down")
	}
	s.started2 = true
	ctx, cancel := context.WithCancel(ctx)
	s.loopStop = cancel
	s.loopWG.Add(3)
	go s.heartbeatLoop(ctx)
	go s.presenceLoop(ctx)
	go s.brokerLossLoop(ctx)
	if s.hist != nil {
		s.loopWG.Add(1)
		go s.recoveryLoop(ctx)
	}
	if s.cfg.ClientHeartbeat > 0 {
		s.loopWG.Add(1)
		go s.clientHeartbeatLoop(ctx)
	}
	if s.cfg.Auth != nil {
		s.loopWG.Add(1)
		go s.userEventsLoop(ctx)
	}
	return nil
}

// stopLoops stops the background loops and waits for them.
func (s *Server) stopLoops() {
	s.mu.Lock()
	stop := s.loopStop
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
	s.loopWG.Wait()
}

// Shutdown drains the server: /readyz turns 503 and new WebSockets are
// refused, it waits Config.DrainDelay, then tells every client "going away"
// (close 1001) after its queued frames, waits for the connections to end,
// publishes a last presence snapshot of its rooms' members (a handover: the
// others keep it for its lifetime, see leaveRoom) and stops the loops. When ctx ends
// first the remaining connections are cut and ctx's error is returned. It
// does not close the broker. A second call skips the drain delay.
func (s *Server) Shutdown(ctx context.Context) error {
	again := s.draining.Swap(true)
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	var err error
	if d := s.cfg.DrainDelay; d > 0 && !again {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			err = fmt.Errorf("server: shutdown: %w", ctx.Err())
		}
	}
	for _, c := range s.snapshotConns() {
		c.c.Close(engine.CloseGoingAway, "server shutting down")
	}
	if werr := s.waitConns(ctx); werr != nil {
		err = werr
		for _, c := range s.snapshotConns() {
			c.c.Close(engine.CloseAbnormal, "")
		}
		s.connWG.Wait() // cut sockets end their readers and writers promptly
	}
	s.stopLoops()
	return err
}

// kill stops the server like a crash: connections are cut, no presence
// "bye" is published. For tests.
func (s *Server) kill() {
	s.silent.Store(true)
	s.draining.Store(true)
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.stopLoops()
	for _, c := range s.snapshotConns() {
		c.c.Close(engine.CloseAbnormal, "")
	}
	s.connWG.Wait()
}

func (s *Server) waitConns(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		s.connWG.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("server: shutdown: %w", ctx.Err())
	}
}

func (s *Server) snapshotConns() []*session {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := make([]*session, 0, len(s.conns))
	for c := range s.conns {
		cs = append(cs, c)
	}
	return cs
}

func (s *Server) roomCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.rooms)
}

func (s *Server) framesOut() uint64 {
	s.mu.Lock()
	n := s.outClosed.Load()
	for c := range s.conns {
		n += c.c.FramesOut()
	}
	s.mu.Unlock()
	return n
}

// Stats returns the current counters, as published in the heartbeat (rates
// are zero here; the heartbeat computes them between beats).
func (s *Server) Stats() protocol.Heartbeat {
	return protocol.Heartbeat{
		AppID:       s.cfg.AppID,
		Addr:        s.cfg.Addr,
		Version:     s.cfg.Version,
		StartedMS:   s.started.UnixMilli(),
		TS:          time.Now().UnixMilli(),
		IntervalMS:  s.cfg.HeartbeatInterval.Milliseconds(),
		Connections: s.nconns.Load(),
		Rooms:       int64(s.roomCount()),
		MsgsIn:      s.msgsIn.Load(),
		MsgsOut:     s.framesOut(),
		SlowDrops:   s.slowDrops.Load(),
		Broker:      s.b.State().String(),
		Draining:    s.draining.Load(),
	}
}

func (s *Server) heartbeatLoop(ctx context.Context) {
	defer s.loopWG.Done()
	t := time.NewTicker(s.cfg.HeartbeatInterval)
	defer t.Stop()
	subject := protocol.StatsSubject(s.cfg.Prefix, s.cfg.AppID)
	prev := s.Stats()
	known := &peers{self: s.cfg.AppID, last: make(map[string]int64)}
	var watching broker.Subscription
	defer func() {
		if watching != nil {
			_ = watching.Unsubscribe()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if watching == nil { // retried every beat until the broker takes it
			if sub, err := known.watch(ctx, s.b, s.cfg.Prefix); err == nil {
				watching = sub
			}
		}
		hb := s.Stats()
		hb.Peers, hb.PeerInfo = known.snapshot(time.Now())
		if dt := float64(hb.TS-prev.TS) / 1000; dt > 0 {
			hb.InPerSec = float64(hb.MsgsIn-prev.MsgsIn) / dt
			hb.OutPerSec = float64(hb.MsgsOut-prev.MsgsOut) / dt
		}
		prev = hb
		data, err := json.Marshal(hb)
		if err != nil {
			s.log.Error("server: encode heartbeat", "err", err)
			continue
		}
		if err := s.b.Publish(ctx, subject, data); err != nil && ctx.Err() == nil {
			s.log.Warn("server: publish heartbeat", "err", err)
		}
	}
}

// nextID returns a message id unique across the cluster (AppIDs are unique
// and the start time separates restarts).
func (s *Server) nextID() string {
	n := s.idSeq.Add(1)
	b := make([]byte, 0, len(s.idPrefix)+8)
	b = append(b, s.idPrefix...)
	b = strconv.AppendUint(b, n, 36)
	return string(b)
}

func (s *Server) serveHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

func (s *Server) serveReadyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if s.draining.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("draining\n"))
		return
	}
	if st := s.b.State(); st != broker.StateConnected {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("broker " + st.String() + "\n"))
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

// checkOrigin allows a missing Origin, the request's own host, and the hosts
// matching Config.AllowedOrigins.
// It counts a refusal.
func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || httpapi.OriginAllowed(origin, r.Host, s.cfg.AllowedOrigins) {
		return true
	}
	s.metrics.rejected.WithLabelValues("origin").Inc()
	return false
}

// clientIP is the address the per-IP limit counts.
func (s *Server) clientIP(r *http.Request) string {
	if s.cfg.TrustProxy {
		if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
			parts := strings.Split(xff, ",")
			if ip := strings.TrimSpace(parts[len(parts)-1]); ip != "" {
				return ip
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// serveWS answers a WebSocket handshake. With Config.Auth the request is
// authenticated first (after the origin check): refused credentials get
// 401 and no upgrade; none make a guest or, with NoGuests, an
// unauthenticated connection that must send an auth frame.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	ip := s.clientIP(r)
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		s.metrics.rejected.WithLabelValues("draining").Inc()
		http.Error(w, "server: shutting down", http.StatusServiceUnavailable)
		return
	}
	if s.cutOff.Load() {
		s.mu.Unlock()
		s.metrics.rejected.WithLabelValues("cut_off").Inc()
		http.Error(w, "server: lost its broker, connect to another server", http.StatusServiceUnavailable)
		return
	}
	if s.perIP[ip] >= s.cfg.MaxConnsPerIP {
		s.mu.Unlock()
		s.metrics.rejected.WithLabelValues("per_ip").Inc()
		http.Error(w, "server: too many connections from "+ip, http.StatusTooManyRequests)
		return
	}
	s.perIP[ip]++
	s.connWG.Add(1)
	mark := s.evSeq // the events from here on are checked at registration
	s.mu.Unlock()

	var id *auth.Identity // nil without Config.Auth
	pending := false
	if s.cfg.Auth != nil {
		var ok bool
		if id, pending, ok = s.authenticate(w, r); !ok {
			s.mu.Lock()
			s.releaseIP(ip)
			s.mu.Unlock()
			s.connWG.Done()
			return
		}
	}

	c, err := s.eng.Upgrade(w, r)
	if err != nil {
		// Upgrade already answered (403 for a refused origin, 400 otherwise).
		s.log.Debug("server: upgrade", "err", err, "remote", r.RemoteAddr)
		if !errors.Is(err, engine.ErrOrigin) {
			s.metrics.rejected.WithLabelValues("upgrade").Inc()
		}
		s.mu.Lock()
		s.releaseIP(ip)
		s.mu.Unlock()
		s.connWG.Done()
		return
	}
	sess := newSession(s, c, ip)
	sess.id, sess.pending = id, pending
	s.mu.Lock()
	closing := s.closing
	s.conns[sess] = struct{}{}
	revoked := 0
	if id != nil {
		revoked = s.registerLocked(sess, mark)
	}
	s.mu.Unlock()
	s.nconns.Add(1)
	switch {
	case closing:
		// Shutdown started during the handshake: it may already have
		// closed everyone, so say goodbye here.
		c.Close(engine.CloseGoingAway, "server shutting down")
	case revoked != 0:
		// Revoked while the handshake ran (registerLocked).
		c.Close(revoked, "session ended")
	case id == nil:
		c.Send(s.welcome)
	default:
		sess.startIdentity()
	}
	c.Serve(sess)
}

// releaseIP must be called with s.mu held.
func (s *Server) releaseIP(ip string) {
	if s.perIP[ip] <= 1 {
		delete(s.perIP, ip)
	} else {
		s.perIP[ip]--
	}
}

// removeConn unregisters a finished session.
func (s *Server) removeConn(c *session) {
	s.mu.Lock()
	delete(s.conns, c)
	s.unregisterLocked(c)
	s.releaseIP(c.ip)
	s.outClosed.Add(c.c.FramesOut())
	s.mu.Unlock()
	s.nconns.Add(-1)
	s.connWG.Done()
}

func (s *Server) countError(code string) {
	s.metrics.errors.WithLabelValues(code).Inc()
}

// historyError counts and logs a failed store call.
func (s *Server) historyError(op, room string, err error) {
	s.metrics.historyErrors.WithLabelValues(op).Inc()
	s.log.Warn("server: history", "op", op, "room", room, "err", err)
}

// publishCtx is the context of a broker publish made for a client frame:
// bounded by publishTimeout, or none for the in-process broker, which never
// blocks. Call cancel when the publish returns.
func (s *Server) publishCtx() (context.Context, context.CancelFunc) {
	if s.inprocBroker {
		return context.Background(), noCancel
	}
	return context.WithTimeout(context.Background(), publishTimeout)
}

// historyCtx is publishCtx for a history store call (Config.HistoryTimeout).
func (s *Server) historyCtx() (context.Context, context.CancelFunc) {
	if s.inprocHist {
		return context.Background(), noCancel
	}
	return context.WithTimeout(context.Background(), s.cfg.HistoryTimeout)
}

func noCancel() {}
