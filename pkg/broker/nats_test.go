package broker_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livechat/livechat/pkg/broker"
	"github.com/livechat/livechat/pkg/broker/brokertest"
)

func TestNATSConformance(t *testing.T) {
	url, _, _ := brokertest.StartNATS(t)
	newBroker := func(t testing.TB, o broker.Options) broker.Broker {
		return openNATS(t, url, o)
	}
	brokertest.Run(t, newBroker)
	brokertest.RunInline(t, newBroker)
}

// openNATS opens url with broker.Open, which chooses NATS by its scheme.
func openNATS(t testing.TB, url string, o broker.Options) broker.Broker {
	t.Helper()
	return openRedis(t, url, o)
}

func TestNATSReconnectAfterRestart(t *testing.T) {
	check := brokertest.GoroutineCheck(t)
	defer check()
	url, stop, restart := brokertest.StartNATS(t)
	defer stop()
	log := &stateLog{}
	b := openNATS(t, url, broker.Options{OnStateChange: log.record})
	defer func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	}()
	if _, ok := b.(*broker.NATS); !ok {
		t.Fatalf("Open(%q) = %T, want *broker.NATS", url, b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	exact := make(chan broker.Message, 16)
	wild := make(chan broker.Message, 16)
	if _, err := broker.SubscribeChan(ctx, b, "n.room.a", exact); err != nil {
		t.Fatal(err)
	}
	if _, err := broker.SubscribeChan(ctx, b, "n.room.*", wild); err != nil {
		t.Fatal(err)
	}
	delivered(t, b, exact, "n.room.a", "before")
	delivered(t, b, wild, "n.room.b", "before")

	stop() // kill -9
	brokertest.WaitFor(t, 10*time.Second, "state reconnecting", func() bool {
		_, ok := log.seen(0, broker.StateReconnecting)
		return ok && b.State() == broker.StateReconnecting
	})
	start := time.Now()
	if err := b.Publish(ctx, "n.room.a", []byte("lost")); err == nil {
		t.Error("Publish succeeded while NATS is down")
	} else if !strings.Contains(err.Error(), "n.room.a") {
		t.Errorf("Publish error does not name the subject: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a Publish while NATS is down took %v to fail", d)
	}
	sctx, scancel := context.WithTimeout(ctx, 3*time.Second)
	if _, err := b.Subscribe(sctx, "n.down", func(broker.Message) {}); err == nil {
		t.Error("Subscribe succeeded while NATS is down")
	}
	scancel()

	restart()
	brokertest.WaitFor(t, 15*time.Second, "state connected again", func() bool {
		i, _ := log.seen(0, broker.StateReconnecting)
		_, ok := log.seen(i, broker.StateConnected)
		return ok && b.State() == broker.StateConnected
	})
	// nats.go resubscribed before it reported the reconnect; the old
	// subscriptions receive new messages.
	delivered(t, b, exact, "n.room.a", "after")
	delivered(t, b, wild, "n.room.c", "after")
	later := make(chan broker.Message, 4)
	if _, err := broker.SubscribeChan(ctx, b, "n.later.>", later); err != nil {
		t.Fatalf("Subscribe after reconnect: %v", err)
	}
	delivered(t, b, later, "n.later.x.y", "new")
}

// TestNATSTwoBrokers checks that two brokers on one server (two chat
// servers) see each other's messages, wildcards included.
func TestNATSTwoBrokers(t *testing.T) {
	url, _, _ := brokertest.StartNATS(t)
	a := openNATS(t, url, broker.Options{})
	defer func() { _ = a.Close() }()
	b := openNATS(t, url, broker.Options{})
	defer func() { _ = b.Close() }()
	ctx := context.Background()
	ch := make(chan broker.Message, 4)
	if _, err := broker.SubscribeChan(ctx, b, "two.>", ch); err != nil {
		t.Fatal(err)
	}
	delivered(t, a, ch, "two.x.y", "across")
}

func TestNATSOpenErrors(t *testing.T) {
	check := brokertest.GoroutineCheck(t)
	defer check()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // nothing listens there now
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, u := range []string{
		"nats://user:s3cret@" + addr,
		"nats://s3cret@" + addr, // a token
		"tls://user:s3cret@" + addr,
	} {
		start := time.Now()
		b, err := broker.Open(ctx, u, broker.Options{})
		if err == nil {
			_ = b.Close()
			t.Fatalf("Open(%q) succeeded with nothing listening", u)
		}
		if d := time.Since(start); d > 6*time.Second {
			t.Errorf("Open(%q) took %v to fail", u, d)
		}
		msg := err.Error()
		if !strings.Contains(msg, "cannot reach nats") || !strings.Contains(msg, addr) || strings.Contains(msg, "s3cret") {
			t.Errorf("Open(%q) error %q: want 'cannot reach nats', the address, and no secret", u, msg)
		}
	}
	for _, u := range []string{"nats://", "nats://:s3cret@host:port:bad"} {
		b, err := broker.Open(ctx, u, broker.Options{})
		if err == nil {
			_ = b.Close()
			t.Errorf("Open(%q) succeeded", u)
			continue
		}
		if !errors.Is(err, broker.ErrUnsupportedURL) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open(%q) = %v, want ErrUnsupportedURL without the secret", u, err)
		}
	}
	// A server that accepts and never greets: the wait is bounded by the
	// caller's deadline.
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := mute.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	defer func() {
		_ = mute.Close()
		for c := range accepted {
			_ = c.Close()
		}
	}()
	short, scancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer scancel()
	start := time.Now()
	if b, err := broker.OpenNATS(short, "nats://u:s3cret@"+mute.Addr().String(), broker.Options{}); err == nil {
		_ = b.Close()
		t.Fatal("OpenNATS succeeded against a server that never greets")
	} else if strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "cannot reach nats") {
		t.Errorf("OpenNATS against a mute server: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("OpenNATS with a 500ms deadline took %v against a mute server", d)
	}
}

// TestNATSCredentialsRedacted checks that a server refusing the URL's
// credentials gives an error without them, and that the right ones work,
// with nothing logged that carries them.
func TestNATSCredentialsRedacted(t *testing.T) {
	url, _, _ := brokertest.StartNATS(t, "--user", "alice", "--pass", "right-pw")
	host := strings.TrimPrefix(url, "nats://")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	for _, u := range []string{"nats://alice:s3cret@" + host, "nats://s3cret@" + host} {
		b, err := broker.Open(ctx, u, broker.Options{Logger: logger})
		if err == nil {
			_ = b.Close()
			t.Fatalf("Open(%q) succeeded with a wrong password", u)
		}
		if msg := err.Error(); strings.Contains(msg, "s3cret") || !strings.Contains(msg, host) {
			t.Errorf("Open(%q) error %q: want the address and no secret", u, msg)
		}
	}
	b, err := broker.Open(ctx, "nats://alice:right-pw@"+host, broker.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close() }()
	ch := make(chan broker.Message, 1)
	if _, err := broker.SubscribeChan(ctx, b, "cred.x", ch); err != nil {
		t.Fatal(err)
	}
	delivered(t, b, ch, "cred.x", "ok")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, "ok", nil); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Publish after Close = %v, want ErrClosed", err)
	}
	if _, err := b.Subscribe(ctx, "ok", func(broker.Message) {}); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Subscribe after Close = %v, want ErrClosed", err)
	}
	if b.State() != broker.StateClosed {
		t.Errorf("State after Close = %v", b.State())
	}
	if l := logs.String(); strings.Contains(l, "s3cret") || strings.Contains(l, "right-pw") {
		t.Errorf("logs carry a secret:\n%s", l)
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// TestNATSServerList checks a comma-separated list of one cluster's
// servers: the broker uses one that answers, and Redact hides each
// password and token.
func TestNATSServerList(t *testing.T) {
	url, _, _ := brokertest.StartNATS(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	_ = l.Close()
	b := openNATS(t, "nats://"+dead+","+url, broker.Options{})
	defer func() { _ = b.Close() }()
	ch := make(chan broker.Message, 1)
	if _, err := broker.SubscribeChan(context.Background(), b, "list.x", ch); err != nil {
		t.Fatal(err)
	}
	delivered(t, b, ch, "list.x", "ok")

	for in, want := range map[string]string{
		"nats://tok@a:1,nats://u:p@b:2": "nats://xxxxx@a:1,nats://u:xxxxx@b:2",
		"tls://u:p@a:1":                 "tls://u:xxxxx@a:1",
		"nats://a:1":                    "nats://a:1",
		"redis://u@a:1":                 "redis://u@a:1", // a Redis user name is no secret
	} {
		if got := broker.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestNATSSlowConsumerCounted holds the dispatch goroutine until the
// client's inbox overflows: the client's drops show in Dropped.
func TestNATSSlowConsumerCounted(t *testing.T) {
	url, _, _ := brokertest.StartNATS(t)
	b := openNATS(t, url, broker.Options{Logger: slog.New(slog.DiscardHandler)})
	defer func() { _ = b.Close() }()
	ctx := context.Background()
	var got atomic.Int64
	s, err := b.Subscribe(ctx, "slow.x", func(broker.Message) { got.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	const n = 70000 // more than the inbox holds
	var once sync.Once
	hold := broker.HoldNATSDispatch(b)
	release := func() { once.Do(hold) }
	defer release() // before Close, which needs what it holds
	for range n {
		if err := b.Publish(ctx, "slow.x", []byte("x")); err != nil {
			release()
			t.Fatal(err)
		}
	}
	brokertest.WaitFor(t, 10*time.Second, "the client to drop", func() bool { return s.Dropped() > 0 })
	release()
	brokertest.WaitFor(t, 10*time.Second, "every message delivered or dropped", func() bool {
		return uint64(got.Load())+s.Dropped() == n
	})
}
