package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/olekukonko/tablewriter"
	"github.com/spf13/cobra"

	"github.com/livechat/livechat/pkg/auth"
	"github.com/livechat/livechat/pkg/loadgen"
	"github.com/livechat/livechat/pkg/protocol"
	"github.com/livechat/livechat/pkg/server"
)

// BenchOptions are the inputs of `livechat bench`.
type BenchOptions struct {
	Global *GlobalOptions
	// Config is the run: loadgen.DefaultConfig(), whose fields the flags
	// set. On the command line a Warmup or Drain of 0 means none (the
	// engine's negative); SourceIPs comes from SourceIPSpec.
	loadgen.Config
	// SourceIPSpec is --source-ips: "auto", "none", a range A-B or a list
	// A,B (see loadgen.ParseSourceIPs). Default: "auto".
	SourceIPSpec string
	// Tokens is --tokens: every client presents a connection token minted
	// with the servers' secret (benchTokens). Default: false, guests.
	Tokens bool
	// TokenSecretFile is --token-secret-file, the file holding that
	// secret; set, it implies Tokens and wins over LIVECHAT_SECRET and
	// LIVECHAT_SECRET_FILE. Default: "".
	TokenSecretFile string
	// Uploaders is --uploaders: token users uploading files while the
	// publishers send (loadgen.RunUploads). Default: 0, none.
	Uploaders int
	// UploadSize is --upload-size, the bytes of each upload, a number
	// with an optional B, KiB, MiB or GiB suffix (parseByteSize).
	// Default: "10MiB".
	UploadSize string
}

// Environment variables of the token secret, read by bench only with
// --tokens and no --token-secret-file (the servers read the same ones).
const (
	envSecret     = "LIVECHAT_SECRET"
	envSecretFile = "LIVECHAT_SECRET_FILE"
)

// Bounds and default of --upload-size.
const (
	defaultUploadSize = "10MiB"
	maxUploadSize     = 1 << 30
)

// benchTokenMargin is added to a run's longest possible length for the
// lifetime of its tokens.
const benchTokenMargin = time.Minute

// newBenchOptions returns bench's options with their defaults, which the
// flags show and read from here.
func newBenchOptions(g *GlobalOptions) *BenchOptions {
	return &BenchOptions{Global: g, Config: loadgen.DefaultConfig(), SourceIPSpec: "auto", UploadSize: defaultUploadSize}
}

func newBenchCmd(ios *IOStreams, g *GlobalOptions) *cobra.Command {
	opts := newBenchOptions(g)
	cmd := &cobra.Command{
		Use:   "bench [flags]",
		Short: "Load-test servers with WebSocket clients and report throughput, latency and loss",
		Long: `bench opens --clients WebSocket connections spread round-robin over the --url
endpoints (and over --rooms rooms), plus publisher connections that send
--rate messages per second in total for --duration. Every connection joins its
room before the first message, and the publishers are members too: each message
is expected once by every member of its room, publishers included.

It reports connections made and connect time, messages sent and acknowledged,
deliveries per second, end-to-end latency (p50/p90/p99/max) and the part of
it before the server took the message (accept latency: send to the message's
"ts", measured once per message by its sender) and up to the client's socket
(socket latency: send to the kernel's receipt of the delivery, on Linux; the
rest is bench's own lag in reading), messages lost or duplicated, error frames and server-side disconnects, and the load generator's
own CPU use: above 90% of one core the figures may measure bench rather than
the server, and a warning says so.

Publishers are sized so none exceeds --max-rate-per-conn (the server's
per-connection limit, ` + show(server.DefaultConfig().RatePerSec) + ` msg/s by default). Against a loopback URL the
connections bind to source addresses 127.0.0.1-127.0.0.254 in turn, so the
server's per-IP connection cap does not refuse them (--source-ips none turns
that off). Traffic goes only to the --url endpoints.

With --tokens (or --token-secret-file) every client connects as a token user:
its handshake carries "Authorization: Bearer <token>", an HS256 token minted
with the servers' secret for sub "bench-<i>" and the client's bench name, valid
for the whole run. All tokens are minted before the first dial, so the connect
time is the servers'. The secret comes from --token-secret-file, else
LIVECHAT_SECRET, else the file LIVECHAT_SECRET_FILE names; without --tokens
bench reads neither.

With --uploaders N, N more token users (sub "bench-up-<i>") upload files of
--upload-size bytes (a PDF header and filler) into the room (the first with
--rooms) while the publishers send, over and over: POST /api/files on the
first --url's server (ws://h:p/... becomes http://h:p), then DELETE of each
upload taken, so no quota fills up. They start when publishing starts and stop
when it ends; a row (JSON "uploads") gives uploads, MiB/s, upload time and
errors by status and code. --uploaders needs --tokens or --token-secret-file.

Exit code 1 when no connection could be made, or when any delivery was lost or
duplicated: one line under the table says how many (an interrupted run reports
its figures and exits 0).`,
		Example: `  # 100 clients, 100 msg/s for 10 s against a local server
  livechat bench --url ws://127.0.0.1:8080/ws

  # 1,000 clients in one room, 300 msg/s (300,000 deliveries/s), JSON result
  livechat bench --clients 1000 --rate 300 --duration 20s -o json

  # 500 rooms of 10 clients, through HAProxy in front of four servers
  livechat bench --url ws://127.0.0.1:8080/ws --clients 5000 --rooms 500 --rate 1000

  # 1,000 clients in one room while 20 users upload 10 MiB files
  livechat bench --clients 1000 --rate 300 --duration 10s --warmup 5s \
    --token-secret-file /run/secrets/livechat_secret --uploaders 20 --upload-size 10MiB

  # a burst of 5,000 token users through HAProxy: read the connections row
  livechat bench --url ws://127.0.0.1:8080/ws --clients 5000 --rate 1 --duration 2s \
    --warmup 0s --token-secret-file /run/secrets/livechat_secret`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("fail-on-loss") {
				fmt.Fprintln(ios.ErrOut, "warning: --fail-on-loss has no effect: bench always exits 1 when a delivery was lost or duplicated")
			}
			return runBench(cmd.Context(), opts, ios)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&opts.URLs, "url", opts.URLs, "WebSocket endpoint; repeat for several, used round-robin")
	f.IntVarP(&opts.Clients, "clients", "c", opts.Clients, "subscriber connections (publishers come on top)")
	f.IntVarP(&opts.Publishers, "publishers", "p", opts.Publishers, "publisher connections; 0 = enough for --max-rate-per-conn, at least one per room")
	f.Float64VarP(&opts.Rate, "rate", "r", opts.Rate, "messages per second, all publishers together")
	f.Float64Var(&opts.MaxRatePerConn, "max-rate-per-conn", opts.MaxRatePerConn, "most messages per second one publisher may send (the server's rate limit)")
	f.IntVarP(&opts.Size, "size", "s", opts.Size, fmt.Sprintf("bytes of text per message (%d-%d)", loadgen.MinSize, protocol.MaxTextLen))
	f.DurationVarP(&opts.Duration, "duration", "d", opts.Duration, "how long the publishers send")
	f.StringVar(&opts.Room, "room", opts.Room, "room name, or prefix of <room>-<i> with --rooms")
	f.IntVar(&opts.Rooms, "rooms", opts.Rooms, "spread clients and publishers over this many rooms")
	f.IntVar(&opts.BigRoom, "big-room", opts.BigRoom, "put this many of the --clients in one more room, <room>-big (publishers go round-robin over every room)")
	f.IntVar(&opts.ConnectConcurrency, "connect-concurrency", opts.ConnectConcurrency, "handshakes in flight at once")
	f.DurationVar(&opts.ConnectTimeout, "connect-timeout", opts.ConnectTimeout, "bound on one dial plus handshake")
	f.DurationVar(&opts.JoinTimeout, "join-timeout", opts.JoinTimeout, "bound on waiting for every connection to join")
	f.DurationVar(&opts.Warmup, "warmup", opts.Warmup, "pause between everyone joined and the first message")
	f.DurationVar(&opts.Drain, "drain", opts.Drain, "wait after the last message for deliveries still under way (ends early when all arrived)")
	f.StringVar(&opts.SourceIPSpec, "source-ips", opts.SourceIPSpec, `local addresses to bind, round-robin: "auto" (127.0.0.1-127.0.0.254 for loopback URLs), "none", A-B or A,B,...`)
	f.BoolVar(&opts.Tokens, "tokens", opts.Tokens, "connect as token users: a connection token per client, "+
		"with the secret of --token-secret-file, else LIVECHAT_SECRET, else LIVECHAT_SECRET_FILE")
	f.StringVar(&opts.TokenSecretFile, "token-secret-file", opts.TokenSecretFile, "file holding the servers' "+
		"connection token secret (at least 32 bytes); implies --tokens")
	f.IntVar(&opts.Uploaders, "uploaders", opts.Uploaders, fmt.Sprintf("token users uploading files while the publishers send "+
		"(0-%d; needs --tokens)", loadgen.MaxUploaders))
	f.StringVar(&opts.UploadSize, "upload-size", opts.UploadSize, "bytes of each upload, with an optional B, KiB, MiB or GiB suffix")
	// Before bench failed on loss by default it took --fail-on-loss: still
	// accepted, so that scripts keep working, and hidden.
	f.Bool("fail-on-loss", true, "no effect: bench always exits 1 when a delivery was lost or duplicated")
	_ = f.MarkHidden("fail-on-loss")
	addOutputFlag(cmd, g)
	return cmd
}

// validate checks every numeric, duration and address flag of bench, one
// line per flag, before anything starts; loadgen checks how they combine.
func (o *BenchOptions) validate() error {
	err := firstError(
		between("clients", o.Clients, 1, 1_000_000),
		between("publishers", o.Publishers, 0, loadgen.MaxPublishers),
		between("rate", o.Rate, 0.1, 1_000_000),
		between("max-rate-per-conn", o.MaxRatePerConn, 0.1, 10_000),
		between("size", o.Size, loadgen.MinSize, protocol.MaxTextLen),
		between("duration", o.Duration, 10*time.Millisecond, 24*time.Hour),
		between("rooms", o.Rooms, 1, 100_000),
		between("big-room", o.BigRoom, 0, 1_000_000),
		between("connect-concurrency", o.ConnectConcurrency, 1, 10_000),
		between("connect-timeout", o.ConnectTimeout, 10*time.Millisecond, 10*time.Minute),
		between("join-timeout", o.JoinTimeout, 10*time.Millisecond, time.Hour),
		between("warmup", o.Warmup, 0, 10*time.Minute),
		between("drain", o.Drain, 0, 10*time.Minute),
		between("uploaders", o.Uploaders, 0, loadgen.MaxUploaders),
	)
	for _, u := range o.URLs {
		err = firstError(err, wsURLPort("url", u))
	}
	if err != nil {
		return err
	}
	if _, err := o.uploadSize(); err != nil {
		return err
	}
	if o.Uploaders > 0 && !o.Tokens && o.TokenSecretFile == "" {
		return usageErrorf("--uploaders %d needs --tokens or --token-secret-file: the uploads are made by token users", o.Uploaders)
	}
	return nil
}

// uploadSize returns --upload-size in bytes, a UsageError when it is not
// a size from 1 B to 1 GiB.
func (o *BenchOptions) uploadSize() (int64, error) {
	n, err := parseByteSize(o.UploadSize)
	if err != nil {
		return 0, usageErrorf("--upload-size %q: %w", o.UploadSize, err)
	}
	if err := between("upload-size", n, 1, maxUploadSize); err != nil {
		return 0, err
	}
	return n, nil
}

// byteUnits are the suffixes parseByteSize knows, longest first.
var byteUnits = []struct {
	suffix string
	size   int64
}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}

// parseByteSize parses a byte count: digits and an optional suffix B,
// KiB, MiB or GiB (binary units; case-insensitive, spaces allowed before
// it): "512", "512KiB", "10 MiB".
func parseByteSize(s string) (int64, error) {
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range byteUnits {
		if len(num) >= len(u.suffix) && strings.EqualFold(num[len(num)-len(u.suffix):], u.suffix) {
			num, mult = strings.TrimSpace(num[:len(num)-len(u.suffix)]), u.size
			break
		}
	}
	n, err := strconv.ParseUint(num, 10, 63)
	if err != nil || n > math.MaxInt64/uint64(mult) {
		return 0, errors.New("want a number of bytes, optionally with a suffix B, KiB, MiB or GiB (e.g. 10MiB)")
	}
	return int64(n) * mult, nil
}

// uploadBaseURL returns the HTTP base of a WebSocket URL: its scheme
// ws becomes http, wss https, and the path goes.
func uploadBaseURL(ws string) (string, error) {
	u, err := url.Parse(ws)
	if err != nil {
		return "", fmt.Errorf("--url %q: %w", ws, err)
	}
	switch u.Scheme {
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	default:
		return "", fmt.Errorf("--url %q: want ws:// or wss://", ws)
	}
	if u.Host == "" {
		return "", fmt.Errorf("--url %q: no host", ws)
	}
	return u.Scheme + "://" + u.Host, nil
}

// benchConfig checks opts and turns them into the engine's configuration
// (benchPlan without the uploads).
func benchConfig(opts *BenchOptions) (loadgen.Config, error) {
	cfg, _, err := benchPlan(opts)
	return cfg, err
}

// benchPlan checks opts and turns them into the engine's configuration
// and, with --uploaders, the upload load's (else nil): the uploaders are
// token users with the clients' secret, sub "bench-up-<i>" and name
// "bench-<run>-u<i>", uploading into the first room on the first URL's
// server.
func benchPlan(opts *BenchOptions) (loadgen.Config, *loadgen.UploadConfig, error) {
	if err := opts.validate(); err != nil {
		return loadgen.Config{}, nil, err
	}
	ips, err := loadgen.ParseSourceIPs(opts.SourceIPSpec, opts.URLs)
	if err != nil {
		return loadgen.Config{}, nil, &UsageError{Err: err}
	}
	cfg := opts.Config
	cfg.SourceIPs = ips
	// In the engine zero means "default"; on the command line 0 means none.
	if cfg.Warmup == 0 {
		cfg.Warmup = -1
	}
	if cfg.Drain == 0 {
		cfg.Drain = -1
	}
	if err := cfg.Validate(); err != nil {
		if errors.Is(err, loadgen.ErrConfig) {
			return cfg, nil, &UsageError{Err: err}
		}
		return cfg, nil, err
	}
	if !opts.Tokens && opts.TokenSecretFile == "" {
		return cfg, nil, nil
	}
	mint, err := benchTokens(&cfg, opts.TokenSecretFile)
	if err != nil || opts.Uploaders == 0 {
		return cfg, nil, err
	}
	size, err := opts.uploadSize()
	if err != nil {
		return cfg, nil, err
	}
	base, err := uploadBaseURL(cfg.URLs[0])
	if err != nil {
		return cfg, nil, &UsageError{Err: err}
	}
	runID := cfg.RunID
	up := &loadgen.UploadConfig{BaseURL: base, Room: cfg.RoomName(0), Uploaders: opts.Uploaders, Size: size,
		Token: func(i int) (string, error) {
			c := auth.Claims{Name: "bench-" + runID + "-u" + strconv.Itoa(i)}
			c.Subject = "bench-up-" + strconv.Itoa(i)
			return mint(c)
		}}
	return cfg, up, nil
}

// benchTokens makes cfg's clients token users: it loads the secret (from
// secretFile, else LIVECHAT_SECRET, else LIVECHAT_SECRET_FILE), fixes
// cfg.RunID so that the names are known, and sets cfg.Token to mint
// client i's token: sub "bench-<i>", name cfg.ClientName(i), valid for
// benchTokenTTL. It returns the function minting those tokens, for the
// uploaders'. cfg must be validated. A missing or short secret is a
// UsageError that names its source, never the secret.
func benchTokens(cfg *loadgen.Config, secretFile string) (func(auth.Claims) (string, error), error) {
	var (
		secret []byte
		err    error
	)
	if secretFile != "" {
		secret, err = auth.LoadSecret("", "", secretFile)
	} else {
		secret, err = auth.LoadSecret("", os.Getenv(envSecret), os.Getenv(envSecretFile))
	}
	switch {
	case errors.Is(err, auth.ErrNoSecret):
		return nil, usageErrorf("--tokens needs the servers' token secret: set --token-secret-file, %s or %s", envSecret, envSecretFile)
	case err != nil && secretFile != "":
		return nil, usageErrorf("--token-secret-file: %w", err)
	case err != nil:
		return nil, usageErrorf("--tokens: %w", err)
	}
	if cfg.RunID, err = loadgen.NewRunID(); err != nil {
		return nil, err
	}
	names := loadgen.Config{Clients: cfg.Clients, RunID: cfg.RunID}
	ttl := benchTokenTTL(*cfg)
	mint := func(c auth.Claims) (string, error) { return auth.MintToken(secret, c, ttl) }
	cfg.Token = func(i int) (string, error) {
		c := auth.Claims{Name: names.ClientName(i)}
		c.Subject = "bench-" + strconv.Itoa(i)
		return mint(c)
	}
	return mint, nil
}

// benchTokenTTL is how long a validated run's tokens must stay valid:
// its longest possible connect phase (every batch of ConnectConcurrency
// handshakes timing out), join timeout, warm-up, duration and drain, plus
// benchTokenMargin. Tokens are minted just before the first dial.
func benchTokenTTL(cfg loadgen.Config) time.Duration {
	n := cfg.Clients + cfg.Publishers
	batches := (n + cfg.ConnectConcurrency - 1) / cfg.ConnectConcurrency
	return time.Duration(batches)*cfg.ConnectTimeout + cfg.JoinTimeout + max(cfg.Warmup, 0) +
		cfg.Duration + max(cfg.Drain, 0) + benchTokenMargin
}

func runBench(ctx context.Context, opts *BenchOptions, ios *IOStreams) error {
	cfg, upCfg, err := benchPlan(opts)
	if err != nil {
		return err
	}
	if f, ok := ios.ErrOut.(*os.File); ok && isTerminal(f) {
		cfg.Progress = progressLine(ios.ErrOut)
	}
	var up *uploadPhase
	if upCfg != nil {
		up = newUploadPhase(ctx, *upCfg, &cfg)
	}
	res, err := loadgen.Run(ctx, cfg)
	uploads := up.stop()
	if err != nil {
		return err
	}
	if res.CPU.Saturated {
		fmt.Fprintf(ios.ErrOut, "warning: bench itself used %.0f%% of one CPU core while measuring: the figures may "+
			"show its limit rather than the server's; give it its own core (taskset) or fewer clients\n", res.CPU.Percent)
	}
	if res.Interrupted {
		fmt.Fprintln(ios.ErrOut, "warning: interrupted; the figures cover the run until then")
	}
	if res.Connect.Failed > 0 {
		fmt.Fprintf(ios.ErrOut, "warning: %d of %d connections failed, first: %s\n", res.Connect.Failed, res.Connect.Attempted, res.Connect.FirstError)
	}
	if err := writeBench(ios.Out, res, uploads, opts.Global.Output, ios.IsTerminal); err != nil {
		return err
	}
	return lossError(res)
}

// uploadPhase runs the uploaders during a run's publishing phase: it
// hooks the run's Progress, whose calls are serialised and come at each
// phase's start, to start them when publishing starts and stop them when
// it ends.
type uploadPhase struct {
	ctx context.Context
	cfg loadgen.UploadConfig

	mu      sync.Mutex
	started bool
	cancel  context.CancelFunc // nil until started
	done    chan struct{}      // closed once res is set
	res     loadgen.UploadResult
}

// newUploadPhase returns the upload phase of the run cfg describes and
// hooks it into cfg.Progress (keeping the progress line, if any). The
// uploaders run under ctx.
func newUploadPhase(ctx context.Context, up loadgen.UploadConfig, cfg *loadgen.Config) *uploadPhase {
	u := &uploadPhase{ctx: ctx, cfg: up, done: make(chan struct{})}
	show := cfg.Progress
	if show == nil {
		// Only the phase changes matter: no snapshots in between.
		cfg.ProgressInterval = 24 * time.Hour
	}
	cfg.Progress = func(p loadgen.Progress) {
		switch p.Phase {
		case "publishing":
			u.start()
		case "draining", "done":
			u.end()
		}
		if show != nil {
			show(p)
		}
	}
	return u
}

// start starts the uploaders, once.
func (u *uploadPhase) start() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.started {
		return
	}
	u.started = true
	ctx, cancel := context.WithCancel(u.ctx)
	u.cancel = cancel
	go func() {
		u.res = loadgen.RunUploads(ctx, u.cfg)
		close(u.done)
	}()
}

// end stops the uploaders (they may not have started) and keeps them from
// starting; it does not wait for them.
func (u *uploadPhase) end() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.started = true
	if u.cancel != nil {
		u.cancel()
	}
}

// stop ends the phase and returns what the uploaders did, once they have
// ended; nil for a nil phase or one that never started (the run failed
// before publishing).
func (u *uploadPhase) stop() *loadgen.UploadResult {
	if u == nil {
		return nil
	}
	u.end()
	u.mu.Lock()
	ran := u.cancel != nil
	u.mu.Unlock()
	if !ran {
		return nil
	}
	<-u.done
	return &u.res
}

// lossError is the failure of a run that lost or duplicated a delivery,
// printed as one line under the table; nil for a clean or interrupted run.
func lossError(res *loadgen.Result) error {
	if res.Interrupted || (res.Lost == 0 && res.Duplicates == 0) {
		return nil
	}
	return fmt.Errorf("%d of %d deliveries lost, %d duplicated", res.Lost, res.Expected, res.Duplicates)
}

// progressLine returns a Progress callback drawing one \r-refreshed line.
func progressLine(w io.Writer) func(loadgen.Progress) {
	return func(p loadgen.Progress) {
		if p.Phase == "done" {
			fmt.Fprint(w, "\r\033[K")
			return
		}
		fmt.Fprintf(w, "\r\033[K%-10s %6.1fs  connected %d  joined %d  sent %d  acked %d  delivered %d  %.0f/s",
			p.Phase, p.Elapsed.Seconds(), p.Connected, p.Joined, p.Sent, p.Acked, p.Delivered, p.DeliveriesPerSec)
	}
}

// benchJSON is bench's JSON output: the run's result and, with
// --uploaders, "uploads".
type benchJSON struct {
	*loadgen.Result
	Uploads *loadgen.UploadResult `json:"uploads,omitempty"`
}

// writeBench prints res (and uploads, if not nil) as JSON, a table for a
// terminal, or tab-separated name/value lines for a pipe.
func writeBench(w io.Writer, res *loadgen.Result, uploads *loadgen.UploadResult, output string, terminal bool) error {
	if output == "json" {
		return json.NewEncoder(w).Encode(benchJSON{Result: res, Uploads: uploads})
	}
	rows := benchRows(res)
	if uploads != nil {
		rows = append(rows, []string{"uploads", uploadRow(uploads)})
	}
	if !terminal {
		for _, r := range rows {
			if _, err := fmt.Fprintln(w, r[0]+"\t"+r[1]); err != nil {
				return err
			}
		}
		return nil
	}
	table := tablewriter.NewWriter(w)
	table.Header("Metric", "Value")
	if err := table.Bulk(rows); err != nil {
		return err
	}
	return table.Render()
}

func benchRows(r *loadgen.Result) [][]string {
	rooms := "1 room"
	if r.Rooms > 1 {
		rooms = strconv.Itoa(r.Rooms) + " rooms"
	}
	if r.BigRoom > 0 {
		rooms += fmt.Sprintf(" + 1 of %d subscribers", r.BigRoom)
	}
	clients := fmt.Sprintf("%d subscribers + %d publishers in %s: %d members", r.Clients, r.Publishers, rooms, r.Members)
	if r.Tokens {
		clients += ", token users"
	}
	src := "system's choice"
	if r.SourceIPs > 0 {
		src = strconv.Itoa(r.SourceIPs) + " addresses, round-robin"
	}
	c := r.Connect
	conns := fmt.Sprintf("%d of %d (%d failed) in %s; all joined after %s", c.Established, c.Attempted, c.Failed,
		secs(c.TotalSeconds), secs(c.JoinSeconds))
	if c.NotJoined > 0 {
		conns += fmt.Sprintf("; %d did not join", c.NotJoined)
	}
	if len(c.Errors) > 0 {
		conns += "; failures: " + counts(c.Errors)
	}
	return [][]string{
		{"target", strings.Join(r.URLs, " ")},
		{"clients", clients},
		{"source addresses", src},
		{"connections", conns},
		{"connect time", lat(c.Time)},
		{"published", fmt.Sprintf("%d sent, %d acked in %s (%s msg/s asked, %d B each)", r.Sent, r.Acked,
			secs(r.PublishSeconds), num(r.Rate), r.Size)},
		{"deliveries", fmt.Sprintf("%d of %d expected: %d lost, %d duplicated", r.Delivered, r.Expected, r.Lost, r.Duplicates)},
		{"throughput", fmt.Sprintf("%s deliveries/s (%s expected), %.1f MB/s", num(r.DeliveriesPerSec),
			num(r.ExpectedPerSec), r.BytesPerSec/1e6)},
		{"latency", lat(r.Latency)},
		{"accept latency", lat(r.AcceptLatency)},
		{"socket latency", lat(r.SocketLatency)},
		{"error frames", counts(r.ErrorFrames)},
		{"disconnects", counts(r.Disconnects)},
		{"bench cpu", fmt.Sprintf("%.2fs user + %.2fs sys: %.0f%% of one core (whole run %.0f%%)",
			r.CPU.UserSeconds, r.CPU.SystemSeconds, r.CPU.Percent, r.CPU.TotalPercent)},
	}
}

// uploadRow is the uploads row: what the uploaders did, their upload
// time and their errors.
func uploadRow(u *loadgen.UploadResult) string {
	return fmt.Sprintf("%d uploads of %s by %d users in %s, %.1f MiB/s sent; p50 %s  p99 %s; errors: %s", u.Uploads,
		byteSize(u.Size), u.Uploaders, secs(u.Seconds), u.MiBPerSec, msec(u.P50), msec(u.P99), counts(u.Errors))
}

// byteSize formats n bytes in the largest binary unit that divides it.
func byteSize(n int64) string {
	for _, u := range byteUnits {
		if n >= u.size && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + " " + u.suffix
		}
	}
	return strconv.FormatInt(n, 10) + " B"
}

func lat(l loadgen.Latency) string {
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  max %s", msec(l.P50), msec(l.P90), msec(l.P99), msec(l.Max))
}

func msec(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) + "ms" }

func secs(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) + "s" }

func num(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }

// counts formats a map as "k=v k=v" in key order, or "none".
func counts[V int | uint64](m map[string]V) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}
