package engine

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestPingAnsweredByWriter: a client's ping gets a pong with its payload,
// and a burst of frames around it arrives whole and in order.
func TestPingAnsweredByWriter(t *testing.T) {
	t.Parallel()
	te := startEngine(t, Options{}, echo())
	ws := dial(t, te.url)
	pongs := make(chan string, 1)
	ws.SetPongHandler(func(p string) error { pongs <- p; return nil })
	if err := ws.WriteControl(websocket.PingMessage, []byte("hello"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	const n = 30
	for i := range n {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		if s := readText(t, ws); s != strconv.Itoa(i) {
			t.Fatalf("echo %d: %q", i, s)
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
		if err := ws.WriteMessage(websocket.TextMessage, []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
		readText(t, ws)
	}
}

// TestClientCloseEchoed: a client's close frame is answered with the same
// code by the writer, and the connection ends as the peer's close.
func TestClientCloseEchoed(t *testing.T) {
	t.Parallel()
	te := startEngine(t, Options{}, echo())
	ws, c := te.dialed(t)
	msg := websocket.FormatCloseMessage(CloseNormal, "bye")
	if err := ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			if code := closeCode(err); code != CloseNormal {
				t.Fatalf("close = %v, want the echo 1000", err)
			}
			break
		}
	}
	waitFor(t, waitTimeout, "the end", func() bool { _, ok := te.h.end(c); return ok })
	if e, _ := te.h.end(c); e.Reason != ReasonPeerClose || e.Code != CloseNormal {
		t.Fatalf("end %+v, want the peer's close 1000", e)
	}
}

// TestIdleConnectionsHaveNoWriter: idle connections hold no goroutine with
// the read poller (and one each, the reader, without it); no writer waits
// on an idle connection, and a frame after the idleness is delivered. Not
// parallel: it counts the process's goroutines.
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
	te := startEngine(t, Options{NoPoller: !polled}, echo())
	base := runtime.NumGoroutine()
	wss := make([]*websocket.Conn, n)
	cs := make([]*Conn, n)
	for i := range wss {
		wss[i], cs[i] = te.dialed(t)
		if err := wss[i].WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
			t.Fatal(err)
		}
		readText(t, wss[i])
	}
	readers, perConn := n, n
	if polled {
		readers, perConn = 0, 0
	}
	waitFor(t, 10*time.Second, "no writer goroutine and the readers settled", func() bool {
		return goroutinesIn("(*Conn).writeLoop") == 0 && goroutinesIn("(*Conn).readPolled") == 0
	})
	if r := goroutinesIn("(*Conn).readLoop"); r != readers {
		t.Fatalf("%d reader goroutines, want %d", r, readers)
	}
	if g := runtime.NumGoroutine() - base; g > perConn+10 {
		t.Fatalf("%d idle connections added %d goroutines, want about %d", n, g, perConn)
	}
	for _, i := range []int{0, n - 1} {
		cs[i].Send(TextFrame([]byte("after a pause")))
		if s := readText(t, wss[i]); s != "after a pause" {
			t.Fatalf("got %q", s)
		}
	}
}

// TestPingsReachIdleConnection: with nothing else to write, pings still
// come every PingPeriod and the answered connection outlives PongWait.
func TestPingsReachIdleConnection(t *testing.T) {
	t.Parallel()
	te := startEngine(t, Options{PongWait: 400 * time.Millisecond, PingPeriod: 100 * time.Millisecond}, echo())
	ws := dial(t, te.url)
	var pings atomic.Int32
	ws.SetPingHandler(func(p string) error {
		pings.Add(1)
		return ws.WriteControl(websocket.PongMessage, []byte(p), time.Now().Add(time.Second))
	})
	// Only control frames come: the read ends at its deadline, and not
	// with a close from the server (PongWait is much shorter).
	_ = ws.SetReadDeadline(time.Now().Add(1500 * time.Millisecond))
	_, _, err := ws.ReadMessage()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read ended with %v, want a timeout", err)
	}
	if p := pings.Load(); p < 5 {
		t.Fatalf("%d pings in 1.5 s with PingPeriod 100ms", p)
	}
}

// TestFramesKeepConnectionAlive: a client that never answers pings stays
// connected while it sends frames, and is cut no sooner than PongWait
// after its last one (the read deadline moves in steps, never short of
// it), as a timeout.
func TestFramesKeepConnectionAlive(t *testing.T) {
	for _, noPoller := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoPoller=%v", noPoller), func(t *testing.T) {
			t.Parallel()
			const pongWait = 640 * time.Millisecond
			te := startEngine(t, Options{PongWait: pongWait, PingPeriod: 100 * time.Millisecond, NoPoller: noPoller}, echo())
			ws, c := te.dialed(t)
			ws.SetPingHandler(func(string) error { return nil }) // no pongs
			done := make(chan error, 1)
			echoes := make(chan string, 16)
			go func() {
				for {
					_, data, err := ws.ReadMessage()
					if err != nil {
						done <- err
						return
					}
					echoes <- string(data)
				}
			}()
			var last time.Time
			for i := range 15 { // 3 PongWaits of frames, one every 130 ms
				last = time.Now()
				if err := ws.WriteMessage(websocket.TextMessage, []byte(strconv.Itoa(i))); err != nil {
					t.Fatal(err)
				}
				select {
				case s := <-echoes:
					if s != strconv.Itoa(i) {
						t.Fatalf("echo %q", s)
					}
				case err := <-done:
					t.Fatalf("closed after %d frames: %v", i+1, err)
				case <-time.After(waitTimeout):
					t.Fatal("no echo")
				}
				time.Sleep(130 * time.Millisecond) // the client's pace
			}
			select {
			case <-done:
			case <-time.After(waitTimeout):
				t.Fatal("the silent client was not cut")
			}
			if el := time.Since(last); el < pongWait {
				t.Fatalf("closed %v after the last frame, before PongWait %v", el, pongWait)
			}
			waitFor(t, waitTimeout, "the end", func() bool { _, ok := te.h.end(c); return ok })
			if e, _ := te.h.end(c); e.Reason != ReasonTimeout {
				t.Fatalf("end %+v, want a timeout", e)
			}
		})
	}
}

// TestFlusherAfterPongDeadline: a pong written by the connection's own
// writer sets the socket's write deadline; frames the flusher writes after
// that deadline has passed still go out.
func TestFlusherAfterPongDeadline(t *testing.T) {
	t.Parallel()
	te := startEngine(t, Options{WriteTimeout: 100 * time.Millisecond}, echo())
	ws, c := te.dialed(t)
	for i := range 3 {
		// The pong's write sets a deadline 100 ms ahead; the frame is
		// written after it (the wait is the point of the test).
		if err := ws.WriteControl(websocket.PingMessage, []byte("p"), time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		c.Send(TextFrame([]byte(fmt.Sprint("m", i))))
		if s := readText(t, ws); s != fmt.Sprint("m", i) {
			t.Fatalf("got %q", s)
		}
	}
	if e, ended := te.h.end(c); ended {
		t.Fatalf("connection ended: %+v", e)
	}
}
