//go:build unix

package tests

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"
)

// livechatBin is the binary under test, built once by TestMain.
var livechatBin string

// repoRoot is the repository's root directory (the parent of tests/).
var repoRoot string

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tests:", err)
		return 1
	}
	repoRoot = filepath.Dir(wd)
	// The binary a user runs: `make build` (same flags as `make cluster`),
	// rebuilt only when a source changed.
	livechatBin = filepath.Join(repoRoot, "bin", "livechat")
	build := exec.Command("make", "-s", "build")
	build.Dir = repoRoot
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "tests: make build: %v\n", err)
		return 1
	}
	base := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 {
		code = checkGoroutines(base)
	}
	return code
}

// checkGoroutines fails the run when goroutines started by the tests outlive
// them (clients, readers, chromedp).
func checkGoroutines(base int) int {
	http.DefaultClient.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base+2 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			fmt.Fprintf(os.Stderr, "tests: goroutine leak: %d goroutines, %d at start\n%s\n", runtime.NumGoroutine(), base, buf[:n])
			return 1
		}
		time.Sleep(20 * time.Millisecond) // polling, not synchronisation
	}
	return 0
}

// missing skips the test because a dependency is absent, or fails it under
// CI=true, where everything must be installed.
func missing(t testing.TB, what, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s: %s (CI=true: required; scripts/deps.sh installs it)", what, why)
	}
	t.Skipf("%s: %s (scripts/deps.sh installs it; under CI=true this fails)", what, why)
}

// requireTool returns the path of an installed program.
func requireTool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	missing(t, name, "not installed")
	return ""
}

// requireRedis returns the URL of a Redis that answers PING: $REDIS_URL or
// redis://127.0.0.1:6379.
func requireRedis(t testing.TB) string {
	t.Helper()
	url := os.Getenv("REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379"
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("REDIS_URL %q: %v", url, err)
	}
	opts.MaxRetries = -1 // one attempt: the answer is yes or no
	rc := redis.NewClient(opts)
	defer rc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := rc.Ping(ctx).Err(); err != nil {
		missing(t, "redis at "+url, err.Error())
	}
	return url
}

// waitFor polls cond every 20 ms until it holds or timeout passes, then
// fails the test with the message.
func waitFor(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	if !poll(timeout, cond) {
		t.Fatalf("after %s: "+format, append([]any{timeout}, args...)...)
	}
}

// poll reports whether cond came true within timeout.
func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// Ports that freeAddr hands out: below the kernel's range for the local
// side of outgoing connections (ip_local_port_range, 32768 and up by
// default). A port from that range, free when checked, can be taken by any
// test's outgoing connection before the process meant to listen on it binds
// (CI saw HAProxy fail so: "Address already in use").
const (
	firstTestPort = 20000
	lastTestPort  = 32767
)

var (
	portMu   sync.Mutex
	nextPort = firstTestPort + mrand.IntN(lastTestPort-firstTestPort)
)

// freeAddr returns a 127.0.0.1 address with a port nobody listens on now,
// each port once per test process (see firstTestPort).
func freeAddr(t testing.TB) string {
	t.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	for range lastTestPort - firstTestPort + 1 {
		p := nextPort
		if nextPort++; nextPort > lastTestPort {
			nextPort = firstTestPort
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		addr := ln.Addr().String()
		if err := ln.Close(); err != nil {
			t.Fatal(err)
		}
		return addr
	}
	t.Fatalf("no free port from %d to %d", firstTestPort, lastTestPort)
	return ""
}

// uniquePrefix is a broker subject prefix of this test alone.
func uniquePrefix(t testing.TB) string {
	var b [5]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "e2e-" + hex.EncodeToString(b[:])
}

// cleanEnv is the test process's environment without livechat's settings.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "LIVECHAT_") || strings.HasPrefix(kv, "APPID=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// proc is a child process with its output in a log file. It runs in its own
// process group, which is killed at cleanup, so nothing outlives the test.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
}

func startProc(t *testing.T, dir, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait() // the exit status is read from cmd.ProcessState
		logf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(10 * time.Second)
		if t.Failed() {
			t.Logf("--- %s: %s, log tail:\n%s", name, cmd.ProcessState, tailFile(logPath, 30))
		}
	})
	return p
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits up to timeout for the process to end.
func (p *proc) wait(timeout time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// stop sends SIGTERM, waits up to grace, then kills the whole group.
func (p *proc) stop(grace time.Duration) {
	if !p.exited() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		if !p.wait(grace) {
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		}
	}
	<-p.done
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) // children (nginx workers), if any
}

func tailFile(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// lcServer is one `livechat serve` process.
type lcServer struct {
	appID string
	addr  string
	p     *proc
}

// cluster is the reference topology on free ports: four servers sharing a
// Redis under a prefix of their own, and HAProxy with haproxy/haproxy.cfg.
type cluster struct {
	t       *testing.T
	dir     string
	broker  string
	prefix  string
	servers []*lcServer
	lb      string // HAProxy's public listener
	trusted string // HAProxy's listener for nginx
	stats   string // HAProxy's stats page
	haproxy *proc
	opts    clusterOpts
}

// clusterOpts changes the reference topology for one test.
type clusterOpts struct {
	// serverArgs are more `livechat serve` flags for every server.
	serverArgs []string
	// env is more environment for every server (KEY=value).
	env []string
	// fastChecks runs HAProxy with checks every 200 ms that time out after
	// 200 ms (haproxy.cfg's timings rewritten), so that a server that stops
	// answering is marked down within ~0.7 s instead of ~3 s.
	fastChecks bool
}

// drainDelay is the servers' --drain-delay: above HAProxy's time to mark a
// failing server down (inter 1s, fastinter 500ms, fall 2: ~1.5 s).
const drainDelay = 2 * time.Second

func newCluster(t *testing.T) *cluster {
	t.Helper()
	return newClusterWith(t, clusterOpts{})
}

// newClusterWith is newCluster changed by opts.
func newClusterWith(t *testing.T, opts clusterOpts) *cluster {
	t.Helper()
	haproxy := requireTool(t, "haproxy")
	c := &cluster{t: t, dir: t.TempDir(), broker: requireRedis(t), prefix: uniquePrefix(t), opts: opts}
	for i := 1; i <= 4; i++ {
		s := &lcServer{appID: strconv.Itoa(i * 1000), addr: freeAddr(t)}
		args := []string{"serve", "--addr", s.addr, "--broker", c.broker, "--prefix", c.prefix,
			"--trust-proxy", "--drain-delay", drainDelay.String(), "--shutdown-timeout", "10s",
			"--heartbeat-interval", "500ms", "--presence-interval", "1s", "--log-level", "debug"}
		env := append([]string{"APPID=" + s.appID}, opts.env...)
		s.p = startProc(t, c.dir, "server"+s.appID, env, livechatBin, append(args, opts.serverArgs...)...)
		c.servers = append(c.servers, s)
	}
	// At the end, all servers drain at once rather than one after the other
	// (this runs before each server's own cleanup, which then only waits).
	t.Cleanup(func() {
		for _, s := range c.servers {
			if !s.p.exited() {
				_ = s.p.cmd.Process.Signal(syscall.SIGTERM)
			}
		}
	})
	for _, s := range c.servers {
		waitFor(t, 20*time.Second, func() bool { return httpStatus("http://"+s.addr+"/readyz") == http.StatusOK },
			"server %s on %s is not ready", s.appID, s.addr)
	}
	c.startHAProxy(haproxy)
	waitFor(t, 15*time.Second, func() bool {
		st := c.serverStates()
		for i := range c.servers {
			if st[fmt.Sprintf("s%d", i+1)] != "UP L7OK" {
				return false
			}
		}
		return true
	}, "HAProxy did not mark all servers UP after a passed check: %v", c.serverStates())
	return c
}

// startHAProxy runs the repository's haproxy/haproxy.cfg (binary haproxy) in
// front of c's servers, on free ports for the public and trusted frontends
// and the stats page.
func (c *cluster) startHAProxy(haproxy string) {
	t := c.t
	t.Helper()
	c.lb, c.trusted, c.stats = freeAddr(t), freeAddr(t), freeAddr(t)
	env := []string{
		"LIVECHAT_FRONTEND=" + c.lb,
		"LIVECHAT_FRONTEND_TRUSTED=" + c.trusted,
		"LIVECHAT_HAPROXY_STATS=" + c.stats,
		"LIVECHAT_HAPROXY_SOCKET=" + filepath.Join(c.dir, "haproxy.sock"),
	}
	for i, s := range c.servers {
		env = append(env, fmt.Sprintf("LIVECHAT_S%d=%s", i+1, s.addr))
	}
	cfg := filepath.Join(repoRoot, "haproxy", "haproxy.cfg")
	if c.opts.fastChecks {
		cfg = fastChecksConfig(t, cfg, filepath.Join(c.dir, "haproxy-fast.cfg"))
	}
	c.haproxy = startProc(t, c.dir, "haproxy", env, haproxy, "-db", "-f", cfg)
}

// fastChecksConfig writes src with faster health checks to dst: a check
// every 200 ms (100 ms after a failure) that fails after 200 ms without an
// answer, two failures to mark a server down. A server that froze is down
// within ~0.7 s. The timings must be in src as expected: the test fails
// when haproxy.cfg changes under it.
func fastChecksConfig(t *testing.T, src, dst string) string {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	const from = "default-server check inter 1s fastinter 500ms downinter 1s fall 2 rise 2"
	const to = "timeout check 200ms\n    default-server check inter 200ms fastinter 100ms downinter 500ms fall 2 rise 2"
	if strings.Count(string(data), from) != 1 {
		t.Fatalf("%s no longer has the line %q that the fast checks rewrite", src, from)
	}
	if err := os.WriteFile(dst, []byte(strings.Replace(string(data), from, to, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// wsURL is the WebSocket endpoint through HAProxy.
func (c *cluster) wsURL() string { return "ws://" + c.lb + "/ws" }

// byAppID returns the server with that APPID and its HAProxy name (s1..s4).
func (c *cluster) byAppID(appID string) (*lcServer, string) {
	for i, s := range c.servers {
		if s.appID == appID {
			return s, fmt.Sprintf("s%d", i+1)
		}
	}
	c.t.Fatalf("no server %s", appID)
	return nil, ""
}

// serverStates reads HAProxy's stats CSV: server name -> "STATUS CHECK"
// (e.g. "UP L7OK", "DOWN L7STS", "DOWN L4CON"); nil when unreachable.
func (c *cluster) serverStates() map[string]string {
	client := http.Client{Timeout: time.Second}
	resp, err := client.Get("http://" + c.stats + "/;csv")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var cols map[string]int
	out := map[string]string{}
	for sc.Scan() {
		f := strings.Split(sc.Text(), ",")
		if cols == nil {
			cols = map[string]int{}
			for i, name := range f {
				cols[strings.TrimPrefix(name, "# ")] = i
			}
			continue
		}
		if len(f) <= cols["check_status"] || f[cols["pxname"]] != "livechat" || !strings.HasPrefix(f[cols["svname"]], "s") {
			continue
		}
		out[f[cols["svname"]]] = f[cols["status"]] + " " + f[cols["check_status"]]
	}
	return out
}

// cli runs a livechat subcommand against the cluster's broker and prefix.
func (c *cluster) cli(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, livechatBin, append(args, "--broker", c.broker, "--prefix", c.prefix)...)
	cmd.Env = cleanEnv()
	out, err := cmd.Output()
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		err = fmt.Errorf("%w: %s", err, ee.Stderr)
	}
	return string(out), err
}

func httpStatus(url string) int {
	client := http.Client{Timeout: time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// frame is any server frame; fields a type does not use stay empty.
type frame struct {
	Type    string   `json:"type"`
	Room    string   `json:"room"`
	ID      string   `json:"id"`
	Seq     uint64   `json:"seq"`
	From    string   `json:"from"`
	Text    string   `json:"text"`
	Server  string   `json:"server"`
	CID     string   `json:"cid"`
	System  bool     `json:"system"`
	Code    string   `json:"code"`
	Message string   `json:"message"`
	Members []string `json:"members"`
	// User is a message's sender id (a string) or a welcome's identity (an
	// object): see senderID and welcomeUser.
	User   json.RawMessage `json:"user"`
	Guest  bool            `json:"guest"`
	Reason string          `json:"reason"`
	Files  []fileJSON      `json:"files"`
}

// wsClient is a WebSocket client with one reader goroutine that records
// every frame until the connection ends.
type wsClient struct {
	t       *testing.T
	name    string
	conn    *websocket.Conn
	server  string // APPID from the welcome frame
	welcome frame
	done    chan struct{}

	mu       sync.Mutex
	frames   []frame
	closeErr error
}

// dial connects through url and reads the welcome frame.
func dial(t *testing.T, url, name string) (*wsClient, error) {
	return dialHeader(t, url, name, nil)
}

// dialHeader is dial with handshake headers (a cookie, a token).
func dialHeader(t *testing.T, url, name string, h http.Header) (*wsClient, error) {
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	conn, resp, err := d.Dial(url, h)
	if resp != nil {
		resp.Body.Close()
	}
	if err != nil {
		if resp != nil {
			err = fmt.Errorf("%w (HTTP %s)", err, resp.Status)
		}
		return nil, err
	}
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		conn.Close()
		return nil, err
	}
	var w frame
	if err := conn.ReadJSON(&w); err != nil {
		conn.Close()
		return nil, fmt.Errorf("reading welcome: %w", err)
	}
	if w.Type != "welcome" || w.Server == "" {
		conn.Close()
		return nil, fmt.Errorf("first frame is not a welcome with a server: %+v", w)
	}
	if err := conn.SetReadDeadline(time.Time{}); err != nil {
		conn.Close()
		return nil, err
	}
	c := &wsClient{t: t, name: name, conn: conn, server: w.Server, welcome: w, done: make(chan struct{})}
	go c.read()
	t.Cleanup(c.close)
	return c, nil
}

// mustDial dials or fails the test.
func mustDial(t *testing.T, url, name string) *wsClient {
	t.Helper()
	c, err := dial(t, url, name)
	if err != nil {
		t.Fatalf("dial %s as %s: %v", url, name, err)
	}
	return c
}

// redial reconnects like the web client does after a close: retry until a
// server accepts, for up to timeout.
func redial(t *testing.T, url, name string, timeout time.Duration) *wsClient {
	t.Helper()
	var c *wsClient
	var last error
	if !poll(timeout, func() bool {
		c, last = dial(t, url, name)
		return last == nil
	}) {
		t.Fatalf("%s could not reconnect within %s: %v", name, timeout, last)
	}
	return c
}

func (c *wsClient) read() {
	defer close(c.done)
	for {
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			c.mu.Lock()
			c.closeErr = err
			c.mu.Unlock()
			return
		}
		var f frame
		if err := json.Unmarshal(data, &f); err != nil {
			f = frame{Type: "unparsable", Text: string(data)}
		}
		c.mu.Lock()
		c.frames = append(c.frames, f)
		c.mu.Unlock()
	}
}

func (c *wsClient) close() {
	_ = c.conn.Close()
	<-c.done
}

func (c *wsClient) send(v any) {
	if err := c.conn.WriteJSON(v); err != nil {
		c.t.Errorf("%s: write: %v", c.name, err)
	}
}

// closed reports whether the connection ended, and its close code (1006
// for an abnormal end, -1 while open).
func (c *wsClient) closed() (bool, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeErr == nil {
		return false, -1
	}
	var ce *websocket.CloseError
	if errors.As(c.closeErr, &ce) {
		return true, ce.Code
	}
	return true, websocket.CloseAbnormalClosure
}

// find returns the frames that match.
func (c *wsClient) find(match func(frame) bool) []frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []frame
	for _, f := range c.frames {
		if match(f) {
			out = append(out, f)
		}
	}
	return out
}

// join joins room as name and waits for "joined".
func (c *wsClient) join(room string) {
	c.t.Helper()
	c.send(map[string]string{"type": "join", "room": room, "name": c.name})
}

func (c *wsClient) joined(room string) bool {
	return len(c.find(func(f frame) bool { return f.Type == "joined" && f.Room == room })) > 0
}

// messageIDs counts the chat messages received in room by id.
func (c *wsClient) messageIDs(room string) map[string]int {
	ids := map[string]int{}
	for _, f := range c.find(func(f frame) bool { return f.Type == "message" && f.Room == room }) {
		ids[f.ID]++
	}
	return ids
}

// joinAll joins every client to room and waits for all "joined" frames.
func joinAll(t *testing.T, clients []*wsClient, room string) {
	t.Helper()
	for _, c := range clients {
		c.join(room)
	}
	waitFor(t, 10*time.Second, func() bool {
		for _, c := range clients {
			if !c.joined(room) {
				return false
			}
		}
		return true
	}, "not every client got joined")
}

// chatRound has every client send one message and checks that every client
// receives every one of them exactly once (and nothing else new).
func chatRound(t *testing.T, clients []*wsClient, room, tag string) {
	t.Helper()
	before := make([]map[string]int, len(clients))
	for i, c := range clients {
		before[i] = c.messageIDs(room)
	}
	for i, c := range clients {
		c.send(map[string]string{"type": "send", "room": room, "text": fmt.Sprintf("%s from %s", tag, c.name), "cid": fmt.Sprintf("%s-%d", tag, i)})
	}
	// Each sender's ack carries the id every receiver must see.
	want := map[string]bool{}
	waitFor(t, 10*time.Second, func() bool {
		for i, c := range clients {
			if acks := c.find(func(f frame) bool { return f.Type == "ack" && f.CID == fmt.Sprintf("%s-%d", tag, i) }); len(acks) > 0 {
				want[acks[0].ID] = true
			}
		}
		return len(want) == len(clients)
	}, "round %s: %d of %d sends acknowledged", tag, len(want), len(clients))
	newIDs := func(i int) map[string]int {
		out := map[string]int{}
		for id, n := range clients[i].messageIDs(room) {
			if d := n - before[i][id]; d > 0 {
				out[id] = d
			}
		}
		return out
	}
	waitFor(t, 15*time.Second, func() bool {
		for i := range clients {
			if len(newIDs(i)) < len(want) {
				return false
			}
		}
		return true
	}, "round %s: not every client received all %d messages", tag, len(want))
	for i, c := range clients {
		for id, n := range newIDs(i) {
			if !want[id] || n != 1 {
				t.Errorf("round %s: client %s (server %s) got message %s %d times (expected: %v)", tag, c.name, c.server, id, n, want[id])
			}
		}
	}
}

// placeholderRE matches the ${NAME} placeholders of the config templates.
var placeholderRE = regexp.MustCompile(`\$\{([A-Z0-9_]+)\}`)

// render fills the ${NAME} placeholders of a template in the repository, as
// envsubst with a list of names does (nginx's own $vars stay), and writes
// the result to dst. A placeholder without a value fails the test.
func render(t testing.TB, src, dst string, vars map[string]string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, src))
	if err != nil {
		t.Fatal(err)
	}
	out := placeholderRE.ReplaceAllStringFunc(string(data), func(m string) string {
		name := placeholderRE.FindStringSubmatch(m)[1]
		v, ok := vars[name]
		if !ok {
			t.Errorf("%s: no value for ${%s}", src, name)
		}
		return v
	})
	if err := os.WriteFile(dst, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
}

// renderNginx writes nginx.conf and livechat.conf for compose/nginx.conf run
// outside Docker into dir, listening on listen and proxying /ws to upstream.
func renderNginx(t testing.TB, dir, listen, upstream string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"LIVECHAT_NGINX_DIR":   dir,
		"LIVECHAT_WEB_LISTEN":  listen,
		"LIVECHAT_WEB_ROOT":    filepath.Join(repoRoot, "web"),
		"LIVECHAT_WS_UPSTREAM": upstream,
	}
	render(t, "compose/nginx.conf", filepath.Join(dir, "livechat.conf"), vars)
	render(t, "compose/nginx-local.conf", filepath.Join(dir, "nginx.conf"), vars)
	return filepath.Join(dir, "nginx.conf")
}

// startNginx runs nginx with compose/nginx.conf in front of the cluster's
// HAProxy (its trusted listener) and returns the page's base URL.
func (c *cluster) startNginx(t *testing.T) string {
	t.Helper()
	nginx := requireTool(t, "nginx")
	dir := filepath.Join(c.dir, "nginx")
	listen := freeAddr(t)
	conf := renderNginx(t, dir, listen, c.trusted)
	startProc(t, c.dir, "nginx", nil, nginx, "-e", "stderr", "-p", dir, "-c", conf, "-g", "daemon off;")
	base := "http://" + listen
	waitFor(t, 10*time.Second, func() bool { return httpStatus(base+"/nginx-health") == http.StatusOK },
		"nginx does not answer on %s", listen)
	return base
}
