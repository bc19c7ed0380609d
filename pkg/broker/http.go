package broker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// ErrUnauthorized is returned by the http:// backend when the node refuses
// the operator key (401).
var ErrUnauthorized = errors.New("broker: operator key refused")

// httpRequestTimeout bounds a publish or a ping when ctx has no deadline.
const httpRequestTimeout = 10 * time.Second

// HTTP is the client of a livechat node's operator API (http://host:port,
// https://host:port; see HTTPHandler): it publishes and subscribes on that
// node's broker, so operator tools work against a single node that has no
// shared broker. Every request carries Options.Key as a bearer token.
//
// Each subscription is one streaming request (JSON lines) and has its own
// bounded queue, as with the other backends. A stream that breaks, or stays
// silent longer than three keepalive periods, is re-requested with a
// backoff from 20 ms to 1 s; meanwhile the state is StateReconnecting and
// messages published on the node are lost for it (at most once). Publish is
// one POST per message: publishes by one goroutine arrive in order.
type HTTP struct {
	opts   Options
	base   string // scheme://host[:port]
	url    string // redacted, for errors
	key    string
	tr     *http.Transport
	client *http.Client

	closed  atomic.Bool
	ctx     context.Context // cancelled by Close: ends every stream
	cancel  context.CancelFunc
	loopWG  sync.WaitGroup // stream goroutines
	subWG   sync.WaitGroup // subscriptions' delivery goroutines
	stateMu sync.Mutex     // serialises state changes and OnStateChange
	state   atomic.Int32

	mu sync.Mutex
	// streams are the live subscriptions; down counts those reconnecting.
	streams map[*httpStream]struct{}
	down    int
}

var _ Broker = (*HTTP)(nil)

// httpStream is one subscription's streaming request.
type httpStream struct {
	sub    *sub
	cancel context.CancelFunc
	down   bool // guarded by HTTP.mu
}

// OpenHTTP connects to the operator API of the livechat node at rawURL
// ("http://host:port" or "https://host:port", no path) with opts.Key as
// the operator key. It returns once the node accepted the key, or an error
// naming the URL: ErrUnauthorized (errors.Is) when the node refused the key.
// The check is bounded by ctx, or by 10 s when ctx has no deadline.
func OpenHTTP(ctx context.Context, rawURL string, opts Options) (*HTTP, error) {
	opts.fill()
	redacted := Redact(rawURL)
	u, err := url.Parse(rawURL)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("%w %q: %w", ErrUnsupportedURL, redacted, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") ||
		u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("%w %q: want http://host:port or https://host:port (the node's address, no path)", ErrUnsupportedURL, redacted)
	}
	if opts.Key == "" {
		return nil, fmt.Errorf("broker: %s: no operator key", redacted)
	}
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: httpRequestTimeout,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       30 * time.Second,
	}
	bctx, cancel := context.WithCancel(context.Background())
	h := &HTTP{
		opts:    opts,
		base:    u.Scheme + "://" + u.Host,
		url:     redacted,
		key:     opts.Key,
		tr:      tr,
		client:  &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		ctx:     bctx,
		cancel:  cancel,
		streams: make(map[*httpStream]struct{}),
	}
	h.state.Store(int32(StateConnected))
	pctx, pcancel := withDeadline(ctx, httpRequestTimeout)
	defer pcancel()
	resp, err := h.do(pctx, http.MethodGet, "ping", "", nil)
	if err == nil {
		if err = h.check(resp, http.StatusNoContent); err == nil {
			_ = resp.Body.Close()
		}
	}
	if err != nil {
		cancel()
		tr.CloseIdleConnections()
		return nil, err
	}
	return h, nil
}

func withDeadline(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// do sends one request to the operator API.
func (h *HTTP) do(ctx context.Context, method, route, subject string, body []byte) (*http.Response, error) {
	target := h.base + OpsPath + route
	if subject != "" {
		target += "?subject=" + url.QueryEscape(subject)
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return nil, fmt.Errorf("broker: %s: %w", h.url, err)
	}
	req.Header.Set("Authorization", "Bearer "+h.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	resp, err := h.client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // it repeats the URL
		}
		return nil, fmt.Errorf("broker: cannot reach the livechat node at %s: %w", h.url, err)
	}
	return resp, nil
}

// check turns a response other than want into an error (and closes its
// body); for want it leaves the body open.
func (h *HTTP) check(resp *http.Response, want int) error {
	if resp.StatusCode == want {
		return nil
	}
	defer func() { _ = resp.Body.Close() }()
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&e)
	if resp.StatusCode == http.StatusUnauthorized {
		return fmt.Errorf("%w by the livechat node at %s (401)", ErrUnauthorized, h.url)
	}
	msg := e.Error.Message
	if msg == "" {
		msg = "not a livechat operator API"
	}
	return fmt.Errorf("broker: livechat node at %s answered %s: %s", h.url, resp.Status, msg)
}

// Publish sends data to subject on the node with one POST and returns once
// the node's broker accepted it; it waits at most until ctx is done (10 s
// when ctx has no deadline).
func (h *HTTP) Publish(ctx context.Context, subject string, data []byte) error {
	if h.closed.Load() {
		return ErrClosed
	}
	if err := ValidateSubject(subject); err != nil {
		return err
	}
	if len(data) > MaxHTTPPayload {
		return fmt.Errorf("broker: publish to %q: payload larger than %d bytes", subject, MaxHTTPPayload)
	}
	if data == nil {
		data = []byte{}
	}
	ctx, cancel := withDeadline(ctx, httpRequestTimeout)
	defer cancel()
	stop := context.AfterFunc(h.ctx, cancel) // Close ends it
	defer stop()
	resp, err := h.do(ctx, http.MethodPost, "publish", subject, data)
	if err == nil {
		if err = h.check(resp, http.StatusNoContent); err == nil {
			_ = resp.Body.Close()
		}
	}
	if err != nil {
		if h.closed.Load() {
			return ErrClosed
		}
		return fmt.Errorf("broker: publish to %q: %w", subject, err)
	}
	return nil
}

// Subscribe registers h for pattern with a streaming request; it returns
// once the node confirmed the subscription, waiting at most until ctx is
// done (10 s when ctx has no deadline).
func (h *HTTP) Subscribe(ctx context.Context, pattern string, fn Handler) (Subscription, error) {
	return h.subscribeDone(ctx, pattern, handlerFunc(fn))
}

func (h *HTTP) subscribeDone(ctx context.Context, pat string, fn deliverFunc) (Subscription, error) {
	p, err := parse(pat)
	if err != nil {
		return nil, err
	}
	if h.closed.Load() {
		return nil, ErrClosed
	}
	sctx, cancel := context.WithCancel(h.ctx)
	wctx, wcancel := withDeadline(ctx, subscribeTimeout)
	defer wcancel()
	stop := context.AfterFunc(wctx, cancel) // the wait is bounded by ctx
	body, err := h.connect(sctx, pat)
	if !stop() && err == nil {
		_ = body.Close()
		err = fmt.Errorf("broker: subscribe to %q on %s: %w", pat, h.url, wctx.Err())
	}
	if err != nil {
		cancel()
		if h.closed.Load() {
			return nil, ErrClosed
		}
		return nil, err
	}
	st := &httpStream{cancel: cancel}
	h.mu.Lock()
	if h.closed.Load() {
		h.mu.Unlock()
		cancel()
		_ = body.Close()
		return nil, ErrClosed
	}
	st.sub = newSub(pat, p, fn, h.opts.QueueSize, &h.subWG, false)
	st.sub.remove = func(*sub) error { h.drop(st); return nil }
	h.streams[st] = struct{}{}
	h.loopWG.Add(1)
	h.mu.Unlock()
	go h.streamLoop(sctx, st, body)
	return st.sub, nil
}

// connect requests the stream of pat and reads its first line, the node's
// confirmation. The returned body is positioned after it.
func (h *HTTP) connect(ctx context.Context, pat string) (*lineReader, error) {
	ctx, cancel := context.WithCancel(ctx)
	resp, err := h.do(ctx, http.MethodGet, "subscribe", pat, nil) //nolint:bodyclose // the stream's body is the lineReader's, which closes it
	if err == nil {
		err = h.check(resp, http.StatusOK)
	}
	if err != nil {
		cancel()
		return nil, fmt.Errorf("broker: subscribe to %q: %w", pat, err)
	}
	lr := newLineReader(resp.Body, cancel)
	l, err := lr.next()
	if err != nil || l.Type != lineSubscribed {
		_ = lr.Close()
		if err == nil {
			err = errors.New("the first line is not a confirmation")
		}
		return nil, fmt.Errorf("broker: subscribe to %q on %s: %w", pat, h.url, err)
	}
	return lr, nil
}

// streamLoop reads st's stream until the subscription ends, re-requesting
// it when it breaks.
func (h *HTTP) streamLoop(ctx context.Context, st *httpStream, lr *lineReader) {
	defer h.loopWG.Done()
	backoff := time.Duration(0)
	for {
		err := h.read(st, lr)
		_ = lr.Close()
		if ctx.Err() != nil {
			return
		}
		h.setDown(st, true)
		h.opts.Logger.Warn("broker: operator API stream lost", "url", h.url, "pattern", st.sub.pattern, "err", err)
		for {
			backoff = min(max(2*backoff, minBackoff), maxBackoff)
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			if lr, err = h.connect(ctx, st.sub.pattern); err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
		}
		backoff = 0
		h.setDown(st, false)
		h.opts.Logger.Info("broker: operator API stream restored", "url", h.url, "pattern", st.sub.pattern)
	}
}

// read delivers the messages of one connection of st's stream until it
// fails or stays silent for three keepalive periods.
func (h *HTTP) read(st *httpStream, lr *lineReader) error {
	watchdog := time.AfterFunc(3*HTTPKeepalive, lr.cancel)
	defer watchdog.Stop()
	for {
		l, err := lr.next()
		if err != nil {
			return err
		}
		watchdog.Reset(3 * HTTPKeepalive)
		if l.Type == lineMessage && isLiteral(l.Subject) && st.sub.filter.matchString(l.Subject) {
			st.sub.deliver(Message{Subject: l.Subject, Data: l.Data})
		}
	}
}

// drop unregisters st (its Unsubscribe) and ends its stream.
func (h *HTTP) drop(st *httpStream) {
	st.cancel()
	h.mu.Lock()
	delete(h.streams, st)
	wasDown := st.down
	if wasDown {
		st.down = false
		h.down--
	}
	restored := wasDown && h.down == 0
	h.mu.Unlock()
	if restored {
		h.setState(StateConnected)
	}
}

// setDown records that st's stream is down or back, and changes the state
// when the first stream goes down or the last comes back.
func (h *HTTP) setDown(st *httpStream, down bool) {
	h.mu.Lock()
	if st.down == down || h.closed.Load() {
		h.mu.Unlock()
		return
	}
	if _, live := h.streams[st]; !live {
		h.mu.Unlock()
		return
	}
	st.down = down
	if down {
		h.down++
	} else {
		h.down--
	}
	n := h.down
	h.mu.Unlock()
	switch {
	case down && n == 1:
		h.setState(StateReconnecting)
	case !down && n == 0:
		h.setState(StateConnected)
	}
}

// setState records s and calls OnStateChange when it changed. After Close
// only StateClosed is recorded.
func (h *HTTP) setState(s State) {
	h.stateMu.Lock()
	defer h.stateMu.Unlock()
	if (h.closed.Load() && s != StateClosed) || State(h.state.Swap(int32(s))) == s {
		return
	}
	if f := h.opts.OnStateChange; f != nil {
		f(s)
	}
}

// State reports StateConnected while every stream works, StateReconnecting
// while one is being re-requested, StateClosed after Close.
func (h *HTTP) State() State {
	if h.closed.Load() {
		return StateClosed
	}
	return State(h.state.Load())
}

// Close ends every subscription and its stream, waits for every goroutine
// the broker started and closes its idle connections. It is idempotent.
func (h *HTTP) Close() error {
	if h.closed.Swap(true) {
		return nil
	}
	h.cancel()
	h.mu.Lock()
	for st := range h.streams {
		st.sub.stop()
	}
	h.streams = make(map[*httpStream]struct{})
	h.mu.Unlock()
	h.loopWG.Wait()
	h.tr.CloseIdleConnections()
	h.setState(StateClosed)
	h.subWG.Wait()
	return nil
}

// lineReader reads the JSON lines of a stream.
type lineReader struct {
	body   io.ReadCloser
	cancel context.CancelFunc // the request's: ends a blocked read
	sc     *bufio.Scanner
}

func newLineReader(body io.ReadCloser, cancel context.CancelFunc) *lineReader {
	sc := bufio.NewScanner(body)
	// A payload of MaxHTTPPayload bytes is 4/3 as long in base64.
	sc.Buffer(make([]byte, 0, 4096), MaxHTTPPayload/3*4+4096)
	return &lineReader{body: body, cancel: cancel, sc: sc}
}

func (lr *lineReader) next() (httpLine, error) {
	var l httpLine
	if !lr.sc.Scan() {
		err := lr.sc.Err()
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return l, err
	}
	if err := json.Unmarshal(lr.sc.Bytes(), &l); err != nil {
		return l, fmt.Errorf("malformed line: %w", err)
	}
	return l, nil
}

// Close ends the request and closes the body.
func (lr *lineReader) Close() error {
	lr.cancel()
	return lr.body.Close()
}
