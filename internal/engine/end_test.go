package engine

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/livechat/livechat/pkg/wsframe"
)

// maskKey masks the frames the tests write as a client.
var maskKey = []byte{0x12, 0x34, 0x56, 0x78}

// readClose reads until the connection ends and returns the close code
// the client got (-1 for none).
func readClose(t testing.TB, ws *websocket.Conn) int {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(waitTimeout))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			return closeCode(err)
		}
	}
}

// ended waits for c's end and returns it.
func (te *testEngine) ended(t testing.TB, c *Conn) End {
	t.Helper()
	waitFor(t, waitTimeout, "the connection's end", func() bool { _, ok := te.h.end(c); return ok })
	e, _ := te.h.end(c)
	return e
}

// TestEndReasons: each way a connection ends gives the client its close
// code and the handler its typed reason, once.
func TestEndReasons(t *testing.T) {
	closeFromHandler := &handler{message: func(c *Conn, _ int, data []byte) (int, string) {
		if string(data) == "stop" {
			c.Send(TextFrame([]byte("last words")))
			return ClosePolicyViolation, "stopped"
		}
		return 0, ""
	}}
	for _, tc := range []struct {
		name   string
		h      *handler
		write  func(ws *websocket.Conn) error
		code   int // the client's close code
		reason Reason
		end    int // End.Code
	}{
		{"invalid UTF-8", echo(), func(ws *websocket.Conn) error {
			return ws.WriteMessage(websocket.TextMessage, []byte{'a', 0xff})
		}, CloseInvalidPayload, ReasonInvalidUTF8, CloseInvalidPayload},
		{"protocol error", echo(), func(ws *websocket.Conn) error {
			bad := wsframe.AppendFrame(nil, true, wsframe.OpText, []byte(`{}`), maskKey)
			bad[0] |= 0x40 // RSV1, with no extension agreed
			_, err := ws.NetConn().Write(bad)
			return err
		}, CloseProtocolError, ReasonProtocol, CloseProtocolError},
		{"over the read limit", echo(), func(ws *websocket.Conn) error {
			return ws.WriteMessage(websocket.TextMessage, bytes.Repeat([]byte("x"), 2000))
		}, CloseMessageTooBig, ReasonProtocol, CloseMessageTooBig},
		{"bad close code", echo(), func(ws *websocket.Conn) error {
			_, err := ws.NetConn().Write(wsframe.AppendFrame(nil, true, wsframe.OpClose, []byte{0x03, 0xed}, maskKey)) // 1005
			return err
		}, CloseProtocolError, ReasonProtocol, CloseProtocolError},
		{"handler", closeFromHandler, func(ws *websocket.Conn) error {
			return ws.WriteMessage(websocket.TextMessage, []byte("stop"))
		}, ClosePolicyViolation, ReasonHandler, ClosePolicyViolation},
		{"peer close", echo(), func(ws *websocket.Conn) error {
			return ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4000, "bye"), time.Now().Add(time.Second))
		}, 4000, ReasonPeerClose, 4000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			te := startEngine(t, Options{ReadLimit: 1000}, tc.h)
			ws, c := te.dialed(t)
			if err := tc.write(ws); err != nil {
				t.Fatal(err)
			}
			if tc.reason == ReasonHandler {
				if s := readText(t, ws); s != "last words" {
					t.Fatalf("got %q before the close", s)
				}
			}
			if code := readClose(t, ws); code != tc.code {
				t.Fatalf("client's close code %d, want %d", code, tc.code)
			}
			if e := te.ended(t, c); e.Reason != tc.reason || e.Code != tc.end {
				t.Fatalf("end %+v (%v), want %v with %d", e, e.Reason, tc.reason, tc.end)
			}
		})
	}
}

// TestCloseAfterQueued: Close sends the queued frames, then the close
// frame, and ends as ReasonClosed; a Send after it is dropped.
func TestCloseAfterQueued(t *testing.T) {
	for _, o := range []Options{{}, {NoFlusher: true}} {
		t.Run(fmtOptions(o), func(t *testing.T) {
			t.Parallel()
			te := startEngine(t, o, echo())
			ws, c := te.dialed(t)
			for _, s := range []string{"a", "b", "c"} {
				c.Send(TextFrame([]byte(s)))
			}
			c.Close(CloseGoingAway, "shutting down")
			c.Send(TextFrame([]byte("after")))
			for _, want := range []string{"a", "b", "c"} {
				if s := readText(t, ws); s != want {
					t.Fatalf("got %q, want %q", s, want)
				}
			}
			if code := readClose(t, ws); code != CloseGoingAway {
				t.Fatalf("close code %d, want 1001", code)
			}
			if e := te.ended(t, c); e.Reason != ReasonClosed || e.Code != CloseGoingAway {
				t.Fatalf("end %+v", e)
			}
			if c.FramesOut() != 3 {
				t.Fatalf("FramesOut %d, want 3", c.FramesOut())
			}
		})
	}
}

func fmtOptions(o Options) string {
	if o.NoFlusher {
		return "NoFlusher"
	}
	return "flusher"
}

// TestCloseAbnormalCuts: Close with CloseAbnormal cuts the socket without
// a close frame, polled or not.
func TestCloseAbnormalCuts(t *testing.T) {
	for _, o := range []Options{{}, {NoPoller: true}} {
		t.Run(map[bool]string{false: "poller", true: "NoPoller"}[o.NoPoller], func(t *testing.T) {
			t.Parallel()
			te := startEngine(t, o, echo())
			ws, c := te.dialed(t)
			c.Close(CloseAbnormal, "")
			_ = ws.SetReadDeadline(time.Now().Add(waitTimeout))
			_, _, err := ws.ReadMessage()
			if code := closeCode(err); code != CloseAbnormal && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
				t.Fatalf("read ended with %v, want the end of the stream", err)
			}
			if e := te.ended(t, c); e.Reason != ReasonClosed || e.Code != CloseAbnormal {
				t.Fatalf("end %+v", e)
			}
		})
	}
}

// TestCloseBeforeServe: a connection closed before Serve (refused after
// the handshake) gets the close frame and ends once served.
func TestCloseBeforeServe(t *testing.T) {
	t.Parallel()
	h := echo()
	h.upgraded = func(c *Conn) { c.Close(CloseGoingAway, "go away") }
	te := startEngine(t, Options{}, h)
	ws, c := te.dialed(t)
	if code := readClose(t, ws); code != CloseGoingAway {
		t.Fatalf("close code %d, want 1001", code)
	}
	if end := te.ended(t, c); end.Reason != ReasonClosed {
		t.Fatalf("end %+v", end)
	}
}

// TestSlowClientQueue: a client that takes nothing while frames keep
// coming is closed with 1013 once its queue overflows, and ends as slow.
func TestSlowClientQueue(t *testing.T) {
	t.Parallel()
	te := startEngine(t, Options{SendQueue: 64, WriteTimeout: 300 * time.Millisecond}, echo())
	ws, c := te.dialed(t) // never reads until the end
	f := TextFrame([]byte(strings.Repeat("y", 3900)))
	for i := 0; ; i++ {
		if _, ok := te.h.end(c); ok {
			break
		}
		if i > 200000 {
			t.Fatal("slow client not disconnected")
		}
		c.Send(f)
		if i%64 == 0 {
			time.Sleep(time.Millisecond) // the writers' pace
		}
	}
	if e := te.ended(t, c); e.Reason != ReasonSlow {
		t.Fatalf("end %+v, want slow", e)
	}
	// Reading drains what the kernel holds and ends with 1013 (when the
	// close frame still fitted) or the end of the stream.
	if code := readClose(t, ws); code != CloseTryAgainLater && code != -1 && code != CloseAbnormal {
		t.Fatalf("close code %d", code)
	}
}

// TestWriteTimeoutIsSlow: a client that takes nothing while its queue
// stays under the slow-client limits ends as slow when a write runs out
// of WriteTimeout, with the deadline's error.
func TestWriteTimeoutIsSlow(t *testing.T) {
	t.Parallel()
	te := startEngine(t, Options{SendQueue: 1 << 16, WriteTimeout: 300 * time.Millisecond}, echo())
	_, c := te.dialed(t)
	f := TextFrame([]byte(strings.Repeat("z", 60000)))
	// 60 KB frames fill the socket buffers long before the queue's limits:
	// 20 at a time, each lot written before the next, until a write is short.
	for i := 0; te.Stats().ShortWrites == 0; {
		if i >= 2000 {
			t.Fatalf("no short write after %d frames of 60 KB", i)
		}
		for range 20 {
			c.Send(f)
			i++
		}
		want := uint64(i)
		waitFor(t, waitTimeout, "the frames written or the socket full", func() bool {
			return te.Stats().ShortWrites > 0 || c.FramesOut() >= want
		})
	}
	if e := te.ended(t, c); e.Reason != ReasonSlow || !errors.Is(e.Err, os.ErrDeadlineExceeded) {
		t.Fatalf("end %+v, want slow with a deadline error", e)
	}
}

// TestSendIfIdle: the conditional send queues only on a connection that
// sent no data frame since the cutoff and has nothing waiting; an
// uncounted frame does not count in FramesOut.
func TestSendIfIdle(t *testing.T) {
	t.Parallel()
	te := startEngine(t, Options{}, echo())
	ws, c := te.dialed(t)
	hb := UncountedTextFrame([]byte("hb"))
	if c.SendIfIdle(hb, time.Now()) {
		t.Fatal("queued before the first data frame")
	}
	before := time.Now()
	c.Send(TextFrame([]byte("data")))
	readText(t, ws)
	waitFor(t, waitTimeout, "the data frame counted", func() bool { return c.FramesOut() == 1 })
	if c.SendIfIdle(hb, before) {
		t.Fatal("queued after a data frame since the cutoff")
	}
	if !c.SendIfIdle(hb, time.Now()) {
		t.Fatal("not queued with a cutoff after the last write")
	}
	if s := readText(t, ws); s != "hb" || c.FramesOut() != 1 {
		t.Fatalf("got %q, FramesOut %d", s, c.FramesOut())
	}
}

// TestNoFlusher: with NoFlusher every frame goes through the connection's
// own writer; none through a flusher.
func TestNoFlusher(t *testing.T) {
	t.Parallel()
	te := startEngine(t, Options{NoFlusher: true}, echo())
	if len(te.flushers) != 0 {
		t.Fatal("flushers with NoFlusher")
	}
	ws := dial(t, te.url)
	for i := range 50 {
		if err := ws.WriteMessage(websocket.TextMessage, []byte{byte('a' + i%26)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 50 {
		if s := readText(t, ws); s != string(rune('a'+i%26)) {
			t.Fatalf("echo %d: %q", i, s)
		}
	}
	if st := te.Stats(); st.BatchedWrites+st.SingleWrites != 0 {
		t.Fatalf("flusher writes with NoFlusher: %+v", st)
	}
	waitFor(t, waitTimeout, "the writers gone", func() bool { return te.Stats().OwnWriters == 0 })
}
