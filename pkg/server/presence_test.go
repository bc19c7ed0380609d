package server

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/livechat/livechat/internal/engine"
	"github.com/livechat/livechat/pkg/broker"
	"github.com/livechat/livechat/pkg/protocol"
)

// TestJoinedTruncatedInBigRoom: in a room of more than
// protocol.PresenceListMax members, joined carries the first
// PresenceListMax names (sorted), the real member_count and
// members_truncated; presence frames keep the count current.
func TestJoinedTruncatedInBigRoom(t *testing.T) {
	t.Parallel()
	const n = 150
	ts := startServer(t, memBroker(t), Config{AppID: "1000", Prefix: testPrefix(t), PresenceInterval: time.Hour})
	names := make([]string, 0, n)
	clients := make([]*client, 0, n)
	for i := range n - 1 {
		c := dial(t, ts.url)
		c.next(protocol.TypeWelcome)
		name := fmt.Sprintf("u%03d", n-1-i) // joined in reverse order: the list must be sorted
		if j := c.join("big", name); i < protocol.PresenceListMax && (j.MembersTruncated || j.MemberCount != i+1) {
			t.Fatalf("join %d: member_count %d, truncated %v", i+1, j.MemberCount, j.MembersTruncated)
		}
		names = append(names, name)
		clients = append(clients, c)
	}
	last := dial(t, ts.url)
	last.next(protocol.TypeWelcome)
	j := last.join("big", "u999")
	names = append(names, "u999")
	slices.Sort(names)
	if j.MemberCount != n || !j.MembersTruncated || !slices.Equal(j.Members, names[:protocol.PresenceListMax]) {
		t.Fatalf("joined in a room of %d: member_count %d, truncated %v, %d names (%v...), want the first %d sorted",
			n, j.MemberCount, j.MembersTruncated, len(j.Members), j.Members[:min(3, len(j.Members))], protocol.PresenceListMax)
	}

	// The presence frame of the last joins has gone out (the first of
	// them, in the room's discovery period, were added without a notice
	// and with the list), so the next frames are deltas alone.
	last.waitUntil("presence with everyone", presenceWith(func(f rx) bool { return f.MemberCount == n }))
	waitDiscovered(t, ts, "big")

	// A member leaves: the others get a delta with the new count.
	gone := clients[0]
	gone.sendJSON(protocol.Inbound{Type: protocol.TypeLeave, Room: "big"})
	gone.next(protocol.TypeLeft)
	last.waitUntil("presence without u149", presenceWith(func(f rx) bool {
		return slices.Contains(f.Left, "u149") && f.MemberCount == n-1 && f.Members == nil
	}))
	// And joins again.
	gone.join("big", "u149")
	last.waitUntil("presence with u149 again", presenceWith(func(f rx) bool {
		return slices.Contains(f.Joined, "u149") && f.MemberCount == n
	}))

	// A burst of leaves, more than PresenceDeltaMax: no names of who left,
	// but the first names of the list after it, which replace the
	// client's (none of those who left among them) and the right count.
	const burst = protocol.PresenceDeltaMax + 10
	leaving := clients[1 : 1+burst] // u148 down to u119
	for _, c := range leaving {
		c.sendJSON(protocol.Inbound{Type: protocol.TypeLeave, Room: "big"})
	}
	for _, c := range leaving {
		c.next(protocol.TypeLeft)
	}
	stay := slices.DeleteFunc(slices.Clone(names), func(name string) bool {
		return name >= "u119" && name <= "u148"
	})
	last.waitUntil("presence after the burst of leaves", presenceWith(func(f rx) bool {
		return f.MemberCount == n-burst
	}))
	frames := last.frameList(protocol.TypePresence)
	got := frames[len(frames)-1]
	if !got.NamesOmitted {
		// The leaves were split over frames of at most PresenceDeltaMax
		// names (a stall of over a second between them): the deltas
		// must then name everyone who left.
		var left []string
		for _, f := range frames[len(frames)-2:] {
			left = append(left, f.Left...)
		}
		if len(left) != burst {
			t.Fatalf("after %d leaves, split: the last frames name %d who left: %v", burst, len(left), left)
		}
		return
	}
	if !slices.Equal(got.Members, stay[:protocol.PresenceListMax]) || !got.MembersTruncated || got.Left != nil {
		t.Fatalf("after %d leaves: members %v... (%d), truncated %v, left %v; want the first %d of the %d who stay",
			burst, got.Members[:min(3, len(got.Members))], len(got.Members), got.MembersTruncated, got.Left,
			protocol.PresenceListMax, len(stay))
	}
}

// presenceWith reports whether some presence frame satisfies ok.
func presenceWith(ok func(rx) bool) func([]rx) bool {
	return func(frames []rx) bool {
		for _, f := range frames {
			if f.Type == protocol.TypePresence && ok(f) {
				return true
			}
		}
		return false
	}
}

// noticed returns the names that presence frames for room told c had
// joined and had left, in order.
func noticed(c *client, room string) (joined, left []string) {
	for _, f := range c.frameList(protocol.TypePresence) {
		if f.Room == room {
			joined = append(joined, f.Joined...)
			left = append(left, f.Left...)
		}
	}
	return joined, left
}

// membersHave reports whether the last joined or presence frame for room
// lists all of names (and maybe more).
func membersHave(room string, names ...string) func([]rx) bool {
	return func(frames []rx) bool {
		for i := len(frames) - 1; i >= 0; i-- {
			f := frames[i]
			if f.Room == room && (f.Type == protocol.TypePresence || f.Type == protocol.TypeJoined) {
				for _, n := range names {
					if !slices.Contains(f.Members, n) {
						return false
					}
				}
				return true
			}
		}
		return false
	}
}

// waitDiscovered waits until ts is in room and past its discovery period
// (presenceDiscovery), after which the names it learns are arrivals.
func waitDiscovered(t *testing.T, ts *testServer, room string) {
	t.Helper()
	waitFor(t, waitTimeout, "the discovery of "+room+" on "+ts.cfg.AppID, func() bool {
		ts.mu.Lock()
		r := ts.rooms[room]
		ts.mu.Unlock()
		if r == nil {
			return false
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.sub != nil && time.Now().After(r.discoverUntil)
	})
}

// onBrokers runs test on two servers' brokers: one in-process broker
// shared, and two connections to the local Redis.
func onBrokers(t *testing.T, test func(t *testing.T, ba, bb, bc broker.Broker)) {
	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		b := memBroker(t)
		test(t, b, b, b)
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		test(t, redisBroker(t), redisBroker(t), redisBroker(t))
	})
}

// TestPresenceLateJoinerNoPhantoms: a client joining on a server new to the
// room is told of the members already there by the list alone, not as
// "joined"; the members already there are told the late joiner joined.
func TestPresenceLateJoinerNoPhantoms(t *testing.T) {
	t.Parallel()
	onBrokers(t, func(t *testing.T, ba, bb, _ broker.Broker) {
		prefix := testPrefix(t)
		sa := startServer(t, ba, Config{AppID: "1000", Prefix: prefix, PresenceInterval: time.Minute})
		sb := startServer(t, bb, Config{AppID: "2000", Prefix: prefix, PresenceInterval: time.Minute})
		a1 := dial(t, sa.url)
		a1.join("r", "a1")
		a2 := dial(t, sa.url)
		a2.join("r", "a2")
		a1.waitUntil("a2 on the list", hasMembers("r", "a1", "a2"))
		waitDiscovered(t, sa, "r") // sa is told of arrivals now

		late := dial(t, sb.url)
		late.join("r", "late")
		late.waitUntil("the whole list", hasMembers("r", "a1", "a2", "late"))
		a1.waitUntil("late announced", presenceWith(func(f rx) bool { return slices.Equal(f.Joined, []string{"late"}) }))
		if joined, left := noticed(late, "r"); len(joined) > 0 || len(left) > 0 {
			t.Fatalf("the late joiner was told %v joined and %v left", joined, left)
		}
	})
}

// TestPresenceLateJoinerBigRoom: in a room of more than
// protocol.PresenceListMax members, the late joiner on a new server gets
// the first names of the list (which replace its own) and the count, and
// no joined names.
func TestPresenceLateJoinerBigRoom(t *testing.T) {
	t.Parallel()
	const n = protocol.PresenceListMax + 20
	b := memBroker(t)
	prefix := testPrefix(t)
	sa := startServer(t, b, Config{AppID: "1000", Prefix: prefix, PresenceInterval: time.Minute})
	sb := startServer(t, b, Config{AppID: "2000", Prefix: prefix, PresenceInterval: time.Minute})
	names := make([]string, 0, n+1)
	var first *client
	for i := range n {
		c := dial(t, sa.url)
		name := fmt.Sprintf("u%03d", i)
		c.join("big", name)
		names = append(names, name)
		if first == nil {
			first = c
		}
	}
	first.waitUntil("presence with everyone", presenceWith(func(f rx) bool { return f.MemberCount == n }))
	waitDiscovered(t, sa, "big")
	late := dial(t, sb.url)
	if j := late.join("big", "late"); j.MemberCount != 1 {
		t.Fatalf("joined on the new server counts %d members, want 1 (the others come later)", j.MemberCount)
	}
	names = append(names, "late")
	slices.Sort(names)
	late.waitUntil("the count of the whole room", presenceWith(func(f rx) bool { return f.MemberCount == n+1 }))
	got := late.frameList(protocol.TypePresence)
	last := got[len(got)-1]
	if !slices.Equal(last.Members, names[:protocol.PresenceListMax]) || !last.MembersTruncated {
		t.Fatalf("presence to the late joiner: %d names (%v...), truncated %v; want the first %d of the room",
			len(last.Members), last.Members[:min(3, len(last.Members))], last.MembersTruncated, protocol.PresenceListMax)
	}
	if joined, left := noticed(late, "big"); len(joined) > 0 || len(left) > 0 {
		t.Fatalf("the late joiner was told %d joined (%v) and %v left", len(joined), joined[:min(3, len(joined))], left)
	}
	first.waitUntil("late announced", presenceWith(func(f rx) bool { return slices.Equal(f.Joined, []string{"late"}) }))
}

// TestPresenceFailover: a client whose server stops (a graceful shutdown,
// or a crash) re-joins on a server that did not have the room. It is not
// told that anybody joined; the members on the other servers see it
// neither leave nor join; a member of the stopped server that does not
// come back is seen to leave.
func TestPresenceFailover(t *testing.T) {
	t.Parallel()
	for _, stop := range []string{"shutdown", "kill"} {
		t.Run(stop, func(t *testing.T) {
			t.Parallel()
			onBrokers(t, func(t *testing.T, ba, bb, bc broker.Broker) {
				testPresenceFailover(t, stop, ba, bb, bc)
			})
		})
	}
}

func testPresenceFailover(t *testing.T, stop string, ba, bb, bc broker.Broker) {
	prefix := testPrefix(t)
	// A second's interval: the stopped server's last snapshot lives 3 s,
	// ample time for x to re-join elsewhere, short enough for the test
	// to see a1 leave when it expires.
	cfg := func(id string) Config {
		return Config{AppID: id, Prefix: prefix, PresenceInterval: time.Second}
	}
	sa := startServer(t, ba, cfg("1000"))
	sb := startServer(t, bb, cfg("2000"))
	sc := startServer(t, bc, cfg("3000"))
	x := dial(t, sa.url)
	x.join("r", "x")
	a1 := dial(t, sa.url)
	a1.join("r", "a1")
	b1 := dial(t, sb.url)
	b1.join("r", "b1")
	b1.waitUntil("everyone", hasMembers("r", "a1", "b1", "x"))
	x.waitUntil("everyone", hasMembers("r", "a1", "b1", "x"))
	before := len(b1.frameList(protocol.TypePresence))

	switch stop {
	case "shutdown":
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := sa.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	case "kill":
		sa.kill()
	}
	x.closeErr()
	x2 := dial(t, sc.url)
	x2.join("r", "x")
	x2.waitUntil("b1 on the list", membersHave("r", "b1", "x"))
	// a1 did not come back: when sa's last snapshot expires b1 sees it
	// leave, and by then sc's snapshot with x has long reached sb.
	b1.waitUntil("a1 gone", presenceWith(func(f rx) bool { return slices.Contains(f.Left, "a1") }))
	b1.waitUntil("b1 and x", hasMembers("r", "b1", "x"))
	for _, f := range b1.frameList(protocol.TypePresence)[before:] {
		if slices.Contains(f.Joined, "x") || slices.Contains(f.Left, "x") {
			t.Fatalf("b1 saw x fail over: %+v", f)
		}
	}
	if joined, _ := noticed(x2, "r"); len(joined) > 0 {
		t.Fatalf("after failing over, x was told %v joined", joined)
	}
}

// TestPresenceArrivalsAndDepartures: real arrivals and departures are
// announced, on the members' server and on others, including an arrival
// on a server that newly enters the room, and the departure of a client
// whose connection ended and that did not come back.
func TestPresenceArrivalsAndDepartures(t *testing.T) {
	t.Parallel()
	onBrokers(t, func(t *testing.T, ba, bb, bc broker.Broker) {
		prefix := testPrefix(t)
		// A second's interval: a name whose connection ended lingers
		// that long.
		cfg := func(id string) Config {
			return Config{AppID: id, Prefix: prefix, PresenceInterval: time.Second}
		}
		sa := startServer(t, ba, cfg("1000"))
		sb := startServer(t, bb, cfg("2000"))
		sc := startServer(t, bc, cfg("3000"))
		a1 := dial(t, sa.url)
		a1.join("r", "a1")
		b1 := dial(t, sb.url)
		b1.join("r", "b1")
		b1.waitUntil("a1 on the list", hasMembers("r", "a1", "b1"))
		a1.waitUntil("b1 on the list", hasMembers("r", "a1", "b1"))
		// From here on sa and sb learn arrivals, not members all along.
		waitDiscovered(t, sa, "r")
		waitDiscovered(t, sb, "r")
		announced := func(c *client, what string, joined, left []string) {
			t.Helper()
			c.waitUntil(what, presenceWith(func(f rx) bool {
				return slices.Equal(f.Joined, joined) && slices.Equal(f.Left, left)
			}))
		}

		a2 := dial(t, sa.url) // on a server in the room
		a2.join("r", "a2")
		announced(a1, "a2 joined (same server)", []string{"a2"}, nil)
		announced(b1, "a2 joined (other server)", []string{"a2"}, nil)

		c1 := dial(t, sc.url) // on a server new to the room
		c1.join("r", "c1")
		announced(a1, "c1 joined", []string{"c1"}, nil)
		announced(b1, "c1 joined", []string{"c1"}, nil)

		a2.sendJSON(protocol.Inbound{Type: protocol.TypeLeave, Room: "r"})
		announced(a1, "a2 left (same server)", nil, []string{"a2"})
		announced(b1, "a2 left (other server)", nil, []string{"a2"})

		_ = c1.ws.Close() // sc's last member: its name lingers, then goes
		announced(a1, "c1 left", nil, []string{"c1"})
		announced(b1, "c1 left", nil, []string{"c1"})
		b1.waitUntil("a1 and b1", hasMembers("r", "a1", "b1"))
	})
}

// TestPresenceReconnect: a client whose connection ends and that re-joins
// at once, on its server or another, is not seen to leave and come back,
// and is not told that anybody joined; one that does not come back is seen
// to leave after its linger (one presence interval).
func TestPresenceReconnect(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		alone bool // x is its server's only member of the room
		other bool // x re-joins on the other server
	}{
		{"same server", false, false},
		{"same server, alone", true, false},
		{"other server", false, true},
		{"other server, alone", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := memBroker(t)
			prefix := testPrefix(t)
			sa := startServer(t, b, Config{AppID: "1000", Prefix: prefix, PresenceInterval: time.Minute})
			sb := startServer(t, b, Config{AppID: "2000", Prefix: prefix, PresenceInterval: time.Minute})
			b1 := dial(t, sb.url)
			b1.join("r", "b1")
			x := dial(t, sa.url)
			x.join("r", "x")
			want := []string{"b1", "x"}
			if !tc.alone {
				a1 := dial(t, sa.url)
				a1.join("r", "a1")
				want = []string{"a1", "b1", "x"}
			}
			b1.waitUntil("everyone", hasMembers("r", want...))
			x.waitUntil("everyone", hasMembers("r", want...))
			waitDiscovered(t, sb, "r") // sb is told of arrivals now
			before := len(b1.frameList(protocol.TypePresence))

			_ = x.ws.Close()
			// sa has dealt with the end of x's connection and told sb.
			waitFor(t, waitTimeout, "sa to publish after x's end", func() bool {
				sa.mu.Lock()
				r := sa.rooms["r"]
				sa.mu.Unlock()
				if r == nil {
					return tc.alone
				}
				r.mu.Lock()
				defer r.mu.Unlock()
				return len(*r.members.Load()) == len(want)-2 && !r.dirty
			})
			url := sa.url
			if tc.other {
				url = sb.url
			}
			x2 := dial(t, url)
			x2.join("r", "x")
			x2.waitUntil("everyone", hasMembers("r", want...))
			// A real newcomer on sa, after x: once b1 is told of it, sa's
			// snapshots about x have reached sb.
			n1 := dial(t, sa.url)
			n1.join("r", "n1")
			b1.waitUntil("n1 joined", presenceWith(func(f rx) bool { return slices.Contains(f.Joined, "n1") }))
			for _, f := range b1.frameList(protocol.TypePresence)[before:] {
				if len(f.Left) > 0 || !slices.Equal(f.Joined, []string{"n1"}) {
					t.Fatalf("b1 saw x reconnect: %+v", f)
				}
			}
			if joined, left := noticed(x2, "r"); len(left) > 0 || slices.ContainsFunc(joined, func(n string) bool { return n != "x" && n != "n1" }) {
				t.Fatalf("after reconnecting, x was told %v joined and %v left", joined, left)
			}
		})
	}
}

// TestPresenceDeltaInBigRoom: past protocol.PresenceListMax members a
// presence frame carries only the names that joined and left.
func TestPresenceDeltaInBigRoom(t *testing.T) {
	t.Parallel()
	ts := startServer(t, memBroker(t), Config{AppID: "1000", Prefix: testPrefix(t), PresenceInterval: time.Hour})
	first := dial(t, ts.url)
	first.next(protocol.TypeWelcome)
	first.join("big", "u000")
	for i := 1; i <= protocol.PresenceListMax; i++ {
		c := dial(t, ts.url)
		c.next(protocol.TypeWelcome)
		c.join("big", "u"+strconv.Itoa(1000 + i)[1:])
	}
	// The burst of joins has been told (a burst of more than
	// protocol.PresenceDeltaMax names comes without them): late's join is
	// the next change.
	first.waitUntil("the burst told", func(frames []rx) bool {
		for _, f := range slices.Backward(frames) {
			if f.Type == protocol.TypePresence {
				return f.MemberCount == protocol.PresenceListMax+1
			}
		}
		return false
	})
	// A join within the room's first second is a quiet arrival (a client
	// failing over, no "joined" name): late comes after it. The burst may
	// have been quicker than that.
	waitDiscovered(t, ts, "big")
	late := dial(t, ts.url)
	late.next(protocol.TypeWelcome)
	if j := late.join("big", "late"); j.MemberCount != protocol.PresenceListMax+2 {
		t.Fatalf("joined counts %d members, want %d", j.MemberCount, protocol.PresenceListMax+2)
	}
	first.waitUntil("presence with late", func(frames []rx) bool {
		for _, f := range slices.Backward(frames) {
			if f.Type == protocol.TypePresence && slices.Contains(f.Joined, "late") {
				if f.Members != nil {
					t.Errorf("presence in a room of %d lists the members", protocol.PresenceListMax+2)
				}
				return true
			}
		}
		return false
	})
}

// TestJoinBurstMemberLists: a burst of concurrent joins into one room of
// more than protocol.PresenceListMax members (the joins add to the room's
// fan-out and name lists in place) leaves the server with exactly the
// members, each client with the room's count, and a message reaches every
// member; after a burst of leaves every member left gets the exact list;
// after a wave of ended connections the fan-out list is compacted and the
// others still get every message.
func TestJoinBurstMemberLists(t *testing.T) {
	t.Parallel()
	ts := startServer(t, memBroker(t), Config{AppID: "1000", Prefix: testPrefix(t), PresenceInterval: time.Hour})
	const n, stay = protocol.PresenceListMax + 50, protocol.PresenceListMax
	cs := make([]*client, n)
	names := make([]string, n)
	for i := range cs {
		names[i] = fmt.Sprintf("m%03d", i)
		cs[i] = dial(t, ts.url)
	}
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Go(func() {
			errs <- c.ws.WriteJSON(protocol.Inbound{Type: protocol.TypeJoin, Room: "burst", Name: names[i]})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("join: %v", err)
		}
	}
	for i, c := range cs {
		j := c.next(protocol.TypeJoined)
		if j.MemberCount < 1 || j.MemberCount > n || len(j.Members) > protocol.PresenceListMax ||
			!slices.IsSorted(j.Members) || !slices.Contains(j.Members, names[i]) && j.MemberCount <= protocol.PresenceListMax {
			t.Fatalf("%s joined with %d members %v", names[i], j.MemberCount, j.Members)
		}
	}
	for _, c := range cs {
		c.waitUntil("the whole room counted", func(frames []rx) bool {
			for _, f := range slices.Backward(frames) {
				if f.Type == protocol.TypePresence || f.Type == protocol.TypeJoined {
					return f.MemberCount == n
				}
			}
			return false
		})
	}
	checkRoom := func(want []string) {
		t.Helper()
		ts.mu.Lock()
		r := ts.rooms["burst"]
		ts.mu.Unlock()
		r.mu.Lock()
		list := slices.Clone(r.unionLocked(time.Now()))
		fanout := *r.members.Load()
		r.mu.Unlock()
		if !slices.Equal(list, want) {
			t.Fatalf("server's member list %v, want %v", list, want)
		}
		distinct := make(map[*engine.Conn]bool)
		for _, c := range fanout {
			distinct[c] = true
		}
		if len(fanout) != len(want) || len(distinct) != len(want) {
			t.Fatalf("fan-out list of %d connections, %d distinct, want %d", len(fanout), len(distinct), len(want))
		}
	}
	checkRoom(names)

	cs[0].sendJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "burst", Text: "to all", CID: "c1"})
	for _, c := range cs {
		if m := c.next(protocol.TypeMessage); m.Text != "to all" {
			t.Fatalf("got message %q", m.Text)
		}
	}

	for _, c := range cs[stay:] {
		c.sendJSON(protocol.Inbound{Type: protocol.TypeLeave, Room: "burst"})
	}
	for _, c := range cs[stay:] {
		c.next(protocol.TypeLeft)
	}
	for _, c := range cs[:stay] {
		c.waitUntil("the exact list after the leaves", hasMembers("burst", names[:stay]...))
	}
	checkRoom(names[:stay])

	// A wave of ended connections: their names linger, the fan-out list
	// drops them a quarter at a time, the others still get every message.
	const cut = 30
	for _, c := range cs[stay-cut : stay] {
		_ = c.ws.Close()
	}
	ts.mu.Lock()
	r := ts.rooms["burst"]
	ts.mu.Unlock()
	waitFor(t, waitTimeout, "the ended connections left", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(*r.members.Load())-len(r.ended) == stay-cut
	})
	r.mu.Lock()
	fanout, ended := len(*r.members.Load()), len(r.ended)
	r.mu.Unlock()
	if fanout >= stay || ended*endedShare >= fanout {
		t.Fatalf("fan-out list of %d with %d ended: not compacted", fanout, ended)
	}
	cs[0].sendJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "burst", Text: "after the wave", CID: "c2"})
	for _, c := range cs[:stay-cut] {
		if m := c.next(protocol.TypeMessage); m.Text != "after the wave" {
			t.Fatalf("got message %q", m.Text)
		}
	}
}
