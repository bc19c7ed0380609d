package server

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/livechat/livechat/pkg/broker"
	"github.com/livechat/livechat/pkg/protocol"
)

func TestSingleNode(t *testing.T) {
	t.Parallel()
	ts := startServer(t, memBroker(t), Config{AppID: "1000", Prefix: testPrefix(t), Version: "v-test", RateBurst: 200})

	alice := dial(t, ts.url)
	w := alice.next(protocol.TypeWelcome)
	if w.Server != "1000" || w.Limits.MaxFrame != 16<<10 {
		t.Fatalf("welcome = %+v", w)
	}
	bob := dial(t, ts.url)
	bob.next(protocol.TypeWelcome)

	if j := alice.join("general", "alice"); fmt.Sprint(j.Members) != "[alice]" {
		t.Fatalf("alice joined = %+v", j)
	}
	if j := bob.join("general", "bob"); fmt.Sprint(j.Members) != "[alice bob]" {
		t.Fatalf("bob joined = %+v", j)
	}
	alice.waitUntil("presence with bob", hasMembers("general", "alice", "bob"))

	const n = 50
	for i := range n {
		alice.sendJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "general", Text: "hello " + strconv.Itoa(i), CID: "c" + strconv.Itoa(i), Name: "mallory"})
	}
	for i := range n {
		a := alice.next(protocol.TypeAck)
		if a.CID != "c"+strconv.Itoa(i) || a.ID == "" || a.Room != "general" || a.TS == 0 {
			t.Fatalf("ack %d = %+v", i, a)
		}
	}
	ids := map[string]bool{}
	for _, c := range []*client{alice, bob} {
		for i := range n {
			m := c.next(protocol.TypeMessage)
			if m.Text != "hello "+strconv.Itoa(i) || m.From != "alice" || m.Server != "1000" || m.Room != "general" || m.TS == 0 || m.ID == "" {
				t.Fatalf("message %d = %+v", i, m)
			}
			if c == alice {
				ids[m.ID] = true
			}
		}
	}
	if len(ids) != n {
		t.Fatalf("%d distinct ids for %d messages", len(ids), n)
	}

	// Typing reaches the other member.
	alice.sendJSON(protocol.Inbound{Type: protocol.TypeTyping, Room: "general"})
	if ty := bob.next(protocol.TypeTyping); ty.Name != "alice" || ty.Room != "general" {
		t.Fatalf("typing = %+v", ty)
	}

	// Several rooms per connection: only the members of "side" get its messages.
	alice.join("side", "alice2")
	alice.sendJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "side", Text: "side msg", CID: "s1"})
	if m := alice.next(protocol.TypeMessage); m.Room != "side" || m.From != "alice2" {
		t.Fatalf("side message = %+v", m)
	}
	bob.sendJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "general", Text: "from bob", CID: "b1"})
	if m := bob.next(protocol.TypeMessage); m.Text != "from bob" {
		t.Fatalf("bob got %+v, want his own message (and never the side one)", m)
	}
	if m := alice.next(protocol.TypeMessage); m.Text != "from bob" || m.From != "bob" {
		t.Fatalf("alice got %+v", m)
	}

	// Re-join is idempotent.
	if j := bob.join("general", "bob"); fmt.Sprint(j.Members) != "[alice bob]" {
		t.Fatalf("re-join = %+v", j)
	}

	// Leave.
	bob.sendJSON(protocol.Inbound{Type: protocol.TypeLeave, Room: "general"})
	if l := bob.next(protocol.TypeLeft); l.Room != "general" {
		t.Fatalf("left = %+v", l)
	}
	alice.waitUntil("bob gone", hasMembers("general", "alice"))
	bob.sendJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "general", Text: "x", CID: "b2"})
	if e := bob.next(protocol.TypeError); e.Code != protocol.CodeNotJoined || e.CID != "b2" {
		t.Fatalf("send after leave = %+v", e)
	}
	if got := ts.Stats(); got.Connections != 2 || got.Rooms != 2 || got.MsgsIn != n+2 {
		t.Fatalf("stats = %+v", got)
	}
	// Leaving the last room drops its subscription.
	alice.sendJSON(protocol.Inbound{Type: protocol.TypeLeave, Room: "side"})
	alice.next(protocol.TypeLeft)
	waitFor(t, waitTimeout, "one room", func() bool { return ts.Stats().Rooms == 1 })
}

// TestCluster runs two servers with clients on each: every message reaches
// every member exactly once and in per-sender order, and presence is the
// union over both servers; a server that dies without goodbye disappears
// from the member list within a few presence intervals.
func TestCluster(t *testing.T) {
	t.Parallel()
	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		b := memBroker(t)
		testCluster(t, b, b)
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		testCluster(t, redisBroker(t), redisBroker(t))
	})
}

func testCluster(t *testing.T, ba, bb broker.Broker) {
	prefix := testPrefix(t)
	cfg := func(id string) Config {
		return Config{AppID: id, Prefix: prefix, PresenceInterval: 100e6, RatePerSec: 1000, RateBurst: 1000, SendQueue: 4096}
	}
	sa := startServer(t, ba, cfg("1000"))
	sb := startServer(t, bb, cfg("2000"))

	var clients []*client
	names := []string{"a1", "a2", "b1", "b2"}
	for i, name := range names {
		url := sa.url
		if i >= 2 {
			url = sb.url
		}
		c := dial(t, url)
		c.join("lobby", name)
		clients = append(clients, c)
	}
	for _, c := range clients {
		c.waitUntil("all four members", hasMembers("lobby", "a1", "a2", "b1", "b2"))
	}

	const n = 100
	for i := range n {
		for _, c := range clients {
			c.sendJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "lobby", Text: strconv.Itoa(i), CID: strconv.Itoa(i)})
		}
	}
	for ci, c := range clients {
		c.waitUntil("all messages", func(fs []rx) bool {
			k := 0
			for _, f := range fs {
				if f.Type == protocol.TypeMessage {
					k++
				}
			}
			return k >= n*len(clients)
		})
		next := map[string]int{}
		seen := map[string]bool{}
		for _, m := range c.frameList(protocol.TypeMessage) {
			if seen[m.ID] {
				t.Fatalf("client %s: duplicate %+v", names[ci], m)
			}
			seen[m.ID] = true
			if m.Text != strconv.Itoa(next[m.From]) {
				t.Fatalf("client %s: from %s got %q, want %d", names[ci], m.From, m.Text, next[m.From])
			}
			next[m.From]++
			wantServer := "1000"
			if m.From[0] == 'b' {
				wantServer = "2000"
			}
			if m.Server != wantServer {
				t.Fatalf("message %+v: server %s, want %s", m, m.Server, wantServer)
			}
		}
		if len(seen) != n*len(clients) {
			t.Fatalf("client %s: %d messages, want %d", names[ci], len(seen), n*len(clients))
		}
	}

	// Server B dies without a goodbye: A's members forget b1 and b2.
	sb.kill()
	clients[0].waitUntil("b members expired", hasMembers("lobby", "a1", "a2"))
}

// TestPresenceSyncAndBye: with a long presence interval, servers still learn
// each other's members at once (sync on subscribe, snapshot after a change)
// and forget them at once on leave, and when a server's last member of the
// room leaves ("bye").
func TestPresenceSyncAndBye(t *testing.T) {
	t.Parallel()
	b := memBroker(t)
	prefix := testPrefix(t)
	sa := startServer(t, b, Config{AppID: "1000", Prefix: prefix, PresenceInterval: time.Minute})
	sb := startServer(t, b, Config{AppID: "2000", Prefix: prefix, PresenceInterval: time.Minute})
	a1 := dial(t, sa.url)
	a1.join("p", "a1")
	b1 := dial(t, sb.url)
	b1.join("p", "b1")
	b2 := dial(t, sb.url)
	b2.join("p", "b2")
	a1.waitUntil("b members", hasMembers("p", "a1", "b1", "b2"))
	b1.waitUntil("a member", hasMembers("p", "a1", "b1", "b2"))

	b2.sendJSON(protocol.Inbound{Type: protocol.TypeLeave, Room: "p"})
	a1.waitUntil("b2 left", hasMembers("p", "a1", "b1"))
	if f := a1.frameList(protocol.TypePresence); fmt.Sprint(f[len(f)-1].Left) != "[b2]" {
		t.Fatalf("last presence = %+v", f[len(f)-1])
	}

	// b1 was sb's last member of the room: sb says "bye". (A shutdown
	// hands its members over instead: TestPresenceFailover.)
	b1.sendJSON(protocol.Inbound{Type: protocol.TypeLeave, Room: "p"})
	a1.waitUntil("b1 gone after bye", hasMembers("p", "a1"))
}
