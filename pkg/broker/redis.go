package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/livechat/livechat/internal/redisurl"
)

// Timing of the Redis backend. They depend on each other: the receive loop
// pings after healthInterval of silence and declares the pub/sub connection
// dead when the pong is not back within pingTimeout; while disconnected it
// retries with a backoff growing from minBackoff to maxBackoff.
const (
	openTimeout      = 5 * time.Second  // PING in OpenRedis when ctx has no deadline
	subscribeTimeout = 10 * time.Second // wait for a confirmation when ctx has no deadline
	healthInterval   = 2 * time.Second
	pingTimeout      = 2 * time.Second
	minBackoff       = 20 * time.Millisecond
	maxBackoff       = time.Second
)

// Redis is the Redis Pub/Sub broker. A literal subject is a Redis channel of
// the same name (SUBSCRIBE); a pattern is a Redis glob (PSUBSCRIBE) whose
// matches are re-checked with NATS semantics, because a glob "*" also matches
// dots. Every subscription of the broker shares one pub/sub connection, and
// local subscriptions with the same channel or glob share one Redis
// subscription. Each subscription gets a message once, even when several of
// the broker's patterns match it.
//
// The pub/sub connection has one receive goroutine that never blocks: it
// queues messages on the subscriptions' bounded queues (full queue: drop and
// count, see Subscription.Dropped), or calls an idle SubscribeInline handler,
// which must not block either. When the connection is lost the state turns
// to StateReconnecting; go-redis redials and resubscribes everything, and the
// state turns back to StateConnected once Redis answers again. Messages
// published while the connection was down are lost (Pub/Sub is at most once).
type Redis struct {
	opts    Options
	url     string // redacted, for errors
	client  *redis.Client
	ps      *redis.PubSub
	state   atomic.Int32
	closed  atomic.Bool
	closing chan struct{} // closed by Close
	kickCh  chan struct{} // asks the receive loop for a health check
	loopWG  sync.WaitGroup
	subWG   sync.WaitGroup

	// cmdMu serialises (P)SUBSCRIBE/(P)UNSUBSCRIBE with the map changes that
	// decide them, so the commands reach Redis in the order of those changes.
	// Lock order: cmdMu before mu.
	cmdMu sync.Mutex

	mu sync.RWMutex
	// exact maps a channel to its subscriptions, globs a glob to its.
	exact map[string]*redisGroup
	globs map[string]*redisGroup
	// pending lists, per channel ("c:"+name) or glob ("p:"+glob), the groups
	// whose SUBSCRIBE was sent and not yet confirmed, in sending order:
	// Redis answers in that order.
	pending map[string][]*redisGroup
}

var (
	_ Broker         = (*Redis)(nil)
	_ BatchPublisher = (*Redis)(nil)
)

// redisGroup is the local subscriptions sharing one Redis channel or glob.
type redisGroup struct {
	subs  map[*sub]struct{}
	ready chan struct{} // closed once Redis confirmed the subscription
	isRdy bool
}

func (g *redisGroup) markReady() {
	if !g.isRdy {
		g.isRdy = true
		close(g.ready)
	}
}

// OpenRedis connects to the Redis server at rawURL
// ("redis://[user:password@]host:port[/db]", "rediss://" for TLS; go-redis
// query parameters such as client_name or dial_timeout are honoured). It
// returns once Redis answered a PING, or an error naming the URL with its
// password redacted. The PING is bounded by ctx, or by 5 s when ctx has no
// deadline.
func OpenRedis(ctx context.Context, rawURL string, opts Options) (Broker, error) {
	opts.fill()
	redacted := Redact(rawURL)
	ro, err := redisurl.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrUnsupportedURL, redacted, err)
	}
	// One dial attempt per try: a Publish while Redis is down fails in
	// milliseconds instead of retrying dials for seconds (go-redis still
	// retries the command itself, MaxRetries, e.g. on a stale connection).
	if ro.DialerRetries == 0 {
		ro.DialerRetries = 1
	}
	client := redis.NewClient(ro)

	pctx, cancel := ctx, context.CancelFunc(func() {})
	if _, ok := ctx.Deadline(); !ok {
		pctx, cancel = context.WithTimeout(ctx, openTimeout)
	}
	defer cancel()
	ps := client.Subscribe(pctx) // no channels: it dials on first use
	if err := client.Ping(pctx).Err(); err != nil {
		_ = ps.Close()
		_ = client.Close()
		return nil, fmt.Errorf("broker: cannot reach redis at %s: %w", redacted, err)
	}
	// Dial the pub/sub connection now, so its failure is reported here.
	if err := ps.Ping(pctx); err != nil {
		_ = ps.Close()
		_ = client.Close()
		return nil, fmt.Errorf("broker: cannot reach redis at %s (pub/sub connection): %w", redacted, err)
	}
	r := &Redis{
		opts:    opts,
		url:     redacted,
		client:  client,
		ps:      ps,
		closing: make(chan struct{}),
		kickCh:  make(chan struct{}, 1),
		exact:   make(map[string]*redisGroup),
		globs:   make(map[string]*redisGroup),
		pending: make(map[string][]*redisGroup),
	}
	r.state.Store(int32(StateConnected))
	r.loopWG.Add(1)
	go r.receiveLoop()
	return r, nil
}

// Publish sends data to subject with one PUBLISH. It returns once Redis
// accepted the message, or an error when Redis cannot be reached. Publishes
// by one goroutine are delivered in order.
func (r *Redis) Publish(ctx context.Context, subject string, data []byte) error {
	if r.closed.Load() {
		return ErrClosed
	}
	if err := ValidateSubject(subject); err != nil {
		return err
	}
	if err := r.client.Publish(ctx, subject, data).Err(); err != nil {
		if r.closed.Load() {
			return ErrClosed
		}
		r.kick()
		return fmt.Errorf("broker: publish to %q on %s: %w", subject, r.url, err)
	}
	return nil
}

// PublishBatch implements BatchPublisher (see the function PublishBatch):
// it sends msgs as PUBLISH commands in pipelines of batchChunk, one round
// trip each, in order, and stops at the first pipeline that fails.
func (r *Redis) PublishBatch(ctx context.Context, msgs []Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if r.closed.Load() {
		return ErrClosed
	}
	if err := validateBatch(msgs); err != nil {
		return err
	}
	for len(msgs) > 0 {
		chunk := msgs[:min(len(msgs), batchChunk)]
		msgs = msgs[len(chunk):]
		cmds, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, m := range chunk {
				p.Publish(ctx, m.Subject, m.Data)
			}
			return nil
		})
		if err == nil {
			continue
		}
		if r.closed.Load() {
			return ErrClosed
		}
		r.kick()
		return fmt.Errorf("broker: publish to %q on %s: %w", chunk[firstFailed(cmds)].Subject, r.url, err)
	}
	return nil
}

// firstFailed returns the index of the first command of cmds that failed (0
// when none did: the pipeline as a whole failed).
func firstFailed(cmds []redis.Cmder) int {
	for i, c := range cmds {
		if c.Err() != nil {
			return i
		}
	}
	return 0
}

// Subscribe registers h for pattern. It returns once Redis confirmed the
// subscription, waiting at most until ctx is done (10 s when ctx has no
// deadline); on failure nothing stays registered.
func (r *Redis) Subscribe(ctx context.Context, pattern string, h Handler) (Subscription, error) {
	return r.subscribeDone(ctx, pattern, handlerFunc(h))
}

func (r *Redis) subscribeDone(ctx context.Context, pat string, fn deliverFunc) (Subscription, error) {
	return r.subscribe(ctx, pat, fn, false)
}

// subscribeInline registers h to run on the receive loop when the
// subscription is idle (SubscribeInline).
func (r *Redis) subscribeInline(ctx context.Context, pat string, h Handler) (Subscription, error) {
	return r.subscribe(ctx, pat, handlerFunc(h), !r.opts.NoInline)
}

func (r *Redis) subscribe(ctx context.Context, pat string, fn deliverFunc, inline bool) (Subscription, error) {
	p, err := parse(pat)
	if err != nil {
		return nil, err
	}
	key, isGlob := pat, false
	if !p.literal {
		key, isGlob = redisGlob(p), true
	}

	r.cmdMu.Lock()
	r.mu.Lock()
	if r.closed.Load() {
		r.mu.Unlock()
		r.cmdMu.Unlock()
		return nil, ErrClosed
	}
	groups := r.exact
	if isGlob {
		groups = r.globs
	}
	g := groups[key]
	first := g == nil
	if first {
		g = &redisGroup{subs: make(map[*sub]struct{}), ready: make(chan struct{})}
		groups[key] = g
		r.pending[pendingKey(key, isGlob)] = append(r.pending[pendingKey(key, isGlob)], g)
	}
	s := newSub(pat, p, fn, r.opts.QueueSize, &r.subWG, inline)
	s.remove = func(s *sub) error { return r.remove(s, key, isGlob) }
	g.subs[s] = struct{}{}
	r.mu.Unlock()
	if first {
		// The command goes on the shared connection: the caller's
		// cancellation must not break it (go-redis would redial).
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pingTimeout)
		if err = ctx.Err(); err == nil {
			if isGlob {
				err = r.ps.PSubscribe(cctx, key)
			} else {
				err = r.ps.Subscribe(cctx, key)
			}
		}
		cancel()
		if err != nil {
			// Nothing will answer this command: forget it (go-redis
			// still resubscribes on reconnect while the group lives).
			r.mu.Lock()
			r.dropPending(pendingKey(key, isGlob), g)
			r.mu.Unlock()
		}
	}
	r.cmdMu.Unlock()
	if err != nil {
		_ = s.Unsubscribe()
		r.kick()
		return nil, fmt.Errorf("broker: subscribe to %q on %s: %w", pat, r.url, err)
	}

	wctx, cancel := ctx, context.CancelFunc(func() {})
	if _, ok := ctx.Deadline(); !ok {
		wctx, cancel = context.WithTimeout(ctx, subscribeTimeout)
	}
	defer cancel()
	select {
	case <-g.ready:
		if r.closed.Load() {
			return nil, ErrClosed
		}
		return s, nil
	case <-wctx.Done():
		_ = s.Unsubscribe()
		return nil, fmt.Errorf("broker: subscribe to %q on %s: no confirmation from redis: %w", pat, r.url, wctx.Err())
	case <-r.closing:
		return nil, ErrClosed
	}
}

// remove unregisters s; the last subscription of a channel or glob
// unsubscribes it in Redis.
func (r *Redis) remove(s *sub, key string, isGlob bool) error {
	r.cmdMu.Lock()
	defer r.cmdMu.Unlock()
	r.mu.Lock()
	groups := r.exact
	if isGlob {
		groups = r.globs
	}
	g := groups[key]
	last := false
	if g != nil {
		delete(g.subs, s)
		if len(g.subs) == 0 {
			delete(groups, key)
			last = true
		}
	}
	r.mu.Unlock()
	if !last || r.closed.Load() {
		return nil
	}
	// Unsubscribe is not bound to the subscriber's context: it must reach
	// Redis or fail fast (go-redis forgets the channel either way, so a
	// reconnect will not resubscribe it).
	ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
	defer cancel()
	var err error
	if isGlob {
		err = r.ps.PUnsubscribe(ctx, key)
	} else {
		err = r.ps.Unsubscribe(ctx, key)
	}
	if err != nil && !r.closed.Load() {
		r.kick()
		// The connection is broken; the new one will not carry the channel.
		r.opts.Logger.Debug("broker: redis unsubscribe failed", "subject", s.pattern, "err", err)
	}
	return nil
}

func pendingKey(key string, isGlob bool) string {
	if isGlob {
		return "p:" + key
	}
	return "c:" + key
}

// dropPending removes g from the pending list of pk. Callers hold mu.
func (r *Redis) dropPending(pk string, g *redisGroup) {
	list := r.pending[pk]
	for i, x := range list {
		if x == g {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(r.pending, pk)
	} else {
		r.pending[pk] = list
	}
}

// confirmed handles a subscribe/psubscribe confirmation from Redis.
func (r *Redis) confirmed(key string, isGlob bool) {
	pk := pendingKey(key, isGlob)
	r.mu.Lock()
	defer r.mu.Unlock()
	if list := r.pending[pk]; len(list) > 0 {
		list[0].markReady()
		r.dropPending(pk, list[0])
	}
	if len(r.pending[pk]) == 0 {
		// No command in flight: the channel is subscribed now (this also
		// covers go-redis's resubscription after a reconnect).
		groups := r.exact
		if isGlob {
			groups = r.globs
		}
		if g := groups[key]; g != nil {
			g.markReady()
		}
	}
}

// connectionLost forgets the commands in flight on a lost connection: go-redis
// resubscribes every live channel on the new one, which confirms each once.
func (r *Redis) connectionLost() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for pk := range r.pending {
		key, isGlob := pk[2:], pk[0] == 'p'
		groups := r.exact
		if isGlob {
			groups = r.globs
		}
		if g := groups[key]; g != nil && !g.isRdy {
			r.pending[pk] = []*redisGroup{g}
		} else {
			delete(r.pending, pk)
		}
	}
}

// receiveLoop reads the pub/sub connection until Close. It never blocks on a
// subscription: deliver only queues, drops or runs a quick inline handler.
func (r *Redis) receiveLoop() {
	defer r.loopWG.Done()
	ctx := context.Background()
	backoff := time.Duration(0)
	pinged := false // a health PING is unanswered
	for {
		var (
			msg any
			err error
		)
		if pinged {
			// A deadline on ctx (not a timeout) makes go-redis treat
			// silence as a broken connection and redial.
			pctx, cancel := context.WithTimeout(ctx, pingTimeout)
			msg, err = r.ps.Receive(pctx)
			cancel()
		} else {
			msg, err = r.ps.ReceiveTimeout(ctx, healthInterval)
		}
		if r.closed.Load() {
			return
		}
		if err != nil {
			var nerr net.Error
			if !pinged && errors.As(err, &nerr) && nerr.Timeout() {
				// Silence: ask Redis whether it is still there.
				if perr := r.ps.Ping(ctx); perr == nil {
					pinged = true
					continue
				}
			}
			// The connection is lost (go-redis has closed it and tried
			// one redial). Retry with a growing backoff until a PING
			// goes through, which redials and resubscribes everything.
			pinged = false
			r.setState(StateReconnecting)
			r.connectionLost()
			r.opts.Logger.Warn("broker: redis pub/sub connection lost", "url", r.url, "err", err)
			for {
				backoff = min(max(2*backoff, minBackoff), maxBackoff)
				t := time.NewTimer(backoff)
				select {
				case <-r.closing:
					t.Stop()
					return
				case <-t.C:
				}
				if perr := r.ps.Ping(ctx); perr == nil {
					pinged = true
					break
				} else if r.closed.Load() {
					return
				}
			}
			continue
		}
		// Anything from Redis proves the connection works.
		pinged = false
		backoff = 0
		if r.setState(StateConnected) {
			r.opts.Logger.Info("broker: redis pub/sub connection restored", "url", r.url)
		}
		switch m := msg.(type) {
		case *redis.Message:
			r.dispatch(m)
		case *redis.Subscription:
			switch m.Kind {
			case "subscribe":
				r.confirmed(m.Channel, false)
			case "psubscribe":
				r.confirmed(m.Channel, true)
			}
		case *redis.Pong:
		}
		r.drainKick()
	}
}

// dispatch hands m to the local subscriptions it is for: a "message" to those
// of its channel, a "pmessage" to those of its glob whose pattern matches.
// They are collected first and served without the lock: an inline handler
// runs here, and may subscribe or unsubscribe.
func (r *Redis) dispatch(m *redis.Message) {
	var buf [4]*sub
	subs := buf[:0]
	r.mu.RLock()
	if m.Pattern == "" {
		if g := r.exact[m.Channel]; g != nil {
			for s := range g.subs {
				subs = append(subs, s)
			}
		}
	} else if g := r.globs[m.Pattern]; g != nil && isLiteral(m.Channel) {
		for s := range g.subs {
			if s.filter.matchString(m.Channel) {
				subs = append(subs, s)
			}
		}
	}
	r.mu.RUnlock()
	deliverAll(subs, m.Channel, m.Payload)
}

// kick asks the receive loop to check the connection now (after a failed
// command) instead of waiting for healthInterval.
func (r *Redis) kick() {
	select {
	case r.kickCh <- struct{}{}:
	default:
	}
}

func (r *Redis) drainKick() {
	select {
	case <-r.kickCh:
		// A command failed while messages were flowing: probe now.
		if err := r.ps.Ping(context.Background()); err != nil && !r.closed.Load() {
			r.setState(StateReconnecting)
		}
	default:
	}
}

// setState records s and reports whether it changed; OnStateChange is called
// from the receive loop (or from Close), never concurrently.
func (r *Redis) setState(s State) bool {
	if State(r.state.Swap(int32(s))) == s {
		return false
	}
	if f := r.opts.OnStateChange; f != nil {
		f(s)
	}
	return true
}

// State reports StateConnected while the pub/sub connection works,
// StateReconnecting while it is being re-established, StateClosed after
// Close.
func (r *Redis) State() State {
	if r.closed.Load() {
		return StateClosed
	}
	return State(r.state.Load())
}

// Close stops every subscription, closes both Redis connections and waits for
// every goroutine the broker started. It is idempotent.
func (r *Redis) Close() error {
	if r.closed.Swap(true) {
		return nil
	}
	close(r.closing)
	r.cmdMu.Lock()
	r.mu.Lock()
	for _, groups := range []map[string]*redisGroup{r.exact, r.globs} {
		for _, g := range groups {
			for s := range g.subs {
				s.stop()
			}
			g.markReady()
		}
	}
	r.exact = make(map[string]*redisGroup)
	r.globs = make(map[string]*redisGroup)
	r.pending = make(map[string][]*redisGroup)
	r.mu.Unlock()
	r.cmdMu.Unlock()

	err := r.ps.Close() // ends the receive loop's read
	r.loopWG.Wait()
	if cerr := r.client.Close(); err == nil {
		err = cerr
	}
	r.setState(StateClosed)
	r.subWG.Wait()
	if err != nil {
		return fmt.Errorf("broker: close redis %s: %w", r.url, err)
	}
	return nil
}

// redisGlob maps a NATS pattern to a Redis glob: "*" and a trailing ">" become
// "*", and glob metacharacters in literal tokens are escaped. The glob matches
// a superset of the pattern; deliveries are re-checked with the pattern.
func redisGlob(p *pattern) string {
	var b strings.Builder
	for i, t := range p.tokens {
		if i > 0 {
			b.WriteByte('.')
		}
		switch t {
		case singleWC, fullWC:
			b.WriteByte('*')
		default:
			for j := 0; j < len(t); j++ {
				switch c := t[j]; c {
				case '*', '?', '[', ']', '\\':
					b.WriteByte('\\')
					b.WriteByte(c)
				default:
					b.WriteByte(c)
				}
			}
		}
	}
	return b.String()
}
