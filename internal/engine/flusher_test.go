package engine

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestShortWriteFinishedByWriter: a client that stops reading (a small
// receive buffer, so the socket fills) makes the flusher's non-blocking
// write fall short; the connection's own writer finishes it, and when the
// client reads again every frame arrives whole and in order, and the
// connection still works.
func TestShortWriteFinishedByWriter(t *testing.T) {
	t.Parallel()
	te := startEngine(t, Options{SendQueue: 1024}, echo())
	// The server's sockets get a small send buffer, the client's a small
	// receive buffer: a few frames fill them.
	hs := httptest.NewUnstartedServer(te.http.Config.Handler)
	hs.Listener = smallSendBuffers{hs.Listener}
	hs.Start()
	defer hs.Close()
	d := &websocket.Dialer{HandshakeTimeout: 5 * time.Second, NetDial: func(network, addr string) (net.Conn, error) {
		nd := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			if err := rc.Control(func(fd uintptr) { serr = setBuffer(fd, syscall.SO_RCVBUF) }); err != nil {
				return err
			}
			return serr
		}}
		return nd.Dial(network, addr)
	}}
	ws, err := dialWith(d, "ws"+strings.TrimPrefix(hs.URL, "http"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ws.Close() }()
	c := te.accept(t)
	const n = 150
	text := strings.Repeat("x", 4000)
	for i := range n {
		c.Send(TextFrame([]byte(strconv.Itoa(i) + ":" + text)))
	}
	waitFor(t, 10*time.Second, "a short write", func() bool { return te.Stats().ShortWrites > 0 })
	for i := range n {
		if s, want := readText(t, ws), strconv.Itoa(i)+":"+text; s != want {
			t.Fatalf("frame %d: %.20q…, want %.20q…", i, s, want)
		}
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	if s := readText(t, ws); s != "still here" {
		t.Fatalf("echo %q", s)
	}
	// Counted once the write has returned, which may be after the client
	// read it.
	waitFor(t, waitTimeout, "every frame counted", func() bool { return c.FramesOut() == n+1 })
}

// smallSendBuffers gives every accepted connection a small send buffer.
type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return nil, err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = setBuffer(fd, syscall.SO_SNDBUF) }); err != nil {
		return nil, err
	}
	return c, serr
}

// TestFlusherInterval: the interval between two writes to a connection
// grows while writes take more than busyHigh of the flusher's time, up to
// maxCoalesce, and falls back to writeCoalesce once they take less than
// busyLow.
func TestFlusherInterval(t *testing.T) {
	f := newFlusher(New(Options{}), true)
	var cpu time.Duration // the process's CPU time, as the test says
	f.cpu = func() (time.Duration, bool) { return cpu, true }
	procs := runtime.GOMAXPROCS(0)
	t0 := time.Now()
	f.winStart = t0
	// window ends a window in which the flusher spent share of its time in
	// writes and the process used util of its processors.
	window := func(share, util float64) time.Duration {
		f.busy = time.Duration(share * float64(adaptEvery))
		cpu += time.Duration(util * float64(adaptEvery) * float64(procs))
		t0 = t0.Add(adaptEvery)
		f.adapt(t0)
		return f.coalesce()
	}
	f.busy = adaptEvery
	f.adapt(t0.Add(adaptEvery / 2)) // a window not over yet changes nothing
	if got := f.coalesce(); got != writeCoalesce {
		t.Fatalf("after half a window: %v, want %v", got, writeCoalesce)
	}
	window(0.5, 0.5) // the first CPU reading
	// Writes take most of the flusher's time, but the processors are not
	// short: no longer batches (they would only delay).
	for range 10 {
		if got := window(0.8, 0.8); got != writeCoalesce {
			t.Fatalf("busy writes, CPU to spare: interval %v, want %v", got, writeCoalesce)
		}
	}
	// The CPU runs short, but not because of the writes: likewise.
	if got := window(0.1, 0.99); got != writeCoalesce {
		t.Fatalf("CPU short, few writes: interval %v, want %v", got, writeCoalesce)
	}
	prev := writeCoalesce
	for range 30 {
		got := window(0.6, 0.98)
		if got < prev || got > maxCoalesce {
			t.Fatalf("busy: interval %v after %v", got, prev)
		}
		prev = got
	}
	if prev != maxCoalesce {
		t.Fatalf("busy for long: %v, want %v", prev, maxCoalesce)
	}
	for _, w := range [][2]float64{{(busyLow + busyHigh) / 2, 0.98}, {0.6, (cpuLow + cpuHigh) / 2}} {
		if got := window(w[0], w[1]); got != maxCoalesce {
			t.Fatalf("between the bounds (share %v, CPU %v): %v, want it kept at %v", w[0], w[1], got, maxCoalesce)
		}
	}
	if got := window(0.6, 0.5); got != maxCoalesce*4/5 {
		t.Fatalf("one window with CPU to spare: %v, want %v", got, maxCoalesce*4/5)
	}
	if got := window(0.2, 0.98); got != maxCoalesce*4/5*4/5 {
		t.Fatalf("one window of few writes: %v, want %v", got, maxCoalesce*4/5*4/5)
	}
	for range 30 {
		prev = window(0.1, 0.3)
	}
	if prev != writeCoalesce {
		t.Fatalf("quiet for long: %v, want %v", prev, writeCoalesce)
	}
	// A flusher that was busy, then had nothing to write for a second
	// (no windows ended: its goroutine was gone), starts short again.
	for range 30 {
		window(0.6, 0.98)
	}
	f.busy = 0
	t0 = t0.Add(2 * time.Second)
	f.adapt(t0)
	if got := f.coalesce(); got != writeCoalesce {
		t.Fatalf("after an idle second: %v, want %v", got, writeCoalesce)
	}
	// Without the process's CPU time, the share of writes decides.
	g := newFlusher(New(Options{}), true)
	g.cpu = func() (time.Duration, bool) { return 0, false }
	g.winStart = time.Now()
	g.busy = time.Duration(0.9 * float64(adaptEvery))
	g.adapt(g.winStart.Add(adaptEvery))
	if got := g.coalesce(); got != writeCoalesce*5/4 {
		t.Fatalf("no CPU time, busy writes: %v, want %v", got, writeCoalesce*5/4)
	}
}

// TestRemainder: what a short write leaves of a batch, and the frames that
// went out whole.
func TestRemainder(t *testing.T) {
	a, b, c := TextFrame([]byte("aaaa")), TextFrames([][]byte{[]byte("b"), []byte("bb")}), TextFrame([]byte("c"))
	d := SharedTextFrame([]byte("dddd"))
	batch := []*Frame{a, b, c, d}
	var vec [][]byte
	for _, f := range batch {
		vec = f.appendVec(vec) // 6, 7, 3 and 2+4 bytes
	}
	if len(vec) != 5 {
		t.Fatalf("%d buffers, want 5", len(vec))
	}
	dd := string(d.buf) + string(d.tail)
	for _, tc := range []struct {
		n      int
		rest   string
		frames int
	}{
		{0, string(a.buf) + string(b.buf) + string(c.buf) + dd, 0},
		{4, string(a.buf[4:]) + string(b.buf) + string(c.buf) + dd, 0},
		{6, string(b.buf) + string(c.buf) + dd, 1},
		{8, string(b.buf[2:]) + string(c.buf) + dd, 1},
		{13, string(c.buf) + dd, 3},
		{16, dd, 4},
		{17, dd[1:], 4},
		{18, "dddd", 4},
		{20, "dd", 4},
		{22, "", 5},
	} {
		rest, frames := remainder(vec, batch, tc.n)
		if got := string(bytes.Join(rest, nil)); got != tc.rest || frames != tc.frames || (tc.rest == "") != (rest == nil) {
			t.Errorf("n=%d: rest %q, %d frames; want %q, %d", tc.n, got, frames, tc.rest, tc.frames)
		}
	}
}

// TestHeldFramesAreNotSlow: frames held back by a long write interval fill
// the queue of a client that reads everything past SendQueue; it is not
// closed as too slow, and gets them all in order.
func TestHeldFramesAreNotSlow(t *testing.T) {
	t.Parallel()
	te := startEngine(t, Options{SendQueue: 64}, echo())
	ws, c := te.dialed(t)
	for _, f := range te.flushers {
		f.interval.Store(int64(maxCoalesce)) // as on a write-bound server
	}
	const n = 200 // over SendQueue, under queueHardFactor × SendQueue
	for i := range n {
		c.Send(TextFrame([]byte(strconv.Itoa(i))))
	}
	for i := range n {
		if s := readText(t, ws); s != strconv.Itoa(i) {
			t.Fatalf("frame %d: %q", i, s)
		}
	}
	if e, ended := te.h.end(c); ended {
		t.Fatalf("connection ended: %+v", e)
	}
}

// TestPingDoesNotKeepWriters: the connection's own writer goroutine,
// started for a ping, gives the socket back to the flusher after one
// write, so connections under a steady flow keep no goroutine of their own
// once pinged.
func TestPingDoesNotKeepWriters(t *testing.T) {
	// Not parallel: it counts goroutines.
	te := startEngine(t, Options{PingPeriod: 50 * time.Millisecond, PongWait: 5 * time.Second}, echo())
	const k = 40
	var cs []*Conn
	for range k {
		ws, c := te.dialed(t)
		cs = append(cs, c)
		go func() { // answers pings, drops the frames
			for {
				if _, _, err := ws.ReadMessage(); err != nil {
					return
				}
			}
		}()
	}
	// A steady flow, a frame every 2 ms to every connection, with a ping
	// to every connection every 50 ms: count the connections' own writers
	// from the second 100 ms on. Kept writers would be there in every
	// sample; a ping's short-lived writers come and go (on a loaded host
	// many may wait for a processor at once), so the median tells.
	var samples []int64
	start := time.Now()
	for i := 0; time.Since(start) < 600*time.Millisecond; i++ {
		f := SharedTextFrame([]byte(strconv.Itoa(i)))
		for _, c := range cs {
			c.Send(f)
		}
		if time.Since(start) > 100*time.Millisecond {
			samples = append(samples, te.Stats().OwnWriters)
		}
		time.Sleep(2 * time.Millisecond)
	}
	slices.Sort(samples)
	median := samples[len(samples)/2]
	t.Logf("%d connections under a flow with pings: %d writer goroutines at once in the median sample, at most %d", k, median, samples[len(samples)-1])
	if median >= k/2 {
		t.Fatalf("%d writer goroutines in the median sample under the flow: pinged connections kept them", median)
	}
}

// TestDueConnectionNotBehindBusyOne: a flusher writes the connection due
// first, not the one that got work first. With the interval at its longest,
// a busy connection just written and a quiet one written an interval ago
// get a frame each, the busy one first: the quiet one's goes out at once,
// the busy one's an interval after its last write.
func TestDueConnectionNotBehindBusyOne(t *testing.T) {
	t.Parallel()
	te := startEngine(t, Options{}, echo())
	// Connections take the flushers in turn: the first and the last of
	// len(flushers)+1 share one.
	type pair struct {
		ws *websocket.Conn
		c  *Conn
	}
	ps := make([]pair, len(te.flushers)+1)
	for i := range ps {
		ps[i].ws, ps[i].c = te.dialed(t)
	}
	busy, quiet := ps[0], ps[len(ps)-1]
	if busy.c.fl != quiet.c.fl {
		t.Fatal("the two connections have different flushers")
	}
	holdLongestInterval(t, te)
	// The quiet connection's last write ages an interval; then the busy
	// one is written twice (its first two writes, a burst: at once) and at
	// once gets another frame, then the quiet one.
	quiet.c.Send(TextFrame([]byte("q0")))
	readText(t, quiet.ws)
	time.Sleep(maxCoalesce)
	busy.c.Send(TextFrame([]byte("0")))
	readText(t, busy.ws)
	busy.c.Send(TextFrame([]byte("1")))
	readText(t, busy.ws)
	start := time.Now()
	busy.c.Send(TextFrame([]byte("2")))
	quiet.c.Send(TextFrame([]byte("q")))
	readText(t, quiet.ws)
	quietAfter := time.Since(start)
	readText(t, busy.ws)
	busyAfter := time.Since(start)
	t.Logf("quiet connection written after %v, busy one after %v", quietAfter, busyAfter)
	if busyAfter < maxCoalesce*3/5 {
		t.Fatalf("busy connection written again after %v: the interval (%v) was not held", busyAfter, maxCoalesce)
	}
	if quietAfter > maxCoalesce/2 {
		t.Fatalf("quiet connection written after %v, behind the busy one (%v)", quietAfter, busyAfter)
	}
}

// TestWriteBurst: with the interval at its longest, a new connection's
// first two frames, queued one after the other was written (a welcome,
// then a join's answer), both go out at once, and the third waits for the
// interval; with Options.NoWriteBurst the second waits too.
func TestWriteBurst(t *testing.T) {
	t.Parallel()
	for _, noBurst := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoWriteBurst=%v", noBurst), func(t *testing.T) {
			t.Parallel()
			te := startEngine(t, Options{NoWriteBurst: noBurst}, echo())
			holdLongestInterval(t, te)
			ws, c := te.dialed(t)
			c.Send(TextFrame([]byte("welcome")))
			readText(t, ws)
			start := time.Now()
			c.Send(TextFrame([]byte("joined")))
			readText(t, ws)
			second := time.Since(start)
			start = time.Now()
			c.Send(TextFrame([]byte("third")))
			readText(t, ws)
			third := time.Since(start)
			t.Logf("second frame after %v, third after %v", second, third)
			if third < maxCoalesce*3/5 {
				t.Errorf("third frame written after %v: the interval (%v) was not held", third, maxCoalesce)
			}
			switch {
			case !noBurst && second > maxCoalesce/2:
				t.Errorf("second frame of a new connection written after %v, not at once", second)
			case noBurst && second < maxCoalesce*3/5:
				t.Errorf("second frame written after %v with NoWriteBurst: the interval (%v) was not held", second, maxCoalesce)
			}
		})
	}
}

// TestDueQueue: the heap gives connections back oldest last write first,
// whatever the order they came in.
func TestDueQueue(t *testing.T) {
	t.Parallel()
	var q dueQueue
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		n := r.IntN(200)
		for range n {
			q.push(dueItem{last: r.Int64N(1000)})
		}
		prev := int64(-1)
		for range n - n/3 { // leave some for the next round
			it := q.pop()
			if it.last < prev {
				t.Fatalf("round %d: popped %d after %d", round, it.last, prev)
			}
			prev = it.last
		}
		for len(q) > 0 && r.IntN(2) == 0 {
			q.pop()
		}
	}
	for prev := int64(-1); len(q) > 0; {
		it := q.pop()
		if it.last < prev {
			t.Fatalf("popped %d after %d", it.last, prev)
		}
		prev = it.last
	}
}

// TestFailedWriteDoesNotStallFlusher: a write to a client that is gone
// fails while the client's reader waits in its handler; the socket's close
// waits for that handler, which must not hold up the flusher: another
// client on the same flusher keeps getting its frames.
func TestFailedWriteDoesNotStallFlusher(t *testing.T) {
	t.Parallel()
	entered, gate := make(chan struct{}, 1), make(chan struct{})
	h := &handler{message: func(_ *Conn, _ int, data []byte) (int, string) {
		if string(data) == "hold" {
			entered <- struct{}{}
			<-gate
		}
		return 0, ""
	}}
	te := startEngine(t, Options{}, h)
	t.Cleanup(func() { close(gate) }) // before the engine's cleanup
	for i := range te.flushers {
		te.flushers[i] = te.flushers[0] // one flusher for both clients
	}
	a, ac := te.dialed(t)
	b, bc := te.dialed(t)
	if err := a.WriteMessage(websocket.TextMessage, []byte("hold")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-time.After(waitTimeout):
		t.Fatal("the handler was not reached")
	}
	tc := a.NetConn().(*net.TCPConn)
	if err := tc.SetLinger(0); err != nil { // close with a reset: writes to it fail
		t.Fatal(err)
	}
	_ = tc.Close()
	for i := range 3 {
		text := fmt.Sprintf("m%d", i)
		ac.Send(TextFrame([]byte(text)))
		bc.Send(TextFrame([]byte(text)))
		if s := readText(t, b); s != text {
			t.Fatalf("got %q, want %q", s, text)
		}
	}
}

// holdLongestInterval sets every flusher's write interval to its longest,
// as on a write-bound server, and holds it there (the measuring window
// starts in an hour). Set while the flusher is idle (its run goroutine
// starts and ends under mu).
func holdLongestInterval(t *testing.T, te *testEngine) {
	t.Helper()
	for _, f := range te.flushers {
		waitFor(t, 5*time.Second, "an idle flusher", func() bool {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.running {
				return false
			}
			f.interval.Store(int64(maxCoalesce))
			f.winStart = time.Now().Add(time.Hour)
			return true
		})
	}
}
