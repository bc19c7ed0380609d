package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestReaderModes runs the same traffic through the three ways a
// connection is read: by its poller's goroutine (Inline), by a goroutine
// per report (the poller otherwise), and by a reader goroutine for the
// connection's life (NoPoller). Every frame comes back in order;
// connections that close are finished; a client that stops answering pings
// is cut after PongWait (for a polled socket, by its timer); no reader is
// left running.
func TestReaderModes(t *testing.T) {
	for _, mode := range []string{"inline", "spawned", "goroutines"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			readerModes(t, mode)
		})
	}
}

func readerModes(t *testing.T, mode string) {
	const (
		n    = 8
		msgs = 25
	)
	te := startEngine(t, Options{
		PingPeriod: 100 * time.Millisecond, PongWait: 600 * time.Millisecond,
		Inline: mode == "inline", NoPoller: mode == "goroutines",
	}, echo())
	if mode != "goroutines" && len(te.pollers) == 0 {
		t.Fatal("no read poller")
	}
	clients := make([]*websocket.Conn, n)
	got := make([]<-chan string, n) // read in the background: pings are answered
	for i := range clients {
		clients[i] = dial(t, te.url)
		got[i] = reader(clients[i])
	}
	for k := range msgs {
		for i, ws := range clients {
			if err := ws.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, "%d-%d", i, k)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range clients {
		for k := range msgs {
			if s, want := recv(t, got[i]), fmt.Sprintf("%d-%d", i, k); s != want {
				t.Fatalf("client %d: %q, want %q", i, s, want)
			}
		}
	}

	// A client that reads nothing answers no ping: it is cut after
	// PongWait.
	silent, err := dialErr(te.url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = silent.Close() }()
	waitFor(t, waitTimeout, "the silent client connected", func() bool { return te.open() == n+1 })
	start := time.Now()
	waitFor(t, waitTimeout, "the silent client cut", func() bool { return te.open() == n })
	if el := time.Since(start); el < 400*time.Millisecond {
		t.Fatalf("the silent client was cut after %v, before PongWait", el)
	}

	// Half the clients leave: their connections end on the server.
	for _, ws := range clients[:n/2] {
		_ = ws.Close()
	}
	waitFor(t, waitTimeout, "closed connections finished", func() bool { return te.open() == n/2 })
	readers := 0
	if mode == "goroutines" {
		readers = n / 2
	}
	waitFor(t, waitTimeout, "no reader running but the expected", func() bool {
		return goroutinesIn("(*Conn).readPolled") == 0 && goroutinesIn("(*Conn).readLoop") == readers
	})
	for i, ws := range clients[n/2:] {
		if err := ws.WriteMessage(websocket.TextMessage, []byte("last")); err != nil {
			t.Fatal(err)
		}
		if s := recv(t, got[n/2+i]); s != "last" {
			t.Fatalf("got %q after the leaves", s)
		}
	}
}

// TestReadableStates: a report starts no second reader while one runs (it
// asks for another pass), and a connection that is not polled says so.
func TestReadableStates(t *testing.T) {
	c := &Conn{}
	if c.readable(false) {
		t.Fatal("readable on a connection that is not polled")
	}
	c.in.state.Store(readRunning)
	for range 2 {
		if !c.readable(false) || c.in.state.Load() != readAgain {
			t.Fatalf("a report while reading: state %d, want readAgain", c.in.state.Load())
		}
	}
	c.in.state.Store(readDone)
	if !c.readable(false) || c.in.state.Load() != readDone {
		t.Fatalf("a report after the end: state %d, want readDone", c.in.state.Load())
	}
}
