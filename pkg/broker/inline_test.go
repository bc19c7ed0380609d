package broker_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livechat/livechat/pkg/broker"
	"github.com/livechat/livechat/pkg/broker/brokertest"
)

// An idle inline subscription's handler has run when Publish returns.
func TestSubscribeInlineRunsBeforePublishReturns(t *testing.T) {
	b := broker.NewMemory(broker.Options{})
	t.Cleanup(func() { _ = b.Close() })
	ctx := context.Background()
	var got atomic.Int64
	if _, err := broker.SubscribeInline(ctx, b, "in.a", func(broker.Message) { got.Add(1) }); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := b.Publish(ctx, "in.a", []byte("x")); err != nil {
			t.Fatal(err)
		}
		if n := got.Load(); n != int64(i+1) {
			t.Fatalf("after Publish %d the handler ran %d times", i+1, n)
		}
	}
}

// While an inline call runs, other publishers do not wait for it: their
// messages are queued and delivered after it, in order, one call at a time.
func TestSubscribeInlineQueuesBehindARunningCall(t *testing.T) {
	b := broker.NewMemory(broker.Options{})
	t.Cleanup(func() { _ = b.Close() })
	ctx := context.Background()
	entered, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var order []string
	var running atomic.Int32
	_, err := broker.SubscribeInline(ctx, b, "in.q", func(m broker.Message) {
		if running.Add(1) != 1 {
			t.Error("two handler calls at once")
		}
		if string(m.Data) == "first" {
			close(entered)
			<-release
		}
		mu.Lock()
		order = append(order, string(m.Data))
		mu.Unlock()
		running.Add(-1)
	})
	if err != nil {
		t.Fatal(err)
	}
	firstDone := make(chan struct{})
	go func() {
		defer close(firstDone)
		_ = b.Publish(ctx, "in.q", []byte("first")) // runs the blocking call
	}()
	<-entered
	for _, d := range []string{"second", "third"} {
		if err := b.Publish(ctx, "in.q", []byte(d)); err != nil { // must not wait for "first"
			t.Fatal(err)
		}
	}
	close(release)
	<-firstDone
	brokertest.WaitFor(t, 10*time.Second, "all three", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(order) == 3
	})
	mu.Lock()
	defer mu.Unlock()
	if order[0] != "first" || order[1] != "second" || order[2] != "third" {
		t.Errorf("order %v", order)
	}
}

// Close waits for an inline call that is running, and no call starts after.
func TestSubscribeInlineCloseWaitsForTheCall(t *testing.T) {
	b := broker.NewMemory(broker.Options{})
	ctx := context.Background()
	entered, release := make(chan struct{}), make(chan struct{})
	var finished atomic.Bool
	_, err := broker.SubscribeInline(ctx, b, "in.c", func(broker.Message) {
		close(entered)
		<-release
		finished.Store(true)
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = b.Publish(ctx, "in.c", []byte("x")) }()
	<-entered
	closed := make(chan struct{})
	go func() {
		_ = b.Close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("Close returned while a handler call was running")
	case <-time.After(50 * time.Millisecond): // a negative check: nothing to await
	}
	close(release)
	<-closed
	if !finished.Load() {
		t.Error("Close returned before the call ended")
	}
}

// A broker without inline delivery (Redis, or a wrapper as here) gets a
// plain Subscribe.
func TestSubscribeInlineFallsBack(t *testing.T) {
	b := &countingBroker{Broker: broker.NewMemory(broker.Options{})}
	t.Cleanup(func() { _ = b.Close() })
	if _, err := broker.SubscribeInline(context.Background(), b, "in.f", func(broker.Message) {}); err != nil {
		t.Fatal(err)
	}
	if b.subscribes != 1 {
		t.Errorf("Subscribe called %d times, want 1", b.subscribes)
	}
}

type countingBroker struct {
	broker.Broker
	subscribes int
}

func (b *countingBroker) Subscribe(ctx context.Context, p string, h broker.Handler) (broker.Subscription, error) {
	b.subscribes++
	return b.Broker.Subscribe(ctx, p, h)
}
