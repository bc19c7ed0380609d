package broker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/livechat/livechat/pkg/broker"
	"github.com/livechat/livechat/pkg/broker/brokertest"
	"github.com/livechat/livechat/pkg/history"
	"github.com/livechat/livechat/pkg/protocol"
)

func TestRedisClusterConformance(t *testing.T) {
	c := brokertest.StartRedisCluster(t)
	newBroker := func(t testing.TB, o broker.Options) broker.Broker {
		return openRedis(t, c.URL, o)
	}
	brokertest.Run(t, newBroker)
	brokertest.RunInline(t, newBroker)
}

func TestShardChannel(t *testing.T) {
	t.Parallel()
	for subject, want := range map[string]string{
		"livechat.room.general": "livechat.room.{general}",
		"x":                     "{x}",
		"a.b{c}":                "a.{b%7Bc%7D}",
		"a{.b":                  "a%7B.{b}",
		"a.%7Bb":                "a.{%257Bb}",
		"a.}":                   "a.{%7D}",
	} {
		if got := broker.ShardChannel(subject); got != want {
			t.Errorf("ShardChannel(%q) = %q, want %q", subject, got, want)
		}
	}
	// The channel of a room and its history keys share a slot.
	if a, b := broker.Slot(broker.ShardChannel("lc.room.general")), broker.Slot("lc:history:{general}:seq"); a != b {
		t.Errorf("slot of the room's channel %d, of its history %d", a, b)
	}
	// Known slots (CLUSTER KEYSLOT).
	for key, want := range map[string]uint16{"foo": 12182, "{user1000}.following": 3443, "": 0} {
		if got := broker.Slot(key); got != want {
			t.Errorf("Slot(%q) = %d, want %d", key, got, want)
		}
	}
}

func TestRedisClusterURL(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, u := range []string{"redis+cluster://:s3cret@h:1,h:2/3", "redis+cluster://u:s3cret@h:1,nope", "redis+cluster://u:s3cret@h:1?bogus=1"} {
		b, err := broker.Open(ctx, u, broker.Options{})
		if err == nil {
			_ = b.Close()
			t.Errorf("Open(%q) succeeded", u)
			continue
		}
		if !errors.Is(err, broker.ErrUnsupportedURL) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open(%q) = %v, want ErrUnsupportedURL without the password", u, err)
		}
	}
	if got, want := broker.Redact("redis+cluster://u:s3cret@h:1,h:2?dial_timeout=1s"), "redis+cluster://u:xxxxx@h:1,h:2?dial_timeout=1s"; got != want {
		t.Errorf("Redact = %q, want %q", got, want)
	}
	// Nothing listens there.
	b, err := broker.Open(ctx, "rediss+cluster://:s3cret@127.0.0.1:1,127.0.0.1:2?dial_timeout=200ms", broker.Options{})
	if err == nil {
		_ = b.Close()
		t.Fatal("Open succeeded with nothing listening")
	}
	if msg := err.Error(); !strings.Contains(msg, "cannot reach redis cluster") || strings.Contains(msg, "s3cret") {
		t.Errorf("Open error %q: want 'cannot reach redis cluster' and no password", msg)
	}
}

// clusterRoom is the failover test's view of one room, as a server has it:
// messages are appended to the history (acknowledged with a seq), then
// published; a subscriber delivers them in seq order, fetching from the
// history what the broker lost, and drops what it already delivered.
type clusterRoom struct {
	mu        sync.Mutex
	last      uint64
	delivered []uint64
	live      int // delivered from the broker, not fetched
	lastLive  time.Time
	maxPause  time.Duration
}

func TestRedisClusterFailover(t *testing.T) {
	check := brokertest.GoroutineCheck(t)
	defer check()
	c := brokertest.StartRedisCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const room = "busy"
	p := brokertest.Prefix(t)
	subject := p + ".room." + room
	hopts := history.Options{KeyPrefix: p + ":history"}
	victim := c.MasterOf(hopts.KeyPrefix + ":{" + room + "}:seq")
	if got := c.MasterOf(broker.ShardChannel(subject)); got != victim {
		t.Fatalf("the room's channel is on %s, its history on %s", got.Addr, victim.Addr)
	}

	h, err := history.Open(ctx, c.URL, hopts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = h.Close() }()
	pubLog, subLog := &stateLog{}, &stateLog{}
	pub := openRedis(t, c.URL, broker.Options{OnStateChange: pubLog.record})
	defer func() { _ = pub.Close() }()
	sub := openRedis(t, c.URL, broker.Options{OnStateChange: subLog.record})
	defer func() { _ = sub.Close() }()

	// Two subscriptions: the room's subject, and a pattern watcher (its
	// feed lives wherever its slot is).
	var rooms [2]clusterRoom
	var wg sync.WaitGroup
	done := make(chan struct{})
	for i, pat := range []string{subject, p + ".room.*"} {
		r := &rooms[i]
		ch := make(chan broker.Message, 10000)
		if _, err := broker.SubscribeChan(ctx, sub, pat, ch); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { r.consume(ctx, t, h, room, ch, done) })
	}

	// Two publishers, as two servers: append (retrying with the dedup key
	// until acknowledged), then publish once (a failed publish is only
	// logged: the subscriber fetches the gap from the history).
	var acked sync.Map // seq -> text
	var ackedN, pubErrs atomic.Int64
	stop := make(chan struct{})
	var pubWG sync.WaitGroup
	for w := range 2 {
		pubWG.Go(func() {
			tick := time.NewTicker(4 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				text := fmt.Sprintf("w%d-%d", w, i)
				m := &protocol.Message{Room: room, ID: text, From: "p", Text: text}
				var seq uint64
				for {
					actx, acancel := context.WithTimeout(ctx, 2*time.Second)
					var err error
					seq, _, err = h.Append(actx, m, text)
					acancel()
					if err == nil {
						break
					}
					if ctx.Err() != nil {
						return
					}
					time.Sleep(20 * time.Millisecond) // retry backoff, as a client resends
				}
				if _, dup := acked.LoadOrStore(seq, text); dup {
					t.Errorf("seq %d acknowledged twice", seq)
				}
				ackedN.Add(1)
				if err := pub.Publish(ctx, subject, []byte(strconv.FormatUint(seq, 10))); err != nil {
					pubErrs.Add(1)
				}
			}
		})
	}
	var stopOnce, doneOnce sync.Once
	defer func() { // also when the test fails early
		stopOnce.Do(func() { close(stop) })
		pubWG.Wait()
		doneOnce.Do(func() { close(done) })
		wg.Wait()
	}()
	waitAcked := func(n int64) {
		brokertest.WaitFor(t, 60*time.Second, fmt.Sprintf("%d acknowledged messages", n), func() bool { return ackedN.Load() >= n })
	}
	waitAcked(200)
	killedAt := time.Now()
	victim.Kill()
	brokertest.WaitFor(t, 30*time.Second, "the subscriber's broker reconnecting", func() bool {
		_, ok := subLog.seen(0, broker.StateReconnecting)
		return ok
	})
	// While the room's master fails over the others answer: the broker
	// is degraded, not cut off (a server keeps its clients).
	var cutOff atomic.Bool
	brokertest.WaitFor(t, 30*time.Second, "the subscriber's broker connected again", func() bool {
		if broker.Unreachable(sub) {
			cutOff.Store(true)
		}
		i, _ := subLog.seen(0, broker.StateReconnecting)
		_, ok := subLog.seen(i, broker.StateConnected)
		return ok && sub.State() == broker.StateConnected
	})
	if cutOff.Load() {
		t.Errorf("broker.Unreachable during the failover of one master of three")
	}
	t.Logf("subscriber reconnected %v after the kill", time.Since(killedAt))
	c.WaitHealthy(30 * time.Second)
	if got := c.MasterOf(broker.ShardChannel(subject)); got == victim {
		t.Fatalf("the killed master %s still serves the room", victim.Addr)
	}
	waitAcked(ackedN.Load() + 200)
	stopOnce.Do(func() { close(stop) })
	pubWG.Wait()
	total := uint64(ackedN.Load())
	for i := range rooms {
		r := &rooms[i]
		brokertest.WaitFor(t, 30*time.Second, "every acknowledged message delivered", func() bool {
			r.mu.Lock()
			defer r.mu.Unlock()
			return r.last >= total
		})
	}
	doneOnce.Do(func() { close(done) })
	wg.Wait()

	// Every acknowledged seq is 1..total, each once, with its message in
	// the history.
	stored, err := h.After(ctx, room, 0, history.MaxPage)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(stored)) != total {
		t.Errorf("history holds %d messages, %d acknowledged", len(stored), total)
	}
	for i, m := range stored {
		want, ok := acked.Load(m.Seq)
		if m.Seq != uint64(i+1) || !ok || want != m.Text {
			t.Fatalf("history message %d: seq %d text %q, acknowledged %q", i, m.Seq, m.Text, want)
		}
	}
	for i := range rooms {
		r := &rooms[i]
		want := make([]uint64, total)
		for j := range want {
			want[j] = uint64(j + 1)
		}
		if !slices.Equal(r.delivered, want) {
			t.Errorf("subscription %d delivered %d messages, not 1..%d in order", i, len(r.delivered), total)
		}
		t.Logf("subscription %d: %d messages, %d live, longest pause %v", i, len(r.delivered), r.live, r.maxPause)
		if r.maxPause < 200*time.Millisecond {
			t.Errorf("subscription %d: longest pause %v, want the failover to show", i, r.maxPause)
		}
		if r.live < int(total)/2 {
			t.Errorf("subscription %d: only %d of %d messages came live", i, r.live, total)
		}
	}
	t.Logf("%d acknowledged, %d publishes failed, publisher broker states %v", total, pubErrs.Load(), pubLog.states)
}

// consume delivers the room's messages in seq order until done.
func (r *clusterRoom) consume(ctx context.Context, t *testing.T, h history.Store, room string, ch <-chan broker.Message, done <-chan struct{}) {
	for {
		var m broker.Message
		select {
		case m = <-ch:
		case <-done:
			return
		}
		seq, err := strconv.ParseUint(string(m.Data), 10, 64)
		if err != nil {
			t.Errorf("bad payload %q", m.Data)
			continue
		}
		r.mu.Lock()
		last := r.last
		r.mu.Unlock()
		if seq <= last {
			continue // fetched from the history already
		}
		for seq > last+1 {
			// A gap: fetch it.
			ms, err := h.After(ctx, room, last, int(seq-last-1))
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				time.Sleep(20 * time.Millisecond) // retry backoff
				continue
			}
			r.mu.Lock()
			for _, hm := range ms {
				if hm.Seq == r.last+1 {
					r.delivered = append(r.delivered, hm.Seq)
					r.last = hm.Seq
				}
			}
			last = r.last
			r.mu.Unlock()
		}
		now := time.Now()
		r.mu.Lock()
		r.delivered = append(r.delivered, seq)
		r.last = seq
		r.live++
		if !r.lastLive.IsZero() && now.Sub(r.lastLive) > r.maxPause {
			r.maxPause = now.Sub(r.lastLive)
		}
		r.lastLive = now
		r.mu.Unlock()
	}
}

// TestRedisClusterSlotMove moves the slot of a busy subject to another
// master (CLUSTER SETSLOT, as `redis-cli --cluster reshard` does): the
// old master unsubscribes the subscribers itself, and the broker
// subscribes again on the new one, so delivery goes on.
func TestRedisClusterSlotMove(t *testing.T) {
	check := brokertest.GoroutineCheck(t)
	defer check()
	c := brokertest.StartRedisCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := brokertest.Prefix(t)
	subject := p + ".room.moving"
	channel := broker.ShardChannel(subject)
	from := c.MasterOf(channel)
	var to *brokertest.ClusterNode
	for _, n := range c.Nodes {
		if n != from && isMaster(ctx, t, n.Addr) {
			to = n
			break
		}
	}
	subLog := &stateLog{}
	sub := openRedis(t, c.URL, broker.Options{OnStateChange: subLog.record})
	defer func() { _ = sub.Close() }()
	pub := openRedis(t, c.URL, broker.Options{})
	defer func() { _ = pub.Close() }()
	var got atomic.Int64
	var last atomic.Int64
	if _, err := sub.Subscribe(ctx, subject, func(m broker.Message) {
		n, _ := strconv.ParseInt(string(m.Data), 10, 64)
		last.Store(n)
		got.Add(1)
	}); err != nil {
		t.Fatal(err)
	}
	var sent atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if err := pub.Publish(ctx, subject, []byte(strconv.FormatInt(sent.Load()+1, 10))); err == nil {
				sent.Add(1)
			}
		}
	})
	defer func() {
		close(stop)
		wg.Wait()
	}()
	brokertest.WaitFor(t, 10*time.Second, "messages before the move", func() bool { return got.Load() >= 50 })

	slot := int64(broker.Slot(channel))
	admin := func(addr string) *redis.Client {
		a := redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { _ = a.Close() })
		return a
	}
	fromID, err := admin(from.Addr).ClusterMyID(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	toID, err := admin(to.Addr).ClusterMyID(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		addr string
		args []any
	}{
		{to.Addr, []any{"CLUSTER", "SETSLOT", slot, "IMPORTING", fromID}},
		{from.Addr, []any{"CLUSTER", "SETSLOT", slot, "MIGRATING", toID}},
		{to.Addr, []any{"CLUSTER", "SETSLOT", slot, "NODE", toID}},
		{from.Addr, []any{"CLUSTER", "SETSLOT", slot, "NODE", toID}},
	}
	for _, s := range steps {
		if err := admin(s.addr).Do(ctx, s.args...).Err(); err != nil {
			t.Fatalf("%v on %s: %v", s.args, s.addr, err)
		}
	}
	movedAt := time.Now()
	brokertest.WaitFor(t, 20*time.Second, "the subscription on the new master", func() bool {
		n, err := admin(to.Addr).PubSubShardNumSub(ctx, channel).Result()
		return err == nil && n[channel] == 1
	})
	t.Logf("subscribed on the new master %v after the move", time.Since(movedAt))
	brokertest.WaitFor(t, 10*time.Second, "the broker connected", func() bool { return sub.State() == broker.StateConnected })
	// Everything published from now on arrives.
	base := sent.Load()
	brokertest.WaitFor(t, 20*time.Second, "messages after the move", func() bool { return last.Load() >= base+50 })
	t.Logf("%d sent, %d received across the move; states %v", sent.Load(), got.Load(), subLog.states)
	if n, err := admin(from.Addr).PubSubShardNumSub(ctx, channel).Result(); err != nil || n[channel] != 0 {
		t.Errorf("old master still has %v subscribers (%v)", n, err)
	}
}

func isMaster(ctx context.Context, t *testing.T, addr string) bool {
	a := redis.NewClient(&redis.Options{Addr: addr})
	defer func() { _ = a.Close() }()
	info, err := a.Info(ctx, "replication").Result()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(info, "role:master")
}

// TestRedisClusterPatternCost: without a pattern watcher a publish is one
// SPUBLISH; while one watches a matching pattern it is two (the subject's
// and the pattern's feed); once the watcher is gone it is one again.
func TestRedisClusterPatternCost(t *testing.T) {
	c := brokertest.StartRedisCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pub := openRedis(t, c.URL, broker.Options{})
	defer func() { _ = pub.Close() }()
	watcher := openRedis(t, c.URL, broker.Options{})
	defer func() { _ = watcher.Close() }()
	cc := c.Client()
	spublishes := func() int64 {
		var n atomic.Int64
		err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			stats, err := m.Info(ctx, "commandstats").Result()
			if err != nil {
				return err
			}
			for _, line := range strings.Split(stats, "\n") {
				if rest, ok := strings.CutPrefix(line, "cmdstat_spublish:calls="); ok {
					v, _ := strconv.ParseInt(rest[:strings.IndexByte(rest, ',')], 10, 64)
					n.Add(v)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return n.Load()
	}
	// cost publishes one message and returns the SPUBLISHes it took.
	cost := func() int64 {
		before := spublishes()
		if err := pub.Publish(ctx, "pc.room.a", []byte("x")); err != nil {
			t.Fatal(err)
		}
		return spublishes() - before
	}
	if n := cost(); n != 1 {
		t.Errorf("a publish without watchers took %d SPUBLISH, want 1", n)
	}
	ch := make(chan broker.Message, 4)
	s, err := broker.SubscribeChan(ctx, watcher, "pc.room.*", ch)
	if err != nil {
		t.Fatal(err)
	}
	// Subscribe returned: the publisher knows the pattern already.
	if n := cost(); n != 2 {
		t.Errorf("a publish with a watcher took %d SPUBLISH, want 2", n)
	}
	select {
	case m := <-ch:
		if m.Subject != "pc.room.a" || string(m.Data) != "x" {
			t.Errorf("watcher got %q on %q", m.Data, m.Subject)
		}
	case <-ctx.Done():
		t.Fatal("the watcher got nothing")
	}
	if n := cost(); n != 2 {
		t.Errorf("a publish with a watcher took %d SPUBLISH, want 2", n)
	}
	if err := s.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	brokertest.WaitFor(t, 10*time.Second, "publishes back to one SPUBLISH", func() bool { return cost() == 1 })
}

// TestRedisClusterUnreachable: a broker on a cluster none of whose nodes
// answers is Unreachable within a few seconds; while they answer it is not.
func TestRedisClusterUnreachable(t *testing.T) {
	check := brokertest.GoroutineCheck(t)
	defer check()
	c := brokertest.StartRedisCluster(t)
	b := openRedis(t, c.URL, broker.Options{})
	defer func() { _ = b.Close() }()
	if _, err := b.Subscribe(context.Background(), brokertest.Prefix(t)+".room.a", func(broker.Message) {}); err != nil {
		t.Fatal(err)
	}
	if broker.Unreachable(b) {
		t.Fatal("Unreachable with every node up")
	}
	c.Stop()
	brokertest.WaitFor(t, 20*time.Second, "the broker Unreachable with every node killed", func() bool { return broker.Unreachable(b) })
}
