//go:build unix

package tests

import (
	"testing"
	"time"

	"github.com/livechat/livechat/pkg/broker"
	"github.com/livechat/livechat/pkg/broker/brokertest"
)

// TestFaultRedisClusterFailover: four servers on a Redis Cluster of the
// test's own (broker and history: redis+cluster://), 40 clients in 4 rooms;
// the master serving room r0's slot (its history keys and its sharded
// channel) is killed with kill -9 mid-run, and its replica takes over. No
// acknowledged message is lost or duplicated, and every client ends with
// its room's messages in order.
func TestFaultRedisClusterFailover(t *testing.T) {
	rc := brokertest.StartRedisCluster(t)
	fc := newFaultCluster(t, faultOpts{broker: rc.URL})
	r := startFaultRun(t, fc, 20*time.Millisecond)

	const room = "r0"
	victim := rc.MasterOf(fc.prefix + ":history:{" + room + "}:seq")
	if ch := rc.MasterOf(broker.ShardChannel(fc.prefix + ".room." + room)); ch != victim {
		t.Fatalf("room %s: channel on %s, history on %s", room, ch.Addr, victim.Addr)
	}
	r.waitAcked(3000)
	acked := r.f.ackedCount()
	killAt := time.Now()
	victim.Kill()
	rc.WaitHealthy(30 * time.Second)
	r.note("the master of room %s's slot (%s) killed at %s into the run with %d messages acknowledged; the cluster agreed on its replica %s later",
		room, victim.Addr, killAt.Sub(r.start).Round(time.Millisecond), acked, time.Since(killAt).Round(time.Millisecond))
	r.finish("redis cluster failover")

	// The operator commands work on the cluster too: stats (a pattern
	// subscription, <prefix>.stats.*) lists the four servers, publish
	// appends and publishes.
	if ok, last := fc.waitStats(nil); !ok {
		t.Errorf("livechat stats does not list the four servers: %s", last)
	}
	if out, err := fc.cli("publish", "--room", "r1", "--from", "ops", "after the failover"); err != nil {
		t.Errorf("livechat publish: %v (%s)", err, out)
	}
}
