//go:build linux

package tests

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The partition test of issue 21, point 3: the broker and two servers on
// hosts of their own (network namespaces joined by veth links), and one
// server cut off from the broker while its clients keep chatting.
//
//	            broker namespace: redis-server on 10.77.0.1 (bridge br0)
//	              |  veth (bk0)             |  veth (bk0)
//	s1 namespace: 10.77.0.11       s2 namespace: 10.77.0.12
//	              |  veth (cl0)             |  veth (cl0)
//	        test process (root namespace): clients dial s1 and s2 directly
//
// The cut sets s1's broker link down: s1 still answers its clients and
// /readyz, but reaches neither the broker nor the history store (both in
// that Redis). The broker network lives only inside the namespaces; the
// client links are two /30s of a random 10.x.y.0/24 in the root namespace.

const (
	partRooms    = 2
	partPerRoom  = 8 // half start on s1, half on s2
	partMessages = 150
	partInterval = 40 * time.Millisecond // 25 messages/s per client
	partBrokerIP = "10.77.0.1"
	partPort     = "8080"
)

// netLab is the namespaces and links of one test; Cleanup deletes them.
type netLab struct {
	t      *testing.T
	ip     string // the ip binary
	id     string // random, in every name
	broker string // namespace names
	s      [2]string
	subnet string // "10.x.y." of the client links
}

// newNetLab builds the topology above, or fails the test; the namespaces
// are deleted when the test ends, passed or not.
func newNetLab(t *testing.T) *netLab {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "root", "network namespaces need root")
	}
	l := &netLab{t: t, ip: requireTool(t, "ip")}
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	l.id = hex.EncodeToString(b[:])
	l.broker = "lcp-" + l.id + "-b"
	l.s = [2]string{"lcp-" + l.id + "-s1", "lcp-" + l.id + "-s2"}
	l.subnet = l.freeSubnet(b[1], b[2])
	for _, ns := range []string{l.broker, l.s[0], l.s[1]} {
		l.run("netns", "add", ns)
		t.Cleanup(func() { l.deleteNS(ns) })
		l.run("-n", ns, "link", "set", "lo", "up")
	}
	l.run("-n", l.broker, "link", "add", "br0", "type", "bridge")
	l.run("-n", l.broker, "addr", "add", partBrokerIP+"/24", "dev", "br0")
	l.run("-n", l.broker, "link", "set", "br0", "up")
	for i, ns := range l.s {
		port := fmt.Sprintf("p%d", i+1)
		// The broker link: bk0 in the server's namespace, its peer a port of br0.
		l.run("-n", ns, "link", "add", "bk0", "type", "veth", "peer", "name", port, "netns", l.broker)
		l.run("-n", l.broker, "link", "set", port, "master", "br0", "up")
		l.run("-n", ns, "addr", "add", fmt.Sprintf("10.77.0.%d/24", 11+i), "dev", "bk0")
		l.run("-n", ns, "link", "set", "bk0", "up")
		// The client link: root end lcp<id><n>, cl0 in the server's namespace.
		root := fmt.Sprintf("lcp%s%d", l.id, i+1)
		l.run("link", "add", root, "type", "veth", "peer", "name", "cl0", "netns", ns)
		l.run("addr", "add", fmt.Sprintf("%s%d/30", l.subnet, 1+4*i), "dev", root)
		l.run("link", "set", root, "up")
		l.run("-n", ns, "addr", "add", fmt.Sprintf("%s%d/30", l.subnet, 2+4*i), "dev", "cl0")
		l.run("-n", ns, "link", "set", "cl0", "up")
	}
	return l
}

// freeSubnet picks a 10.x.y.0/24 (from the random bytes) that no address of
// the root namespace is in.
func (l *netLab) freeSubnet(x, y byte) string {
	addrs := l.output("-4", "-o", "addr", "show")
	for i := range 64 {
		s := fmt.Sprintf("10.%d.%d.", 64+(int(x)+i)%64, y)
		if !strings.Contains(addrs, " "+s) {
			return s
		}
	}
	l.t.Fatalf("no free 10.x.y.0/24 for the client links:\n%s", addrs)
	return ""
}

// serverAddr is server i's address on its client link.
func (l *netLab) serverAddr(i int) string {
	return fmt.Sprintf("%s%d:%s", l.subnet, 2+4*i, partPort)
}

func (l *netLab) output(args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, l.ip, args...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (l *netLab) run(args ...string) { l.t.Helper(); l.output(args...) }

// deleteNS deletes a namespace (its links go with it, and their peers in
// the root namespace); a failure is reported, not fatal, so that the other
// namespaces are deleted too.
func (l *netLab) deleteNS(ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, l.ip, "netns", "del", ns).CombinedOutput(); err != nil {
		l.t.Errorf("ip netns del %s: %v\n%s", ns, err, out)
	}
}

// state is the namespaces' links and addresses, for a failure's log.
func (l *netLab) state() string {
	var b strings.Builder
	for _, ns := range []string{l.broker, l.s[0], l.s[1]} {
		out, _ := exec.Command(l.ip, "-n", ns, "-br", "addr").CombinedOutput()
		fmt.Fprintf(&b, "%s:\n%s", ns, out)
	}
	return b.String()
}

// startIn runs bin with args in namespace ns as a test process (startProc).
func (l *netLab) startIn(dir, ns, name string, env []string, bin string, args ...string) *proc {
	l.t.Helper()
	return startProc(l.t, dir, name, env, l.ip, append([]string{"netns", "exec", ns, bin}, args...)...)
}

// readyz returns a server's /readyz status and body ("" when unreachable).
func readyz(addr string) (int, string) {
	client := http.Client{Timeout: time.Second}
	resp, err := client.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body))
}

// TestPartition: a redis-server (broker and history) and two servers, each
// in a network namespace of its own; 16 clients in 2 rooms, half on each
// server, dialing the servers directly. s1's link to the broker goes down
// mid-run. s1 turns /readyz 503 and answers its clients' sends with
// "unavailable"; they fail over to s2, re-join with since and resend with
// the same cid. Its listeners, who send nothing, are closed with 1001 after
// --broker-grace and refused by s1 until the link is back: they move to s2
// too. Every client ends with every acknowledged message of its
// room exactly once, in seq order per connection. The link comes back and
// s1 is ready and delivering again.
func TestPartition(t *testing.T) {
	redisBin := requireTool(t, "redis-server")
	l := newNetLab(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("namespaces:\n%s", l.state())
		}
	})
	dir := t.TempDir()
	// PARTITION_LOGS=dir keeps the processes' logs in dir/<id>.
	if d := os.Getenv("PARTITION_LOGS"); d != "" {
		dir = filepath.Join(d, l.id)
		_ = os.MkdirAll(dir, 0o755)
	}
	start := time.Now()

	rp := l.startIn(dir, l.broker, "redis", nil, redisBin, "--port", "6379", "--bind", partBrokerIP,
		"--protected-mode", "no", "--save", "", "--appendonly", "no", "--dir", dir)
	if !poll(10*time.Second, func() bool {
		data, _ := os.ReadFile(rp.logPath)
		return strings.Contains(string(data), "Ready to accept connections")
	}) {
		t.Fatalf("redis-server in %s did not start within 10s:\n%s", l.broker, tailFile(rp.logPath, 20))
	}

	prefix := uniquePrefix(t)
	appIDs := [2]string{"1000", "2000"}
	var procs [2]*proc
	for i, ns := range l.s {
		procs[i] = l.startIn(dir, ns, "server"+appIDs[i], []string{"APPID=" + appIDs[i]}, livechatBin,
			"serve", "--addr", l.serverAddr(i), "--broker", "redis://"+partBrokerIP+":6379/0", "--prefix", prefix,
			"--data", filepath.Join(dir, "data"), "--drain-delay", "100ms", "--shutdown-timeout", "5s",
			"--heartbeat-interval", "500ms", "--presence-interval", "1s", "--broker-grace", "3s",
			"--rate", "200", "--rate-burst", "400", "--log-level", "info")
		// One after the other: both migrate the shared SQLite store.
		waitFor(t, 20*time.Second, func() bool {
			if procs[i].exited() {
				t.Fatalf("server %s (namespace %s) exited: %s", appIDs[i], l.s[i], tailFile(procs[i].logPath, 10))
			}
			st, _ := readyz(l.serverAddr(i))
			return st == http.StatusOK
		}, "server %s on %s (namespace %s) is not ready", appIDs[i], l.serverAddr(i), l.s[i])
	}
	// Both drain at once at the end (before their own cleanups wait).
	t.Cleanup(func() {
		for _, p := range procs {
			if !p.exited() {
				_ = p.cmd.Process.Signal(syscall.SIGTERM)
			}
		}
	})
	urls := [2]string{"ws://" + l.serverAddr(0) + "/ws", "ws://" + l.serverAddr(1) + "/ws"}
	t.Logf("topology up in %s: broker %s in %s, servers %s and %s", time.Since(start).Round(time.Millisecond),
		partBrokerIP, l.broker, l.serverAddr(0), l.serverAddr(1))

	// The fleet: client j of each room starts on server j%2, fails over to
	// the other one.
	ctx, cancel := context.WithCancel(context.Background())
	f := &fleet{cancel: cancel}
	var onS1 []*rclient
	for r := range partRooms {
		for j := range partPerRoom {
			c := newRClient(fmt.Sprintf("u%d-%d", r, j), fmt.Sprintf("r%d", r), "", partMessages, partInterval)
			c.urls, c.failover = []string{urls[j%2], urls[1-j%2]}, true
			if j%2 == 0 {
				onS1 = append(onS1, c)
			}
			f.clients = append(f.clients, c)
		}
	}
	// A listener per room on s1 only reads: no send tells it that s1 is
	// cut off; s1 closes it (1001) once the broker has been gone for
	// --broker-grace, and refuses it until it is back.
	var listeners []*rclient
	for r := range partRooms {
		c := newRClient(fmt.Sprintf("listener%d", r), fmt.Sprintf("r%d", r), "", 0, partInterval)
		c.urls, c.failover = []string{urls[0], urls[1]}, true
		listeners = append(listeners, c)
		onS1 = append(onS1, c)
		f.clients = append(f.clients, c)
	}
	for _, c := range f.clients {
		go c.run(ctx)
	}
	t.Cleanup(f.stop) // before the servers stop
	// The servers' counters (scraped at the end) as a fault cluster's.
	fc := &faultCluster{cluster: &cluster{t: t}, gone: map[string]float64{}}
	for i, p := range procs {
		fc.servers = append(fc.servers, &lcServer{appID: appIDs[i], addr: l.serverAddr(i), p: p})
	}
	r := &faultRun{t: t, fc: fc, f: f, start: time.Now()}
	waitFor(t, 20*time.Second, f.allJoined, "not every client joined its room")
	for _, c := range f.clients {
		want := appIDs[0]
		if c.urls[0] == urls[1] {
			want = appIDs[1]
		}
		if st := c.snapshot(); len(st.servers) != 1 || st.servers[0] != want {
			t.Fatalf("%s: connections %v before the cut, want one to %s", c.name, st.servers, want)
		}
	}
	total := partRooms * partPerRoom * partMessages
	r.waitAcked(total / 4)

	// The cut: s1's broker link goes down.
	cutAt := time.Now()
	ackedAtCut := f.ackedCount()
	l.run("-n", l.s[0], "link", "set", "bk0", "down")
	t.Logf("s1 cut off the broker at %s into the run, %d of %d messages acknowledged", cutAt.Sub(r.start).Round(time.Millisecond), ackedAtCut, total)

	// s1 tells: /readyz 503 "broker reconnecting" (the load balancer's
	// signal), and "unavailable" for every send, with its cid.
	var body string
	if !poll(15*time.Second, func() bool {
		var st int
		st, body = readyz(l.serverAddr(0))
		return st == http.StatusServiceUnavailable
	}) {
		t.Fatalf("s1's /readyz still answers %q 15s after the cut", body)
	}
	notReady := time.Since(cutAt)
	if !strings.HasPrefix(body, "broker ") {
		t.Errorf("s1's /readyz says %q after the cut, want \"broker reconnecting\"", body)
	}
	if st, b := readyz(l.serverAddr(1)); st != http.StatusOK {
		t.Errorf("s2's /readyz is %d %q while only s1 is cut off", st, b)
	}
	// Its clients are refused and move to s2.
	if !poll(20*time.Second, func() bool {
		for _, c := range onS1 {
			st := c.snapshot()
			moved := len(st.failovers) > 0 || st.closes[1001] > 0
			if !moved || st.servers[len(st.servers)-1] != appIDs[1] || st.joins < 2 {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("20s after the cut, not every client of s1 failed over to s2 and re-joined: %s", describeMoves(onS1))
	}
	var lastMove time.Duration
	for _, c := range onS1 {
		st := c.snapshot()
		if containsClient(listeners, c) {
			if st.closes[1001] == 0 {
				t.Errorf("%s left s1 without a close 1001 (closes %v)", c.name, st.closes)
			}
			continue
		}
		// A sender leaves on its first "unavailable", or on the close when
		// that comes first.
		if len(st.failovers) > 0 {
			lastMove = max(lastMove, st.failovers[0].Sub(cutAt))
		}
		if st.errors["unavailable"] == 0 && st.closes[1001] == 0 {
			t.Errorf("%s left s1 without an \"unavailable\" error or a close 1001 (closes %v)", c.name, st.closes)
		}
	}
	rejoined, lastRejoin := r.rejoinedAfter(cutAt)
	// Traffic goes on on s2 alone for a while.
	r.waitAcked(min(total, f.ackedCount()+total/8))
	s2only := f.ackedCount()

	// The link comes back: s1 resubscribes and is ready again.
	healAt := time.Now()
	l.run("-n", l.s[0], "link", "set", "bk0", "up")
	waitFor(t, 15*time.Second, func() bool { st, _ := readyz(l.serverAddr(0)); return st == http.StatusOK },
		"s1 is not ready again after its broker link came back")
	readyAgain := time.Since(healAt)
	r.note("s1: /readyz 503 %q %s after the cut; its %d clients left for s2 (the last refused send %s after the cut; the others closed with 1001) (%d re-joined, the last %s after the cut); %d messages acknowledged on s2 alone; link restored at %s into the run, s1 ready again %s later",
		body, notReady.Round(time.Millisecond), len(onS1), lastMove.Round(time.Millisecond), rejoined, lastRejoin.Round(time.Millisecond),
		s2only-ackedAtCut, healAt.Sub(r.start).Round(time.Millisecond), readyAgain.Round(time.Millisecond))

	// s1 serves again: a client that stays on s1 and one on s2 exchange 20
	// messages each in a new room, resending on "unavailable" as clients
	// do (/readyz follows the broker's pub/sub connection; the history
	// store's connection pool may need a moment longer after it).
	hctx, hcancel := context.WithCancel(context.Background())
	h := &fleet{cancel: hcancel}
	for i, u := range urls {
		h.clients = append(h.clients, newRClient(fmt.Sprintf("healed-%d", i+1), "healed", u, 20, partInterval))
	}
	for _, c := range h.clients {
		go c.run(hctx)
	}
	t.Cleanup(h.stop)
	if !poll(20*time.Second, func() bool { return h.ackedCount() == 40 && h.caughtUp() }) {
		t.Fatalf("20s after the link came back: %d of 40 messages in room healed acknowledged, every client caught up: %v; %s",
			h.ackedCount(), h.caughtUp(), strings.Join(h.verify(), "; "))
	}
	if problems := h.verify(); len(problems) > 0 {
		t.Errorf("room healed, one client on s1 and one on s2:\n%s", strings.Join(problems, "\n"))
	}
	r.note("after the link came back: room healed, one client on s1 and one on s2, 40 messages all acknowledged and held by both %s after s1 was ready; s1's client got %d \"unavailable\" errors (resent)",
		time.Since(healAt.Add(readyAgain)).Round(time.Millisecond), h.clients[0].stats().errors["unavailable"])

	r.finish("partition")
	for _, c := range f.clients {
		if st := c.snapshot(); !containsClient(onS1, c) && (len(st.failovers) > 0 || len(st.servers) != 1) {
			t.Errorf("%s of s2 moved (connections %v, failovers %d): s2 was never cut off", c.name, st.servers, len(st.failovers))
		}
	}
	t.Logf("run took %s", time.Since(start).Round(time.Millisecond))
}

// moveSnap is what the partition test reads of a client.
type moveSnap struct {
	servers   []string
	failovers []time.Time
	joins     int
	errors    map[string]int
	closes    map[int]int
}

func (c *rclient) snapshot() moveSnap {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := moveSnap{servers: append([]string(nil), c.servers...), failovers: append([]time.Time(nil), c.failovers...),
		joins: len(c.joinedAt), errors: map[string]int{}, closes: map[int]int{}}
	for k, v := range c.errors {
		s.errors[k] = v
	}
	for k, v := range c.closes {
		s.closes[k] = v
	}
	return s
}

func describeMoves(cs []*rclient) string {
	var parts []string
	for _, c := range cs {
		st := c.snapshot()
		parts = append(parts, fmt.Sprintf("%s: connections %v, failovers %d, joins %d, errors %v", c.name, st.servers, len(st.failovers), st.joins, st.errors))
	}
	return strings.Join(parts, "; ")
}

func containsClient(cs []*rclient, c *rclient) bool {
	for _, x := range cs {
		if x == c {
			return true
		}
	}
	return false
}
