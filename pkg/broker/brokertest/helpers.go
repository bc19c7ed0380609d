package brokertest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// DefaultRedisURL is used by RedisURL when REDIS_URL is not set.
const DefaultRedisURL = "redis://127.0.0.1:6379"

// WaitFor polls cond every few milliseconds until it returns true, and fails
// the test when timeout passes first. It is the way to await an event
// without sleeping for a guessed time.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Prefix returns a subject token unique to this call, so tests that share a
// broker or a Redis server do not see each other's messages.
func Prefix(t testing.TB) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("brokertest: random prefix: %v", err)
	}
	return "t" + hex.EncodeToString(b[:])
}

// inCI reports whether missing infrastructure must fail rather than skip.
func inCI() bool { return os.Getenv("CI") == "true" }

func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if inCI() {
		t.Fatalf(format+" (CI=true: failing instead of skipping)", args...)
	}
	t.Skipf(format, args...)
}

// RedisURL returns $REDIS_URL, or DefaultRedisURL, once that server answered
// a PING. When it does not, the test fails under CI=true and is skipped
// otherwise.
func RedisURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("REDIS_URL")
	if u == "" {
		u = DefaultRedisURL
	}
	opts, err := redis.ParseURL(u)
	if err != nil {
		t.Fatalf("brokertest: REDIS_URL: %v", err)
	}
	opts.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	opts.DialerRetries, opts.MaxRetries = 1, -1 // answer quickly when nothing listens
	c := redis.NewClient(opts)
	defer func() { _ = c.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		skipOrFail(t, "brokertest: no Redis at %s (set REDIS_URL): %v", opts.Addr, err)
	}
	return u
}

// StartRedis runs a redis-server of its own on a free loopback port, with no
// persistence, in a temporary directory, and returns its URL. stop kills it
// (SIGKILL, as a crash would) and waits for it to exit; restart starts it
// again on the same port and waits until it answers. Both are safe to call
// more than once; the server is stopped when the test ends. Without a
// redis-server binary the test fails under CI=true and is skipped otherwise.
func StartRedis(t testing.TB) (url string, stop func(), restart func()) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		skipOrFail(t, "brokertest: redis-server not installed: %v", err)
	}
	dir := t.TempDir()
	port := freePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))

	stop, restart = serverProcess(t, "redis-server", addr, dir+"/redis.log", pingRaw, func() *exec.Cmd {
		return exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", dir, "--logfile", "redis.log")
	})
	return "redis://" + addr + "/0", stop, restart
}

// natsServerPaths are tried when nats-server is not on PATH: Debian's
// package installs it in /usr/sbin, which a user's PATH often lacks.
var natsServerPaths = []string{"/usr/sbin/nats-server", "/usr/local/bin/nats-server"}

// StartNATS runs a nats-server of its own on a free loopback port and
// returns its URL ("nats://127.0.0.1:PORT"). stop kills it (SIGKILL, as a
// crash would) and waits for it to exit; restart starts it again on the
// same port and waits until it greets a client. Both are safe to call more
// than once; the server is stopped when the test ends. Without a
// nats-server binary (on PATH or in /usr/sbin) the test fails under CI=true
// and is skipped otherwise. args are added to the server's command line
// (e.g. "--user", "u", "--pass", "p").
func StartNATS(t testing.TB, args ...string) (url string, stop func(), restart func()) {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		for _, p := range natsServerPaths {
			if fi, serr := os.Stat(p); serr == nil && !fi.IsDir() {
				bin, err = p, nil
				break
			}
		}
	}
	if err != nil {
		skipOrFail(t, "brokertest: nats-server not installed (scripts/deps.sh installs it): %v", err)
	}
	dir := t.TempDir()
	port := freePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	logFile := dir + "/nats.log"

	stop, restart = serverProcess(t, "nats-server", addr, logFile, natsGreets, func() *exec.Cmd {
		return exec.Command(bin, append([]string{"-a", "127.0.0.1", "-p", strconv.Itoa(port), "-l", logFile}, args...)...)
	})
	return "nats://" + addr, stop, restart
}

// serverProcess starts the server command() makes, waits until up(addr)
// (10 s at most, then fails with the server's log) and returns stop (kill
// -9, as a crash would, and wait for the exit) and restart (start again and
// wait until up); both are safe to call more than once, and stop runs when
// the test ends.
func serverProcess(t testing.TB, name, addr, logFile string, up func(addr string) bool, command func() *exec.Cmd) (stop, restart func()) {
	var mu sync.Mutex
	var cmd *exec.Cmd
	stop = func() {
		mu.Lock()
		defer mu.Unlock()
		if cmd == nil {
			return
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait() // reports "killed"
		cmd = nil
	}
	restart = func() {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if cmd != nil {
			return
		}
		c := command()
		if err := c.Start(); err != nil {
			t.Fatalf("brokertest: start %s: %v", name, err)
		}
		cmd = c
		deadline := time.Now().Add(10 * time.Second)
		for !up(addr) {
			if time.Now().After(deadline) {
				log, _ := os.ReadFile(logFile)
				t.Fatalf("brokertest: %s on %s did not answer within 10s; log:\n%s", name, addr, log)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	restart()
	t.Cleanup(stop)
	return stop, restart
}

// natsGreets reports whether a NATS server at addr sends its INFO line.
func natsGreets(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "INFO ")
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("brokertest: free port: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatalf("brokertest: free port: %v", err)
	}
	return port
}

// pingRaw reports whether a Redis server at addr answers PING.
func pingRaw(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}

// GoroutineCheck records the goroutines running now; calling the returned
// function fails the test unless every goroutine started since has ended
// (it waits up to 5 s for them to wind down). Do not use it while parallel
// tests run in the same process: their goroutines would count.
func GoroutineCheck(t testing.TB) func() {
	t.Helper()
	before := goroutineIDs()
	return func() {
		t.Helper()
		var extra []string
		deadline := time.Now().Add(5 * time.Second)
		for {
			extra = extra[:0]
			for id, stack := range goroutines() {
				if _, ok := before[id]; !ok && !ignorable(stack) {
					extra = append(extra, stack)
				}
			}
			if len(extra) == 0 {
				return
			}
			if time.Now().After(deadline) {
				slices.Sort(extra)
				t.Fatalf("brokertest: %d goroutine(s) leaked:\n\n%s", len(extra), strings.Join(extra, "\n\n"))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func ignorable(stack string) bool {
	return strings.Contains(stack, "testing.(*T).Run") ||
		strings.Contains(stack, "testing.tRunner")
}

func goroutineIDs() map[string]struct{} {
	ids := make(map[string]struct{})
	for id := range goroutines() {
		ids[id] = struct{}{}
	}
	return ids
}

// goroutines maps goroutine ids ("goroutine 12") to their stacks.
func goroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := make(map[string]string)
	for _, g := range strings.Split(string(buf), "\n\n") {
		head, _, _ := strings.Cut(g, " [")
		if strings.HasPrefix(head, "goroutine ") {
			out[head] = g
		}
	}
	return out
}
