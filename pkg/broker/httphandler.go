package broker

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/livechat/livechat/internal/httpapi"
)

// The operator API: a node exposes its broker over HTTP so that operator
// tools (livechat publish, tail, stats) work against a single node that has
// no shared broker. The client side is the http:// backend (OpenHTTP).
//
//	POST /api/ops/publish?subject=S      body: the payload (raw bytes)  → 204
//	GET  /api/ops/subscribe?subject=P    → 200, a stream of JSON lines:
//	     {"type":"subscribed","pattern":P}        once subscribed (first line)
//	     {"type":"message","subject":S,"data":B}  B: the payload, base64
//	     {"type":"keepalive"}                     after HTTPKeepalive of silence
//	GET  /api/ops/ping                   → 204 (checks the key)
//
// Every request carries "Authorization: Bearer <operator key>"; any request
// without the right key is answered 401, and every request is when the
// handler has no key (the API is off). Errors are JSON
// ({"error":{"code","message"}}).
const (
	// OpsPath is the path prefix of the operator API.
	OpsPath = "/api/ops/"
	// MaxHTTPPayload bounds a payload published through the operator API.
	MaxHTTPPayload = 4 << 20
	// HTTPKeepalive is the longest a subscription stream stays silent: the
	// handler sends a keepalive line after that long without a message,
	// and the client reconnects after 3 times that without any line.
	HTTPKeepalive = 10 * time.Second
	// httpWriteTimeout bounds one write of a stream to a client.
	httpWriteTimeout = 10 * time.Second
)

// httpLine is one line of a subscription stream.
type httpLine struct {
	Type    string `json:"type"`
	Pattern string `json:"pattern,omitempty"`
	Subject string `json:"subject,omitempty"`
	Data    []byte `json:"data,omitempty"`
}

// Line types of a subscription stream.
const (
	lineSubscribed = "subscribed"
	lineMessage    = "message"
	lineKeepalive  = "keepalive"
)

// HTTPHandler serves the operator API over a Broker. It is safe for
// concurrent use.
type HTTPHandler struct {
	b    Broker
	key  [sha256.Size]byte
	on   bool // a key was given
	log  *slog.Logger
	ctx  context.Context // cancelled by Close: ends every stream
	stop context.CancelFunc
	wg   sync.WaitGroup // running streams
}

// NewHTTPHandler returns the operator API over b, guarded by key (compared
// in constant time). An empty key turns the API off: every request is
// refused with 401. log receives failures (never the key); nil discards
// them.
func NewHTTPHandler(b Broker, key []byte, log *slog.Logger) *HTTPHandler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, stop := context.WithCancel(context.Background())
	return &HTTPHandler{b: b, key: sha256.Sum256(key), on: len(key) > 0, log: log, ctx: ctx, stop: stop}
}

// Close ends every subscription stream (their clients see the stream end
// and reconnect) and waits for them; later streams end at once. Call it
// when the HTTP server shuts down (http.Server.RegisterOnShutdown), since
// Shutdown waits for running requests. It is idempotent.
func (h *HTTPHandler) Close() {
	h.stop()
	h.wg.Wait()
}

var (
	errOpsUnauthorized = httpapi.Errorf(http.StatusUnauthorized, "unauthorized", "the operator API needs the right operator key: Authorization: Bearer <key>")
	errOpsSubject      = func(err error) error { return httpapi.Errorf(http.StatusBadRequest, "bad_subject", err.Error()) }
)

// authorized reports whether r carries the operator key.
func (h *HTTPHandler) authorized(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || !h.on {
		return false
	}
	sum := sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(sum[:], h.key[:]) == 1
}

// ServeHTTP routes the operator API's requests.
func (h *HTTPHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="livechat operator API"`)
		httpapi.WriteError(w, errOpsUnauthorized)
		return
	}
	route, method := strings.TrimPrefix(r.URL.Path, strings.TrimSuffix(OpsPath, "/")), http.MethodGet
	var serve func(http.ResponseWriter, *http.Request)
	switch route {
	case "/ping":
		serve = func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }
	case "/publish":
		serve, method = h.publish, http.MethodPost
	case "/subscribe":
		serve = h.subscribe
	default:
		httpapi.WriteError(w, httpapi.ErrNotFound)
		return
	}
	if r.Method != method {
		w.Header().Set("Allow", method)
		httpapi.WriteError(w, httpapi.Errorf(http.StatusMethodNotAllowed, "method_not_allowed", "use "+method))
		return
	}
	serve(w, r)
}

func (h *HTTPHandler) publish(w http.ResponseWriter, r *http.Request) {
	subject := r.URL.Query().Get("subject")
	if err := ValidateSubject(subject); err != nil {
		httpapi.WriteError(w, errOpsSubject(err))
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxHTTPPayload))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			httpapi.WriteError(w, httpapi.Errorf(http.StatusRequestEntityTooLarge, "too_large", "the payload is larger than 4 MiB"))
			return
		}
		httpapi.WriteError(w, httpapi.Errorf(http.StatusBadRequest, "bad_request", "reading the payload failed"))
		return
	}
	if err := h.b.Publish(r.Context(), subject, data); err != nil {
		h.log.Warn("broker: operator API publish failed", "subject", subject, "err", err)
		httpapi.WriteError(w, httpapi.Errorf(http.StatusServiceUnavailable, "unavailable", "the node's broker refused the message; try again"))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *HTTPHandler) subscribe(w http.ResponseWriter, r *http.Request) {
	pattern := r.URL.Query().Get("subject")
	if err := ValidatePattern(pattern); err != nil {
		httpapi.WriteError(w, errOpsSubject(err))
		return
	}
	h.wg.Add(1)
	defer h.wg.Done()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(h.ctx, cancel)()
	if ctx.Err() != nil { // closed
		httpapi.WriteError(w, httpapi.Errorf(http.StatusServiceUnavailable, "unavailable", "the node is shutting down"))
		return
	}
	ch := make(chan Message, 256)
	sub, err := SubscribeChan(ctx, h.b, pattern, ch)
	if err != nil {
		h.log.Warn("broker: operator API subscribe failed", "pattern", pattern, "err", err)
		httpapi.WriteError(w, httpapi.Errorf(http.StatusServiceUnavailable, "unavailable", "the node's broker refused the subscription; try again"))
		return
	}
	defer func() { _ = sub.Unsubscribe() }()

	hd := w.Header()
	hd.Set("Content-Type", "application/x-ndjson")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	write := func(l httpLine) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(httpWriteTimeout))
		return enc.Encode(l) == nil && rc.Flush() == nil
	}
	if !write(httpLine{Type: lineSubscribed, Pattern: pattern}) {
		return
	}
	idle := time.NewTimer(HTTPKeepalive)
	defer idle.Stop()
	for {
		var l httpLine
		select {
		case <-ctx.Done():
			return
		case m := <-ch:
			l = httpLine{Type: lineMessage, Subject: m.Subject, Data: m.Data}
		case <-idle.C:
			l = httpLine{Type: lineKeepalive}
		}
		if !write(l) {
			return
		}
		idle.Reset(HTTPKeepalive)
	}
}
