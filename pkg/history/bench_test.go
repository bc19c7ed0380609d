package history_test

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livechat/livechat/pkg/history"
	"github.com/livechat/livechat/pkg/history/historytest"
	"github.com/livechat/livechat/pkg/protocol"
)

var benchBackends = []struct {
	name string
	b    historytest.Backend
	opts history.Options
}{
	{"memory", memoryBackend(), history.Options{}},
	{"redis", redisBackend(), history.Options{}},
	{"postgres", postgresBackend(), history.Options{}},
	// The same without group commit: one transaction (and fsync) per message.
	{"postgres-batch1", postgresBackend(), history.Options{MaxBatch: 1}},
}

func benchMsg(room string, i int) *protocol.Message {
	return &protocol.Message{Type: protocol.TypeMessage, Room: room, ID: "id" + strconv.Itoa(i), From: "bench",
		Text: strings.Repeat("x", 100), TS: time.Now().UnixMilli(), Server: "1000", CID: "c" + strconv.Itoa(i)}
}

// BenchmarkAppend appends from one goroutine into one room: the latency of
// one Append, each waiting for the previous.
func BenchmarkAppend(b *testing.B) {
	for _, bb := range benchBackends {
		b.Run(bb.name, func(b *testing.B) {
			s := bb.b.New(b, bb.opts)()
			defer func() { _ = s.Close() }()
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, _, err := s.Append(ctx, benchMsg("bench", i), "k"+strconv.Itoa(i)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkAppendParallel appends from 64 goroutines (SetParallelism(32) on
// 2 cores), into one room and spread over 100 rooms: the throughput of a
// loaded server, where PostgreSQL's group commit writes many messages per
// transaction.
func BenchmarkAppendParallel(b *testing.B) {
	for _, bb := range benchBackends {
		for _, rooms := range []int{1, 100} {
			b.Run(bb.name+"/rooms="+strconv.Itoa(rooms), func(b *testing.B) {
				s := bb.b.New(b, bb.opts)()
				defer func() { _ = s.Close() }()
				ctx := context.Background()
				var n atomic.Int64
				b.SetParallelism(32)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						i := int(n.Add(1))
						room := "bench" + strconv.Itoa(i%rooms)
						if _, _, err := s.Append(ctx, benchMsg(room, i), "k"+strconv.Itoa(i)); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			})
		}
	}
}

// BenchmarkMemoryHeld fills a memory store with 100,000 messages over 500
// rooms (the 500-room benchmark's rooms, its 100-byte texts) and reports
// what holding them costs: live heap bytes and objects per message, and
// (ns/op) the time of one full garbage collection with them held.
func BenchmarkMemoryHeld(b *testing.B) {
	const n, rooms = 100_000, 500
	ctx := context.Background()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := history.NewMemory(history.Options{})
	for i := range n {
		m := benchMsg("room-"+strconv.Itoa(i%rooms), i)
		if _, _, err := s.Append(ctx, m, "alice\x00c"+strconv.Itoa(i)); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	for b.Loop() {
		runtime.GC()
	}
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heapB/msg")
	b.ReportMetric(float64(after.HeapObjects-before.HeapObjects)/n, "objects/msg")
	runtime.KeepAlive(s)
}
