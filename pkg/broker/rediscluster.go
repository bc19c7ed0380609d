package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/livechat/livechat/internal/redisurl"
)

// Timing of the Redis Cluster backend, besides the Redis backend's
// healthInterval, pingTimeout and backoff: every instance refreshes its
// registration every heartbeatInterval and counts as alive for
// instanceTTL; a pattern registration lives patternTTL unless refreshed; a
// Subscribe to a pattern waits at most ackWait for the other instances to
// learn it (an instance that died without Close counts until its
// instanceTTL passes), polling every ackPoll.
const (
	heartbeatInterval = time.Second
	instanceTTL       = 5 * time.Second
	patternTTL        = 15 * time.Second
	ackWait           = 2 * time.Second
	ackPoll           = 5 * time.Millisecond
	slotsTimeout      = time.Second
	// clusterStateReload is how old go-redis's slot map of a cluster may
	// grow while in use (go-redis's default, 60 s, would keep sending to a
	// dead master that long); a failed command also reloads it.
	clusterStateReload = 2 * time.Second
)

// registryKey is the hash holding the live patterns and instances of every
// RedisCluster broker on a cluster; registryChannel, the sharded channel in
// its slot, announces pattern changes. Its fields: "gen" (a counter bumped
// by every new pattern), "i <id>" (an instance's expiry, Unix ms), "a <id>"
// (the generation an instance has loaded), "p <id> <pattern>" (a pattern an
// instance watches, and its expiry).
const (
	registryKey     = "livechat:broker:{patterns}"
	registryChannel = registryKey
)

// RedisCluster is the Redis Cluster broker (redis+cluster://), over sharded
// Pub/Sub (Redis 7: SPUBLISH, SSUBSCRIBE). A literal subject is a sharded
// channel whose hash tag is the subject's last token ("livechat.room.general"
// is "livechat.room.{general}"), so a room's messages stay on the shard
// that holds its history keys ("<prefix>:{general}:..."). Braces and "%"
// in a subject are percent-encoded, so the mapping is one to one.
//
// Sharded channels have no patterns. A pattern subscription instead
// subscribes to a feed channel of its own (">{<pattern>}", in the
// pattern's slot) and registers the pattern in the cluster (a hash,
// registryKey, with an expiry the subscriber refreshes). Every instance
// caches the live patterns; a Publish whose subject matches one also sends
// subject and data to that pattern's feed. So a room's traffic touches
// only its shard while nobody watches it with a pattern, and a pattern
// watcher costs one more SPUBLISH per matching message, to the watcher's
// shard. Subscribe to a new pattern returns once every live instance has
// loaded it (or ackWait passed: an instance that died without Close), so
// the broker's guarantee holds: a message published after Subscribe
// returned is delivered.
//
// The broker keeps one pub/sub connection per master node it needs, each
// read by a goroutine that never blocks (it queues, full queues drop and
// count, or calls an idle SubscribeInline handler). When a connection is lost (a master died) or Redis
// unsubscribes channels itself (their slot moved), the broker reloads the
// slot map and subscribes those channels again where they now live; the
// state is StateReconnecting until every channel is confirmed again.
// Messages published meanwhile are lost (Pub/Sub is at most once).
type RedisCluster struct {
	opts   Options
	url    string // redacted
	co     *redis.ClusterOptions
	cc     *redis.ClusterClient
	id     string // this instance in the registry
	state  atomic.Int32
	closed atomic.Bool
	// reachedAt is when a master last answered reachLoop's PING
	// (UnixNano).
	reachedAt atomic.Int64
	closing   chan struct{}
	routeCh   chan struct{} // asks the manager to place orphans
	regCh     chan struct{} // asks the manager to reload the registry
	loopWG    sync.WaitGroup
	subWG     sync.WaitGroup
	// patterns are the live patterns of the cluster, as the last
	// heartbeat read them.
	patterns atomic.Pointer[[]livePattern]

	stateMu sync.Mutex // serialises state changes and OnStateChange
	// cmdMu serialises SSUBSCRIBE/SUNSUBSCRIBE with the map changes that
	// decide them. Lock order: cmdMu, stateMu, mu.
	cmdMu sync.Mutex

	mu      sync.RWMutex
	groups  map[string]*clusterGroup // by channel
	shards  map[string]*shard        // by master address
	clients map[string]*redis.Client // by node address
	slots   []slotRange
	stale   bool                       // slots must be reloaded
	orphans map[string]struct{}        // channels on no connection
	waiting map[*clusterGroup]struct{} // moved, not confirmed again
}

var (
	_ Broker         = (*RedisCluster)(nil)
	_ Reacher        = (*RedisCluster)(nil)
	_ BatchPublisher = (*RedisCluster)(nil)
)

// slotRange is a range of hash slots, its master's address ("" while it
// has none online) and every node serving it.
type slotRange struct {
	start, end int
	master     string
	nodes      []string
}

// slotTable converts CLUSTER SHARDS (Redis 7) to slot ranges.
func slotTable(shards []redis.ClusterShard, tls bool) []slotRange {
	var out []slotRange
	for _, sh := range shards {
		var master string
		var nodes []string
		for _, n := range sh.Nodes {
			host, port := n.Endpoint, n.Port
			if host == "" || host == "?" {
				host = n.IP
			}
			if tls && n.TLSPort != 0 {
				port = n.TLSPort
			}
			addr := net.JoinHostPort(host, strconv.FormatInt(port, 10))
			nodes = append(nodes, addr)
			if n.Role == "master" && (master == "" || n.Health == "online") && n.Health != "failed" {
				master = addr
			}
		}
		for _, r := range sh.Slots {
			out = append(out, slotRange{start: int(r.Start), end: int(r.End), master: master, nodes: nodes})
		}
	}
	return out
}

// livePattern is a pattern some instance watches.
type livePattern struct {
	p    *pattern
	feed string
}

// clusterGroup is the local subscriptions sharing one sharded channel.
type clusterGroup struct {
	channel string
	subject string // the literal subject, or the pattern of a feed
	feed    bool
	control bool // the registry's channel: no subscriptions
	subs    map[*sub]struct{}
	shard   *shard // where it is subscribed, nil while orphaned
	ready   chan struct{}
	isRdy   bool
	// registered is closed once a feed's pattern is known to every
	// instance (regErr says when that failed); closed at once otherwise.
	registered chan struct{}
	regErr     error
	regOnce    sync.Once
}

// setRegistered records the outcome of a feed's registration, once.
func (g *clusterGroup) setRegistered(err error) {
	g.regOnce.Do(func() {
		g.regErr = err
		close(g.registered)
	})
}

func (g *clusterGroup) markReady() {
	if !g.isRdy {
		g.isRdy = true
		close(g.ready)
	}
}

// shard is the pub/sub connection to one master.
type shard struct {
	addr string
	ps   *redis.PubSub
	// guarded by the broker's mu:
	chans map[string]*clusterGroup
	fifo  []pending // commands sent, in order, not yet answered
	lost  bool
}

// pending is an SSUBSCRIBE (g set) or SUNSUBSCRIBE (g nil) awaiting its
// answer.
type pending struct {
	channel string
	g       *clusterGroup
}

// OpenRedisCluster connects to the Redis Cluster at rawURL
// ("redis+cluster://[user:password@]host:port[,host:port...][?options]",
// "rediss+cluster://" for TLS; go-redis cluster options such as
// dial_timeout are honoured). It returns once the cluster's slot map was
// read, the broker registered and its control channel subscribed, or an
// error naming the URL with its password redacted. It is bounded by ctx, or
// by 5 s when ctx has no deadline.
func OpenRedisCluster(ctx context.Context, rawURL string, opts Options) (Broker, error) {
	opts.fill()
	redacted := Redact(rawURL)
	co, err := redisurl.ParseCluster(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrUnsupportedURL, redacted, err)
	}
	if co.DialerRetries == 0 {
		co.DialerRetries = 1
	}
	if co.ClusterStateReloadInterval == 0 {
		co.ClusterStateReloadInterval = clusterStateReload
	}
	var idb [8]byte
	_, _ = rand.Read(idb[:])
	b := &RedisCluster{
		opts:    opts,
		url:     redacted,
		co:      co,
		cc:      redis.NewClusterClient(co),
		id:      hex.EncodeToString(idb[:]),
		closing: make(chan struct{}),
		routeCh: make(chan struct{}, 1),
		regCh:   make(chan struct{}, 1),
		groups:  make(map[string]*clusterGroup),
		shards:  make(map[string]*shard),
		clients: make(map[string]*redis.Client),
		orphans: make(map[string]struct{}),
		waiting: make(map[*clusterGroup]struct{}),
		stale:   true,
	}
	b.patterns.Store(&[]livePattern{})
	b.state.Store(int32(StateConnected))
	pctx, cancel := ctx, context.CancelFunc(func() {})
	if _, ok := ctx.Deadline(); !ok {
		pctx, cancel = context.WithTimeout(ctx, openTimeout)
	}
	defer cancel()
	fail := func(err error) (Broker, error) {
		b.shutdown()
		return nil, fmt.Errorf("broker: cannot reach redis cluster at %s: %w", redacted, err)
	}
	if err := b.refreshSlots(pctx); err != nil {
		return fail(err)
	}
	// The control channel, then the registry: a pattern added after the
	// heartbeat is announced on a channel already subscribed.
	g := &clusterGroup{channel: registryChannel, control: true, subs: map[*sub]struct{}{},
		ready: make(chan struct{}), registered: closedChan}
	b.cmdMu.Lock()
	b.mu.Lock()
	b.groups[g.channel] = g
	b.mu.Unlock()
	err = b.place(pctx, g)
	b.cmdMu.Unlock()
	if err != nil {
		return fail(err)
	}
	b.reachedAt.Store(time.Now().UnixNano())
	b.loopWG.Add(2)
	go b.manage()
	go b.reachLoop()
	select {
	case <-g.ready:
	case <-pctx.Done():
		return fail(fmt.Errorf("no confirmation of the control channel: %w", pctx.Err()))
	}
	if err := b.heartbeat(pctx); err != nil {
		return fail(err)
	}
	return b, nil
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// ShardChannel returns the sharded channel of a literal subject: its last
// token becomes the hash tag ("a.b.c" is "a.b.{c}"); "%", "{" and "}" are
// percent-encoded first, so distinct subjects get distinct channels.
func ShardChannel(subject string) string {
	head, last := "", subject
	if i := strings.LastIndexByte(subject, '.'); i >= 0 {
		head, last = subject[:i+1], subject[i+1:]
	}
	return escapeBraces(head) + "{" + escapeBraces(last) + "}"
}

// feedChannel is the sharded channel of a pattern's feed; no ShardChannel
// contains ">".
func feedChannel(pat string) string { return ">{" + escapeBraces(pat) + "}" }

var braceEscaper = strings.NewReplacer("%", "%25", "{", "%7B", "}", "%7D")

func escapeBraces(s string) string {
	if !strings.ContainsAny(s, "%{}") {
		return s
	}
	return braceEscaper.Replace(s)
}

// Publish sends data with one SPUBLISH to the subject's shard, and one to
// the feed of each live pattern that matches it. It returns once Redis
// accepted them, or an error when a shard cannot be reached. Publishes by
// one goroutine are delivered in order.
func (b *RedisCluster) Publish(ctx context.Context, subject string, data []byte) error {
	if b.closed.Load() {
		return ErrClosed
	}
	if err := ValidateSubject(subject); err != nil {
		return err
	}
	live := *b.patterns.Load()
	var err error
	if !slices.ContainsFunc(live, func(lp livePattern) bool { return lp.p.matchString(subject) }) {
		err = b.cc.SPublish(ctx, ShardChannel(subject), data).Err()
	} else {
		var cmds []redis.Cmder
		cmds, err = b.cc.Pipelined(ctx, func(p redis.Pipeliner) error {
			queuePublish(ctx, p, live, subject, data)
			return nil
		})
		for _, c := range cmds {
			if err == nil {
				err = c.Err()
			}
		}
	}
	if err != nil {
		if b.closed.Load() {
			return ErrClosed
		}
		// A dead master is only forgotten when the slot map is reloaded.
		b.cc.ReloadState(ctx)
		return fmt.Errorf("broker: publish to %q on %s: %w", subject, b.url, err)
	}
	return nil
}

// queuePublish queues on p a message's SPUBLISH to its subject's shard
// channel and, for each live pattern the subject matches, one to the
// pattern's feed channel ("subject data"); it returns the commands queued.
func queuePublish(ctx context.Context, p redis.Pipeliner, live []livePattern, subject string, data []byte) int {
	p.SPublish(ctx, ShardChannel(subject), data)
	n := 1
	var payload []byte
	for _, lp := range live {
		if !lp.p.matchString(subject) {
			continue
		}
		if payload == nil {
			payload = make([]byte, 0, len(subject)+1+len(data))
			payload = append(append(append(payload, subject...), ' '), data...)
		}
		p.SPublish(ctx, lp.feed, payload)
		n++
	}
	return n
}

// PublishBatch implements BatchPublisher (see the function PublishBatch):
// it sends each message as Publish does (an SPUBLISH to its subject's
// shard, one to the feed of each live pattern it matches) in pipelines of
// batchChunk messages, and stops at the first pipeline that fails.
// go-redis splits a pipeline by master node and sends each node its
// commands in order, all nodes in parallel: a chunk costs one round trip
// per node it touches, and a subject's messages, all in one slot, keep
// their order.
func (b *RedisCluster) PublishBatch(ctx context.Context, msgs []Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if b.closed.Load() {
		return ErrClosed
	}
	if err := validateBatch(msgs); err != nil {
		return err
	}
	live := *b.patterns.Load()
	var owner []int // owner[i] is the index in chunk of the i-th command's message
	for len(msgs) > 0 {
		chunk := msgs[:min(len(msgs), batchChunk)]
		msgs = msgs[len(chunk):]
		owner = owner[:0]
		cmds, err := b.cc.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, m := range chunk {
				for range queuePublish(ctx, p, live, m.Subject, m.Data) {
					owner = append(owner, i)
				}
			}
			return nil
		})
		if err == nil {
			continue
		}
		if b.closed.Load() {
			return ErrClosed
		}
		// A dead master is only forgotten when the slot map is reloaded.
		b.cc.ReloadState(ctx)
		subject := chunk[0].Subject
		if i := firstFailed(cmds); i < len(owner) {
			subject = chunk[owner[i]].Subject
		}
		return fmt.Errorf("broker: publish to %q on %s: %w", subject, b.url, err)
	}
	return nil
}

// Subscribe registers h for pattern. It returns once Redis confirmed the
// subscription (and, for a new pattern, once every live instance knows
// it), waiting at most until ctx is done (10 s when ctx has no deadline);
// on failure nothing stays registered.
func (b *RedisCluster) Subscribe(ctx context.Context, pattern string, h Handler) (Subscription, error) {
	return b.subscribeDone(ctx, pattern, handlerFunc(h))
}

func (b *RedisCluster) subscribeDone(ctx context.Context, pat string, fn deliverFunc) (Subscription, error) {
	return b.subscribe(ctx, pat, fn, false)
}

// subscribeInline registers h to run on its shard's receive loop when the
// subscription is idle (SubscribeInline).
func (b *RedisCluster) subscribeInline(ctx context.Context, pat string, h Handler) (Subscription, error) {
	return b.subscribe(ctx, pat, handlerFunc(h), !b.opts.NoInline)
}

func (b *RedisCluster) subscribe(ctx context.Context, pat string, fn deliverFunc, inline bool) (Subscription, error) {
	p, err := parse(pat)
	if err != nil {
		return nil, err
	}
	channel := ShardChannel(pat)
	if !p.literal {
		channel = feedChannel(pat)
	}
	wctx, cancel := ctx, context.CancelFunc(func() {})
	if _, ok := ctx.Deadline(); !ok {
		wctx, cancel = context.WithTimeout(ctx, subscribeTimeout)
	}
	defer cancel()

	b.cmdMu.Lock()
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		b.cmdMu.Unlock()
		return nil, ErrClosed
	}
	g := b.groups[channel]
	first := g == nil
	if first {
		g = &clusterGroup{channel: channel, subject: pat, feed: !p.literal, subs: make(map[*sub]struct{}),
			ready: make(chan struct{}), registered: closedChan}
		if g.feed {
			g.registered = make(chan struct{})
		}
		b.groups[channel] = g
	}
	s := newSub(pat, p, fn, b.opts.QueueSize, &b.subWG, inline)
	s.remove = func(s *sub) error { return b.remove(s, channel) }
	g.subs[s] = struct{}{}
	b.mu.Unlock()
	if first {
		err = b.place(wctx, g)
	}
	b.cmdMu.Unlock()
	if err != nil {
		if first && g.feed {
			g.setRegistered(err)
		}
		_ = s.Unsubscribe()
		return nil, fmt.Errorf("broker: subscribe to %q on %s: %w", pat, b.url, err)
	}
	select {
	case <-g.ready:
	case <-wctx.Done():
		if first && g.feed {
			g.setRegistered(wctx.Err())
		}
		_ = s.Unsubscribe()
		return nil, fmt.Errorf("broker: subscribe to %q on %s: no confirmation from redis: %w", pat, b.url, wctx.Err())
	case <-b.closing:
		return nil, ErrClosed
	}
	if first && g.feed {
		g.setRegistered(b.register(wctx, pat))
	}
	select {
	case <-g.registered:
		if g.regErr != nil {
			_ = s.Unsubscribe()
			return nil, fmt.Errorf("broker: subscribe to %q on %s: register the pattern: %w", pat, b.url, g.regErr)
		}
	case <-wctx.Done():
		_ = s.Unsubscribe()
		return nil, fmt.Errorf("broker: subscribe to %q on %s: pattern not registered: %w", pat, b.url, wctx.Err())
	case <-b.closing:
		return nil, ErrClosed
	}
	if b.closed.Load() {
		return nil, ErrClosed
	}
	return s, nil
}

// place subscribes g's channel on the master serving its slot. The caller
// holds cmdMu. On error g is left orphaned, for the manager to place (once
// it has no subscriptions, remove forgets it).
func (b *RedisCluster) place(ctx context.Context, g *clusterGroup) error {
	fail := func(err error) error {
		b.mu.Lock()
		b.stale = true
		if b.groups[g.channel] == g && g.shard == nil {
			b.orphan(g)
		}
		b.mu.Unlock()
		b.route()
		return err
	}
	addr, err := b.masterFor(ctx, g.channel)
	if err != nil {
		return fail(err)
	}
	sh, err := b.shardFor(ctx, addr)
	if err != nil {
		return fail(err)
	}
	b.mu.Lock()
	if b.groups[g.channel] != g {
		b.mu.Unlock()
		return errors.New("subscription removed while placing it")
	}
	if sh.lost {
		b.mu.Unlock()
		return fail(fmt.Errorf("pub/sub connection to %s lost", addr))
	}
	g.shard = sh
	sh.chans[g.channel] = g
	sh.fifo = append(sh.fifo, pending{channel: g.channel, g: g})
	delete(b.orphans, g.channel)
	b.mu.Unlock()
	// The command goes on the shared connection: the caller's
	// cancellation must not break it.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pingTimeout)
	defer cancel()
	if err := sh.ps.SSubscribe(cctx, g.channel); err != nil {
		b.shardLost(sh, err)
		return err
	}
	return nil
}

// remove unregisters s; the last subscription of a channel unsubscribes it.
func (b *RedisCluster) remove(s *sub, channel string) error {
	b.cmdMu.Lock()
	defer b.cmdMu.Unlock()
	b.mu.Lock()
	g := b.groups[channel]
	if g == nil {
		b.mu.Unlock()
		return nil
	}
	delete(g.subs, s)
	if len(g.subs) > 0 {
		b.mu.Unlock()
		return nil
	}
	delete(b.groups, channel)
	delete(b.orphans, channel)
	delete(b.waiting, g)
	sh := g.shard
	if sh != nil && !sh.lost {
		delete(sh.chans, channel)
		sh.fifo = append(sh.fifo, pending{channel: channel})
	} else {
		sh = nil
	}
	b.mu.Unlock()
	b.updateState()
	if b.closed.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
	defer cancel()
	if sh != nil {
		if err := sh.ps.SUnsubscribe(ctx, channel); err != nil {
			b.opts.Logger.Debug("broker: redis cluster unsubscribe failed", "subject", s.pattern, "err", err)
		}
	}
	if g.feed {
		if err := b.cc.HDel(ctx, registryKey, "p "+b.id+" "+g.subject).Err(); err != nil {
			b.opts.Logger.Debug("broker: redis cluster pattern removal failed", "pattern", g.subject, "err", err)
		}
	}
	return nil
}

// masterFor returns the address of the master serving channel's slot.
func (b *RedisCluster) masterFor(ctx context.Context, channel string) (string, error) {
	b.mu.RLock()
	stale := b.stale
	b.mu.RUnlock()
	if stale {
		if err := b.refreshSlots(ctx); err != nil {
			return "", err
		}
	}
	slot := int(Slot(channel))
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, s := range b.slots {
		if slot >= s.start && slot <= s.end && s.master != "" {
			return s.master, nil
		}
	}
	return "", fmt.Errorf("no master serves slot %d", slot)
}

// refreshSlots reads the slot map (CLUSTER SHARDS) from the first node
// that answers: every node of the last map, the masters last, then the
// seed nodes.
func (b *RedisCluster) refreshSlots(ctx context.Context) error {
	b.mu.RLock()
	var addrs []string
	seen := map[string]bool{}
	add := func(a string) {
		if !seen[a] {
			seen[a] = true
			addrs = append(addrs, a)
		}
	}
	for _, s := range b.slots {
		for _, n := range s.nodes {
			if n != s.master {
				add(n)
			}
		}
	}
	for _, s := range b.slots {
		if s.master != "" {
			add(s.master)
		}
	}
	for _, a := range b.co.Addrs {
		add(a)
	}
	b.mu.RUnlock()
	var firstErr error
	for _, a := range addrs {
		c := b.nodeClient(a)
		if c == nil {
			return ErrClosed
		}
		sctx, cancel := context.WithTimeout(ctx, slotsTimeout)
		shards, err := c.ClusterShards(sctx).Result()
		cancel()
		slots := slotTable(shards, b.co.TLSConfig != nil)
		if err == nil && len(slots) > 0 {
			b.mu.Lock()
			b.slots = slots
			b.stale = false
			b.mu.Unlock()
			return nil
		}
		if err == nil {
			err = fmt.Errorf("node %s serves no slot", a)
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("read the slot map: %w", firstErr)
}

// nodeClient returns the client of the node at addr (nil after Close).
func (b *RedisCluster) nodeClient(addr string) *redis.Client {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.clients == nil {
		return nil
	}
	c := b.clients[addr]
	if c == nil {
		o := redisurl.NodeOptions(b.co, addr)
		o.DialerRetries = 1
		o.MaxRetries = -1
		c = redis.NewClient(o)
		b.clients[addr] = c
	}
	return c
}

// shardFor returns the live connection to the master at addr, dialling it
// when there is none.
func (b *RedisCluster) shardFor(ctx context.Context, addr string) (*shard, error) {
	b.mu.RLock()
	sh := b.shards[addr]
	b.mu.RUnlock()
	if sh != nil {
		return sh, nil
	}
	c := b.nodeClient(addr)
	if c == nil {
		return nil, ErrClosed
	}
	ps := c.SSubscribe(ctx) // no channels: it dials on first use
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	err := ps.Ping(pctx)
	cancel()
	if err != nil {
		_ = ps.Close()
		return nil, fmt.Errorf("pub/sub connection to %s: %w", addr, err)
	}
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		_ = ps.Close()
		return nil, ErrClosed
	}
	if old := b.shards[addr]; old != nil {
		b.mu.Unlock()
		_ = ps.Close()
		return old, nil
	}
	sh = &shard{addr: addr, ps: ps, chans: make(map[string]*clusterGroup)}
	b.shards[addr] = sh
	b.loopWG.Add(1)
	b.mu.Unlock()
	go b.receive(sh)
	return sh, nil
}

// receive reads one shard's connection until it is lost or the broker
// closes. It never blocks on a subscription.
func (b *RedisCluster) receive(sh *shard) {
	defer b.loopWG.Done()
	ctx := context.Background()
	pinged := false
	for {
		msg, err := sh.ps.ReceiveTimeout(ctx, healthInterval)
		if b.closed.Load() {
			return
		}
		if err != nil {
			var rerr redis.Error
			var nerr net.Error
			switch {
			case errors.As(err, &rerr):
				// The answer to a command (MOVED, CLUSTERDOWN).
				b.commandFailed(sh, err)
				continue
			case !pinged && errors.As(err, &nerr) && nerr.Timeout():
				if perr := sh.ps.Ping(ctx); perr == nil {
					pinged = true
					continue
				}
			}
			b.shardLost(sh, err)
			return
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Message:
			b.dispatch(m)
		case *redis.Subscription:
			switch m.Kind {
			case "ssubscribe":
				b.confirmed(sh, m.Channel)
			case "sunsubscribe":
				b.unsubscribed(sh, m.Channel)
			}
		}
	}
}

// dispatch hands m to the local subscriptions of its channel. They are
// collected first and served without the lock: an inline handler runs
// here, and may subscribe or unsubscribe.
func (b *RedisCluster) dispatch(m *redis.Message) {
	var buf [4]*sub
	subs := buf[:0]
	b.mu.RLock()
	g := b.groups[m.Channel]
	if g == nil {
		b.mu.RUnlock()
		return
	}
	if g.control {
		b.mu.RUnlock()
		select {
		case b.regCh <- struct{}{}:
		default:
		}
		return
	}
	subject, payload := g.subject, m.Payload
	if g.feed {
		var ok bool
		if subject, payload, ok = strings.Cut(payload, " "); !ok || !isLiteral(subject) {
			b.mu.RUnlock()
			return
		}
	}
	for s := range g.subs {
		if !g.feed || s.filter.matchString(subject) {
			subs = append(subs, s)
		}
	}
	b.mu.RUnlock()
	deliverAll(subs, subject, payload)
}

// confirmed handles an SSUBSCRIBE's answer.
func (b *RedisCluster) confirmed(sh *shard, channel string) {
	b.mu.Lock()
	if len(sh.fifo) == 0 {
		b.mu.Unlock()
		return
	}
	p := sh.fifo[0]
	sh.fifo = sh.fifo[1:]
	if p.g != nil && p.channel == channel && b.groups[channel] == p.g && p.g.shard == sh {
		p.g.markReady()
		delete(b.waiting, p.g)
	}
	b.mu.Unlock()
	b.updateState()
}

// unsubscribed handles an SUNSUBSCRIBE's answer, or Redis's own
// unsubscription of a channel whose slot moved away: that channel is
// subscribed again where it now lives.
func (b *RedisCluster) unsubscribed(sh *shard, channel string) {
	b.mu.Lock()
	if len(sh.fifo) > 0 && sh.fifo[0].g == nil && sh.fifo[0].channel == channel {
		sh.fifo = sh.fifo[1:]
		b.mu.Unlock()
		return
	}
	moved := false
	if g := b.groups[channel]; g != nil && g.shard == sh {
		b.orphan(g)
		b.stale = true
		moved = true
	}
	b.mu.Unlock()
	if moved {
		b.opts.Logger.Info("broker: redis cluster moved a channel's slot; subscribing where it lives now", "channel", channel)
		b.route()
		b.updateState()
	}
}

// commandFailed handles an error answer to the oldest command in flight.
func (b *RedisCluster) commandFailed(sh *shard, err error) {
	b.mu.Lock()
	if len(sh.fifo) == 0 {
		b.mu.Unlock()
		return
	}
	p := sh.fifo[0]
	sh.fifo = sh.fifo[1:]
	failed := p.g != nil && b.groups[p.channel] == p.g && p.g.shard == sh
	if failed {
		b.orphan(p.g)
		b.stale = true
	}
	b.mu.Unlock()
	if failed {
		b.opts.Logger.Debug("broker: redis cluster refused a subscription; routing it again", "channel", p.channel, "err", err)
		b.route()
		b.updateState()
	}
}

// orphan detaches g from its shard; the manager places it again. Callers
// hold mu.
func (b *RedisCluster) orphan(g *clusterGroup) {
	if g.shard != nil {
		delete(g.shard.chans, g.channel)
	}
	g.shard = nil
	b.orphans[g.channel] = struct{}{}
	b.waiting[g] = struct{}{}
}

// shardLost forgets a broken connection and orphans its channels.
func (b *RedisCluster) shardLost(sh *shard, err error) {
	b.mu.Lock()
	if sh.lost {
		b.mu.Unlock()
		return
	}
	sh.lost = true
	if b.shards[sh.addr] == sh {
		delete(b.shards, sh.addr)
	}
	for _, g := range sh.chans {
		b.orphan(g)
	}
	sh.fifo = nil
	b.stale = true
	b.mu.Unlock()
	_ = sh.ps.Close()
	if b.closed.Load() {
		return
	}
	b.opts.Logger.Warn("broker: redis cluster pub/sub connection lost", "url", b.url, "node", sh.addr, "err", err)
	b.route()
	b.updateState()
}

// route asks the manager to place the orphaned channels.
func (b *RedisCluster) route() {
	select {
	case b.routeCh <- struct{}{}:
	default:
	}
}

// manage places orphaned channels (with a backoff while that fails) and
// refreshes the registry every heartbeatInterval and when told to.
func (b *RedisCluster) manage() {
	defer b.loopWG.Done()
	hb := time.NewTicker(heartbeatInterval)
	defer hb.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	backoff := time.Duration(0)
	for {
		select {
		case <-b.closing:
			return
		case <-hb.C:
			b.heartbeatLogged()
		case <-b.regCh:
			b.heartbeatLogged()
		case <-b.routeCh:
		case <-retry.C:
		}
		if b.placeOrphans() {
			backoff = 0
			continue
		}
		backoff = min(max(2*backoff, minBackoff), maxBackoff)
		retry.Reset(backoff)
	}
}

// placeOrphans subscribes every orphaned channel where it lives now; it
// reports whether none is left.
func (b *RedisCluster) placeOrphans() bool {
	b.mu.RLock()
	var list []*clusterGroup
	for ch := range b.orphans {
		list = append(list, b.groups[ch])
	}
	b.mu.RUnlock()
	if len(list) == 0 {
		return true
	}
	ok := true
	for _, g := range list {
		if b.closed.Load() {
			return true
		}
		b.cmdMu.Lock()
		b.mu.RLock()
		_, still := b.orphans[g.channel]
		still = still && b.groups[g.channel] == g
		b.mu.RUnlock()
		var err error
		if still {
			ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
			err = b.place(ctx, g)
			cancel()
		}
		b.cmdMu.Unlock()
		if err != nil {
			ok = false
			b.opts.Logger.Debug("broker: redis cluster resubscribe failed, retrying", "channel", g.channel, "err", err)
		}
	}
	b.updateState()
	return ok
}

// updateState sets StateReconnecting while a channel is orphaned or not
// confirmed again, StateConnected otherwise.
func (b *RedisCluster) updateState() {
	b.stateMu.Lock()
	defer b.stateMu.Unlock()
	if b.closed.Load() {
		return
	}
	b.mu.RLock()
	s := StateConnected
	if len(b.orphans) > 0 || len(b.waiting) > 0 {
		s = StateReconnecting
	}
	b.mu.RUnlock()
	if State(b.state.Swap(int32(s))) == s {
		return
	}
	if s == StateConnected {
		b.opts.Logger.Info("broker: redis cluster subscriptions restored", "url", b.url)
	}
	if f := b.opts.OnStateChange; f != nil {
		f(s)
	}
}

// unreachableAfter is how long no master may answer before ReachesNone
// says so: a few rounds of reachLoop.
const unreachableAfter = 3 * heartbeatInterval

// reachLoop PINGs every master each heartbeatInterval and records when one
// answered (ReachesNone).
func (b *RedisCluster) reachLoop() {
	defer b.loopWG.Done()
	t := time.NewTicker(heartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-b.closing:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
		// The masters' errors do not matter: one answer is enough.
		_ = b.cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			if c.Ping(ctx).Err() == nil {
				b.reachedAt.Store(time.Now().UnixNano())
			}
			return nil
		})
		cancel()
	}
}

// ReachesNone implements Reacher: no master of the cluster has answered a
// PING for a few seconds. A failing-over master turns State to
// StateReconnecting but leaves ReachesNone false while the others answer.
func (b *RedisCluster) ReachesNone() bool {
	return time.Since(time.Unix(0, b.reachedAt.Load())) > unreachableAfter
}

// State reports StateConnected while every subscribed channel is
// confirmed on the master serving it, StateReconnecting while some are
// being subscribed again (a connection was lost or a slot moved),
// StateClosed after Close.
func (b *RedisCluster) State() State {
	if b.closed.Load() {
		return StateClosed
	}
	return State(b.state.Load())
}

// The registry's scripts; KEYS[1] is registryKey. Times are Redis's own.
var (
	// heartbeatScript refreshes instance ARGV[1] (for ARGV[2] ms) and its
	// patterns ARGV[4:] (for ARGV[3] ms), drops what expired, and returns
	// the generation followed by the live patterns.
	heartbeatScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = ARGV[1]
redis.call('HSET', KEYS[1], 'i ' .. id, now + tonumber(ARGV[2]))
for i = 4, #ARGV do
  redis.call('HSET', KEYS[1], 'p ' .. id .. ' ' .. ARGV[i], now + tonumber(ARGV[3]))
end
local out = {redis.call('HGET', KEYS[1], 'gen') or '0'}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local f, v = all[i], all[i + 1]
  local kind = string.sub(f, 1, 2)
  if kind == 'i ' or kind == 'p ' then
    if tonumber(v) <= now then
      redis.call('HDEL', KEYS[1], f)
      if kind == 'i ' then redis.call('HDEL', KEYS[1], 'a ' .. string.sub(f, 3)) end
    elseif kind == 'p ' then
      local sp = string.find(f, ' ', 3, true)
      table.insert(out, string.sub(f, sp + 1))
    end
  end
end
return out
`)
	// addScript registers pattern ARGV[3] of instance ARGV[1] for ARGV[2]
	// ms and returns the new generation.
	addScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'p ' .. ARGV[1] .. ' ' .. ARGV[3], now + tonumber(ARGV[2]))
return redis.call('HINCRBY', KEYS[1], 'gen', 1)
`)
	// ackScript records that instance ARGV[1] loaded generation ARGV[2].
	ackScript = redis.NewScript(`
local f = 'a ' .. ARGV[1]
if tonumber(redis.call('HGET', KEYS[1], f) or '0') < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], f, ARGV[2])
end
return 1
`)
	// laggingScript counts the live instances that have not loaded
	// generation ARGV[1].
	laggingScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local gen = tonumber(ARGV[1])
local all = redis.call('HGETALL', KEYS[1])
local n = 0
for i = 1, #all, 2 do
  local f, v = all[i], all[i + 1]
  if string.sub(f, 1, 2) == 'i ' and tonumber(v) > now then
    local a = tonumber(redis.call('HGET', KEYS[1], 'a ' .. string.sub(f, 3)) or '0')
    if a < gen then n = n + 1 end
  end
end
return n
`)
	// leaveScript removes instance ARGV[1] and its patterns.
	leaveScript = redis.NewScript(`
local id = ARGV[1]
redis.call('HDEL', KEYS[1], 'i ' .. id, 'a ' .. id)
local prefix = 'p ' .. id .. ' '
local all = redis.call('HKEYS', KEYS[1])
for _, f in ipairs(all) do
  if string.sub(f, 1, #prefix) == prefix then redis.call('HDEL', KEYS[1], f) end
end
return 1
`)
)

// heartbeat refreshes this instance and its patterns in the registry,
// loads the live patterns and acknowledges their generation.
func (b *RedisCluster) heartbeat(ctx context.Context) error {
	args := []any{b.id, instanceTTL.Milliseconds(), patternTTL.Milliseconds()}
	b.mu.RLock()
	for _, g := range b.groups {
		if g.feed {
			args = append(args, g.subject)
		}
	}
	b.mu.RUnlock()
	res, err := heartbeatScript.Run(ctx, b.cc, []string{registryKey}, args...).StringSlice()
	if err != nil {
		return fmt.Errorf("pattern registry heartbeat: %w", err)
	}
	if len(res) == 0 {
		return errors.New("pattern registry heartbeat: empty reply")
	}
	gen, err := strconv.ParseInt(res[0], 10, 64)
	if err != nil {
		return fmt.Errorf("pattern registry heartbeat: generation %q: %w", res[0], err)
	}
	seen := map[string]bool{}
	live := []livePattern{}
	for _, pat := range res[1:] {
		if seen[pat] {
			continue
		}
		seen[pat] = true
		if p, err := parse(pat); err == nil && !p.literal {
			live = append(live, livePattern{p: p, feed: feedChannel(pat)})
		}
	}
	b.patterns.Store(&live)
	if err := ackScript.Run(ctx, b.cc, []string{registryKey}, b.id, gen).Err(); err != nil {
		return fmt.Errorf("pattern registry ack: %w", err)
	}
	return nil
}

func (b *RedisCluster) heartbeatLogged() {
	ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
	defer cancel()
	if err := b.heartbeat(ctx); err != nil && !b.closed.Load() {
		b.opts.Logger.Debug("broker: redis cluster heartbeat failed", "url", b.url, "err", err)
	}
}

// register adds pat to the registry, announces it and waits until every
// live instance has loaded it, or ackWait passed.
func (b *RedisCluster) register(ctx context.Context, pat string) error {
	gen, err := addScript.Run(ctx, b.cc, []string{registryKey}, b.id, patternTTL.Milliseconds(), pat).Int64()
	if err != nil {
		return err
	}
	if err := b.cc.SPublish(ctx, registryChannel, strconv.FormatInt(gen, 10)).Err(); err != nil {
		return err
	}
	deadline := time.Now().Add(ackWait)
	for {
		n, err := laggingScript.Run(ctx, b.cc, []string{registryKey}, gen).Int64()
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			b.opts.Logger.Warn("broker: redis cluster instances did not acknowledge a new pattern in time (dead without Close?)",
				"pattern", pat, "instances", n)
			return nil
		}
		t := time.NewTimer(ackPoll)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-b.closing:
			t.Stop()
			return ErrClosed
		}
	}
}

// Close stops every subscription, leaves the registry, closes every
// connection and waits for every goroutine the broker started. It is
// idempotent.
func (b *RedisCluster) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	b.stateMu.Lock()
	b.state.Store(int32(StateClosed))
	if f := b.opts.OnStateChange; f != nil {
		f(StateClosed)
	}
	b.stateMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
	defer cancel()
	err := leaveScript.Run(ctx, b.cc, []string{registryKey}, b.id).Err()
	b.shutdown()
	if err != nil {
		return fmt.Errorf("broker: close redis cluster %s: leave the pattern registry: %w", b.url, err)
	}
	return nil
}

// shutdown releases everything (Close, or a failed Open).
func (b *RedisCluster) shutdown() {
	b.closed.Store(true)
	select {
	case <-b.closing:
	default:
		close(b.closing)
	}
	b.cmdMu.Lock()
	b.mu.Lock()
	for _, g := range b.groups {
		for s := range g.subs {
			s.stop()
		}
		g.markReady()
	}
	shards := b.shards
	clients := b.clients
	b.groups = make(map[string]*clusterGroup)
	b.shards = make(map[string]*shard)
	b.clients = nil
	b.orphans = make(map[string]struct{})
	b.waiting = make(map[*clusterGroup]struct{})
	b.mu.Unlock()
	b.cmdMu.Unlock()
	for _, sh := range shards {
		_ = sh.ps.Close() // ends its receive loop
	}
	b.loopWG.Wait()
	for _, c := range clients {
		_ = c.Close()
	}
	_ = b.cc.Close()
	b.subWG.Wait()
}

// Slot returns the Redis Cluster hash slot of key (CRC16 of its hash tag,
// modulo 16384).
func Slot(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for k := 0; k < len(key); k++ {
		crc ^= uint16(key[k]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc % 16384
}
