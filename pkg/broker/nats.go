package broker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// Timing of the NATS backend. The client pings the server after
// natsPingInterval of silence and declares the connection dead after
// natsMaxPingsOut unanswered pings (about 4 s, like the Redis backend's
// health check); then it redials forever, after a backoff that grows from
// minBackoff to maxBackoff (the Redis backend's) with up to a quarter of
// jitter, so that many servers do not redial in step.
const (
	natsOpenTimeout    = 5 * time.Second // dial in OpenNATS when ctx has no deadline
	natsPingInterval   = 2 * time.Second
	natsMaxPingsOut    = 2
	natsCloseWait      = 5 * time.Second // Close waits this long for the client's callbacks to end
	natsSubscribeWait  = subscribeTimeout
	natsFlusherTimeout = 5 * time.Second
	// natsInbox bounds the messages the client's read loop has handed to
	// the dispatch goroutine and it has not yet queued; past it the client
	// drops them as a slow consumer (logged). The dispatcher only looks up
	// and queues, so it stays near empty.
	natsInbox = 65536
)

// NATS is the core NATS broker. Subjects and patterns are NATS subjects as
// they are ("*" and ">" are native), checked with this package's grammar
// first. Every Subscribe is one NATS subscription on the broker's single
// connection. The client's read loop hands every message to one channel,
// and one dispatch goroutine per broker puts it on its subscription's
// bounded queue (full queue: drop and count, see Subscription.Dropped):
// the client's reading never waits on a handler, and an idle subscription
// costs no goroutine. Should the dispatcher fall natsInbox messages behind,
// the client drops further ones as a slow consumer: they are counted in
// Dropped as well, and logged.
//
// Delivery is at most once, as with Redis Pub/Sub: messages published while
// a subscriber's connection is down are lost. One connection carries every
// publish in order, so messages of one publisher on one subject (and across
// subjects) arrive in order.
//
// When the connection is lost the state turns to StateReconnecting and
// nats.go redials forever, with a backoff, and resubscribes everything
// itself; the state turns back to StateConnected once the server accepted
// the connection again. While reconnecting, Publish and Subscribe fail at
// once (nothing is buffered), so a sender knows to retry.
type NATS struct {
	opts   Options
	url    string // redacted, for errors
	nc     *nats.Conn
	state  atomic.Int32
	closed atomic.Bool
	// ncClosed is closed by the client's ClosedHandler: its callback
	// goroutine is done with our handlers.
	ncClosed chan struct{}
	subWG    sync.WaitGroup

	inbox     chan *nats.Msg // every subscription's messages, in arrival order
	closing   chan struct{}  // closed by Close: ends dispatch
	dispatchW sync.WaitGroup

	// stateMu serialises state changes and OnStateChange calls (the
	// client's callbacks and Close).
	stateMu sync.Mutex

	mu sync.RWMutex
	// subs maps a live subscription to the client's; bySub the other way,
	// for dispatch.
	subs  map[*sub]*nats.Subscription
	bySub map[*nats.Subscription]*sub
}

var _ Broker = (*NATS)(nil)

// OpenNATS connects to the NATS server at rawURL
// ("nats://[user:password@|token@]host:port", "tls://" for TLS; several
// comma-separated URLs of one cluster are accepted). It returns once the
// server accepted the connection, or an error naming the URL with its
// password or token redacted. The dial is bounded by ctx's deadline, or by
// 5 s when ctx has none.
func OpenNATS(ctx context.Context, rawURL string, opts Options) (*NATS, error) {
	opts.fill()
	redacted := redactList(rawURL)
	for _, one := range splitURLs(rawURL) {
		u, err := url.Parse(one)
		if err != nil {
			var uerr *url.Error
			if errors.As(err, &uerr) {
				err = uerr.Err // it repeats the raw URL, password included
			}
			return nil, fmt.Errorf("%w %q: %w", ErrUnsupportedURL, redacted, err)
		}
		if u.Scheme != "nats" && u.Scheme != "tls" {
			return nil, fmt.Errorf("%w %q: scheme must be nats:// or tls://", ErrUnsupportedURL, redacted)
		}
		if u.Host == "" {
			return nil, fmt.Errorf("%w %q: no host", ErrUnsupportedURL, redacted)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("broker: cannot reach nats at %s: %w", redacted, err)
	}
	dial := natsOpenTimeout
	if dl, ok := ctx.Deadline(); ok {
		dial = max(time.Until(dl), time.Millisecond)
	}
	n := &NATS{
		opts:     opts,
		url:      redacted,
		ncClosed: make(chan struct{}),
		inbox:    make(chan *nats.Msg, natsInbox),
		closing:  make(chan struct{}),
		subs:     make(map[*sub]*nats.Subscription),
		bySub:    make(map[*nats.Subscription]*sub),
	}
	nc, err := nats.Connect(rawURL,
		nats.Name("livechat"),
		nats.Timeout(dial),
		nats.MaxReconnects(-1),
		nats.CustomReconnectDelay(natsReconnectDelay),
		// No buffering while reconnecting: Publish fails, the sender retries.
		nats.ReconnectBufSize(-1),
		nats.PingInterval(natsPingInterval),
		nats.MaxPingsOutstanding(natsMaxPingsOut),
		nats.FlusherTimeout(natsFlusherTimeout),
		nats.DisconnectErrHandler(n.disconnected),
		nats.ReconnectHandler(n.reconnected),
		nats.ClosedHandler(n.closedCB),
		nats.ErrorHandler(n.asyncError),
	)
	if err != nil {
		return nil, fmt.Errorf("broker: cannot reach nats at %s: %w", redacted, err)
	}
	n.nc = nc
	n.state.Store(int32(StateConnected))
	n.dispatchW.Add(1)
	go n.dispatch()
	return n, nil
}

// dispatch queues every received message on its subscription until Close,
// or runs an idle inline subscription's handler. It never blocks otherwise:
// deliver only queues or drops.
func (n *NATS) dispatch() {
	defer n.dispatchW.Done()
	for {
		select {
		case <-n.closing:
			return
		case m := <-n.inbox:
			n.mu.RLock()
			s := n.bySub[m.Sub]
			n.mu.RUnlock()
			if s != nil { // else unsubscribed meanwhile
				s.deliver(Message{Subject: m.Subject, Data: m.Data})
			}
		}
	}
}

// natsReconnectDelay is the wait before redial round attempts (1, 2, ...).
func natsReconnectDelay(attempts int) time.Duration {
	d := maxBackoff
	if shift := attempts - 1; shift >= 0 && shift < 16 {
		d = min(minBackoff<<shift, maxBackoff)
	}
	return d + rand.N(d/4+1)
}

// splitURLs splits nats.go's comma-separated server list.
func splitURLs(raw string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(raw); i++ {
		if i == len(raw) || raw[i] == ',' {
			out = append(out, raw[start:i])
			start = i + 1
		}
	}
	return out
}

// redactList redacts every URL of a comma-separated list. A user name
// without a password is a NATS token: it is redacted too.
func redactList(raw string) string {
	parts := splitURLs(raw)
	for i, p := range parts {
		u, err := url.Parse(p)
		if err != nil {
			parts[i] = "<invalid URL>"
			continue
		}
		if u.User != nil {
			if _, ok := u.User.Password(); ok {
				u.User = url.UserPassword(u.User.Username(), "xxxxx")
			} else {
				u.User = url.User("xxxxx")
			}
		}
		parts[i] = u.String()
	}
	out := parts[0]
	for _, p := range parts[1:] {
		out += "," + p
	}
	return out
}

func (n *NATS) disconnected(_ *nats.Conn, err error) {
	if n.closed.Load() {
		return
	}
	if n.setState(StateReconnecting) {
		n.opts.Logger.Warn("broker: nats connection lost", "url", n.url, "err", err)
	}
}

func (n *NATS) reconnected(nc *nats.Conn) {
	if n.closed.Load() {
		return
	}
	if n.setState(StateConnected) {
		n.opts.Logger.Info("broker: nats connection restored", "url", n.url, "server", redactList(nc.ConnectedUrlRedacted()))
	}
}

func (n *NATS) closedCB(*nats.Conn) {
	close(n.ncClosed)
}

func (n *NATS) asyncError(_ *nats.Conn, s *nats.Subscription, err error) {
	if s != nil {
		n.opts.Logger.Warn("broker: nats subscription error", "url", n.url, "subject", s.Subject, "err", err)
		return
	}
	n.opts.Logger.Warn("broker: nats error", "url", n.url, "err", err)
}

// setState records s and reports whether it changed; OnStateChange is
// called in the order of the changes, never concurrently.
func (n *NATS) setState(s State) bool {
	n.stateMu.Lock()
	defer n.stateMu.Unlock()
	if State(n.state.Swap(int32(s))) == s {
		return false
	}
	if f := n.opts.OnStateChange; f != nil {
		f(s)
	}
	return true
}

// Publish sends data to subject. It returns once the client took the
// message on a live connection, without waiting for the server (a Flush
// per message would add a round trip): the client writes it out within
// microseconds, in order. While the connection is down it fails at once
// (nothing is buffered for later), so the sender knows to retry; a message
// taken just before the connection breaks is lost without an error, the
// at-most-once window Redis Pub/Sub has too. Publishes by one goroutine are
// delivered in order.
func (n *NATS) Publish(ctx context.Context, subject string, data []byte) error {
	if n.closed.Load() {
		return ErrClosed
	}
	if err := ValidateSubject(subject); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("broker: publish to %q on %s: %w", subject, n.url, err)
	}
	if !n.nc.IsConnected() {
		return fmt.Errorf("broker: publish to %q on %s: %w", subject, n.url, nats.ErrConnectionReconnecting)
	}
	if err := n.nc.Publish(subject, data); err != nil {
		if n.closed.Load() {
			return ErrClosed
		}
		return fmt.Errorf("broker: publish to %q on %s: %w", subject, n.url, err)
	}
	return nil
}

// Subscribe registers h for pattern. It returns once the server confirmed
// the subscription (a PING/PONG round trip after it), waiting at most until
// ctx is done (10 s when ctx has no deadline); while the connection is down
// it fails at once. On failure nothing stays registered.
func (n *NATS) Subscribe(ctx context.Context, pattern string, h Handler) (Subscription, error) {
	return n.subscribeDone(ctx, pattern, handlerFunc(h))
}

func (n *NATS) subscribeDone(ctx context.Context, pat string, fn deliverFunc) (Subscription, error) {
	return n.subscribe(ctx, pat, fn, false)
}

// subscribeInline registers h to run on the dispatch goroutine when the
// subscription is idle (SubscribeInline).
func (n *NATS) subscribeInline(ctx context.Context, pat string, h Handler) (Subscription, error) {
	return n.subscribe(ctx, pat, handlerFunc(h), !n.opts.NoInline)
}

func (n *NATS) subscribe(ctx context.Context, pat string, fn deliverFunc, inline bool) (Subscription, error) {
	p, err := parse(pat)
	if err != nil {
		return nil, err
	}
	if n.closed.Load() {
		return nil, ErrClosed
	}
	if !n.nc.IsConnected() {
		return nil, fmt.Errorf("broker: subscribe to %q on %s: %w", pat, n.url, nats.ErrConnectionReconnecting)
	}
	s := newSub(pat, p, fn, n.opts.QueueSize, &n.subWG, inline)
	s.remove = n.remove
	// Registered under mu, so dispatch finds s for the first message.
	n.mu.Lock()
	if n.closed.Load() {
		n.mu.Unlock()
		return nil, ErrClosed
	}
	ns, err := n.nc.ChanSubscribe(pat, n.inbox)
	if err != nil {
		n.mu.Unlock()
		if n.closed.Load() {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("broker: subscribe to %q on %s: %w", pat, n.url, err)
	}
	n.subs[s] = ns
	n.bySub[ns] = s
	n.mu.Unlock()
	var lastDrops atomic.Uint64 // kept once the client forgets ns
	s.dropsBefore = func() uint64 {
		if d, err := ns.Dropped(); err == nil && d > 0 {
			lastDrops.Store(uint64(d))
		}
		return lastDrops.Load()
	}

	wctx, cancel := ctx, context.CancelFunc(func() {})
	if _, ok := ctx.Deadline(); !ok {
		wctx, cancel = context.WithTimeout(ctx, natsSubscribeWait)
	}
	defer cancel()
	if err := n.nc.FlushWithContext(wctx); err != nil {
		_ = s.Unsubscribe()
		if n.closed.Load() {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("broker: subscribe to %q on %s: no confirmation from nats: %w", pat, n.url, err)
	}
	return s, nil
}

// remove unsubscribes s from the server.
func (n *NATS) remove(s *sub) error {
	n.mu.Lock()
	ns := n.subs[s]
	delete(n.subs, s)
	delete(n.bySub, ns)
	n.mu.Unlock()
	if ns == nil || n.closed.Load() {
		return nil
	}
	// While disconnected the client forgets it and will not resubscribe.
	if err := ns.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
		n.opts.Logger.Debug("broker: nats unsubscribe failed", "subject", s.pattern, "err", err)
	}
	return nil
}

// State reports StateConnected while the connection works,
// StateReconnecting while it is being re-established, StateClosed after
// Close.
func (n *NATS) State() State {
	if n.closed.Load() {
		return StateClosed
	}
	return State(n.state.Load())
}

// Close stops every subscription, closes the connection and waits for
// every goroutine the broker and its client started (the client's callback
// goroutine at most 5 s). It is idempotent.
func (n *NATS) Close() error {
	if n.closed.Swap(true) {
		return nil
	}
	n.mu.Lock()
	for s := range n.subs {
		s.stop()
	}
	n.subs = make(map[*sub]*nats.Subscription)
	n.bySub = make(map[*nats.Subscription]*sub)
	n.mu.Unlock()

	n.nc.Close()
	close(n.closing)
	n.dispatchW.Wait()
	var err error
	select {
	case <-n.ncClosed:
	case <-time.After(natsCloseWait):
		err = fmt.Errorf("broker: close nats %s: the client did not report closed within %v", n.url, natsCloseWait)
	}
	n.setState(StateClosed)
	n.subWG.Wait()
	return err
}
