//go:build unix

package tests

import (
	"bufio"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/livechat/livechat/pkg/broker/brokertest"
	"github.com/livechat/livechat/pkg/history/historytest"
)

// The fault tests of issue 6, point 7: the reference topology (four
// `livechat serve` with history behind HAProxy), 40 resilient clients in 4
// rooms (resilient_test.go) sending 10,000 messages, and a fault in the
// middle of the run. Each ends with the same check: every client holds
// exactly the acknowledged messages of its room, by seq and id, 1..N, and
// each connection delivered them in order without a gap or a duplicate. The
// figures are logged; docs/RELIABILITY.md has them and the command.
//
// The tests are not parallel (each one loads the 2-core box on its own);
// Go runs them before the parallel end-to-end tests of the package.

const (
	faultRooms    = 4
	faultPerRoom  = 10
	faultMessages = 250 // per client: 40 × 250 = 10,000
	// faultRate is the servers' --rate: a client sends 50 messages/s, and
	// resends after a reconnect on top.
	faultRate = "200"
	// faultRunTimeout bounds every wait for the run to complete.
	faultRunTimeout = 90 * time.Second
)

// faultOpts says how a fault cluster's servers store and publish.
type faultOpts struct {
	broker  string // --broker
	history string // --history; "" = the broker's Redis
}

// faultCluster is a cluster whose servers can be restarted on their port.
type faultCluster struct {
	*cluster
	opts faultOpts
	gen  map[string]int // restarts per APPID
	// metrics accumulated from server processes that have ended
	gone map[string]float64
}

func newFaultCluster(t *testing.T, o faultOpts) *faultCluster {
	t.Helper()
	haproxy := requireTool(t, "haproxy")
	fc := &faultCluster{
		cluster: &cluster{t: t, dir: t.TempDir(), broker: o.broker, prefix: uniquePrefix(t)},
		opts:    o, gen: map[string]int{}, gone: map[string]float64{},
	}
	for i := 1; i <= 4; i++ {
		s := &lcServer{appID: strconv.Itoa(i * 1000), addr: freeAddr(t)}
		fc.servers = append(fc.servers, s)
		fc.start(s)
	}
	for _, s := range fc.servers {
		fc.waitReady(s)
	}
	fc.startHAProxy(haproxy)
	for i := range fc.servers {
		fc.waitUp(i)
	}
	return fc
}

// start runs server s (again) on its address.
func (fc *faultCluster) start(s *lcServer) {
	t := fc.t
	name := "server" + s.appID
	if g := fc.gen[s.appID]; g > 0 {
		name += "-" + strconv.Itoa(g)
	}
	fc.gen[s.appID]++
	args := []string{"serve", "--addr", s.addr, "--broker", fc.opts.broker, "--prefix", fc.prefix,
		"--trust-proxy", "--drain-delay", drainDelay.String(), "--shutdown-timeout", "10s",
		"--heartbeat-interval", "1s", "--presence-interval", "1s",
		"--rate", faultRate, "--rate-burst", "400", "--log-level", "info"}
	if fc.opts.history != "" {
		args = append(args, "--history", fc.opts.history)
	}
	s.p = startProc(t, fc.dir, name, []string{"APPID=" + s.appID}, livechatBin, args...)
	// Runs before the servers' own cleanups (registered earlier): all
	// servers drain at once instead of one after the other.
	t.Cleanup(func() {
		for _, s := range fc.servers {
			if !s.p.exited() {
				_ = s.p.cmd.Process.Signal(syscall.SIGTERM)
			}
		}
	})
}

func (fc *faultCluster) waitReady(s *lcServer) {
	fc.t.Helper()
	waitFor(fc.t, 20*time.Second, func() bool { return httpStatus("http://"+s.addr+"/readyz") == http.StatusOK },
		"server %s on %s is not ready", s.appID, s.addr)
}

// waitUp waits until HAProxy sends new connections to server i again.
func (fc *faultCluster) waitUp(i int) {
	fc.t.Helper()
	name := fmt.Sprintf("s%d", i+1)
	waitFor(fc.t, 15*time.Second, func() bool { return fc.serverStates()[name] == "UP L7OK" },
		"HAProxy did not mark %s UP: %v", name, fc.serverStates())
}

// scrape reads a server's livechat_* metrics: series -> value.
func scrape(addr string) map[string]float64 {
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "livechat_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out
}

// retire keeps the counters of a server about to end.
func (fc *faultCluster) retire(s *lcServer) {
	for k, v := range scrape(s.addr) {
		fc.gone[k] += v
	}
}

// counters sums the servers' counters (live ones now, ended ones as last
// read) by metric name, labels summed away, plus history errors by op.
func (fc *faultCluster) counters() map[string]float64 {
	all := map[string]float64{}
	for k, v := range fc.gone {
		all[k] += v
	}
	for _, s := range fc.servers {
		if s.p.exited() {
			continue
		}
		for k, v := range scrape(s.addr) {
			all[k] += v
		}
	}
	out := map[string]float64{}
	for k, v := range all {
		name, labels, _ := strings.Cut(k, "{")
		if !strings.HasSuffix(name, "_total") {
			continue
		}
		out[strings.TrimPrefix(name, "livechat_")] += v
		if name == "livechat_history_errors_total" {
			out["history_errors{"+labels] += v
		}
	}
	return out
}

// faultRun is one run of the scenario: the fleet, and its figures.
type faultRun struct {
	t     *testing.T
	fc    *faultCluster
	f     *fleet
	start time.Time
	notes []string
}

// startFaultRun starts the 40 clients and waits until all have joined.
func startFaultRun(t *testing.T, fc *faultCluster, interval time.Duration) *faultRun {
	t.Helper()
	f := startFleet(fc.wsURL(), faultRooms, faultPerRoom, faultMessages, interval)
	t.Cleanup(f.stop) // before the servers stop
	waitFor(t, 20*time.Second, f.allJoined, "not every client joined its room")
	return &faultRun{t: t, fc: fc, f: f, start: time.Now()}
}

func (r *faultRun) note(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

// waitAcked waits until n messages are acknowledged in all.
func (r *faultRun) waitAcked(n int) {
	r.t.Helper()
	waitFor(r.t, faultRunTimeout, func() bool { return r.f.ackedCount() >= n },
		"%d of %d messages acknowledged", r.f.ackedCount(), n)
}

// rejoinedAfter counts the clients that joined again after at, and the
// longest time one took.
func (r *faultRun) rejoinedAfter(at time.Time) (n int, longest time.Duration) {
	for _, c := range r.f.clients {
		c.mu.Lock()
		for _, j := range c.joinedAt {
			if j.After(at) {
				n++
				longest = max(longest, j.Sub(at))
				break
			}
		}
		c.mu.Unlock()
	}
	return n, longest
}

// finish waits for every send to be acknowledged and every client to
// hold its room's messages, checks the end state and logs the figures.
func (r *faultRun) finish(name string) {
	t := r.t
	t.Helper()
	// Every send acknowledged, and every client holding its room's.
	total, perRoom, wantHeld := 0, map[string]int{}, 0
	for _, c := range r.f.clients {
		total += c.total
		perRoom[c.room] += c.total
	}
	for _, c := range r.f.clients {
		wantHeld += perRoom[c.room]
	}
	r.waitAcked(total)
	acked := time.Since(r.start)
	caught := poll(30*time.Second, r.f.caughtUp)
	elapsed := time.Since(r.start)
	problems := r.f.verify()
	tot := r.f.totals()
	ctr := r.fc.counters()

	var b strings.Builder
	fmt.Fprintf(&b, "%s figures:\n", name)
	fmt.Fprintf(&b, "  clients %d in %d rooms; messages sent %d, acknowledged %d (send frames %d, resends %d, of which after no answer in %s: %d)\n",
		len(r.f.clients), len(perRoom), tot.sent, tot.acked, tot.attempts, tot.resends, ackTimeout, tot.ackTimeouts)
	fmt.Fprintf(&b, "  all acknowledged after %s, every client caught up after %s\n", acked.Round(time.Millisecond), elapsed.Round(time.Millisecond))
	fmt.Fprintf(&b, "  messages held by the clients %d (want %d: each client all its room's messages)\n", tot.held, wantHeld)
	fmt.Fprintf(&b, "  errors received by code %v; connection ends by close code %v; reconnects %d (failed dials %d)\n",
		sortedMap(tot.errors), sortedMap(tot.closes), tot.reconnects, tot.dialFails)
	fmt.Fprintf(&b, "  holes in a connection's stream %d; stream violations %d\n", tot.holes, len(tot.violations))
	pause, pauseAt := r.f.ackPause(r.start)
	fmt.Fprintf(&b, "  longest time without any ack %s (from %s into the run); longest a client waited for its next message %s\n",
		pause.Round(time.Millisecond), pauseAt.Sub(r.start).Round(time.Millisecond), tot.maxPause.Round(time.Millisecond))
	fmt.Fprintf(&b, "  servers' counters: %s\n", counterLine(ctr))
	for _, n := range r.notes {
		fmt.Fprintf(&b, "  %s\n", n)
	}
	t.Log(b.String())

	if !caught {
		t.Errorf("not every client caught up with its room's acknowledged messages within 30 s")
	}
	if len(problems) > 0 {
		if len(problems) > 40 {
			problems = append(problems[:40], fmt.Sprintf("... and %d more", len(problems)-40))
		}
		t.Errorf("%d problem(s):\n%s", len(problems), strings.Join(problems, "\n"))
	}
}

func sortedMap[K int | string](m map[K]int) string {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%v:%d", k, m[k]))
	}
	return "{" + strings.Join(parts, " ") + "}"
}

func counterLine(ctr map[string]float64) string {
	var parts []string
	for _, k := range []string{"messages_in_total", "gaps_filled_total", "gap_messages_lost_total", "duplicates_dropped_total",
		"replayed_messages_total", "history_resets_total", "slow_client_disconnects_total"} {
		parts = append(parts, fmt.Sprintf("%s=%g", strings.TrimSuffix(k, "_total"), ctr[k]))
	}
	var hist []string
	for k, v := range ctr {
		if strings.HasPrefix(k, "history_errors{") {
			hist = append(hist, fmt.Sprintf("%s=%g", k, v))
		}
	}
	sort.Strings(hist)
	return strings.Join(append(parts, hist...), " ")
}

// TestFaultKill9: four servers behind HAProxy (history in their Redis), 40
// clients in 4 rooms, 10,000 messages; one server is killed with kill -9
// mid-run. Every client ends with every acknowledged message of its room,
// in order, without duplicates.
func TestFaultKill9(t *testing.T) {
	redisURL, _, _ := brokertest.StartRedis(t)
	fc := newFaultCluster(t, faultOpts{broker: redisURL})
	r := startFaultRun(t, fc, 20*time.Millisecond)

	r.waitAcked(3000)
	victim := fc.servers[1]
	fc.retire(victim)
	killAt := time.Now()
	if err := victim.p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !victim.p.wait(5 * time.Second) {
		t.Fatal("the killed server did not exit")
	}
	r.note("server %s killed (SIGKILL) at %s into the run, with %d messages acknowledged", victim.appID,
		killAt.Sub(r.start).Round(time.Millisecond), r.f.ackedCount())
	r.finish("kill -9")
	n, longest := r.rejoinedAfter(killAt)
	t.Logf("kill -9: %d clients re-joined after the kill, the last %s after it", n, longest.Round(time.Millisecond))
}

// TestFaultRedisRestart: the servers' broker is the test's own
// redis-server, their store PostgreSQL; Redis is killed mid-run and started
// again. The servers resubscribe, fill the gaps from the store, and no
// acknowledged message is lost.
func TestFaultRedisRestart(t *testing.T) {
	redisURL, stopRedis, restartRedis := brokertest.StartRedis(t)
	pg := historytest.PostgresURL(t)
	fc := newFaultCluster(t, faultOpts{broker: redisURL, history: pg})
	r := startFaultRun(t, fc, 20*time.Millisecond)

	r.waitAcked(3000)
	downAt := time.Now()
	stopRedis()
	acked := r.f.ackedCount()
	// Down until every server has noticed (its /readyz fails).
	waitFor(t, 10*time.Second, func() bool {
		for _, s := range fc.servers {
			if httpStatus("http://"+s.addr+"/readyz") == http.StatusOK {
				return false
			}
		}
		return true
	}, "the servers did not notice that Redis is down")
	noticed := time.Since(downAt)
	// The outage lasts 2 s (the scenario's length, as a Redis restart with
	// its data loaded takes).
	waitFor(t, 5*time.Second, func() bool { return time.Since(downAt) >= 2*time.Second }, "the outage")
	lbDown := 0
	for _, st := range fc.serverStates() {
		if strings.HasPrefix(st, "DOWN") {
			lbDown++
		}
	}
	restartRedis()
	upAt := time.Now()
	waitFor(t, 20*time.Second, func() bool {
		for _, s := range fc.servers {
			if httpStatus("http://"+s.addr+"/readyz") != http.StatusOK {
				return false
			}
		}
		return true
	}, "the servers did not become ready after Redis came back")
	ready := time.Since(upAt)
	r.note("Redis killed at %s into the run with %d messages acknowledged, down %s (every server's /readyz failed after %s; HAProxy had %d of 4 servers DOWN before the restart), restarted: all servers ready %s later; %d messages acknowledged while it was down",
		downAt.Sub(r.start).Round(time.Millisecond), acked, upAt.Sub(downAt).Round(time.Millisecond), noticed.Round(time.Millisecond),
		lbDown, ready.Round(time.Millisecond), r.f.ackedCount()-acked)
	r.finish("Redis restart")
}

// TestFaultPostgresStopped: the store is a PostgreSQL of the test's own,
// stopped for a few seconds mid-run. Senders get "unavailable" errors and
// retry with the same cid, nothing acknowledged is lost, and the service
// resumes by itself once PostgreSQL is back.
func TestFaultPostgresStopped(t *testing.T) {
	pg, stopPG, restartPG := historytest.StartPostgres(t)
	redisURL, _, _ := brokertest.StartRedis(t)
	fc := newFaultCluster(t, faultOpts{broker: redisURL, history: pg})
	r := startFaultRun(t, fc, 20*time.Millisecond)

	r.waitAcked(3000)
	downAt := time.Now()
	stopPG()
	acked := r.f.ackedCount()
	unavailable := func() int { return r.f.totals().errors["unavailable"] }
	// The outage lasts 3 s (the scenario's length), and at least until the
	// senders have been refused.
	waitFor(t, 20*time.Second, func() bool { return time.Since(downAt) >= 3*time.Second && unavailable() > 0 },
		"no sender got an \"unavailable\" error while PostgreSQL was down")
	errsDown := unavailable()
	ackedDown := r.f.ackedCount() - acked
	restartAt := time.Now()
	restartPG() // returns once PostgreSQL accepts connections
	upAt := time.Now()
	var resumed time.Time
	waitFor(t, 20*time.Second, func() bool { resumed = r.f.firstAckAfter(restartAt); return !resumed.IsZero() },
		"no message was acknowledged after PostgreSQL came back")
	r.note("PostgreSQL stopped (SIGQUIT) at %s into the run with %d messages acknowledged, down %s; %d \"unavailable\" errors meanwhile, %d messages acknowledged meanwhile; restarted: accepting connections after %s, the first ack %s after the restart began",
		downAt.Sub(r.start).Round(time.Millisecond), acked, restartAt.Sub(downAt).Round(time.Millisecond), errsDown, ackedDown,
		upAt.Sub(restartAt).Round(time.Millisecond), resumed.Sub(restartAt).Round(time.Millisecond))
	r.finish("PostgreSQL stopped")
	if errsDown == 0 {
		t.Error("no sender got an \"unavailable\" error while PostgreSQL was down")
	}
}

// TestFaultRollingRestart: under steady traffic (10 messages/s per client)
// each of the four servers in turn gets SIGTERM, drains, exits and starts
// again on its port; HAProxy marks it up before the next one. No loss.
func TestFaultRollingRestart(t *testing.T) {
	redisURL, _, _ := brokertest.StartRedis(t)
	fc := newFaultCluster(t, faultOpts{broker: redisURL})
	r := startFaultRun(t, fc, 100*time.Millisecond)

	r.waitAcked(1000)
	rollAt := time.Now()
	for i, s := range fc.servers {
		fc.retire(s)
		at := time.Now()
		if err := s.p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if !s.p.wait(15 * time.Second) {
			t.Fatalf("server %s did not exit within 15 s of SIGTERM", s.appID)
		}
		if code := s.p.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("server %s exited with %d after SIGTERM, want 0", s.appID, code)
		}
		exited := time.Since(at)
		fc.start(s)
		fc.waitReady(s)
		fc.waitUp(i)
		r.note("server %s: SIGTERM at %s into the run, exited after %s, back UP in HAProxy %s after the SIGTERM (%d acknowledged so far)",
			s.appID, at.Sub(r.start).Round(time.Millisecond), exited.Round(time.Millisecond), time.Since(at).Round(time.Millisecond), r.f.ackedCount())
	}
	r.note("rolling restart of the four servers took %s; %d of %d messages had been acknowledged when it ended",
		time.Since(rollAt).Round(time.Millisecond), r.f.ackedCount(), faultRooms*faultPerRoom*faultMessages)
	r.finish("rolling restart")
}
