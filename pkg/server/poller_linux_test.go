package server

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/livechat/livechat/pkg/protocol"
)

// TestReaderModes runs the same traffic through the three ways a
// connection is read: by its poller's goroutine (in-process backends), by a
// goroutine per report (the poller of a server whose handlers may wait),
// and by a reader goroutine for the connection's life (no poller). Every
// member gets every message, each sender's in order; connections that close
// are finished; a client that stops answering pings is cut after PongWait
// (for a polled socket, by its timer); no reader is left running.
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
	ts := startServer(t, memBroker(t), Config{
		AppID: "1000", Prefix: testPrefix(t), RatePerSec: 1000, RateBurst: 1000,
		PingPeriod: 100 * time.Millisecond, PongWait: 600 * time.Millisecond,
		NoReadPoller: mode == "goroutines",
	})
	if mode != "goroutines" {
		if len(ts.pollers) == 0 {
			t.Fatal("no read poller")
		}
		for _, p := range ts.pollers {
			if !p.inline {
				t.Fatal("a poller of an in-process server does not run its readers")
			}
			p.inline = mode == "inline" // before any connection
		}
	}
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = dial(t, ts.url)
		clients[i].join("r", "u"+strconv.Itoa(i))
	}
	names := make([]string, n)
	for i := range names {
		names[i] = "u" + strconv.Itoa(i)
	}
	for _, c := range clients {
		c.waitUntil("all members", hasMembers("r", names...))
	}
	for k := range msgs {
		for i, c := range clients {
			c.sendJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "r", Text: fmt.Sprintf("%d-%d", i, k), CID: fmt.Sprintf("c%d-%d", i, k)})
		}
	}
	for _, c := range clients {
		next := make([]int, n)
		for range n * msgs {
			f := c.next(protocol.TypeMessage)
			var i, k int
			if _, err := fmt.Sscanf(f.Text, "%d-%d", &i, &k); err != nil || i < 0 || i >= n {
				t.Fatalf("message %q", f.Text)
			}
			if k != next[i] {
				t.Fatalf("from u%d: message %d, want %d", i, k, next[i])
			}
			next[i]++
		}
	}

	// A client that reads nothing answers no ping: it is cut after
	// PongWait.
	silent, _, err := dialRaw(ts.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = silent.Close() }()
	waitFor(t, waitTimeout, "the silent client connected", func() bool { return ts.nconns.Load() == n+1 })
	start := time.Now()
	waitFor(t, waitTimeout, "the silent client cut", func() bool { return ts.nconns.Load() == n })
	if el := time.Since(start); el < 400*time.Millisecond {
		t.Fatalf("the silent client was cut after %v, before PongWait", el)
	}

	// Half the clients leave: their connections end on the server.
	for _, c := range clients[:n/2] {
		_ = c.ws.Close()
	}
	waitFor(t, waitTimeout, "closed connections finished", func() bool { return ts.nconns.Load() == n/2 })
	readers := 0
	if mode == "goroutines" {
		readers = n / 2
	}
	waitFor(t, waitTimeout, "no reader running but the expected", func() bool {
		return goroutinesIn("(*conn).readPolled") == 0 && goroutinesIn("(*conn).readLoop") == readers
	})
	clients[n-1].sendJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "r", Text: "last", CID: "last"})
	for _, c := range clients[n/2:] {
		if f := c.next(protocol.TypeMessage); !strings.HasPrefix(f.Text, "last") {
			t.Fatalf("got %q after the leaves", f.Text)
		}
	}
}

// TestReadableStates: a report starts no second reader while one runs (it
// asks for another pass), and a connection that is not polled says so.
func TestReadableStates(t *testing.T) {
	c := &conn{}
	if c.readable(false) {
		t.Fatal("readable on a connection that is not polled")
	}
	c.rstate.Store(readRunning)
	for range 2 {
		if !c.readable(false) || c.rstate.Load() != readAgain {
			t.Fatalf("a report while reading: state %d, want readAgain", c.rstate.Load())
		}
	}
	c.rstate.Store(readDone)
	if !c.readable(false) || c.rstate.Load() != readDone {
		t.Fatalf("a report after the end: state %d, want readDone", c.rstate.Load())
	}
}

// setPollersInline makes s's pollers run the readers themselves (inline) or
// start a goroutine per pass; call it before any connection.
func setPollersInline(s *Server, inline bool) {
	for _, p := range s.pollers {
		p.inline = inline
	}
}
