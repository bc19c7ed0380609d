package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
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
}

// Environment variables of the token secret, read by bench only with
// --tokens and no --token-secret-file (the servers read the same ones).
const (
	envSecret     = "LIVECHAT_SECRET"
	envSecretFile = "LIVECHAT_SECRET_FILE"
)

// benchTokenMargin is added to a run's longest possible length for the
// lifetime of its tokens.
const benchTokenMargin = time.Minute

// newBenchOptions returns bench's options with their defaults, which the
// flags show and read from here.
func newBenchOptions(g *GlobalOptions) *BenchOptions {
	return &BenchOptions{Global: g, Config: loadgen.DefaultConfig(), SourceIPSpec: "auto"}
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

Exit code 1 when no connection could be made, or when any delivery was lost or
duplicated: one line under the table says how many (an interrupted run reports
its figures and exits 0).`,
		Example: `  # 100 clients, 100 msg/s for 10 s against a local server
  livechat bench --url ws://127.0.0.1:8080/ws

  # 1,000 clients in one room, 300 msg/s (300,000 deliveries/s), JSON result
  livechat bench --clients 1000 --rate 300 --duration 20s -o json

  # 500 rooms of 10 clients, through HAProxy in front of four servers
  livechat bench --url ws://127.0.0.1:8080/ws --clients 5000 --rooms 500 --rate 1000

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
		between("connect-concurrency", o.ConnectConcurrency, 1, 10_000),
		between("connect-timeout", o.ConnectTimeout, 10*time.Millisecond, 10*time.Minute),
		between("join-timeout", o.JoinTimeout, 10*time.Millisecond, time.Hour),
		between("warmup", o.Warmup, 0, 10*time.Minute),
		between("drain", o.Drain, 0, 10*time.Minute),
	)
	for _, u := range o.URLs {
		err = firstError(err, wsURLPort("url", u))
	}
	return err
}

// benchConfig checks opts and turns them into the engine's configuration.
func benchConfig(opts *BenchOptions) (loadgen.Config, error) {
	if err := opts.validate(); err != nil {
		return loadgen.Config{}, err
	}
	ips, err := loadgen.ParseSourceIPs(opts.SourceIPSpec, opts.URLs)
	if err != nil {
		return loadgen.Config{}, &UsageError{Err: err}
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
			return cfg, &UsageError{Err: err}
		}
		return cfg, err
	}
	if opts.Tokens || opts.TokenSecretFile != "" {
		if err := benchTokens(&cfg, opts.TokenSecretFile); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// benchTokens makes cfg's clients token users: it loads the secret (from
// secretFile, else LIVECHAT_SECRET, else LIVECHAT_SECRET_FILE), fixes
// cfg.RunID so that the names are known, and sets cfg.Token to mint
// client i's token: sub "bench-<i>", name cfg.ClientName(i), valid for
// benchTokenTTL. cfg must be validated. A missing or short secret is a
// UsageError that names its source, never the secret.
func benchTokens(cfg *loadgen.Config, secretFile string) error {
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
		return usageErrorf("--tokens needs the servers' token secret: set --token-secret-file, %s or %s", envSecret, envSecretFile)
	case err != nil && secretFile != "":
		return usageErrorf("--token-secret-file: %w", err)
	case err != nil:
		return usageErrorf("--tokens: %w", err)
	}
	if cfg.RunID, err = loadgen.NewRunID(); err != nil {
		return err
	}
	names := loadgen.Config{Clients: cfg.Clients, RunID: cfg.RunID}
	ttl := benchTokenTTL(*cfg)
	cfg.Token = func(i int) (string, error) {
		c := auth.Claims{Name: names.ClientName(i)}
		c.Subject = "bench-" + strconv.Itoa(i)
		return auth.MintToken(secret, c, ttl)
	}
	return nil
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
	cfg, err := benchConfig(opts)
	if err != nil {
		return err
	}
	if f, ok := ios.ErrOut.(*os.File); ok && isTerminal(f) {
		cfg.Progress = progressLine(ios.ErrOut)
	}
	res, err := loadgen.Run(ctx, cfg)
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
	if err := writeBench(ios.Out, res, opts.Global.Output, ios.IsTerminal); err != nil {
		return err
	}
	return lossError(res)
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

// writeBench prints res as JSON, a table for a terminal, or tab-separated
// name/value lines for a pipe.
func writeBench(w io.Writer, res *loadgen.Result, output string, terminal bool) error {
	if output == "json" {
		return json.NewEncoder(w).Encode(res)
	}
	rows := benchRows(res)
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
