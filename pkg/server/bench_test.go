package server

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livechat/livechat/internal/wstest"
	"github.com/livechat/livechat/pkg/protocol"
)

// BenchmarkFanout1000 measures one message published into a room with 1,000
// local members, each a real WebSocket client over loopback that reads every
// frame. One op is one message delivered to all 1,000 clients; up to 64
// messages are in flight. The clients run in the same process, so their
// reads share the CPU with the server. The server frames each message once
// and each connection's writer writes what is queued with one writev,
// at most every writeCoalesce.
func BenchmarkFanout1000(b *testing.B) {
	const members, window = 1000, 64
	br := memBroker(b)
	prefix := testPrefix(b)
	ts := startServer(b, br, Config{AppID: "1000", Prefix: prefix, MaxConnsPerIP: 2 * members, RateBurst: 1000})

	var (
		counts []atomic.Int32 // deliveries per message index
		done   = make(chan int, 1<<16)
		idTag  = []byte(`"id":"b-`)
		wg     sync.WaitGroup
	)
	counts = make([]atomic.Int32, b.N)
	conns := make([]*wstest.Conn, 0, members)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
		wg.Wait()
	}()
	joined := make(chan struct{}, members)
	for i := range members {
		ws, _, err := dialRaw(ts.url, nil)
		if err != nil {
			b.Fatalf("dial %d: %v", i, err)
		}
		conns = append(conns, ws)
		if err := ws.WriteJSON(protocol.Inbound{Type: protocol.TypeJoin, Room: "bench", Name: "u" + strconv.Itoa(i)}); err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				_, data, err := ws.ReadMessage()
				if err != nil {
					return
				}
				if bytes.HasPrefix(data, []byte(`{"type":"joined"`)) {
					joined <- struct{}{}
					continue
				}
				k := bytes.Index(data, idTag)
				if k < 0 {
					continue
				}
				rest := data[k+len(idTag):]
				end := bytes.IndexByte(rest, '"')
				n, err := strconv.Atoi(string(rest[:end]))
				if err != nil || n >= len(counts) {
					continue
				}
				if counts[n].Add(1) == members {
					done <- n
				}
			}
		}()
	}
	for range members {
		<-joined
	}
	subject := protocol.RoomSubject(prefix, "bench")
	text := strings.Repeat("x", 120)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if i >= window {
			<-done
		}
		msg := fmt.Sprintf(`{"type":"message","room":"bench","id":"b-%d","from":"bench","text":"%s","ts":%d,"server":"1000"}`, i, text, time.Now().UnixMilli())
		if err := br.Publish(ctx, subject, []byte(msg)); err != nil {
			b.Fatal(err)
		}
	}
	for range min(b.N, window) {
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			b.Fatalf("deliveries stalled; slow drops %d", ts.Stats().SlowDrops)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if d := ts.Stats().SlowDrops; d != 0 {
		b.Fatalf("%d clients dropped as slow", d)
	}
	b.ReportMetric(float64(b.N)*members/elapsed.Seconds(), "deliveries/s")
}
