package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/livechat/livechat/pkg/loadgen"
	"github.com/livechat/livechat/pkg/server"
	"github.com/livechat/livechat/pkg/server/servertest"
)

// benchRun runs the command line with buffers and returns exit code, stdout
// and stderr.
func benchRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, errOut := &benchBuffer{}, &benchBuffer{}
	code := Run(ctx, args, &IOStreams{In: strings.NewReader(""), Out: out, ErrOut: errOut})
	return code, out.String(), errOut.String()
}

// benchBuffer is a strings.Builder safe for concurrent writes.
type benchBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *benchBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *benchBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// wsURL returns the ws:// URL of an httptest server's /ws.
func wsURL(ts *httptest.Server) string { return "ws" + strings.TrimPrefix(ts.URL, "http") + "/ws" }

func TestBenchAgainstServerReportsZeroLoss(t *testing.T) {
	url := servertest.Start(t, server.Config{AppID: "t1"})
	code, out, errOut := benchRun(t, "bench", "--url", url, "--clients", "30", "--rooms", "2", "--rate", "100",
		"--duration", "700ms", "--warmup", "100ms", "--size", "200", "-o", "json")
	if code != ExitOK {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	var res loadgen.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out)
	}
	// 30 clients + 5 publishers (100 msg/s at 20 per connection).
	if res.Publishers != 5 || res.Members != 35 || res.Connect.Established != 35 || res.SourceIPs != 254 {
		t.Errorf("publishers %d members %d established %d source ips %d", res.Publishers, res.Members,
			res.Connect.Established, res.SourceIPs)
	}
	if res.Sent < 50 || res.Acked != res.Sent || res.Expected == 0 || res.Delivered != res.Expected ||
		res.Lost != 0 || res.Duplicates != 0 || res.Gaps != 0 {
		t.Errorf("sent %d acked %d expected %d delivered %d lost %d dupes %d gaps %d", res.Sent, res.Acked,
			res.Expected, res.Delivered, res.Lost, res.Duplicates, res.Gaps)
	}
	if len(res.ErrorFrames) != 0 || len(res.Disconnects) != 0 {
		t.Errorf("error frames %v disconnects %v", res.ErrorFrames, res.Disconnects)
	}
}

// lossyServer acknowledges every send but delivers the message to its
// sender only: every other member loses it.
func lossyServer(t *testing.T) *httptest.Server {
	var wg sync.WaitGroup
	var up websocket.Upgrader
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Counted before the upgrade: ts.Close waits for handlers until they
		// hijack their connection, so no Add comes after the cleanup's Wait.
		wg.Add(1)
		defer wg.Done()
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer func() { _ = ws.Close() }()
		for {
			var in struct{ Type, Room, Name, Text, CID string }
			if err := ws.ReadJSON(&in); err != nil {
				return
			}
			var outs []any
			switch in.Type {
			case "join":
				outs = append(outs, map[string]any{"type": "joined", "room": in.Room, "name": in.Name, "members": []string{in.Name}})
			case "send":
				outs = append(outs, map[string]any{"type": "ack", "cid": in.CID, "id": in.CID},
					map[string]any{"type": "message", "room": in.Room, "id": in.CID, "from": "x", "text": in.Text})
			}
			for _, o := range outs {
				if err := ws.WriteJSON(o); err != nil {
					return
				}
			}
		}
	}))
	t.Cleanup(func() { ts.Close(); wg.Wait() })
	return ts
}

// TestBenchFailsOnLoss runs bench against a server that loses deliveries:
// exit 1 and one line under the table saying how many, without any flag.
func TestBenchFailsOnLoss(t *testing.T) {
	ts := lossyServer(t)
	args := []string{"bench", "--url", wsURL(ts), "--clients", "3", "--rate", "20", "--duration", "300ms",
		"--warmup", "0", "--drain", "100ms", "--source-ips", "none"}
	code, out, errOut := benchRun(t, append(args, "-o", "json")...)
	var res loadgen.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out)
	}
	want := fmt.Sprintf("error: %d of %d deliveries lost, 0 duplicated\n", res.Lost, res.Expected)
	if code != ExitError || res.Lost == 0 || errOut != want {
		t.Fatalf("exit %d, lost %d, stderr:\n%s\nwant exit 1 and stderr:\n%s", code, res.Lost, errOut, want)
	}

	code, out, errOut = benchRun(t, args...)
	lines := strings.Split(errOut, "\n")
	if code != ExitError || !strings.Contains(out, "deliveries\t") || len(lines) != 2 ||
		!regexp.MustCompile(`^error: [1-9][0-9]* of [0-9]+ deliveries lost, 0 duplicated$`).MatchString(lines[0]) {
		t.Fatalf("table: exit %d\nstdout: %s\nstderr: %q", code, out, errOut)
	}

	// The flag that asked for it before is accepted and says it is not needed.
	code, _, errOut = benchRun(t, append(args, "--fail-on-loss")...)
	if code != ExitError || !strings.HasPrefix(errOut, "warning: --fail-on-loss has no effect: bench always exits 1 "+
		"when a delivery was lost or duplicated\nerror: ") {
		t.Fatalf("--fail-on-loss: exit %d, stderr: %q", code, errOut)
	}
}

func TestBenchLossError(t *testing.T) {
	for _, tc := range []struct {
		lost, dup   uint64
		interrupted bool
		want        string
	}{
		{0, 0, false, ""},
		{12, 0, false, "12 of 4000 deliveries lost, 0 duplicated"},
		{0, 3, false, "0 of 4000 deliveries lost, 3 duplicated"},
		{12, 3, true, ""},
	} {
		err := lossError(&loadgen.Result{Expected: 4000, Lost: tc.lost, Duplicates: tc.dup, Interrupted: tc.interrupted})
		if got := fmt.Sprint(err); (err == nil) != (tc.want == "") || (err != nil && got != tc.want) {
			t.Errorf("lost %d dup %d interrupted %v: %v, want %q", tc.lost, tc.dup, tc.interrupted, err, tc.want)
		}
	}
}

func TestBenchErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "ws://" + l.Addr().String() + "/ws"
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"rate zero", []string{"--rate", "0"}, ExitUsage, "error: --rate 0: must be between 0.1 and 1000000\n"},
		{"rate negative", []string{"--rate", "-5"}, ExitUsage, "error: --rate -5: must be between 0.1 and 1000000\n"},
		{"size too small", []string{"--size", "20"}, ExitUsage, "error: --size 20: must be between 48 and 4000\n"},
		{"size too big", []string{"--size", "5000"}, ExitUsage, "error: --size 5000: must be between 48 and 4000\n"},
		{"no clients", []string{"--clients", "0"}, ExitUsage, "error: --clients 0: must be between 1 and 1000000\n"},
		{"negative warmup", []string{"--warmup", "-1s"}, ExitUsage, "error: --warmup -1s: must be between 0s and 10m\n"},
		{"url port", []string{"--url", "ws://127.0.0.1:99999/ws"}, ExitUsage,
			"error: --url ws://127.0.0.1:99999/ws: port must be a number between 1 and 65535\n"},
		{"rooms over clients", []string{"--clients", "2", "--rooms", "3"}, ExitUsage, "--rooms 3 is more than --clients 2"},
		{"too fast per publisher", []string{"--rate", "100", "--publishers", "2"}, ExitUsage, "use --publishers 5 or more"},
		{"bad url", []string{"--url", "http://x/ws"}, ExitUsage, `--url "http://x/ws"`},
		{"bad source ips", []string{"--source-ips", "10.0.0.9-10.0.0.1"}, ExitUsage, "--source-ips"},
		{"bad duration", []string{"--duration", "0s"}, ExitUsage, "error: --duration 0s: must be between 10ms and 24h\n"},
		{"argument", []string{"extra"}, ExitUsage, `unexpected argument "extra"`},
		{"unreachable", []string{"--url", dead, "--clients", "2", "--connect-timeout", "2s"}, ExitError,
			"no connection to " + dead + " succeeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := benchRun(t, append([]string{"bench"}, tc.args...)...)
			if code != tc.code || !strings.Contains(errOut, tc.stderr) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit %d and %q", code, errOut, tc.code, tc.stderr)
			}
			if tc.code == ExitUsage && !strings.HasSuffix(errOut, "\nRun 'livechat bench --help' for usage.\n") {
				t.Errorf("usage error without the line pointing to --help:\n%s", errOut)
			}
		})
	}
}

func sampleBenchResult() *loadgen.Result {
	return &loadgen.Result{
		RunID: "0badcafe", URLs: []string{"ws://127.0.0.1:18080/ws"}, Rooms: 1, Clients: 1000, Publishers: 15,
		SourceIPs: 254, Size: 100, Rate: 300,
		Connect: loadgen.Connect{Attempted: 1015, Established: 1015, TotalSeconds: 0.84, JoinSeconds: 2.5,
			Time: loadgen.Latency{Count: 1015, P50: 1.5, P90: 3, P99: 7.25, Max: 9.5}},
		Members: 1015, Sent: 3000, Acked: 3000, Expected: 3045000, Delivered: 3045000,
		PublishSeconds: 10, WindowSeconds: 10.01, DrainSeconds: 0.01,
		DeliveriesPerSec: 304196, ExpectedPerSec: 304500, BytesPerSec: 76e6,
		Latency:       loadgen.Latency{Count: 3045000, P50: 2.25, P90: 6.5, P99: 12, Max: 40.5},
		AcceptLatency: loadgen.Latency{Count: 3000, P50: 0.5, P90: 1, P99: 2.5, Max: 4},
		SocketLatency: loadgen.Latency{Count: 3045000, P50: 1.25, P90: 5, P99: 10, Max: 38},
		ErrorFrames:   map[string]uint64{"rate_limited": 2}, Disconnects: map[string]uint64{},
		CPU: loadgen.CPU{UserSeconds: 5.5, SystemSeconds: 2.5, Percent: 80, TotalPercent: 60},
	}
}

func TestBenchOutputForPipe(t *testing.T) {
	var b strings.Builder
	if err := writeBench(&b, sampleBenchResult(), nil, "table", false); err != nil {
		t.Fatal(err)
	}
	want := `target	ws://127.0.0.1:18080/ws
clients	1000 subscribers + 15 publishers in 1 room: 1015 members
source addresses	254 addresses, round-robin
connections	1015 of 1015 (0 failed) in 0.84s; all joined after 2.50s
connect time	p50 1.50ms  p90 3.00ms  p99 7.25ms  max 9.50ms
published	3000 sent, 3000 acked in 10.00s (300 msg/s asked, 100 B each)
deliveries	3045000 of 3045000 expected: 0 lost, 0 duplicated
throughput	304196 deliveries/s (304500 expected), 76.0 MB/s
latency	p50 2.25ms  p90 6.50ms  p99 12.00ms  max 40.50ms
accept latency	p50 0.50ms  p90 1.00ms  p99 2.50ms  max 4.00ms
socket latency	p50 1.25ms  p90 5.00ms  p99 10.00ms  max 38.00ms
error frames	rate_limited=2
disconnects	none
bench cpu	5.50s user + 2.50s sys: 80% of one core (whole run 60%)
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestBenchOutputTable(t *testing.T) {
	var b strings.Builder
	if err := writeBench(&b, sampleBenchResult(), nil, "table", true); err != nil {
		t.Fatal(err)
	}
	want := `┌──────────────────┬───────────────────────────────────────────────────────────────┐
│      METRIC      │                             VALUE                             │
├──────────────────┼───────────────────────────────────────────────────────────────┤
│ target           │ ws://127.0.0.1:18080/ws                                       │
│ clients          │ 1000 subscribers + 15 publishers in 1 room: 1015 members      │
│ source addresses │ 254 addresses, round-robin                                    │
│ connections      │ 1015 of 1015 (0 failed) in 0.84s; all joined after 2.50s      │
│ connect time     │ p50 1.50ms  p90 3.00ms  p99 7.25ms  max 9.50ms                │
│ published        │ 3000 sent, 3000 acked in 10.00s (300 msg/s asked, 100 B each) │
│ deliveries       │ 3045000 of 3045000 expected: 0 lost, 0 duplicated             │
│ throughput       │ 304196 deliveries/s (304500 expected), 76.0 MB/s              │
│ latency          │ p50 2.25ms  p90 6.50ms  p99 12.00ms  max 40.50ms              │
│ accept latency   │ p50 0.50ms  p90 1.00ms  p99 2.50ms  max 4.00ms                │
│ socket latency   │ p50 1.25ms  p90 5.00ms  p99 10.00ms  max 38.00ms              │
│ error frames     │ rate_limited=2                                                │
│ disconnects      │ none                                                          │
│ bench cpu        │ 5.50s user + 2.50s sys: 80% of one core (whole run 60%)       │
└──────────────────┴───────────────────────────────────────────────────────────────┘
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestBenchOutputJSON(t *testing.T) {
	var b strings.Builder
	if err := writeBench(&b, sampleBenchResult(), nil, "json", true); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(b.String()), &m); err != nil {
		t.Fatal(err)
	}
	lat := m["latency"].(map[string]any)
	if m["delivered"] != 3045000.0 || lat["p99_ms"] != 12.0 || m["cpu"].(map[string]any)["percent"] != 80.0 {
		t.Errorf("json: %s", b.String())
	}
}
