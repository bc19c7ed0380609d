package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/livechat/livechat/pkg/broker"
	"github.com/livechat/livechat/pkg/broker/brokertest"
	"github.com/livechat/livechat/pkg/protocol"
)

// TestTailReportsBrokerOutage runs tail against its own redis-server, kills
// and restarts it, and expects a line for each state change and the traffic
// after the restart.
func TestTailReportsBrokerOutage(t *testing.T) {
	url, stop, restart := brokertest.StartRedis(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ios, out, errOut := testIO("")
	done := make(chan int)
	go func() { done <- Run(ctx, []string{"tail", "--broker", url, "--room", "ops"}, ios) }()
	brokertest.WaitFor(t, 10*time.Second, "tail to subscribe", func() bool { return strings.Contains(errOut.String(), "watching") })

	stop()
	brokertest.WaitFor(t, 15*time.Second, "the connection-lost line", func() bool {
		return strings.Contains(errOut.String(), "broker connection lost, reconnecting")
	})
	restart()
	brokertest.WaitFor(t, 15*time.Second, "the restored line", func() bool {
		return strings.Contains(errOut.String(), "broker connection restored")
	})

	b, err := broker.Open(ctx, url, broker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	m, err := announcement("ops", "deploy", "back online")
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	brokertest.WaitFor(t, 15*time.Second, "tail to print traffic after the restart", func() bool {
		// Publish until tail prints it: its resubscription may land just after "restored".
		if err := b.Publish(ctx, protocol.RoomSubject(protocol.DefaultPrefix, "ops"), data); err != nil {
			t.Fatal(err)
		}
		return strings.Contains(out.String(), "#ops [cli] [system] deploy: back online")
	})
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("tail exit %d: %s", code, errOut.String())
	}
}

// TestStatsWatchRedraws checks that --watch keeps printing a table per
// interval, in place on a terminal, until interrupted.
func TestStatsWatchRedraws(t *testing.T) {
	url, prefix := brokertest.RedisURL(t), brokertest.Prefix(t)
	startNode(t, url, prefix, "w1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ios, out, errOut := testIO("")
	ios.IsTerminal = true
	done := make(chan int)
	go func() {
		done <- Run(ctx, []string{"stats", "--broker", url, "--prefix", prefix, "--watch", "--interval", "300ms"}, ios)
	}()
	brokertest.WaitFor(t, 15*time.Second, "two redraws listing w1", func() bool {
		s := out.String()
		return strings.Count(s, "\x1b[H\x1b[2J") >= 2 && strings.Count(s, "│ w1 ") >= 2
	})
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("stats --watch exit %d: %s", code, errOut.String())
	}
}
