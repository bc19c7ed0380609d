package cli

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/livechat/livechat/pkg/broker/brokertest"
)

// freePort returns a loopback address nothing listens on.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// runServeRefused runs `livechat serve args...` listening on addr and
// returns its exit code and output once it ended. The test fails if the
// server accepts a connection on addr meanwhile: a refused flag must stop
// it before it listens.
func runServeRefused(t *testing.T, addr string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ios, out, errOut := testIO("")
	done := make(chan int, 1)
	go func() { done <- Run(ctx, append([]string{"serve"}, args...), ios) }()
	var code int
	brokertest.WaitFor(t, 20*time.Second, "serve to exit", func() bool {
		select {
		case code = <-done:
			return true
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 50*time.Millisecond); err == nil {
			c.Close()
			cancel()
			<-done
			t.Fatalf("serve %s: started and listened on %s; stderr:\n%s", strings.Join(args, " "), addr, errOut.String())
		}
		return false
	})
	return code, out.String(), errOut.String()
}

// TestServeRefusesBadFlags gives serve one bad value of each kind and
// expects exit 2 and exactly one error line plus the --help line, with the
// server never listening (no log line came first).
func TestServeRefusesBadFlags(t *testing.T) {
	addr := freePort(t)
	help := "Run 'livechat serve --help' for usage.\n"
	for _, tc := range []struct {
		name string
		args []string
		env  [2]string
		want string
	}{
		{"negative number", []string{"--rate", "-5"}, [2]string{},
			"error: --rate -5: must be between 0.1 and 10000\n"},
		{"number too big", []string{"--max-conns-per-ip", "2000000"}, [2]string{},
			"error: --max-conns-per-ip 2000000: must be between 1 and 1000000\n"},
		{"zero", []string{"--send-queue", "0"}, [2]string{},
			"error: --send-queue 0: must be between 1 and 100000\n"},
		{"not a number", []string{"--rate", "NaN"}, [2]string{},
			"error: --rate NaN: must be between 0.1 and 10000\n"},
		{"bytes too small", []string{"--read-limit", "100"}, [2]string{},
			"error: --read-limit 100: must be between 1024 and 16777216\n"},
		{"negative duration", []string{"--drain-delay", "-1s"}, [2]string{},
			"error: --drain-delay -1s: must be between 0s and 10m\n"},
		{"zero duration", []string{"--heartbeat-interval", "0s"}, [2]string{},
			"error: --heartbeat-interval 0s: must be between 100ms and 1m\n"},
		{"duration too long", []string{"--shutdown-timeout", "2h"}, [2]string{},
			"error: --shutdown-timeout 2h: must be between 1s and 1h\n"},
		{"durations that contradict", []string{"--drain-delay", "20s", "--shutdown-timeout", "15s"}, [2]string{},
			"error: --drain-delay 20s: must be shorter than --shutdown-timeout 15s\n"},
		{"port out of range", []string{"--addr", ":99999"}, [2]string{},
			"error: --addr :99999: port must be a number between 0 and 65535\n"},
		{"port not a number", []string{"--addr", "127.0.0.1:http"}, [2]string{},
			"error: --addr 127.0.0.1:http: port must be a number between 0 and 65535\n"},
		{"bad host", []string{"--addr", "256.0.0.1:8080"}, [2]string{},
			"error: --addr 256.0.0.1:8080: host \"256.0.0.1\" is neither an IP address nor a host name\n"},
		{"no port", []string{"--addr", "localhost"}, [2]string{},
			"error: --addr \"localhost\": must be host:port or :port, such as :8080 or 127.0.0.1:8080\n"},
		{"profile port", []string{"--pprof", "127.0.0.1:70000"}, [2]string{},
			"error: --pprof 127.0.0.1:70000: port must be a number between 0 and 65535\n"},
		{"operator API as broker", []string{"--broker", "http://127.0.0.1:8080"}, [2]string{},
			"error: --broker http://127.0.0.1:8080: serve needs memory://, redis://, redis+cluster:// or nats://; http:// is a node's operator API, for publish, tail and stats\n"},
		{"NATS broker without history", []string{"--broker", "nats://u:s3cret@127.0.0.1:4222"}, [2]string{},
			"error: --broker nats://u:xxxxx@127.0.0.1:4222: a NATS broker has no history store to default to; set --history (or LIVECHAT_HISTORY) to the store every server shares: postgres://... or redis://... (sqlite:///path/file.db for one node), or \"none\" for live messages only\n"},
		{"NATS token broker without history", []string{"--broker", "tls://s3cret@127.0.0.1:4222"}, [2]string{},
			"error: --broker tls://xxxxx@127.0.0.1:4222: a NATS broker has no history store to default to; set --history (or LIVECHAT_HISTORY) to the store every server shares: postgres://... or redis://... (sqlite:///path/file.db for one node), or \"none\" for live messages only\n"},
		{"history kept per room", []string{"--history-max-len", "0"}, [2]string{},
			"error: --history-max-len 0: must be between 1 and 10000000\n"},
		{"cid window too short", []string{"--history-dedup-window", "30s"}, [2]string{},
			"error: --history-dedup-window 30s: must be between 1m and 8760h\n"},
		{"history age from the environment", nil, [2]string{"LIVECHAT_HISTORY_MAX_AGE", "0s"},
			"error: --history-max-age 0s: must be between 1m and 876000h\n"},
		{"from the environment", nil, [2]string{"LIVECHAT_RATE", "-5"},
			"error: --rate -5: must be between 0.1 and 10000\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env[0] != "" {
				t.Setenv(tc.env[0], tc.env[1])
			}
			args := append([]string{"--broker", "memory://", "--addr", addr}, tc.args...)
			code, stdout, stderr := runServeRefused(t, addr, args...)
			if code != ExitUsage || stderr != tc.want+help || stdout != "" {
				t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant exit 2 and stderr:\n%s", code, stdout, stderr, tc.want+help)
			}
		})
	}
}

// TestServeSaysPortTaken checks that a port in use is a failure (exit 1)
// that says so, before any log line.
func TestServeSaysPortTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := l.Addr().String()
	code, _, stderr := run(t, "", "serve", "--broker", "memory://", "--addr", addr)
	want := "error: listen on " + addr + ": listen tcp " + addr + ": bind: address already in use " +
		"(is another server using the port? set --addr)\n"
	if code != ExitError || stderr != want {
		t.Errorf("exit %d, stderr:\n%s\nwant exit 1 and:\n%s", code, stderr, want)
	}
}

func TestHistoryInBrokerRedis(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		broker, history string
		want            bool
	}{
		{"redis://127.0.0.1:6379", "", true}, // the default history is the broker's Redis
		{"redis://127.0.0.1:6379/2", "redis://127.0.0.1:6379/2", true},
		{"rediss://u:p@h:6380", "", true},
		{"redis://127.0.0.1:6379", "redis://127.0.0.1:6380", false},
		{"redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/1", false},
		{"redis://127.0.0.1:6379", "postgres://h/db", false},
		{"nats://127.0.0.1:4222", "redis://127.0.0.1:6379", false},
		{"memory://", "", false},
	} {
		if got := historyInBrokerRedis(tc.broker, tc.history); got != tc.want {
			t.Errorf("historyInBrokerRedis(%q, %q) = %v, want %v", tc.broker, tc.history, got, tc.want)
		}
	}
}
