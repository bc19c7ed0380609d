package server

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/livechat/livechat/pkg/protocol"
)

// TestTextFrameHeader checks the three length encodings of RFC 6455 against
// gorilla's reader.
func TestTextFrameHeader(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 0xFFFF, 0x10000, 70000} {
		payload := bytes.Repeat([]byte("x"), n)
		f := textFrame(payload)
		var want []byte
		switch {
		case n < 126:
			want = []byte{0x81, byte(n)}
		case n <= 0xFFFF:
			want = []byte{0x81, 126, byte(n >> 8), byte(n)}
		default:
			want = []byte{0x81, 127, 0, 0, 0, 0, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
		}
		if !bytes.Equal(f.buf[:len(want)], want) || !bytes.Equal(f.buf[len(want):], payload) || f.n != 1 {
			t.Fatalf("len %d: header % x, want % x", n, f.buf[:min(len(f.buf), 10)], want)
		}
	}
	batch := textFrames([][]byte{[]byte("a"), bytes.Repeat([]byte("b"), 200)})
	if batch.n != 2 || len(batch.buf) != 2+1+4+200 {
		t.Fatalf("batch n=%d len=%d", batch.n, len(batch.buf))
	}
}

// TestPingAnsweredByWriter: a client's ping gets a pong with its payload,
// and a burst of queued frames around it arrives whole and in order.
func TestPingAnsweredByWriter(t *testing.T) {
	t.Parallel()
	ts := startServer(t, memBroker(t), Config{AppID: "1000", Prefix: testPrefix(t)})
	ws, _, err := dialRaw(ts.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ws.Close() }()
	pongs := make(chan string, 1)
	ws.SetPongHandler(func(p string) error { pongs <- p; return nil })
	if err := ws.WriteJSON(protocol.Inbound{Type: protocol.TypeJoin, Room: "r", Name: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := ws.WriteControl(websocket.PingMessage, []byte("hello"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	const n = 30
	for i := range n {
		if err := ws.WriteJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "r", Text: strconv.Itoa(i), CID: strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	var texts []string
	for len(texts) < n {
		var f rx
		if err := ws.ReadJSON(&f); err != nil {
			t.Fatalf("read after %d messages: %v", len(texts), err)
		}
		if f.Type == protocol.TypeMessage {
			texts = append(texts, f.Text)
		}
	}
	for i, s := range texts {
		if s != strconv.Itoa(i) {
			t.Fatalf("messages out of order: %v", texts)
		}
	}
	// The pong is handled while reading; keep a message flowing until it
	// has come.
	for i := n; ; i++ {
		select {
		case p := <-pongs:
			if p != "hello" {
				t.Fatalf("pong payload %q", p)
			}
			return
		default:
		}
		if err := ws.WriteJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "r", Text: strconv.Itoa(i), CID: strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
		for {
			var f rx
			if err := ws.ReadJSON(&f); err != nil {
				t.Fatalf("no pong: %v", err)
			}
			if f.Type == protocol.TypeMessage {
				break
			}
		}
	}
}

// TestClientCloseEchoed: a client's close frame is answered with the same
// code by the writer.
func TestClientCloseEchoed(t *testing.T) {
	t.Parallel()
	ts := startServer(t, memBroker(t), Config{AppID: "1000", Prefix: testPrefix(t)})
	ws, _, err := dialRaw(ts.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ws.Close() }()
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye")
	if err := ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			if code := closeCode(err); code != websocket.CloseNormalClosure {
				t.Fatalf("close = %v, want the echo 1000", err)
			}
			return
		}
	}
}

// TestPresenceDeltaInBigRoom: past protocol.PresenceListMax members a
// presence frame carries only the names that joined and left.
func TestPresenceDeltaInBigRoom(t *testing.T) {
	t.Parallel()
	ts := startServer(t, memBroker(t), Config{AppID: "1000", Prefix: testPrefix(t), PresenceInterval: time.Hour})
	first := dial(t, ts.url)
	first.next(protocol.TypeWelcome)
	first.join("big", "u000")
	for i := 1; i <= protocol.PresenceListMax; i++ {
		c := dial(t, ts.url)
		c.next(protocol.TypeWelcome)
		c.join("big", "u"+strconv.Itoa(1000 + i)[1:])
	}
	late := dial(t, ts.url)
	late.next(protocol.TypeWelcome)
	if j := late.join("big", "late"); j.MemberCount != protocol.PresenceListMax+2 {
		t.Fatalf("joined counts %d members, want %d", j.MemberCount, protocol.PresenceListMax+2)
	}
	first.waitUntil("presence with late", func(frames []rx) bool {
		for _, f := range slices.Backward(frames) {
			if f.Type == protocol.TypePresence && slices.Contains(f.Joined, "late") {
				if f.Members != nil {
					t.Errorf("presence in a room of %d lists the members", protocol.PresenceListMax+2)
				}
				return true
			}
		}
		return false
	})
}

// TestIdleConnectionsHaveNoWriter: joined, idle connections hold no
// goroutine with the read poller (and one each, the reader, without it); no
// writer waits on an idle connection, and a message after the idleness is
// delivered. Not parallel: it counts the process's goroutines.
func TestIdleConnectionsHaveNoWriter(t *testing.T) {
	for _, polled := range []bool{true, false} {
		t.Run(fmt.Sprintf("poller=%v", polled), func(t *testing.T) {
			if polled && newPoller(false) == nil {
				t.Skip("no read poller on this system")
			}
			idleConnections(t, polled)
		})
	}
}

func idleConnections(t *testing.T, polled bool) {
	const n = 200
	ts := startServer(t, memBroker(t), Config{AppID: "1000", Prefix: testPrefix(t), MaxConnsPerIP: n + 10, NoReadPoller: !polled})
	base := runtime.NumGoroutine()
	wss := make([]*websocket.Conn, n)
	for i := range wss {
		ws, _, err := dialRaw(ts.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ws.Close() })
		wss[i] = ws
		readType(t, ws, protocol.TypeWelcome)
		if err := ws.WriteJSON(protocol.Inbound{Type: protocol.TypeJoin, Room: "idle", Name: "u" + strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
		readType(t, ws, protocol.TypeJoined)
	}
	readers, perConn := n, n
	if polled {
		readers, perConn = 0, 0
	}
	waitFor(t, 10*time.Second, "no writer goroutine and the readers settled", func() bool {
		return goroutinesIn("(*conn).writeLoop") == 0 && goroutinesIn("(*conn).readPolled") == 0
	})
	if r := goroutinesIn("(*conn).readLoop"); r != readers {
		t.Fatalf("%d reader goroutines, want %d", r, readers)
	}
	if g := runtime.NumGoroutine() - base; g > perConn+10 {
		t.Fatalf("%d idle connections added %d goroutines, want about %d", n, g, perConn)
	}
	if err := wss[0].WriteJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "idle", Text: "after a pause", CID: "c1"}); err != nil {
		t.Fatal(err)
	}
	for _, ws := range []*websocket.Conn{wss[0], wss[n-1]} {
		if f := readType(t, ws, protocol.TypeMessage); f.Text != "after a pause" {
			t.Fatalf("got %q", f.Text)
		}
	}
}

// TestPingsReachIdleConnection: with nothing else to write, pings still
// come every PingPeriod and the answered connection outlives PongWait.
func TestPingsReachIdleConnection(t *testing.T) {
	t.Parallel()
	ts := startServer(t, memBroker(t), Config{AppID: "1000", Prefix: testPrefix(t), PongWait: 400 * time.Millisecond, PingPeriod: 100 * time.Millisecond})
	ws, _, err := dialRaw(ts.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ws.Close() }()
	var pings atomic.Int32
	ws.SetPingHandler(func(p string) error {
		pings.Add(1)
		return ws.WriteControl(websocket.PongMessage, []byte(p), time.Now().Add(time.Second))
	})
	readType(t, ws, protocol.TypeWelcome)
	// Only control frames come now: the read ends at its deadline, and
	// not with a close from the server (PongWait is much shorter).
	_ = ws.SetReadDeadline(time.Now().Add(1500 * time.Millisecond))
	_, _, err = ws.ReadMessage()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read ended with %v, want a timeout", err)
	}
	if p := pings.Load(); p < 5 {
		t.Fatalf("%d pings in 1.5 s with PingPeriod 100ms", p)
	}
}

// readType reads frames until one of type ty (5 s at most).
func readType(t *testing.T, ws *websocket.Conn, ty string) rx {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		var f rx
		if err := ws.ReadJSON(&f); err != nil {
			t.Fatalf("waiting for %s: %v", ty, err)
		}
		if f.Type == ty {
			return f
		}
	}
}

// goroutinesIn counts the process's goroutines with fn in their stack.
func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	for {
		k := runtime.Stack(buf, true)
		if k < len(buf) {
			return strings.Count(string(buf[:k]), fn+"(")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// TestFramesKeepConnectionAlive: a client that never answers pings stays
// connected while it sends frames, and is closed no sooner than PongWait
// after its last one (the read deadline moves in steps, never short of it).
func TestFramesKeepConnectionAlive(t *testing.T) {
	t.Parallel()
	const pongWait = 640 * time.Millisecond
	ts := startServer(t, memBroker(t), Config{AppID: "1000", Prefix: testPrefix(t), PongWait: pongWait, PingPeriod: 100 * time.Millisecond})
	ws, _, err := dialRaw(ts.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.SetPingHandler(func(string) error { return nil }) // no pongs
	c := newClient(t, ws)
	c.join("alive", "quiet")
	var last time.Time
	for i := range 15 { // 3 PongWaits of frames, one every 130 ms
		last = time.Now()
		c.sendJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "alive", Text: "still here", CID: strconv.Itoa(i)})
		if a := c.next(protocol.TypeAck); a.CID != strconv.Itoa(i) {
			t.Fatalf("ack %+v", a)
		}
		select {
		case <-c.done:
			t.Fatalf("closed after %d frames: %v", i+1, c.closeErr())
		case <-time.After(130 * time.Millisecond): // the client's pace
		}
	}
	_ = c.closeErr()
	if el := time.Since(last); el < pongWait {
		t.Fatalf("closed %v after the last frame, before PongWait %v", el, pongWait)
	}
}
