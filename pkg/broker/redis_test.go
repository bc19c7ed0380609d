package broker_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/livechat/livechat/pkg/broker"
	"github.com/livechat/livechat/pkg/broker/brokertest"
)

func openRedis(t testing.TB, url string, o broker.Options) broker.Broker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := broker.Open(ctx, url, o)
	if err != nil {
		t.Fatalf("Open(%q): %v", url, err)
	}
	return b
}

func TestRedisConformance(t *testing.T) {
	url := brokertest.RedisURL(t)
	newBroker := func(t testing.TB, o broker.Options) broker.Broker {
		return openRedis(t, url, o)
	}
	brokertest.Run(t, newBroker)
	brokertest.RunInline(t, newBroker)
}

// stateLog records OnStateChange calls.
type stateLog struct {
	mu     sync.Mutex
	states []broker.State
}

func (l *stateLog) record(s broker.State) {
	l.mu.Lock()
	l.states = append(l.states, s)
	l.mu.Unlock()
}

// seen reports whether want occurred in the log after index from, and where.
func (l *stateLog) seen(from int, want broker.State) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := from; i < len(l.states); i++ {
		if l.states[i] == want {
			return i, true
		}
	}
	return 0, false
}

// delivered publishes data to subject and waits until ch receives it.
func delivered(t *testing.T, b broker.Broker, ch <-chan broker.Message, subject, data string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.Publish(ctx, subject, []byte(data)); err != nil {
		t.Fatalf("Publish(%q): %v", subject, err)
	}
	for {
		select {
		case m := <-ch:
			if string(m.Data) == data {
				return
			}
		case <-ctx.Done():
			t.Fatalf("%q on %q not delivered", data, subject)
		}
	}
}

func TestRedisReconnectAfterRestart(t *testing.T) {
	check := brokertest.GoroutineCheck(t)
	defer check()
	url, stop, restart := brokertest.StartRedis(t)
	defer stop()
	log := &stateLog{}
	b := openRedis(t, url, broker.Options{OnStateChange: log.record})
	defer func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	exact := make(chan broker.Message, 16)
	wild := make(chan broker.Message, 16)
	if _, err := broker.SubscribeChan(ctx, b, "r.room.a", exact); err != nil {
		t.Fatal(err)
	}
	if _, err := broker.SubscribeChan(ctx, b, "r.room.*", wild); err != nil {
		t.Fatal(err)
	}
	delivered(t, b, exact, "r.room.a", "before")
	delivered(t, b, wild, "r.room.b", "before")

	stop()
	brokertest.WaitFor(t, 10*time.Second, "state reconnecting", func() bool {
		_, ok := log.seen(0, broker.StateReconnecting)
		return ok && b.State() == broker.StateReconnecting
	})
	start := time.Now()
	if err := b.Publish(ctx, "r.room.a", []byte("lost")); err == nil {
		t.Error("Publish succeeded while Redis is down")
	} else if !strings.Contains(err.Error(), "r.room.a") {
		t.Errorf("Publish error does not name the subject: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a Publish while Redis is down took %v to fail", d)
	}
	// A batch fails as fast, naming its first message's subject.
	start = time.Now()
	batch := []broker.Message{{Subject: "r.room.b", Data: []byte("lost")}, {Subject: "r.room.a", Data: []byte("lost")}}
	if err := broker.PublishBatch(ctx, b, batch); err == nil {
		t.Error("PublishBatch succeeded while Redis is down")
	} else if !strings.Contains(err.Error(), `"r.room.b"`) {
		t.Errorf("PublishBatch error does not name the first subject: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a PublishBatch while Redis is down took %v to fail", d)
	}
	// A subscription asked for while Redis is down fails, bounded, and
	// leaves nothing behind.
	sctx, scancel := context.WithTimeout(ctx, 3*time.Second)
	if _, err := b.Subscribe(sctx, "r.down", func(broker.Message) {}); err == nil {
		t.Error("Subscribe succeeded while Redis is down")
	}
	scancel()

	restart()
	brokertest.WaitFor(t, 10*time.Second, "state connected again", func() bool {
		i, _ := log.seen(0, broker.StateReconnecting)
		_, ok := log.seen(i, broker.StateConnected)
		return ok && b.State() == broker.StateConnected
	})
	// The resubscription is confirmed (that is what turned the state back)
	// so delivery resumes at once, on both kinds of subscription.
	delivered(t, b, exact, "r.room.a", "after")
	delivered(t, b, wild, "r.room.c", "after")
	later := make(chan broker.Message, 4)
	if _, err := broker.SubscribeChan(ctx, b, "r.later.>", later); err != nil {
		t.Fatalf("Subscribe after reconnect: %v", err)
	}
	delivered(t, b, later, "r.later.x.y", "new")
}

// pubsubClients returns the CLIENT LIST lines of pub/sub connections named name.
func pubsubClients(t *testing.T, admin *redis.Client, name string) []string {
	t.Helper()
	list, err := admin.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(list, "\n") {
		if strings.Contains(line, " name="+name+" ") && !strings.Contains(line, " sub=0 psub=0 ") {
			out = append(out, line)
		}
	}
	return out
}

func adminClient(t *testing.T, url string) *redis.Client {
	t.Helper()
	o, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestRedisOnePubSubConnection(t *testing.T) {
	t.Parallel()
	url := brokertest.RedisURL(t)
	name := brokertest.Prefix(t)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	b := openRedis(t, url+sep+"client_name="+name, broker.Options{})
	defer func() { _ = b.Close() }()
	admin := adminClient(t, url)
	ctx := context.Background()
	p := name
	var subs []broker.Subscription
	// Two subjects, one of them twice; a.* and a.> share the glob a.*.
	for _, pat := range []string{p + ".a.b", p + ".a.b", p + ".c", p + ".a.*", p + ".a.>", p + ".>"} {
		s, err := b.Subscribe(ctx, pat, func(broker.Message) {})
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	lines := pubsubClients(t, admin, name)
	if len(lines) != 1 {
		t.Fatalf("%d pub/sub connections named %s, want 1:\n%s", len(lines), name, strings.Join(lines, "\n"))
	}
	if !strings.Contains(lines[0], " sub=2 psub=2 ") {
		t.Errorf("want sub=2 psub=2 (shared Redis subscriptions), got %s", lines[0])
	}
	for _, s := range subs {
		if err := s.Unsubscribe(); err != nil {
			t.Fatal(err)
		}
	}
	brokertest.WaitFor(t, 5*time.Second, "the last Unsubscribe to reach Redis", func() bool {
		return len(pubsubClients(t, admin, name)) == 0
	})
}

func TestRedisPubSubConnectionKilled(t *testing.T) {
	t.Parallel()
	url, stop, _ := brokertest.StartRedis(t)
	defer stop()
	log := &stateLog{}
	b := openRedis(t, url, broker.Options{OnStateChange: log.record})
	defer func() { _ = b.Close() }()
	ctx := context.Background()
	ch := make(chan broker.Message, 4)
	if _, err := broker.SubscribeChan(ctx, b, "k.*", ch); err != nil {
		t.Fatal(err)
	}
	delivered(t, b, ch, "k.x", "before")
	if err := adminClient(t, url).ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	brokertest.WaitFor(t, 10*time.Second, "reconnecting then connected", func() bool {
		i, ok := log.seen(0, broker.StateReconnecting)
		if !ok {
			return false
		}
		_, ok = log.seen(i, broker.StateConnected)
		return ok
	})
	delivered(t, b, ch, "k.y", "after")
}

func TestRedisForeignInvalidChannelIgnored(t *testing.T) {
	t.Parallel()
	url := brokertest.RedisURL(t)
	b := openRedis(t, url, broker.Options{})
	defer func() { _ = b.Close() }()
	p := brokertest.Prefix(t)
	ctx := context.Background()
	ch := make(chan broker.Message, 4)
	if _, err := broker.SubscribeChan(ctx, b, p+".*.x", ch); err != nil {
		t.Fatal(err)
	}
	// Another Redis client publishes to channels that are not valid
	// subjects but that the glob matches.
	admin := adminClient(t, url)
	for _, c := range []string{p + "..x", p + ".a b.x", p + ".*.x"} {
		if err := admin.Publish(ctx, c, "bad").Err(); err != nil {
			t.Fatal(err)
		}
	}
	delivered(t, b, ch, p+".ok.x", "good")
	select {
	case m := <-ch:
		t.Errorf("unexpected delivery on %q", m.Subject)
	default:
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, u := range []string{"", "amqp://127.0.0.1:5672", "ftp://x", "127.0.0.1:6379", "redis://:s3cret@host:port:bad/0"} {
		b, err := broker.Open(ctx, u, broker.Options{})
		if err == nil {
			_ = b.Close()
			t.Errorf("Open(%q) succeeded", u)
			continue
		}
		if !errors.Is(err, broker.ErrUnsupportedURL) {
			t.Errorf("Open(%q) = %v, want ErrUnsupportedURL", u, err)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open(%q) error leaks the password: %v", u, err)
		}
	}
	// Nothing listens on this port.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	for _, u := range []string{"redis://:s3cret@" + addr + "/0", "redis://user:s3cret@" + addr, "rediss://:s3cret@" + addr + "/1"} {
		b, err := broker.Open(ctx, u, broker.Options{})
		if err == nil {
			_ = b.Close()
			t.Fatalf("Open(%q) succeeded with nothing listening", u)
		}
		msg := err.Error()
		if !strings.Contains(msg, "cannot reach redis") || !strings.Contains(msg, addr) || strings.Contains(msg, "s3cret") {
			t.Errorf("Open(%q) error %q: want 'cannot reach redis', the address, and no password", u, msg)
		}
	}
	b, err := broker.Open(ctx, "memory://", broker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if b.State() != broker.StateConnected {
		t.Errorf("memory broker state %v", b.State())
	}
	_ = b.Close()
}
