package server

import (
	"fmt"
	"slices"
	"testing"
	"time"

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
