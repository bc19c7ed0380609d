package server

import (
	"bytes"
	"strconv"
	"testing"

	"github.com/livechat/livechat/internal/wstest"
	"github.com/livechat/livechat/pkg/protocol"
)

// BenchmarkSendAck measures the allocations of the send path: one client
// sends a message and reads frames up to its ack (its own message comes
// back too), one at a time, without history. allocs/op counts the client's
// allocations as well as the server's: compare runs, not absolute figures.
// ns/op is mostly the flushers' write interval (a frame waits up to 20 ms),
// not the server's work.
func BenchmarkSendAck(b *testing.B) {
	ts := startServer(b, memBroker(b), Config{AppID: "1000", Prefix: testPrefix(b), RatePerSec: 1e9, RateBurst: 1 << 30})
	ws, _, err := dialRaw(ts.url, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer ws.Close()
	if err := ws.WriteJSON(protocol.Inbound{Type: protocol.TypeJoin, Room: "bench", Name: "sender"}); err != nil {
		b.Fatal(err)
	}
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			b.Fatal(err)
		}
		if bytes.HasPrefix(data, []byte(`{"type":"joined"`)) {
			break
		}
	}
	frames := make([][]byte, b.N)
	for i := range frames {
		frames[i] = []byte(`{"type":"send","room":"bench","text":"hello there","cid":"c` + strconv.Itoa(i) + `"}`)
	}
	ack := []byte(`{"type":"ack"`)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := ws.WriteMessage(wstest.TextMessage, frames[i]); err != nil {
			b.Fatal(err)
		}
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				b.Fatal(err)
			}
			if bytes.HasPrefix(data, ack) {
				break
			}
		}
	}
}
