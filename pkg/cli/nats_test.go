package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/livechat/livechat/pkg/broker/brokertest"
	"github.com/livechat/livechat/pkg/protocol"
)

// TestServeWithNATSBroker runs serve on its own nats-server and checks that
// publish, stats and a client meet through it, and that publish without
// --history is refused (a NATS broker has no store to default to).
func TestServeWithNATSBroker(t *testing.T) {
	inTempDir(t)
	natsURL, _, _ := brokertest.StartNATS(t)
	addr := freePort(t)
	n := startSingle(t, addr, "--app-id", "n1", "--broker", natsURL, "--history", "memory://")
	alice := n.join(t, "general", "alice")

	code, _, stderr := run(t, "", "publish", "--broker", natsURL, "--history", "none", "--room", "general", "--from", "ops", "over", "nats")
	if code != 0 {
		t.Fatalf("publish: exit %d: %s", code, stderr)
	}
	if m := alice.next(protocol.TypeMessage); m["text"] != "over nats" || m["from"] != "ops" {
		t.Errorf("announcement = %v", m)
	}

	code, _, stderr = run(t, "", "publish", "--broker", natsURL, "--room", "general", "no history")
	if code != ExitUsage || !strings.Contains(stderr, "a NATS broker has no history store to default to; set --history") {
		t.Errorf("publish without --history: exit %d, stderr %q; want exit 2 saying to set --history", code, stderr)
	}

	brokertest.WaitFor(t, 10*time.Second, "stats to list the server", func() bool {
		code, out, _ := run(t, "", "stats", "--broker", natsURL, "--output", "json")
		return code == 0 && strings.Contains(out, `"n1"`)
	})
}
