package broker

import (
	"context"
	"strconv"
	"testing"
)

// BenchmarkMatch is the subject matcher on the receive path (a wildcard
// subscription re-checks every message with it): one literal subject
// against an exact, a "*" and a ">" pattern. It must not allocate.
func BenchmarkMatch(b *testing.B) {
	const subject = "livechat.room.general"
	for _, pat := range []string{"livechat.room.general", "livechat.room.*", "livechat.>"} {
		p, err := parse(pat)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(pat, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !p.matchString(subject) {
					b.Fatal("no match")
				}
			}
		})
	}
}

// BenchmarkPublishRooms publishes on one room subject of the memory broker
// while 1 or 10,000 room subjects are subscribed: handing a message to its
// room is a map lookup, so both cost the same.
func BenchmarkPublishRooms(b *testing.B) {
	for _, rooms := range []int{1, 10000} {
		b.Run(strconv.Itoa(rooms), func(b *testing.B) {
			m := NewMemory(Options{QueueSize: 1 << 16})
			defer func() { _ = m.Close() }()
			ctx := context.Background()
			for i := range rooms {
				if _, err := m.Subscribe(ctx, "livechat.room.r"+strconv.Itoa(i), func(Message) {}); err != nil {
					b.Fatal(err)
				}
			}
			data := make([]byte, 128)
			b.ReportAllocs()
			for b.Loop() {
				if err := m.Publish(ctx, "livechat.room.r0", data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
