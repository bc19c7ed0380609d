package engine

import (
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// BenchmarkFanoutSend1000 is a fan-out to 1,000 real WebSocket clients over
// loopback that read every frame: one op is one shared frame sent to all
// 1,000 and read by each; up to 64 frames are in flight. The clients run
// in the same process, so their reads share the CPU with the engine.
func BenchmarkFanoutSend1000(b *testing.B) {
	const members, window = 1000, 64
	te := startEngine(b, Options{}, echo())
	cs := make([]*Conn, members)
	done := make(chan struct{}, members*window)
	for i := range cs {
		var ws *websocket.Conn
		ws, cs[i] = te.dialed(b)
		go func() {
			for {
				if _, _, err := ws.ReadMessage(); err != nil {
					return
				}
				done <- struct{}{}
			}
		}()
	}
	data := benchMessage()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if i >= window {
			for range members {
				<-done
			}
		}
		f := SharedTextFrame(data)
		for _, c := range cs {
			c.Send(f)
		}
	}
	for range min(b.N, window) * members {
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			b.Fatal("deliveries stalled")
		}
	}
	b.ReportMetric(float64(b.N)*members/time.Since(start).Seconds(), "deliveries/s")
}

// BenchmarkSendQueue1000 is the engine's part of a fan-out to 1,000
// connections without the sockets: one non-blocking queue push per
// connection. allocs/op stays at the frame's own, whatever the number of
// connections.
func BenchmarkSendQueue1000(b *testing.B) {
	const members = 1000
	e := New(Options{})
	list := make([]*Conn, members)
	for i := range list {
		// The flusher holds the role: no writer is started, the loop below empties the queues.
		list[i] = &Conn{e: e}
		list[i].out.role = roleFlusher
	}
	data := benchMessage()
	b.ReportAllocs()
	for b.Loop() {
		f := SharedTextFrame(data)
		for _, c := range list {
			c.Send(f)
		}
		for _, c := range list {
			c.out.q = c.out.q[:0]
		}
	}
	b.ReportMetric(float64(b.N)*members/b.Elapsed().Seconds(), "pushes/s")
}
