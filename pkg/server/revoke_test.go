package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/livechat/livechat/pkg/auth"
	"github.com/livechat/livechat/pkg/broker"
	"github.com/livechat/livechat/pkg/protocol"
)

// publishEvent publishes a user event as pkg/account and pkg/rooms do.
func publishEvent(t testing.TB, b broker.Broker, prefix string, ev protocol.UserEvent) {
	t.Helper()
	data, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(context.Background(), protocol.UserSubject(prefix, ev.User), data); err != nil {
		t.Fatal(err)
	}
}

// revokeServer starts a server with Auth on b and waits for its user
// events subscription.
func revokeServer(t testing.TB, b broker.Broker, prefix, appID string, fa *fakeAuth, acc *fakeAccess) *testServer {
	t.Helper()
	cfg := Config{AppID: appID, Prefix: prefix, Auth: fa}
	if acc != nil {
		cfg.Access = acc
	}
	ts := startServer(t, b, cfg)
	waitFor(t, 5*time.Second, "the user events subscription", ts.userEventsOn.Load)
	return ts
}

// isOpen proves c is still served: a join answers.
func isOpen(c *client, room string) {
	c.t.Helper()
	c.join(room, "")
}

// TestRevoke: a sign-out closes only that session's connections with
// 4003; a password change all the user's with 4003; a ban 4004; other
// users' connections stay.
func TestRevoke(t *testing.T) {
	b := memBroker(t)
	prefix := testPrefix(t)
	fa := newFakeAuth()
	fa.session("c1", "uA", "alice", "s1")
	fa.session("c1b", "uA", "alice", "s1") // a second tab of session s1
	fa.session("c2", "uA", "alice", "s2")
	fa.session("c3", "uB", "bob", "s3")
	ts := revokeServer(t, b, prefix, "a1", fa, nil)

	a1, a1b, a2 := dialH(t, ts.url, cookie("c1")), dialH(t, ts.url, cookie("c1b")), dialH(t, ts.url, cookie("c2"))
	bob := dialH(t, ts.url, cookie("c3"))
	for _, c := range []*client{a1, a1b, a2, bob} {
		c.next(protocol.TypeWelcome)
	}

	publishEvent(t, b, prefix, protocol.UserEvent{Type: protocol.TypeRevoke, User: "uA", Session: "s1", Reason: protocol.ReasonSignedOut})
	for _, c := range []*client{a1, a1b} {
		if code := closeCode(c.closeErr()); code != protocol.CloseSignedOut {
			t.Fatalf("sign-out: close %d, want %d", code, protocol.CloseSignedOut)
		}
	}
	isOpen(a2, "r1")
	isOpen(bob, "r1")

	publishEvent(t, b, prefix, protocol.UserEvent{Type: protocol.TypeRevoke, User: "uA", Reason: protocol.ReasonPasswordChanged})
	if code := closeCode(a2.closeErr()); code != protocol.CloseSignedOut {
		t.Fatalf("password change: close %d, want %d", code, protocol.CloseSignedOut)
	}
	isOpen(bob, "r2")

	publishEvent(t, b, prefix, protocol.UserEvent{Type: protocol.TypeRevoke, User: "uB", Reason: protocol.ReasonBanned})
	if code := closeCode(bob.closeErr()); code != protocol.CloseAccountClosed {
		t.Fatalf("ban: close %d, want %d", code, protocol.CloseAccountClosed)
	}
	// A token user is revoked by its subject too (a deletion).
	tc := dialH(t, ts.url, bearer(mint(t, "uT", "Tim", time.Hour)))
	tc.next(protocol.TypeWelcome)
	publishEvent(t, b, prefix, protocol.UserEvent{Type: protocol.TypeRevoke, User: "uT", Reason: protocol.ReasonDeleted})
	if code := closeCode(tc.closeErr()); code != protocol.CloseAccountClosed {
		t.Fatalf("deletion: close %d, want %d", code, protocol.CloseAccountClosed)
	}
	if m := scrape(t, ts); !strings.Contains(m, `livechat_user_events_applied_total{type="revoke"} 5`) {
		t.Errorf("metrics lack 5 revocations:\n%s", grep(m, "user_events"))
	}
}

// TestRevokeRemoved: a removal takes the user's connections out of the
// room (left with reason removed, not_joined after) and leaves its other
// rooms and other users alone.
func TestRevokeRemoved(t *testing.T) {
	b := memBroker(t)
	prefix := testPrefix(t)
	fa := newFakeAuth()
	fa.session("c1", "uA", "alice", "s1")
	fa.session("c2", "uA", "alice", "s2")
	fa.session("c3", "uB", "bob", "s3")
	acc := newFakeAccess()
	acc.add("_pclub", "uA", "uB")
	ts := revokeServer(t, b, prefix, "a1", fa, acc)

	a1, a2, bob := dialH(t, ts.url, cookie("c1")), dialH(t, ts.url, cookie("c2")), dialH(t, ts.url, cookie("c3"))
	for _, c := range []*client{a1, a2, bob} {
		c.join("_pclub", "")
	}
	a1.join("lobby", "")
	bob.waitUntil("alice and bob in the club", hasMembers("_pclub", "alice", "bob"))

	acc.mu.Lock()
	delete(acc.members["_pclub"], "uA") // the store change comes first
	acc.mu.Unlock()
	publishEvent(t, b, prefix, protocol.UserEvent{Type: protocol.TypeRemoved, User: "uA", Room: "_pclub", Reason: protocol.ReasonRemoved})
	for _, c := range []*client{a1, a2} {
		l := c.next(protocol.TypeLeft)
		if l.Room != "_pclub" || l.Reason != protocol.ReasonRemoved {
			t.Fatalf("left %+v, want _pclub removed", l)
		}
		c.sendJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "_pclub", Text: "still?", CID: "s"})
		if e := c.next(protocol.TypeError); e.Code != protocol.CodeNotJoined {
			t.Fatalf("send after removal: %+v, want not_joined", e)
		}
	}
	bob.waitUntil("alice gone from the club", hasMembers("_pclub", "bob"))
	// Nothing of the room reaches the removed connections any more.
	bob.sendJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "_pclub", Text: "secret", CID: "b1"})
	bob.next(protocol.TypeAck)
	a1.sendJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "lobby", Text: "in lobby", CID: "l1"})
	if m := a1.next(protocol.TypeMessage); m.CID != "l1" {
		t.Fatalf("first message after the removal %+v, want the lobby's l1 (not the club's)", m)
	}
	// Joining again is refused like any room it may not enter.
	a1.sendJSON(protocol.Inbound{Type: protocol.TypeJoin, Room: "_pclub"})
	if e := a1.next(protocol.TypeError); e.Code != protocol.CodeNotFound {
		t.Fatalf("join after removal: %+v", e)
	}
	if m := scrape(t, ts); !strings.Contains(m, `livechat_user_events_applied_total{type="removed"} 2`) {
		t.Errorf("metrics lack 2 removals:\n%s", grep(m, "user_events"))
	}
}

// TestRevokeTwoServers: two servers on one broker both apply a user's
// events to their connections.
func TestRevokeTwoServers(t *testing.T) {
	b := memBroker(t)
	prefix := testPrefix(t)
	fa := newFakeAuth()
	fa.session("c1", "uA", "alice", "s1")
	s1 := revokeServer(t, b, prefix, "a1", fa, nil)
	s2 := revokeServer(t, b, prefix, "a2", fa, nil)
	c1, c2 := dialH(t, s1.url, cookie("c1")), dialH(t, s2.url, cookie("c1"))
	c1.next(protocol.TypeWelcome)
	c2.next(protocol.TypeWelcome)
	publishEvent(t, b, prefix, protocol.UserEvent{Type: protocol.TypeRevoke, User: "uA", Reason: protocol.ReasonBanned})
	for i, c := range []*client{c1, c2} {
		if code := closeCode(c.closeErr()); code != protocol.CloseAccountClosed {
			t.Fatalf("server %d: close %d, want %d", i+1, code, protocol.CloseAccountClosed)
		}
	}
}

// TestRevokeDuringHandshake: a revoke applied while a connection's
// handshake ran (after its credentials were checked, before it was
// registered) still closes it.
func TestRevokeDuringHandshake(t *testing.T) {
	b := memBroker(t)
	prefix := testPrefix(t)
	fa := newFakeAuth()
	fa.session("c1", "uA", "alice", "s1")
	ts := revokeServer(t, b, prefix, "a1", fa, nil)
	// The event goes between the mark serveWS took and the registration:
	// simulate it with the server's own bookkeeping.
	mark := ts.eventMark()
	publishEvent(t, b, prefix, protocol.UserEvent{Type: protocol.TypeRevoke, User: "uA", Session: "s1", Reason: protocol.ReasonSignedOut})
	waitFor(t, 5*time.Second, "the event applied", func() bool { return ts.eventMark() > mark })
	sess := &session{s: ts.Server, id: normalized(mustIdentity(t, fa, "c1"))}
	ts.mu.Lock()
	code := ts.registerLocked(sess, mark)
	ts.unregisterLocked(sess)
	ts.mu.Unlock()
	if code != protocol.CloseSignedOut {
		t.Fatalf("registration after a missed sign-out: code %d, want %d", code, protocol.CloseSignedOut)
	}
	ts.mu.Lock()
	code = ts.registerLocked(sess, ts.evSeq)
	ts.unregisterLocked(sess)
	ts.mu.Unlock()
	if code != 0 {
		t.Fatalf("registration after the event: code %d, want 0", code)
	}
}

// mustIdentity is what fa's Authenticate gives for a session cookie.
func mustIdentity(t testing.TB, fa *fakeAuth, cookieValue string) auth.Identity {
	t.Helper()
	r, _ := http.NewRequest(http.MethodGet, "/ws", nil)
	r.Header.Set("Cookie", "livechat_session="+cookieValue)
	id, err := fa.Authenticate(r)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestRejoinAfterLostRemoval: a re-join asks the Authorizer again; one it
// refuses takes the connection out of the room, as the removal's event
// would have (an event is at most once).
func TestRejoinAfterLostRemoval(t *testing.T) {
	fa := newFakeAuth()
	fa.session("c1", "uA", "alice", "s1")
	acc := newFakeAccess()
	acc.add("_pclub", "uA")
	ts := authServer(t, Config{Auth: fa, Access: acc})
	a := dialH(t, ts.url, cookie("c1"))
	a.join("_pclub", "")
	acc.mu.Lock()
	delete(acc.members["_pclub"], "uA") // removed, and the event lost
	acc.mu.Unlock()
	a.sendJSON(protocol.Inbound{Type: protocol.TypeJoin, Room: "_pclub"})
	if e := a.next(protocol.TypeError); e.Code != protocol.CodeNotFound {
		t.Fatalf("re-join: %+v, want not_found", e)
	}
	if l := a.next(protocol.TypeLeft); l.Room != "_pclub" || l.Reason != protocol.ReasonRemoved {
		t.Fatalf("left %+v", l)
	}
	a.sendJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "_pclub", Text: "x"})
	if e := a.next(protocol.TypeError); e.Code != protocol.CodeNotJoined {
		t.Fatalf("send after the refused re-join: %+v, want not_joined", e)
	}
}
