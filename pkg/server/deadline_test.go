package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/livechat/livechat/pkg/protocol"
)

// TestFlusherAfterPongDeadline: a pong written by the connection's own
// writer sets the socket's write deadline; frames the flusher writes after
// that deadline has passed still go out.
func TestFlusherAfterPongDeadline(t *testing.T) {
	t.Parallel()
	b := memBroker(t)
	prefix := testPrefix(t)
	ts := startServer(t, b, Config{AppID: "1000", Prefix: prefix, WriteTimeout: 100 * time.Millisecond})
	c := dial(t, ts.url)
	c.join("r", "u")
	for i := range 3 {
		// The pong's write sets a deadline 100 ms ahead; the message is
		// written after it (the wait is the point of the test).
		if err := c.ws.WriteControl(websocket.PingMessage, []byte("p"), time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		msg := fmt.Sprintf(`{"type":"message","room":"r","id":"d-%d","from":"op","text":"m%d","ts":%d,"server":"cli"}`, i, i, time.Now().UnixMilli())
		if err := b.Publish(context.Background(), protocol.RoomSubject(prefix, "r"), []byte(msg)); err != nil {
			t.Fatal(err)
		}
		if f := c.next(protocol.TypeMessage); f.Text != fmt.Sprint("m", i) {
			t.Fatalf("got %q", f.Text)
		}
	}
	if d := ts.Stats().SlowDrops; d != 0 {
		t.Fatalf("%d slow drops", d)
	}
}
