package broker_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livechat/livechat/pkg/broker"
	"github.com/livechat/livechat/pkg/broker/brokertest"
)

func TestMemoryConformance(t *testing.T) {
	newBroker := func(_ testing.TB, o broker.Options) broker.Broker {
		return broker.NewMemory(o)
	}
	brokertest.Run(t, newBroker)
	brokertest.RunInline(t, newBroker)
}

// An idle subscription holds no goroutine: one runs only while messages
// wait in its queue.
func TestMemoryIdleSubscriptionsHoldNoGoroutine(t *testing.T) {
	b := broker.NewMemory(broker.Options{})
	t.Cleanup(func() { _ = b.Close() })
	ctx := context.Background()
	check := brokertest.GoroutineCheck(t)
	var got atomic.Int64
	h := func(broker.Message) { got.Add(1) }
	for i := range 50 {
		subject := "idle." + strconv.Itoa(i)
		var err error
		if i%2 == 0 {
			_, err = b.Subscribe(ctx, subject, h)
		} else {
			_, err = broker.SubscribeInline(ctx, b, subject, h)
		}
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if err := b.Publish(ctx, subject, []byte("x")); err != nil {
				t.Fatal(err)
			}
		}
	}
	brokertest.WaitFor(t, 10*time.Second, "every message", func() bool { return got.Load() == 150 })
	check()
}

// blocking is a broker that does not declare NonBlocking.
type blocking struct{ broker.Broker }

// TestNeverBlocks: the in-process broker declares that it never blocks; a
// broker that does not say so (Redis, a wrapper) may block.
func TestNeverBlocks(t *testing.T) {
	m := broker.NewMemory(broker.Options{})
	t.Cleanup(func() { _ = m.Close() })
	if !broker.NeverBlocks(m) {
		t.Error("the memory broker may block")
	}
	if broker.NeverBlocks(blocking{m}) {
		t.Error("a broker that declares nothing never blocks")
	}
}
