package server

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/livechat/livechat/pkg/protocol"
)

// TestShortWriteFinishedByWriter: a reader that stops reading (a small
// receive buffer, so the socket fills) makes the flusher's non-blocking
// write fall short; the connection's own writer finishes it, and when the
// client reads again every message arrives whole and in order, and the
// connection still works.
func TestShortWriteFinishedByWriter(t *testing.T) {
	t.Parallel()
	ts := startServer(t, memBroker(t), Config{AppID: "1000", Prefix: testPrefix(t), RatePerSec: 1000, RateBurst: 1000, SendQueue: 1024})
	// The server's sockets get a small send buffer, the slow client's a
	// small receive buffer: a few frames fill them.
	hs := httptest.NewUnstartedServer(ts.Handler())
	hs.Listener = smallSendBuffers{hs.Listener}
	hs.Start()
	defer hs.Close()
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"
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
	ws, _, err := dialWith(d, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ws.Close() }()
	// Not read until the short write: the join's answers wait too.
	if err := ws.WriteJSON(protocol.Inbound{Type: protocol.TypeJoin, Room: "r", Name: "slow"}); err != nil {
		t.Fatal(err)
	}
	sender := dial(t, url)
	sender.join("r", "sender")
	sender.waitUntil("slow in the room", hasMembers("r", "sender", "slow"))
	const n = 150
	text := strings.Repeat("x", protocol.MaxTextLen-8)
	for i := range n {
		sender.sendJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "r", Text: strconv.Itoa(i) + ":" + text, CID: strconv.Itoa(i)})
	}
	sender.waitUntil("acks", func(fs []rx) bool { return countType(fs, protocol.TypeAck) == n })
	waitFor(t, 10*time.Second, "a short write", func() bool { return ts.shortWrites.Load() > 0 })

	slow := newClient(t, ws)
	slow.waitUntil("every message", func(fs []rx) bool { return countType(fs, protocol.TypeMessage) >= n })
	msgs := slow.frameList(protocol.TypeMessage)
	if len(msgs) != n {
		t.Fatalf("got %d messages, want %d", len(msgs), n)
	}
	for i, m := range msgs {
		if want := strconv.Itoa(i) + ":" + text; m.Text != want {
			t.Fatalf("message %d: %.20q…, want %.20q…", i, m.Text, want)
		}
	}
	slow.sendJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "r", Text: "still here", CID: "last"})
	if f := slow.next(protocol.TypeAck); f.CID != "last" {
		t.Fatalf("ack for %q, want last", f.CID)
	}
}

// TestFlusherInterval: the interval between two writes to a connection
// grows while writes take more than busyHigh of the flusher's time, up to
// maxCoalesce, and falls back to writeCoalesce once they take less than
// busyLow.
func TestFlusherInterval(t *testing.T) {
	f := newFlusher()
	t0 := time.Now()
	f.winStart = t0
	window := func(busy float64) time.Duration {
		f.busy = time.Duration(busy * float64(adaptEvery))
		t0 = t0.Add(adaptEvery)
		f.adapt(t0)
		return f.coalesce()
	}
	f.busy = adaptEvery
	f.adapt(t0.Add(adaptEvery / 2)) // a window not over yet changes nothing
	if got := f.coalesce(); got != writeCoalesce {
		t.Fatalf("after half a window: %v, want %v", got, writeCoalesce)
	}
	prev := writeCoalesce
	for range 30 {
		got := window(0.9)
		if got < prev || got > maxCoalesce {
			t.Fatalf("busy: interval %v after %v", got, prev)
		}
		prev = got
	}
	if prev != maxCoalesce {
		t.Fatalf("busy for long: %v, want %v", prev, maxCoalesce)
	}
	if got := window((busyLow + busyHigh) / 2); got != maxCoalesce {
		t.Fatalf("between the bounds: %v, want it kept at %v", got, maxCoalesce)
	}
	if got := window(0.1); got != maxCoalesce*4/5 {
		t.Fatalf("one quiet window: %v, want %v", got, maxCoalesce*4/5)
	}
	for range 30 {
		prev = window(0.1)
	}
	if prev != writeCoalesce {
		t.Fatalf("quiet for long: %v, want %v", prev, writeCoalesce)
	}
	// A flusher that was busy, then had nothing to write for a second
	// (no windows ended: its goroutine was gone), starts short again.
	for range 30 {
		window(0.9)
	}
	f.busy = 0
	t0 = t0.Add(2 * time.Second)
	f.adapt(t0)
	if got := f.coalesce(); got != writeCoalesce {
		t.Fatalf("after an idle second: %v, want %v", got, writeCoalesce)
	}
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

// TestRemainder: what a short write leaves of a batch, and the frames that
// went out whole.
func TestRemainder(t *testing.T) {
	a, b, c := textFrame([]byte("aaaa")), textFrames([][]byte{[]byte("b"), []byte("bb")}), textFrame([]byte("c"))
	batch := []*frame{a, b, c}
	vec := [][]byte{a.buf, b.buf, c.buf} // 6, 7 and 3 bytes
	for _, tc := range []struct {
		n      int
		rest   string
		frames int
	}{
		{0, string(a.buf) + string(b.buf) + string(c.buf), 0},
		{4, string(a.buf[4:]) + string(b.buf) + string(c.buf), 0},
		{6, string(b.buf) + string(c.buf), 1},
		{8, string(b.buf[2:]) + string(c.buf), 1},
		{13, string(c.buf), 3},
		{16, "", 4},
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
	b := memBroker(t)
	prefix := testPrefix(t)
	ts := startServer(t, b, Config{AppID: "1000", Prefix: prefix, SendQueue: 64})
	c := dial(t, ts.url)
	c.join("r", "reader")
	for _, f := range ts.flushers {
		f.interval.Store(int64(maxCoalesce)) // as on a write-bound server
	}
	const n = 200 // over SendQueue, under queueHardFactor × SendQueue
	subject := protocol.RoomSubject(prefix, "r")
	for i := range n {
		msg := fmt.Sprintf(`{"type":"message","room":"r","id":"h-%d","from":"op","text":"%d","ts":1,"server":"cli"}`, i, i)
		if err := b.Publish(context.Background(), subject, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	c.waitUntil("every message", func(fs []rx) bool { return countType(fs, protocol.TypeMessage) >= n })
	for i, m := range c.frameList(protocol.TypeMessage) {
		if m.Text != strconv.Itoa(i) {
			t.Fatalf("message %d: %q", i, m.Text)
		}
	}
	if d := ts.Stats().SlowDrops; d != 0 {
		t.Fatalf("%d clients closed as too slow", d)
	}
}

// TestPingDoesNotKeepWriters: the connection's own writer goroutine,
// started for a ping, gives the socket back to the flusher after one
// write, so connections under a steady flow keep no goroutine of their own
// once pinged.
func TestPingDoesNotKeepWriters(t *testing.T) {
	// Not parallel: it counts goroutines.
	b := memBroker(t)
	prefix := testPrefix(t)
	ts := startServer(t, b, Config{AppID: "1000", Prefix: prefix, PingPeriod: 50 * time.Millisecond, PongWait: 5 * time.Second})
	const k = 40
	for i := range k {
		ws, _, err := dialRaw(ts.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		c := newClient(t, ws) // its reader answers pings
		c.join("r", "u"+strconv.Itoa(i))
	}
	subject := protocol.RoomSubject(prefix, "r")
	publish := func(i int) {
		msg := fmt.Sprintf(`{"type":"message","room":"r","id":"p-%d","from":"op","text":"%d","ts":1,"server":"cli"}`, i, i)
		if err := b.Publish(context.Background(), subject, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	// A steady flow, a message every 2 ms, with a ping to every connection
	// every 50 ms: count the connections' own writers from the second
	// 100 ms on.
	most := int64(0)
	start := time.Now()
	for i := 0; time.Since(start) < 600*time.Millisecond; i++ {
		publish(i)
		if time.Since(start) > 100*time.Millisecond {
			most = max(most, ts.ownWriters.Load())
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Logf("%d connections under a flow with pings: at most %d writer goroutines at once", k, most)
	if most >= k/2 {
		t.Fatalf("%d writer goroutines under the flow: pinged connections kept them", most)
	}
}
