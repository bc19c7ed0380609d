//go:build unix

package tests

import (
	"net/http"
	"testing"
	"time"

	"github.com/livechat/livechat/pkg/broker/brokertest"
	"github.com/livechat/livechat/pkg/history/historytest"
)

// TestFaultQuietRoomAfterRedisOutage: a message sent while the broker is
// down is stored (PostgreSQL) and acknowledged, but its publish fails, so
// only the sender's server delivers it at once. When the broker is back,
// the other servers catch their rooms up from the store (a sweep on
// reconnect), so a member of a room that stays quiet still gets it.
func TestFaultQuietRoomAfterRedisOutage(t *testing.T) {
	redisURL, stopRedis, restartRedis := brokertest.StartRedis(t)
	pg := historytest.PostgresURL(t)
	fc := newFaultCluster(t, faultOpts{broker: redisURL, history: pg})
	s1, s2 := fc.servers[0], fc.servers[1]
	alice := mustDial(t, "ws://"+s1.addr+"/ws", "alice")
	bob := mustDial(t, "ws://"+s2.addr+"/ws", "bob")
	clients := []*wsClient{alice, bob}
	const room = "quiet"
	joinAll(t, clients, room)
	chatRound(t, clients, room, "before")

	ready := func(want int) func() bool {
		return func() bool {
			return httpStatus("http://"+s1.addr+"/readyz") == want && httpStatus("http://"+s2.addr+"/readyz") == want
		}
	}
	stopRedis()
	waitFor(t, 10*time.Second, ready(http.StatusServiceUnavailable), "the servers did not notice that Redis is down")
	alice.send(map[string]string{"type": "send", "room": room, "text": "sent while Redis is down", "cid": "q1"})
	var id string
	waitFor(t, 10*time.Second, func() bool {
		if acks := alice.find(func(f frame) bool { return f.Type == "ack" && f.CID == "q1" }); len(acks) > 0 {
			id = acks[0].ID
			return true
		}
		return false
	}, "the send was not acknowledged while Redis was down (the store is PostgreSQL): %v", alice.find(func(f frame) bool { return f.Type == "error" }))
	// The publish after the ack fails (Redis is down), so alice's server
	// delivers the stored message to its own members: wait for that, so the
	// publish is over before Redis comes back.
	has := func(c *wsClient) func() bool {
		return func() bool { return c.messageIDs(room)[id] > 0 }
	}
	waitFor(t, 10*time.Second, has(alice), "alice (the sender, on server %s) did not get her own acknowledged message %s", s1.appID, id)
	restartRedis()
	waitFor(t, 20*time.Second, ready(http.StatusOK), "the servers did not become ready after Redis came back")
	back := time.Now()
	if !poll(10*time.Second, has(bob)) {
		t.Fatalf("bob (server %s) did not get the acknowledged message %s within 10 s after Redis came back (the room stayed quiet)", s2.appID, id)
	}
	t.Logf("bob got the message sent during the outage %s after Redis came back", time.Since(back).Round(time.Millisecond))
}
