package broker_test

import (
	"context"
	"testing"

	"github.com/livechat/livechat/pkg/broker"
	"github.com/livechat/livechat/pkg/broker/brokertest"
)

// benchPayload is about the size of a chat message frame.
var benchPayload = make([]byte, 128)

func benchBackends(b *testing.B, run func(b *testing.B, br broker.Broker)) {
	b.Run("memory", func(b *testing.B) {
		br := broker.NewMemory(broker.Options{})
		defer func() { _ = br.Close() }()
		run(b, br)
	})
	b.Run("redis", func(b *testing.B) {
		br := openRedis(b, brokertest.RedisURL(b), broker.Options{})
		defer func() { _ = br.Close() }()
		run(b, br)
	})
}

// BenchmarkPublish measures one Publish call, sequential and from parallel
// goroutines, on a subject with one subscription whose handler does nothing.
func BenchmarkPublish(b *testing.B) {
	benchBackends(b, func(b *testing.B, br broker.Broker) {
		ctx := context.Background()
		subject := brokertest.Prefix(b) + ".room.bench"
		if _, err := br.Subscribe(ctx, subject, func(broker.Message) {}); err != nil {
			b.Fatal(err)
		}
		b.Run("serial", func(b *testing.B) {
			b.SetBytes(int64(len(benchPayload)))
			b.ReportAllocs()
			for b.Loop() {
				if err := br.Publish(ctx, subject, benchPayload); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("parallel", func(b *testing.B) {
			b.SetBytes(int64(len(benchPayload)))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := br.Publish(ctx, subject, benchPayload); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	})
}

// BenchmarkRoundTrip measures publish -> handler call, one message at a time:
// the latency a chat message sees through the broker.
func BenchmarkRoundTrip(b *testing.B) {
	benchBackends(b, func(b *testing.B, br broker.Broker) {
		ctx := context.Background()
		p := brokertest.Prefix(b)
		for _, bc := range []struct{ name, pattern string }{
			{"exact", p + ".room.rt"},
			{"wildcard", p + ".room.*"},
		} {
			b.Run(bc.name, func(b *testing.B) {
				got := make(chan struct{}, 1)
				s, err := br.Subscribe(ctx, bc.pattern, func(broker.Message) { got <- struct{}{} })
				if err != nil {
					b.Fatal(err)
				}
				defer func() { _ = s.Unsubscribe() }()
				b.SetBytes(int64(len(benchPayload)))
				b.ReportAllocs()
				for b.Loop() {
					if err := br.Publish(ctx, p+".room.rt", benchPayload); err != nil {
						b.Fatal(err)
					}
					<-got
				}
			})
		}
	})
}
