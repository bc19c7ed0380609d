package server

import (
	"bytes"
	"slices"
	"strconv"
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
