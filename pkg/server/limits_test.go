package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/livechat/livechat/internal/engine"
	"github.com/livechat/livechat/internal/wstest"
	"github.com/livechat/livechat/pkg/protocol"
)

// TestBadInput sends every kind of bad frame that must get an error frame
// and leave the connection open.
func TestBadInput(t *testing.T) {
	t.Parallel()
	ts := startServer(t, memBroker(t), Config{AppID: "1000", Prefix: testPrefix(t), MaxRoomsPerConn: 2, RateBurst: 1000})
	long := strings.Repeat("x", protocol.MaxTextLen+1)
	cases := []struct {
		name  string
		mt    int
		frame string
		code  string
	}{
		{"invalid JSON", wstest.TextMessage, `{"type":`, protocol.CodeBadRequest},
		{"not an object", wstest.TextMessage, `[1,2]`, protocol.CodeBadRequest},
		{"wrong field type", wstest.TextMessage, `{"type":"join","room":5}`, protocol.CodeBadRequest},
		{"missing type", wstest.TextMessage, `{"room":"r"}`, protocol.CodeUnknownType},
		{"unknown type", wstest.TextMessage, `{"type":"hack"}`, protocol.CodeUnknownType},
		{"bad room", wstest.TextMessage, `{"type":"join","room":"a.b","name":"x"}`, protocol.CodeInvalidRoom},
		{"empty room", wstest.TextMessage, `{"type":"join","room":"","name":"x"}`, protocol.CodeInvalidRoom},
		{"long room", wstest.TextMessage, `{"type":"join","room":"` + strings.Repeat("r", 65) + `","name":"x"}`, protocol.CodeInvalidRoom},
		{"bad name", wstest.TextMessage, `{"type":"join","room":"r","name":"<script>"}`, protocol.CodeInvalidName},
		{"empty name", wstest.TextMessage, `{"type":"join","room":"r","name":""}`, protocol.CodeInvalidName},
		{"long name", wstest.TextMessage, `{"type":"join","room":"r","name":"` + strings.Repeat("n", 33) + `"}`, protocol.CodeInvalidName},
		{"send not joined", wstest.TextMessage, `{"type":"send","room":"nope","text":"hi","cid":"1"}`, protocol.CodeNotJoined},
		{"typing not joined", wstest.TextMessage, `{"type":"typing","room":"nope"}`, protocol.CodeNotJoined},
		{"leave not joined", wstest.TextMessage, `{"type":"leave","room":"nope"}`, protocol.CodeNotJoined},
		{"empty text", wstest.TextMessage, `{"type":"send","room":"ok","text":"","cid":"1"}`, protocol.CodeInvalidText},
		{"blank text", wstest.TextMessage, `{"type":"send","room":"ok","text":"  \n ","cid":"1"}`, protocol.CodeInvalidText},
		{"NUL in text", wstest.TextMessage, `{"type":"send","room":"ok","text":"a\u0000b","cid":"1"}`, protocol.CodeInvalidText},
		{"control character in cid", wstest.TextMessage, `{"type":"send","room":"ok","text":"hi","cid":"a\u0000b"}`, protocol.CodeInvalidCID},
		{"long text", wstest.TextMessage, `{"type":"send","room":"ok","text":"` + long + `","cid":"1"}`, protocol.CodeInvalidText},
		{"long cid", wstest.TextMessage, `{"type":"send","room":"ok","text":"hi","cid":"` + strings.Repeat("c", 65) + `"}`, protocol.CodeInvalidCID},
		{"binary frame", wstest.BinaryMessage, `{"type":"join"}`, protocol.CodeBinary},
		{"too many rooms", wstest.TextMessage, `{"type":"join","room":"third","name":"x"}`, protocol.CodeTooManyRooms},
	}
	c := dial(t, ts.url)
	c.join("ok", "tester")
	c.join("second", "tester")
	for _, tc := range cases {
		c.sendRaw(tc.mt, []byte(tc.frame))
		e := c.next(protocol.TypeError)
		if e.Code != tc.code || e.Message == "" {
			t.Errorf("%s: got %+v, want code %s", tc.name, e, tc.code)
		}
	}
	// The connection still works.
	c.sendJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "ok", Text: "still here", CID: "z"})
	if a := c.next(protocol.TypeAck); a.CID != "z" {
		t.Fatalf("ack = %+v", a)
	}
}

func TestReadLimit(t *testing.T) {
	t.Parallel()
	ts := startServer(t, memBroker(t), Config{AppID: "1000", Prefix: testPrefix(t), ReadLimit: 1024})
	c := dial(t, ts.url)
	c.next(protocol.TypeWelcome)
	c.sendRaw(wstest.TextMessage, bytes.Repeat([]byte("x"), 2000))
	if code := closeCode(c.closeErr()); code != engine.CloseMessageTooBig {
		t.Fatalf("close code %d, want 1009", code)
	}
	waitFor(t, waitTimeout, "connection gone", func() bool { return ts.Stats().Connections == 0 })
}

func TestInvalidUTF8(t *testing.T) {
	t.Parallel()
	ts := startServer(t, memBroker(t), Config{AppID: "1000", Prefix: testPrefix(t)})
	c := dial(t, ts.url)
	c.next(protocol.TypeWelcome)
	c.sendRaw(wstest.TextMessage, []byte("{\"type\":\"join\",\"room\":\"r\",\"name\":\"\xff\xfe\"}"))
	if code := closeCode(c.closeErr()); code != engine.CloseInvalidPayload {
		t.Fatalf("close code %d, want 1007", code)
	}
	waitFor(t, waitTimeout, "connection gone", func() bool { return ts.Stats().Connections == 0 })
	if m := scrape(t, ts); !strings.Contains(m, `livechat_errors_total{code="invalid_utf8"} 1`) {
		t.Fatalf("invalid UTF-8 not counted:\n%s", grep(m, "errors_total"))
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	ts := startServer(t, memBroker(t), Config{AppID: "1000", Prefix: testPrefix(t), RatePerSec: 0.001, RateBurst: 3, RateStrikes: 5})
	c := dial(t, ts.url)
	c.join("r", "spammer")
	for i := range 20 {
		if err := c.ws.WriteJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "r", Text: "spam", CID: fmt.Sprint(i)}); err != nil {
			break // the server may close before all are written
		}
	}
	err := c.closeErr()
	if code := closeCode(err); code != engine.ClosePolicyViolation {
		t.Fatalf("close = %v, want 1008", err)
	}
	limited := 0
	for _, e := range c.frameList(protocol.TypeError) {
		if e.Code == protocol.CodeRateLimited {
			limited++
		}
	}
	if acks := len(c.frameList(protocol.TypeAck)); acks != 2 || limited != 5 {
		t.Fatalf("%d acks and %d rate_limited errors, want 2 (burst 3 minus the join) and 5", acks, limited)
	}
}

func TestOrigin(t *testing.T) {
	t.Parallel()
	ts := startServer(t, memBroker(t), Config{AppID: "1000", Prefix: testPrefix(t), AllowedOrigins: []string{"*.example.com", "localhost:1007"}})
	host := strings.TrimPrefix(ts.http.URL, "http://")
	for _, tc := range []struct {
		origin string
		status int
	}{
		{"", http.StatusSwitchingProtocols},
		{"http://" + host, http.StatusSwitchingProtocols},
		{"https://chat.example.com", http.StatusSwitchingProtocols},
		{"http://localhost:1007", http.StatusSwitchingProtocols},
		{"https://evil.com", http.StatusForbidden},
		{"https://example.com.evil.com", http.StatusForbidden},
		{"http://localhost:9999", http.StatusForbidden},
	} {
		h := http.Header{}
		if tc.origin != "" {
			h.Set("Origin", tc.origin)
		}
		ws, status, err := dialRaw(ts.url, h)
		if ws != nil {
			_ = ws.Close()
		}
		if status != tc.status {
			t.Errorf("origin %q: HTTP %d (%v), want %d", tc.origin, status, err, tc.status)
		}
	}
	waitFor(t, waitTimeout, "connections closed", func() bool { return ts.Stats().Connections == 0 })
	if m := scrape(t, ts); !strings.Contains(m, `livechat_rejected_connections_total{reason="origin"} 3`) {
		t.Fatalf("metrics lack 3 origin rejections:\n%s", grep(m, "rejected"))
	}

	// "*" allows anything.
	any := startServer(t, memBroker(t), Config{AppID: "1000", Prefix: testPrefix(t), AllowedOrigins: []string{"*"}})
	ws, _, err := dialRaw(any.url, http.Header{"Origin": {"https://anything.test"}})
	if err != nil {
		t.Fatalf("origin with *: %v", err)
	}
	_ = ws.Close()
}

func TestConnsPerIP(t *testing.T) {
	t.Parallel()
	ts := startServer(t, memBroker(t), Config{AppID: "1000", Prefix: testPrefix(t), MaxConnsPerIP: 3})
	for range 3 {
		dial(t, ts.url).next(protocol.TypeWelcome)
	}
	ws, status, err := dialRaw(ts.url, nil)
	if ws != nil {
		_ = ws.Close()
	}
	if err == nil || status != http.StatusTooManyRequests {
		t.Fatalf("4th connection: err %v, HTTP %d; want HTTP 429", err, status)
	}
	// Another source address (127.0.0.2) is counted apart.
	d := &wstest.Dialer{NetDialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext}
	ws, _, err = dialWith(d, ts.url, nil)
	if err != nil {
		t.Fatalf("from 127.0.0.2: %v", err)
	}
	newClient(t, ws).next(protocol.TypeWelcome)
	if m := scrape(t, ts); !strings.Contains(m, `livechat_rejected_connections_total{reason="per_ip"} 1`) {
		t.Fatalf("metrics lack the per_ip rejection:\n%s", grep(m, "rejected"))
	}

	// Behind a trusted proxy the X-Forwarded-For address counts.
	px := startServer(t, memBroker(t), Config{AppID: "1000", Prefix: testPrefix(t), MaxConnsPerIP: 1, TrustProxy: true})
	for i, want := range []bool{true, true, false} {
		xff := []string{"10.0.0.1", "10.0.0.2", "9.9.9.9, 10.0.0.1"}[i]
		ws, _, err := dialRaw(px.url, http.Header{"X-Forwarded-For": {xff}})
		if (err == nil) != want {
			t.Fatalf("XFF %q: err %v, want success %v", xff, err, want)
		}
		if ws != nil {
			newClient(t, ws)
		}
	}
}

func TestSlowClient(t *testing.T) {
	t.Parallel()
	b := memBroker(t)
	prefix := testPrefix(t)
	ts := startServer(t, b, Config{AppID: "1000", Prefix: prefix, SendQueue: 64, WriteTimeout: 300 * time.Millisecond})

	// The slow client never reads until it is disconnected.
	slow := joinNoRead(t, ts, "r", "slow")
	fast := dial(t, ts.url)
	fast.join("r", "fast")
	fast.waitUntil("slow joined", hasMembers("r", "fast", "slow"))

	text := strings.Repeat("y", 3900)
	subject := protocol.RoomSubject(prefix, "r")
	sent := 0
	for ts.Stats().SlowDrops == 0 {
		if sent >= 20000 {
			t.Fatalf("slow client not disconnected after %d messages", sent)
		}
		for range 32 {
			msg := fmt.Sprintf(`{"type":"message","room":"r","id":"t-%d","from":"op","text":"%s","ts":%d,"server":"cli"}`, sent, text, time.Now().UnixMilli())
			if err := b.Publish(context.Background(), subject, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			sent++
		}
		want := sent
		fast.waitUntil("fast client keeps up", func(fs []rx) bool { return countType(fs, protocol.TypeMessage) >= want })
	}
	if got := countType(fast.frameList(protocol.TypeMessage), protocol.TypeMessage); got != sent {
		t.Fatalf("fast client got %d of %d messages", got, sent)
	}
	// The slow connection is closed: reading drains what the kernel holds
	// and then ends with 1013 (when the close frame still fitted) or EOF.
	_ = slow.SetReadDeadline(time.Now().Add(waitTimeout))
	var rerr error
	frames, start := 0, time.Now()
	waitFor(t, waitTimeout, "slow connection closed by the server", func() bool { return ts.Stats().Connections == 1 })
	for rerr == nil {
		var r io.Reader
		_, r, rerr = slow.NextReader()
		if rerr == nil {
			frames++
			_, _ = io.Copy(io.Discard, r)
		}
	}
	t.Logf("slow client read %d frames in %v", frames, time.Since(start))
	if code := closeCode(rerr); code != engine.CloseTryAgainLater && !isEOF(rerr) {
		t.Fatalf("slow client read ended with %v, want close 1013 or EOF", rerr)
	}
	t.Logf("slow client disconnected after %d messages: %v", sent, rerr)
	if m := scrape(t, ts); !strings.Contains(m, "livechat_slow_client_disconnects_total 1") {
		t.Fatalf("metrics:\n%s", grep(m, "slow"))
	}
}

// isEOF reports whether err is the end of the stream without a close
// frame: EOF, or the server's reset of the socket (a read error).
func isEOF(err error) bool {
	var op *net.OpError
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || closeCode(err) == engine.CloseAbnormal ||
		(errors.As(err, &op) && op.Op == "read")
}

func countType(fs []rx, ty string) int {
	n := 0
	for _, f := range fs {
		if f.Type == ty {
			n++
		}
	}
	return n
}

func scrape(t testing.TB, ts *testServer) string {
	t.Helper()
	resp, err := http.Get(ts.http.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestWriteTimeoutIsSlowClient: a client that takes nothing while its
// queue stays under the slow-client limits is disconnected when a write
// runs out of WriteTimeout, and counted as a slow client (once).
func TestWriteTimeoutIsSlowClient(t *testing.T) {
	t.Parallel()
	b := memBroker(t)
	prefix := testPrefix(t)
	ts := startServer(t, b, Config{AppID: "1000", Prefix: prefix, SendQueue: 1 << 16, WriteTimeout: 300 * time.Millisecond})
	joinNoRead(t, ts, "r", "slow")
	waitFor(t, waitTimeout, "slow joined", func() bool { return ts.Stats().Rooms == 1 })
	text := strings.Repeat("z", 60000)
	subject := protocol.RoomSubject(prefix, "r")
	// 60 KB frames fill the socket buffers (a few MB on loopback) long
	// before the queue's limits (65,536 frames, no stall check below them):
	// 20 at a time, each lot written before the next, until a write is short.
	out0 := ts.Stats().MsgsOut
	for i := 0; ts.eng.Stats().ShortWrites == 0; {
		if i >= 2000 {
			t.Fatalf("no short write after %d messages of 60 KB", i)
		}
		for range 20 {
			msg := fmt.Sprintf(`{"type":"message","room":"r","id":"w-%d","from":"op","text":"%s","ts":1,"server":"cli"}`, i, text)
			if err := b.Publish(context.Background(), subject, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			i++
		}
		want := out0 + uint64(i)
		waitFor(t, waitTimeout, "the messages written or the socket full", func() bool {
			return ts.eng.Stats().ShortWrites > 0 || ts.Stats().MsgsOut >= want
		})
	}
	waitFor(t, waitTimeout, "slow connection closed", func() bool { return ts.Stats().Connections == 0 })
	if d := ts.Stats().SlowDrops; d != 1 {
		t.Fatalf("%d slow-client disconnects, want 1", d)
	}
}

// joinNoRead connects a client that joins room as name and reads nothing
// (closed when the test ends).
func joinNoRead(t *testing.T, ts *testServer, room, name string) *wstest.Conn {
	t.Helper()
	ws, _, err := dialRaw(ts.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	if err := ws.WriteJSON(protocol.Inbound{Type: protocol.TypeJoin, Room: room, Name: name}); err != nil {
		t.Fatal(err)
	}
	return ws
}

// TestBadCloseCode answers a close frame with a code a peer may not send
// with 1002.
func TestBadCloseCode(t *testing.T) {
	t.Parallel()
	ts := startServer(t, memBroker(t), Config{AppID: "1000", Prefix: testPrefix(t)})
	c := dial(t, ts.url)
	c.next(protocol.TypeWelcome)
	// A close frame, masked with 12 34 56 78, of code 1005 (03 ed).
	if _, err := c.ws.NetConn().Write([]byte{0x88, 0x82, 0x12, 0x34, 0x56, 0x78, 0x03 ^ 0x12, 0xed ^ 0x34}); err != nil {
		t.Fatal(err)
	}
	if code := closeCode(c.closeErr()); code != engine.CloseProtocolError {
		t.Fatalf("close code %d, want 1002", code)
	}
	// Counted from the connection's end, which may come after the client
	// has read the close frame.
	waitFor(t, waitTimeout, "connection gone", func() bool { return ts.Stats().Connections == 0 })
	if m := scrape(t, ts); !strings.Contains(m, `livechat_errors_total{code="protocol_error"} 1`) {
		t.Fatalf("protocol error not counted:\n%s", m)
	}
}
