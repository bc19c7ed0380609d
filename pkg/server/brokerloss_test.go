package server

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/livechat/livechat/internal/wstest"
	"github.com/livechat/livechat/pkg/broker"
	"github.com/livechat/livechat/pkg/broker/brokertest"
	"github.com/livechat/livechat/pkg/protocol"
)

// TestBrokerLossClosesClients: a server whose broker stays down past
// BrokerLossGrace closes its connections with 1001 and a reason saying
// why, refuses new WebSockets with 503 while the broker is down, and takes
// them again once it is back.
func TestBrokerLossClosesClients(t *testing.T) {
	url, stop, restart := brokertest.StartRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := broker.Open(ctx, url, broker.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	ts := startServer(t, b, Config{AppID: "cut", Prefix: testPrefix(t), BrokerLossGrace: 300 * time.Millisecond})
	c := dial(t, ts.url)
	c.join("lobby", "ann")

	stop()
	err = c.closeErr()
	var ce *wstest.CloseError
	if !errors.As(err, &ce) || ce.Code != 1001 || ce.Text != closeCutOff {
		t.Fatalf("the client's connection ended with %v, want close 1001 %q", err, closeCutOff)
	}
	if _, status, err := dialRaw(ts.url, nil); err == nil || status != http.StatusServiceUnavailable {
		t.Errorf("a dial while the broker is down: HTTP %d, %v; want 503", status, err)
	}
	if got := ts.cutOffs.Load(); got != 1 {
		t.Errorf("broker_cutoffs_total = %d, want 1", got)
	}

	restart()
	var back *wstest.Conn
	waitFor(t, 15*time.Second, "a WebSocket taken again after the broker came back", func() bool {
		ws, _, err := dialRaw(ts.url, nil)
		back = ws
		return err == nil
	})
	c2 := newClient(t, back)
	c2.join("lobby", "ann")
	c2.sendJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "lobby", Text: "back", CID: "c1"})
	c2.next(protocol.TypeAck)
}
