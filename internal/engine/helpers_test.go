package engine

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/livechat/livechat/internal/leaktest"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

const waitTimeout = 10 * time.Second

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

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// handler is the tests' Handler: by default it echoes every message (a
// text message as text, a binary one as text too); message replaces that.
// It records how each connection ended.
type handler struct {
	message func(c *Conn, op int, data []byte) (int, string)
	// upgraded, when set, runs on each connection before Serve.
	upgraded func(c *Conn)

	mu   sync.Mutex
	ends map[*Conn]End
}

func (h *handler) Message(c *Conn, op int, data []byte) (int, string) {
	if h.message != nil {
		return h.message(c, op, data)
	}
	c.Send(TextFrame(data))
	return 0, ""
}

func (h *handler) Closed(c *Conn, e End) {
	h.mu.Lock()
	if h.ends == nil {
		h.ends = make(map[*Conn]End)
	}
	h.ends[c] = e
	h.mu.Unlock()
}

// end returns how c ended, and whether it has.
func (h *handler) end(c *Conn) (End, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e, ok := h.ends[c]
	return e, ok
}

// echo is a handler that echoes every message.
func echo() *handler { return &handler{} }

// testEngine is an Engine behind a real httptest listener.
type testEngine struct {
	*Engine
	h     *handler
	http  *httptest.Server
	url   string     // ws://...
	conns chan *Conn // each served connection, in order, for accept

	mu  sync.Mutex
	all []*Conn // every served connection
}

// startEngine serves o's engine with h on a loopback listener; cleanup
// cuts what is left and waits for every connection to end.
func startEngine(t testing.TB, o Options, h *handler) *testEngine {
	t.Helper()
	if o.Logger == nil {
		o.Logger = quietLogger()
	}
	te := &testEngine{Engine: New(o), h: h, conns: make(chan *Conn, 1<<16)}
	te.http = httptest.NewUnstartedServer(http.HandlerFunc(te.serve))
	te.http.Start()
	te.url = "ws" + strings.TrimPrefix(te.http.URL, "http")
	t.Cleanup(func() {
		te.http.Close()
		te.mu.Lock()
		all := te.all
		te.mu.Unlock()
		for _, c := range all {
			c.Close(CloseAbnormal, "")
		}
		waitFor(t, waitTimeout, "every connection's end", func() bool { return te.open() == 0 })
	})
	return te
}

func (te *testEngine) serve(w http.ResponseWriter, r *http.Request) {
	c, err := te.Upgrade(w, r)
	if err != nil {
		return
	}
	te.mu.Lock()
	te.all = append(te.all, c)
	te.mu.Unlock()
	te.conns <- c
	if te.h.upgraded != nil {
		te.h.upgraded(c)
	}
	c.Serve(te.h)
}

// open is the number of served connections that have not ended.
func (te *testEngine) open() int {
	te.mu.Lock()
	n := len(te.all)
	te.mu.Unlock()
	te.h.mu.Lock()
	defer te.h.mu.Unlock()
	return n - len(te.h.ends)
}

// accept returns the next served connection, as the engine sees it.
func (te *testEngine) accept(t testing.TB) *Conn {
	t.Helper()
	select {
	case c := <-te.conns:
		return c
	case <-time.After(waitTimeout):
		t.Fatal("no connection served")
		return nil
	}
}

// dial connects a gorilla client to te; cleanup closes it.
func dial(t testing.TB, url string) *websocket.Conn {
	t.Helper()
	ws, err := dialErr(url)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	return ws
}

func dialErr(url string) (*websocket.Conn, error) {
	return dialWith(&websocket.Dialer{HandshakeTimeout: 5 * time.Second}, url)
}

func dialWith(d *websocket.Dialer, url string) (*websocket.Conn, error) {
	ws, resp, err := d.Dial(url, nil)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	return ws, err
}

// dialed dials te and returns the client and the engine's side.
func (te *testEngine) dialed(t testing.TB) (*websocket.Conn, *Conn) {
	t.Helper()
	ws := dial(t, te.url)
	return ws, te.accept(t)
}

// readText reads one message, which must be text, within 5 s.
func readText(t testing.TB, ws *websocket.Conn) string {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	mt, data, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if mt != websocket.TextMessage {
		t.Fatalf("message type %d", mt)
	}
	return string(data)
}

// reader reads ws's messages in the background (answering pings) until
// the connection ends, which closes the channel.
func reader(ws *websocket.Conn) <-chan string {
	ch := make(chan string, 1024)
	go func() {
		defer close(ch)
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				return
			}
			ch <- string(data)
		}
	}()
	return ch
}

// recv returns the next message from a reader's channel, within 5 s.
func recv(t testing.TB, ch <-chan string) string {
	t.Helper()
	select {
	case s, ok := <-ch:
		if !ok {
			t.Fatal("connection ended")
		}
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("no message")
	}
	return ""
}

// closeCode is the WebSocket close code in err, or -1.
func closeCode(err error) int {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return -1
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
