package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/livechat/livechat/pkg/account"
	"github.com/livechat/livechat/pkg/blob"
	"github.com/livechat/livechat/pkg/broker"
	"github.com/livechat/livechat/pkg/files"
	"github.com/livechat/livechat/pkg/history"
	"github.com/livechat/livechat/pkg/rooms"
	"github.com/livechat/livechat/pkg/server"
	"github.com/livechat/livechat/pkg/store"
	"github.com/livechat/livechat/web"
)

// ServeOptions are the inputs of `livechat serve`.
type ServeOptions struct {
	Global *GlobalOptions
	// Addr is the listen address. Default: ":8080".
	Addr string
	// Server is the server's configuration: server.DefaultConfig(), with
	// AppID the host name, and the flags set its fields. ClientHeartbeat
	// holds --heartbeat, where 0 means off (runServe makes it negative);
	// runServe also sets Addr, Prefix, Version, Static, History, Logger and
	// the two switches below.
	Server server.Config
	// ShutdownTimeout bounds the graceful shutdown. Default: 15s.
	ShutdownTimeout time.Duration
	// LogLevel is debug, info, warn or error; LogFormat is text or json.
	LogLevel, LogFormat string
	// History is the history store URL: "" means defaultHistory (the data
	// directory's database with the in-process broker, the broker's Redis
	// with a Redis broker; a NATS broker needs it set), "none" disables
	// history.
	History string
	// StoreURL is the store of accounts and rooms (--store): "" means the
	// data directory's database (sqlite://DIR/livechat.db).
	StoreURL string
	// SecretFlags name the token secret: --secret-file, else
	// LIVECHAT_SECRET, else LIVECHAT_SECRET_FILE, else the data
	// directory's secret file, created on first start.
	SecretFlags secretOptions
	// Uploads are the flags of pictures and files: where their bytes go
	// (--blobs) and the limits.
	Uploads uploadOptions

	// Store is the opened store of StoreURL, set by runServe and closed at
	// shutdown, for the server wiring (accounts, rooms). Not a flag.
	Store store.Store
	// Blobs is the opened blob store of Uploads.BlobsURL, set by runServe
	// and closed at shutdown. Not a flag.
	Blobs blob.Store
	// Secret is the token secret, set by runServe, for the server wiring
	// (token verification). Not a flag; never logged.
	Secret []byte
	// OperatorKey is the key of the operator API (OpsPath), set by
	// runServe from the data directory's operator.key (created on first
	// start). Not a flag; never logged.
	OperatorKey []byte
	// Pprof is a listen address for net/http/pprof (hidden flag, for
	// profiling); "" serves no profiles.
	Pprof string
	// BatchWrites lets the server write many sockets in one system call
	// (io_uring, where the kernel allows): not Server.NoBatchedWrites.
	BatchWrites bool
	// WriteBurst lets a quiet connection's next two frames go out at once
	// (a welcome and the join's answer): not Server.NoWriteBurst.
	WriteBurst bool
	// ReadPoller watches idle connections' sockets in one epoll set instead
	// of a reader goroutine each (Linux): not Server.NoReadPoller.
	ReadPoller bool
	// InlineReads runs the readers on the read pollers' goroutines when the
	// broker and the history never block (memory://). Default: true.
	InlineReads bool
	// InlineDelivery runs a room's broker handler on the broker's receiving
	// goroutine when the room is idle, instead of starting a goroutine per
	// message (broker.SubscribeInline; off: broker.Options.NoInline).
	// Default: true.
	InlineDelivery bool
	// AppendPublish lets a history in the broker's own Redis publish each
	// message in the script that stores it (server.Config.HistoryPublishes):
	// one round trip instead of two. Default: true.
	AppendPublish bool
	// Guests lets people without an account or a token chat in public
	// rooms, under a name no account holds. Default: true
	// (server.Config.NoGuests false).
	Guests bool
	// Flusher writes the queues of many connections from a few flusher
	// goroutines without blocking; false gives each connection's writes to
	// a goroutine of its own. Default: true.
	Flusher bool
}

// newServeOptions returns serve's options with their defaults, which the
// flags show and read from here; the server's come from
// server.DefaultConfig.
func newServeOptions(g *GlobalOptions) *ServeOptions {
	cfg := server.DefaultConfig()
	cfg.AppID, _ = os.Hostname()
	return &ServeOptions{
		Global:          g,
		Addr:            DefaultAddr,
		Server:          cfg,
		ShutdownTimeout: 15 * time.Second,
		Uploads:         defaultUploadOptions(),
		LogLevel:        "info",
		LogFormat:       "text",
		BatchWrites:     !cfg.NoBatchedWrites,
		WriteBurst:      !cfg.NoWriteBurst,
		ReadPoller:      !cfg.NoReadPoller,
		Flusher:         !cfg.NoFlusher,
		Guests:          !cfg.NoGuests,
		InlineReads:     !cfg.NoInlineReads,
		InlineDelivery:  true,
		AppendPublish:   true,
	}
}

// heartbeatMin and heartbeatMax bound --heartbeat, besides 0 (off).
const (
	heartbeatMin = time.Second
	heartbeatMax = 5 * time.Minute
)

// validate checks every numeric, duration and address flag of serve, one
// line per flag, before anything starts.
func (o *ServeOptions) validate() error {
	c := &o.Server
	err := firstError(
		listenAddr("addr", o.Addr),
		between("max-conns-per-ip", c.MaxConnsPerIP, 1, 1_000_000),
		between("max-rooms-per-conn", c.MaxRoomsPerConn, 1, 10_000),
		between("read-limit", c.ReadLimit, 1<<10, 16<<20),
		between("send-queue", c.SendQueue, 1, 100_000),
		between("rate", c.RatePerSec, 0.1, 10_000),
		between("rate-burst", c.RateBurst, 1, 100_000),
		between("shutdown-timeout", o.ShutdownTimeout, time.Second, time.Hour),
		between("drain-delay", c.DrainDelay, 0, 10*time.Minute),
		between("broker-grace", c.BrokerLossGrace, 100*time.Millisecond, 10*time.Minute),
		between("heartbeat-interval", c.HeartbeatInterval, 100*time.Millisecond, time.Minute),
		between("presence-interval", c.PresenceInterval, 100*time.Millisecond, time.Minute),
		offOrBetween("heartbeat", c.ClientHeartbeat, heartbeatMin, heartbeatMax),
	)
	if err == nil && o.Global != nil {
		err = validateRetention(o.Global.Retention)
	}
	if err == nil {
		err = o.Uploads.validate()
	}
	if err == nil && o.Uploads.Guests && !o.Guests {
		err = usageErrorf("--guest-uploads needs --guests")
	}
	if err == nil && o.Pprof != "" {
		err = listenAddr("pprof", o.Pprof)
	}
	if err == nil && c.DrainDelay >= o.ShutdownTimeout {
		err = usageErrorf("--drain-delay %s: must be shorter than --shutdown-timeout %s", show(c.DrainDelay), show(o.ShutdownTimeout))
	}
	if err == nil && strings.TrimSpace(c.AppID) == "" {
		err = usageErrorf("--app-id must not be empty")
	}
	if err == nil && isHTTPBroker(o.Global.Broker) {
		err = usageErrorf("--broker %s: serve needs memory://, redis://, redis+cluster:// or nats://; http:// is a node's operator API, for publish, tail and stats", broker.Redact(o.Global.Broker))
	}
	if err == nil && o.History == "" && isNATSBroker(o.Global.Broker) {
		err = errNATSNeedsHistory(o.Global.Broker)
	}
	return err
}

func newServeCmd(ios *IOStreams, g *GlobalOptions) *cobra.Command {
	opts := newServeOptions(g)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a chat server: the web client, the WebSocket endpoint, health and metrics",
		Long: `Run a chat server. It serves the web client at /, WebSockets at /ws, /healthz,
/readyz (503 while the broker is down or the server drains), /metrics
(Prometheus) and the operator API at /api/ops/ (publish, tail and stats use it
when there is no shared broker; it needs the key in <data>/operator.key).

With no flags it is a single node that keeps its data: the in-process broker,
the message history and the store in <data>/livechat.db (--data, default
./livechat-data, created 0700), the token secret in <data>/secret and the
operator key in <data>/operator.key (both made on first start, 0600).
With --broker redis://... any number of servers sharing one Redis form one
chat, and the history defaults to that Redis (see --history). With --broker
nats://... they share a NATS server (or cluster) instead, and --history must
name the store they share (postgres://... or redis://...).

Every message is stored with a per-room seq before it is acknowledged, and
clients that reconnect get what they missed. On SIGTERM or SIGINT it drains:
/readyz turns 503, after --drain-delay clients are closed with 1001 (going
away) and the process exits within --shutdown-timeout. A server whose broker
stays unreachable for --broker-grace closes its clients the same way, so
that they reconnect to another server, and refuses new ones until it is back.`,
		Example: `  # single node, in-process broker, data in ./livechat-data
  livechat serve

  # cluster node behind HAProxy
  APPID=1000 livechat serve --addr :8081 --broker redis://redis:6379 --trust-proxy --drain-delay 3s`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.SecretFlags.FileSet = cmd.Flags().Changed("secret-file")
			return runServe(cmd.Context(), opts, ios)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Addr, "addr", opts.Addr, "listen address")
	f.StringVar(&opts.Server.AppID, "app-id", opts.Server.AppID, "server id shown to clients and in stats (also env APPID)")
	f.StringSliceVar(&opts.Server.AllowedOrigins, "allowed-origins", opts.Server.AllowedOrigins, `Origins allowed at the WebSocket handshake besides the page's own host (comma-separated, e.g. "https://chat.example.com"; "*" allows any)`)
	f.BoolVar(&opts.Server.TrustProxy, "trust-proxy", opts.Server.TrustProxy, "take the client address from X-Forwarded-For (only behind a proxy you run)")
	f.IntVar(&opts.Server.MaxConnsPerIP, "max-conns-per-ip", opts.Server.MaxConnsPerIP, "WebSocket connections allowed from one client address")
	f.IntVar(&opts.Server.MaxRoomsPerConn, "max-rooms-per-conn", opts.Server.MaxRoomsPerConn, "rooms one connection may join")
	f.Int64Var(&opts.Server.ReadLimit, "read-limit", opts.Server.ReadLimit, "largest frame a client may send, in bytes (larger: close 1009)")
	f.IntVar(&opts.Server.SendQueue, "send-queue", opts.Server.SendQueue, "frames queued per connection before a slow client is disconnected (close 1013)")
	f.Float64Var(&opts.Server.RatePerSec, "rate", opts.Server.RatePerSec, "messages per second allowed per connection")
	f.IntVar(&opts.Server.RateBurst, "rate-burst", opts.Server.RateBurst, "burst above --rate allowed per connection")
	f.DurationVar(&opts.ShutdownTimeout, "shutdown-timeout", opts.ShutdownTimeout, "longest graceful shutdown")
	f.DurationVar(&opts.Server.DrainDelay, "drain-delay", opts.Server.DrainDelay, "time /readyz reports 503 before clients are closed (set above the load balancer's health check interval x fall)")
	f.DurationVar(&opts.Server.HeartbeatInterval, "heartbeat-interval", opts.Server.HeartbeatInterval, "period of the stats heartbeat between servers (livechat stats); not the clients' --heartbeat")
	f.DurationVar(&opts.Server.ClientHeartbeat, "heartbeat", opts.Server.ClientHeartbeat, "longest a client's connection goes without a frame: a quiet one gets a heartbeat frame, and the web client reconnects after twice this without one (a frozen server, a dead network path); 0 turns heartbeats off, else "+show(heartbeatMin)+" to "+show(heartbeatMax))
	f.DurationVar(&opts.Server.BrokerLossGrace, "broker-grace", opts.Server.BrokerLossGrace, "time the broker may be unreachable before clients are closed with 1001 to reconnect elsewhere (set above the load balancer's time to mark a server down and above a broker restart)")
	f.DurationVar(&opts.Server.PresenceInterval, "presence-interval", opts.Server.PresenceInterval, "period of presence snapshots; a dead server's members expire after three")
	f.StringVar(&opts.History, "history", opts.History, `message history store: redis://..., redis+cluster://..., postgres://..., sqlite:///path/file.db (one node, kept across restarts), memory:// (one node only) or "none"; empty means the broker's Redis (or Redis Cluster) with a Redis broker, else livechat.db in --data (a nats:// broker needs it set). Every server of a cluster must use the same store`)
	f.StringVar(&opts.StoreURL, "store", opts.StoreURL, "store of accounts and rooms: sqlite:///path/file.db, postgres://... or memory://; empty means livechat.db in --data. Every server of a cluster must use the same store")
	f.StringVar(&opts.SecretFlags.File, "secret-file", opts.SecretFlags.File, "file holding the connection token secret (at least 32 bytes); without it LIVECHAT_SECRET, then LIVECHAT_SECRET_FILE, then secret in --data (made on first start) is used. Every server of a cluster must use the same secret")
	f.StringVar(&opts.LogLevel, "log-level", opts.LogLevel, "log level: debug, info, warn, error")
	f.StringVar(&opts.LogFormat, "log-format", opts.LogFormat, "log format: text or json")
	f.BoolVar(&opts.BatchWrites, "batch-writes", opts.BatchWrites, "write many client sockets in one system call with io_uring where the kernel allows it (Linux); false writes each with its own writev")
	f.BoolVar(&opts.WriteBurst, "write-burst", opts.WriteBurst, "let a connection quiet for half a second get its next two frames at once (a joining client's welcome and its join's answer); false keeps every write of a connection an interval (20 ms or more) after the last")
	f.BoolVar(&opts.ReadPoller, "read-poller", opts.ReadPoller, "watch idle connections' sockets in one epoll set, so that an idle connection holds no goroutine (Linux); false gives each connection a reader goroutine")
	f.BoolVar(&opts.AppendPublish, "append-publish", opts.AppendPublish, "when the history is the broker's Redis, store and publish each message with one script (one round trip); false: append, then PUBLISH")
	f.BoolVar(&opts.InlineReads, "inline-reads", opts.InlineReads, "with memory:// broker and history, whose calls never block, read and handle a client's frames on the read poller's goroutine; false starts a goroutine per read, as with Redis or PostgreSQL")
	f.BoolVar(&opts.InlineDelivery, "inline-delivery", opts.InlineDelivery, "hand a message from the broker to an idle room on the goroutine that received it; false starts a goroutine per message")
	f.BoolVar(&opts.Guests, "guests", opts.Guests, "let people without an account or token chat in public rooms as guests (under a name no account holds); false: only signed-in and token users")
	f.BoolVar(&opts.Flusher, "flusher", opts.Flusher, "write the queued frames of many connections from one flusher goroutine per processor without blocking; false gives each connection a writer goroutine that drains its queue with one blocking writev (gorilla's writePump)")
	f.StringVar(&opts.Pprof, "pprof", opts.Pprof, "serve net/http/pprof on this address (e.g. 127.0.0.1:6060); for profiling only")
	_ = f.MarkHidden("pprof")
	addUploadFlags(f, &opts.Uploads)
	addBrokerFlags(cmd, g, DefaultServeBroker)
	addRetentionFlags(cmd.Flags(), g)
	addDataFlag(cmd, g)
	return cmd
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usageErrorf("--log-level %q: must be debug, info, warn or error", level)
	}
	ho := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, ho)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, ho)), nil
	}
	return nil, usageErrorf("--log-format %q: must be text or json", format)
}

func runServe(ctx context.Context, opts *ServeOptions, ios *IOStreams) error {
	if err := opts.validate(); err != nil {
		return err
	}
	log, err := newLogger(ios.ErrOut, opts.LogLevel, opts.LogFormat)
	if err != nil {
		return err
	}
	// The port first: a taken one fails at once, before any connection.
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("listen on %s: %w (is another server using the port? set --addr)", opts.Addr, err)
		}
		return fmt.Errorf("listen on %s: %w (set --addr)", opts.Addr, err)
	}
	defer ln.Close() // after hs.Serve took it: already closed, harmless
	b, err := openBroker(ctx, opts.Global, broker.Options{
		Logger:   log,
		NoInline: !opts.InlineDelivery,
		OnStateChange: func(s broker.State) {
			log.Info("broker state", "state", s.String())
		},
	})
	if err != nil {
		return err
	}
	defer b.Close()
	storeURL, err := openData(ctx, opts, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := opts.Store.Close(); err != nil {
			log.Warn("close store", "err", err)
		}
		if err := opts.Blobs.Close(); err != nil {
			log.Warn("close blobs", "err", err)
		}
	}()
	hist, histURL, err := openHistory(ctx, opts.History, opts.Global, log, true)
	if err != nil {
		return err
	}
	if hist != nil {
		defer func() {
			if err := hist.Close(); err != nil {
				log.Warn("close history", "err", err)
			}
		}()
	}

	cfg := opts.Server
	cfg.Addr = ln.Addr().String()
	cfg.Prefix = opts.Global.Prefix
	cfg.Version = version
	cfg.Static = web.FS()
	cfg.ClientHeartbeat = clientHeartbeat(cfg.ClientHeartbeat)
	cfg.History = hist
	cfg.NoBatchedWrites = !opts.BatchWrites
	cfg.NoWriteBurst = !opts.WriteBurst
	cfg.NoReadPoller = !opts.ReadPoller
	cfg.NoFlusher = !opts.Flusher
	cfg.NoGuests = !opts.Guests
	cfg.NoInlineReads = !opts.InlineReads
	cfg.HistoryPublishes = opts.AppendPublish && historyInBrokerRedis(opts.Global.Broker, opts.History)
	cfg.Logger = log
	ids, err := newIdentity(ctx, b, opts, &cfg, log)
	if err != nil {
		return err
	}
	defer ids.Close()
	srv, err := server.New(b, cfg)
	if err != nil {
		return usageErrorf("%v", err)
	}
	// The loops (heartbeat, presence) outlive the signal: Shutdown stops them
	// after the drain, so stats still shows this server as draining.
	if err := srv.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	// The operator API is served next to the chat, which knows nothing of
	// it; Shutdown ends its streams (it would wait for them otherwise).
	ops := broker.NewHTTPHandler(b, opts.OperatorKey, log)
	mux := http.NewServeMux()
	mux.Handle(broker.OpsPath, ops)
	mux.Handle("/", srv.Handler())
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		MaxHeaderBytes:    16 << 10,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	hs.RegisterOnShutdown(ops.Close)
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	if opts.Pprof != "" {
		stop, err := servePprof(opts.Pprof, log)
		if err != nil {
			_ = hs.Close()
			return err
		}
		defer stop()
	}
	log.Info("livechat serving", "addr", ln.Addr().String(), "app_id", cfg.AppID, "broker", broker.Redact(opts.Global.Broker), "history", histURL,
		"store", storeURL, "data", opts.Global.Data, "version", version)

	select {
	case err := <-served:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", opts.ShutdownTimeout, "drain_delay", cfg.DrainDelay)
	sctx, cancel := context.WithTimeout(context.Background(), opts.ShutdownTimeout)
	defer cancel()
	serr := srv.Shutdown(sctx)
	herr := hs.Shutdown(sctx)
	if err := errors.Join(serr, herr); err != nil {
		log.Warn("shutdown incomplete", "err", err)
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// openData prepares what serve keeps in the data directory or is told to
// find elsewhere: the directory itself (0700), the store (opts.Store), the
// token secret (opts.Secret) and the operator key (opts.OperatorKey), the
// last two made on first start (0600). On error nothing stays open.
func openData(ctx context.Context, opts *ServeOptions, log *slog.Logger) (storeURL string, err error) {
	dir := opts.Global.Data
	if strings.TrimSpace(dir) == "" {
		return "", usageErrorf("--data must not be empty")
	}
	if err := ensureDataDir(dir); err != nil {
		return "", err
	}
	if storeURL, err = storeURLFor(opts.StoreURL, dir); err != nil {
		return "", err
	}
	opts.Secret, _, err = tokenSecret(opts.SecretFlags, dir, true)
	if err != nil {
		return "", err
	}
	keyPath := filepath.Join(dir, operatorKeyFile)
	if made, err := createSecretFile(keyPath, 32); err != nil {
		return "", fmt.Errorf("create the operator key %s: %w (set --data to a writable directory)", keyPath, err)
	} else if made {
		log.Info("operator key created", "file", keyPath)
	}
	key, err := readKeyFile(keyPath)
	if err != nil {
		return "", fmt.Errorf("operator key: %w", err)
	}
	opts.OperatorKey = []byte(key)
	blobsURL, err := blobsURLFor(opts.Uploads.BlobsURL, storeURL, dir)
	if err != nil {
		return "", err
	}
	if opts.Store, err = openStore(ctx, storeURL); err != nil {
		return "", err
	}
	if opts.Blobs, err = openBlobs(ctx, blobsURL); err != nil {
		_ = opts.Store.Close()
		return "", err
	}
	return history.Redact(storeURL), nil
}

// identity is what serve adds to the chat for accounts and rooms: the
// account and room services on the store, their API, and the sweep of
// expired sessions.
type identity struct {
	rooms *rooms.Service
	files *files.Service
	stop  context.CancelFunc
	done  chan struct{}
}

// newIdentity builds the account and room services on opts.Store and
// opts.Secret, publishing the users' events on b, and sets cfg's Auth,
// Access and API. Close stops them.
func newIdentity(ctx context.Context, b broker.Broker, opts *ServeOptions, cfg *server.Config, log *slog.Logger) (*identity, error) {
	publish := b.Publish
	acct, err := account.New(account.Config{
		Store:          opts.Store,
		Secret:         opts.Secret,
		Publish:        publish,
		Prefix:         cfg.Prefix,
		Guests:         !cfg.NoGuests,
		AllowedOrigins: cfg.AllowedOrigins,
		TrustProxy:     cfg.TrustProxy,
		Logger:         log,
	})
	if err != nil {
		return nil, err
	}
	rms, err := rooms.New(rooms.Config{
		Store:          opts.Store,
		Identify:       acct.Authenticate,
		Publish:        publish,
		Prefix:         cfg.Prefix,
		AllowedOrigins: cfg.AllowedOrigins,
		Logger:         log,
	})
	if err != nil {
		return nil, err
	}
	up := opts.Uploads
	fs, err := files.New(files.Config{
		Store:          opts.Store,
		Blobs:          opts.Blobs,
		Identify:       acct.AuthenticateFiles,
		Enter:          rms.Enter,
		Guests:         !cfg.NoGuests,
		GuestUploads:   up.Guests,
		MaxBytes:       int64(up.MaxBytes),
		Quota:          int64(up.Quota),
		AllowOther:     up.AllowOther,
		Rate:           up.rate(),
		Timeout:        up.Timeout,
		AllowedOrigins: cfg.AllowedOrigins,
		Logger:         log,
	})
	if err != nil {
		rms.Close()
		return nil, err
	}
	api := http.NewServeMux()
	ah := acct.Handler()
	api.Handle("/api/account", ah)
	api.Handle("/api/account/", ah)
	fh := fs.Handler()
	api.Handle("/api/files", fh)
	api.Handle("/api/files/", fh)
	api.Handle("/api/", rms.Handler())
	cfg.Auth, cfg.Access, cfg.API, cfg.Files = acct, rms, api, fs
	if up.Guests {
		cfg.GuestUploadToken = acct.UploadToken
	}
	fs.Start()

	ctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	id := &identity{rooms: rms, files: fs, stop: stop, done: make(chan struct{})}
	go func() {
		defer close(id.done)
		t := time.NewTicker(sessionSweepEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if n, err := acct.SweepSessions(ctx); err != nil {
				log.Warn("sweep expired sessions", "err", err)
			} else if n > 0 {
				log.Info("expired sessions deleted", "count", n)
			}
		}
	}()
	return id, nil
}

// sessionSweepEvery is how often serve deletes expired sessions.
const sessionSweepEvery = time.Hour

// Close stops the session sweep and the room service's background work.
func (id *identity) Close() {
	id.stop()
	<-id.done
	id.files.Close()
	id.rooms.Close()
}

// clientHeartbeat is server.Config's ClientHeartbeat for --heartbeat d
// (validated): 0 (off) becomes negative, as server.Config's zero is its
// default.
func clientHeartbeat(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// openHistory opens the history store named by raw ("" means
// defaultHistory, "none" returns a nil store), with a bounded wait and an
// error that names the URL (password redacted) and says what to do. It also
// returns the redacted URL, or "none".
func openHistory(ctx context.Context, raw string, g *GlobalOptions, log *slog.Logger, serving bool) (history.Store, string, error) {
	if raw == "" {
		var err error
		if raw, err = defaultHistory(g, serving); err != nil {
			return nil, "", err
		}
	}
	if raw == "none" {
		return nil, "none", nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	st, err := history.Open(ctx, raw, history.Options{KeyPrefix: g.Prefix + ":history", Logger: log,
		MaxLen: g.Retention.MaxLen, MaxAge: g.Retention.MaxAge, DedupWindow: g.Retention.DedupWindow})
	if err != nil {
		if errors.Is(err, history.ErrUnsupportedURL) {
			return nil, "", usageErrorf("--history: %v", err)
		}
		return nil, "", fmt.Errorf("%w (set --history or LIVECHAT_HISTORY; \"none\" disables history)", err)
	}
	return st, history.Redact(raw), nil
}

// addRetentionFlags registers the history's bounds (g.Retention) on a
// command that appends to it.
func addRetentionFlags(f *pflag.FlagSet, g *GlobalOptions) {
	g.Retention = history.Options{MaxLen: history.DefaultMaxLen, MaxAge: history.DefaultMaxAge, DedupWindow: history.DefaultDedupWindow}
	f.IntVar(&g.Retention.MaxLen, "history-max-len", g.Retention.MaxLen, "messages the history keeps per room, the oldest trimmed (Redis, SQLite, memory; PostgreSQL keeps all). Every server and publish must use the same")
	f.DurationVar(&g.Retention.MaxAge, "history-max-age", g.Retention.MaxAge, "messages older than this are trimmed from the history (Redis, SQLite, memory); a Redis room quiet this long starts again at seq 1. Every server and publish must use the same")
	f.DurationVar(&g.Retention.DedupWindow, "history-dedup-window", g.Retention.DedupWindow, "how long the history remembers a sent message's cid, so a retried send is stored once (Redis, SQLite; in Redis ~140 bytes a message for this long)")
}

// validateRetention checks the history's bounds.
func validateRetention(r history.Options) error {
	return firstError(
		between("history-max-len", r.MaxLen, 1, 10_000_000),
		between("history-max-age", r.MaxAge, time.Minute, 100*365*24*time.Hour),
		between("history-dedup-window", r.DedupWindow, time.Minute, 365*24*time.Hour),
	)
}

// historyInBrokerRedis reports whether the history URL hist ("" for the
// default) names the Redis of a redis:// or rediss:// broker, whose Pub/Sub
// channels are the broker's subjects.
func historyInBrokerRedis(brokerURL, hist string) bool {
	u, err := url.Parse(brokerURL)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
		return false
	}
	return hist == "" || hist == brokerURL
}

// defaultHistory is the history URL when --history is empty: the broker's
// own Redis for a Redis broker (history.URLForBroker); the data
// directory's database for a single node (serve with the in-process
// broker) and for the operator commands next to it (an http:// broker)
// when that file exists, else "none" (live only); a usage error for a NATS
// broker (errNATSNeedsHistory); memory:// otherwise.
func defaultHistory(g *GlobalOptions, serving bool) (string, error) {
	u, err := url.Parse(g.Broker)
	switch {
	case err == nil && (u.Scheme == "nats" || u.Scheme == "tls"):
		return "", errNATSNeedsHistory(g.Broker)
	case err == nil && serving && u.Scheme == "memory":
		return dataSQLiteURL(g.Data)
	case err == nil && (u.Scheme == "http" || u.Scheme == "https"):
		if _, serr := os.Stat(filepath.Join(g.Data, dataDBFile)); serr != nil {
			return "none", nil
		}
		return dataSQLiteURL(g.Data)
	}
	return history.URLForBroker(g.Broker), nil
}

// mutexProfileFraction is the sampling rate of --pprof's mutex profile.
const mutexProfileFraction = 20

// servePprof serves the net/http/pprof handlers on their own listener at
// addr, so profiles never share the public port; the returned function
// closes it.
func servePprof(addr string, log *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for --pprof on %s: %w", addr, err)
	}
	// Lock contention shows in /debug/pprof/mutex: one event in
	// mutexProfileFraction is sampled, about free when nothing contends.
	runtime.SetMutexProfileFraction(mutexProfileFraction)
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	log.Info("pprof serving", "addr", ln.Addr().String())
	return func() { _ = hs.Close() }, nil
}
