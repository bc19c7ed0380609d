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
