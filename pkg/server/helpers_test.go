package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livechat/livechat/internal/leaktest"
	"github.com/livechat/livechat/internal/wstest"
	"github.com/livechat/livechat/pkg/broker"
	"github.com/livechat/livechat/pkg/broker/brokertest"
	"github.com/livechat/livechat/pkg/protocol"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

// waitFor polls cond until it holds or fails the test after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
}

var prefixSeq atomic.Int64

// testPrefix is a subject prefix unique to this test run and test.
func testPrefix(testing.TB) string {
	return fmt.Sprintf("lct%d_%d", os.Getpid(), prefixSeq.Add(1))
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testServer is a Server behind a real httptest listener.
type testServer struct {
	*Server
	http *httptest.Server
	url  string // ws://.../ws
}

// startServer starts s on a loopback listener; cleanup shuts it down.
func startServer(t testing.TB, b broker.Broker, cfg Config) *testServer {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	s, err := New(b, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	hs := httptest.NewServer(s.Handler())
	ts := &testServer{Server: s, http: hs, url: "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		hs.Close()
	})
	return ts
}

func memBroker(t testing.TB) broker.Broker {
	b := broker.NewMemory(broker.Options{Logger: quietLogger()})
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// redisBroker opens a broker on the Redis of brokertest.RedisURL ($REDIS_URL
// or the local one): without it the test is skipped, or fails under CI=true.
func redisBroker(t testing.TB) broker.Broker {
	t.Helper()
	url := brokertest.RedisURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	b, err := broker.Open(ctx, url, broker.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatalf("redis broker %s: %v", url, err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// rx is any server frame, decoded.
type rx struct {
	Type    string   `json:"type"`
	Room    string   `json:"room"`
	ID      string   `json:"id"`
	From    string   `json:"from"`
	Text    string   `json:"text"`
	TS      int64    `json:"ts"`
	Server  string   `json:"server"`
	CID     string   `json:"cid"`
	Code    string   `json:"code"`
	Message string   `json:"message"`
	Name    string   `json:"name"`
	Members []string `json:"members"`
	Joined  []string `json:"joined"`
	Left    []string `json:"left"`
	// MemberCount and MembersTruncated: joined and presence frames.
	MemberCount      int  `json:"member_count"`
	MembersTruncated bool `json:"members_truncated"`
	NamesOmitted     bool `json:"names_omitted"`
	Limits           struct {
		MaxFrame int `json:"max_frame"`
	} `json:"limits"`
	// history fields
	Seq        uint64             `json:"seq"`
	LastSeq    uint64             `json:"last_seq"`
	FirstSeq   uint64             `json:"first_seq"`
	ReplayFrom uint64             `json:"replay_from"`
	Truncated  bool               `json:"truncated"`
	Reset      bool               `json:"reset"`
	Messages   []protocol.Message `json:"messages"`
	More       bool               `json:"more"`
	Dup        *bool              `json:"dup"` // ack; nil when absent
	// Files: a message's attachments.
	Files []protocol.File `json:"files"`
	// UploadToken: a guest's welcome, when guests may send files.
	UploadToken string `json:"upload_token"`
	// identity fields: user is an object in welcome and authed frames, a
	// string on messages
	User          json.RawMessage `json:"user"`
	Guest         bool            `json:"guest"`
	Reason        string          `json:"reason"`
	AuthRequired  bool            `json:"auth_required"`
	AuthTimeoutMS int64           `json:"auth_timeout_ms"`
	ExpiresMS     int64           `json:"expires_ms"`
}

// client is a test WebSocket client with a background reader that records
// every frame.
type client struct {
	t    testing.TB
	ws   *wstest.Conn
	done chan struct{}

	mu      sync.Mutex
	frames  []rx
	changed chan struct{}  // closed and replaced on every new frame
	err     error          // read error, once done
	cursor  map[string]int // next() position per type list
}

func dial(t testing.TB, url string) *client {
	t.Helper()
	c, status, err := dialRaw(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v (HTTP %d)", url, err, status)
	}
	return newClient(t, c)
}

// dialRaw dials a WebSocket and returns the handshake's HTTP status (0 when
// there was no response).
func dialRaw(url string, h http.Header) (*wstest.Conn, int, error) {
	return dialWith(&wstest.Dialer{HandshakeTimeout: 5 * time.Second}, url, h)
}

func dialWith(d *wstest.Dialer, url string, h http.Header) (*wstest.Conn, int, error) {
	c, resp, err := d.Dial(url, h)
	status := 0
	if resp != nil {
		status = resp.StatusCode
		if resp.Body != nil {
			_ = resp.Body.Close()
		}
	}
	return c, status, err
}

func newClient(t testing.TB, ws *wstest.Conn) *client {
	c := &client{t: t, ws: ws, done: make(chan struct{}), changed: make(chan struct{}), cursor: map[string]int{}}
	go c.readLoop()
	t.Cleanup(func() {
		_ = c.ws.Close()
		<-c.done
	})
	return c
}

func (c *client) readLoop() {
	defer close(c.done)
	for {
		mt, data, err := c.ws.ReadMessage()
		c.mu.Lock()
		if err != nil {
			c.err = err
			close(c.changed)
			c.mu.Unlock()
			return
		}
		var f rx
		if mt != wstest.TextMessage || json.Unmarshal(data, &f) != nil {
			f = rx{Type: "!undecodable", Text: string(data)}
		}
		c.frames = append(c.frames, f)
		close(c.changed)
		c.changed = make(chan struct{})
		c.mu.Unlock()
	}
}

func (c *client) sendJSON(v any) {
	c.t.Helper()
	if err := c.ws.WriteJSON(v); err != nil {
		c.t.Fatalf("client write: %v", err)
	}
}

func (c *client) sendRaw(mt int, data []byte) {
	c.t.Helper()
	if err := c.ws.WriteMessage(mt, data); err != nil {
		c.t.Fatalf("client write: %v", err)
	}
}

const waitTimeout = 10 * time.Second

// next returns the next frame of one of types after the one the previous
// next call with the same types returned.
func (c *client) next(types ...string) rx {
	c.t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	key := strings.Join(types, ",")
	for {
		c.mu.Lock()
		for c.cursor[key] < len(c.frames) {
			f := c.frames[c.cursor[key]]
			c.cursor[key]++
			for _, ty := range types {
				if f.Type == ty {
					c.mu.Unlock()
					return f
				}
			}
		}
		ch, err := c.changed, c.err
		c.mu.Unlock()
		if err != nil {
			c.t.Fatalf("waiting for %v: connection ended: %v", types, err)
		}
		select {
		case <-ch:
		case <-deadline.C:
			c.t.Fatalf("timed out waiting for a %v frame", types)
		}
	}
}

// waitUntil waits until cond holds over all frames received so far.
func (c *client) waitUntil(what string, cond func(frames []rx) bool) {
	c.t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		ok := cond(c.frames)
		ch, err := c.changed, c.err
		c.mu.Unlock()
		if ok {
			return
		}
		if err != nil {
			c.t.Fatalf("waiting for %s: connection ended: %v", what, err)
		}
		select {
		case <-ch:
		case <-deadline.C:
			c.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// closeErr waits for the connection to end and returns the read error.
func (c *client) closeErr() error {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(waitTimeout):
		c.t.Fatalf("connection still open after %v", waitTimeout)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *client) frameList(ty string) []rx {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []rx
	for _, f := range c.frames {
		if f.Type == ty {
			out = append(out, f)
		}
	}
	return out
}

// closeCode is the WebSocket close code in err, or -1.
func closeCode(err error) int {
	var ce *wstest.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return -1
}

// join joins room as name and waits for the joined frame.
func (c *client) join(room, name string) rx {
	c.t.Helper()
	c.sendJSON(protocol.Inbound{Type: protocol.TypeJoin, Room: room, Name: name})
	return c.next(protocol.TypeJoined)
}

// hasMembers reports whether the last presence/joined frame for room lists
// exactly want.
func hasMembers(room string, want ...string) func([]rx) bool {
	return func(frames []rx) bool {
		for i := len(frames) - 1; i >= 0; i-- {
			f := frames[i]
			if f.Room == room && (f.Type == protocol.TypePresence || f.Type == protocol.TypeJoined) {
				return strings.Join(f.Members, ",") == strings.Join(want, ",")
			}
		}
		return false
	}
}

// readType reads frames until one of type ty (5 s at most).
func readType(t *testing.T, ws *wstest.Conn, ty string) rx {
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
