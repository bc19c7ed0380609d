package rooms

import (
	"bytes"
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/livechat/livechat/internal/httpapi"
	"github.com/livechat/livechat/pkg/auth"
	"github.com/livechat/livechat/pkg/protocol"
	"github.com/livechat/livechat/pkg/store"
)

// sqliteEnv is an env on a SQLite file (the attack tests need one backend).
func sqliteEnv(t *testing.T) *env {
	return newEnv(t, "sqlite://"+filepath.Join(t.TempDir(), "store.db"))
}

// TestGuessedRoomIDs: a stranger probing 1,000 guessed private and direct
// room ids gets, for every endpoint, the very bytes it gets for real rooms
// it is not in, and Enter gives the same error for both.
func TestGuessedRoomIDs(t *testing.T) {
	e := sqliteEnv(t)
	ctx := context.Background()
	alice, bob, mallory := e.account(t, "Alice"), e.account(t, "Bob"), e.account(t, "Mallory")
	priv := e.createRoom(t, alice, "secret plans", "private")
	e.invite(t, alice, priv.ID, "Bob", http.StatusCreated, "")
	var d struct{ Room Room }
	e.do(t, "POST", "/api/direct", alice, `{"name":"Bob"}`).decode(t, &d)
	real := []string{priv.ID, d.Room.ID}

	// What each probe answers for a real room.
	probes := []struct {
		method, path, body string
	}{
		{"GET", "/api/rooms/%s/members", ""},
		{"POST", "/api/rooms/%s/members", `{"name":"Mallory"}`},
		{"POST", "/api/rooms/%s/accept", ""},
		{"DELETE", "/api/rooms/%s/members/" + alice.UserID, ""},
		{"DELETE", "/api/rooms/%s/members/" + mallory.UserID, ""},
	}
	send := func(p int, room string, as auth.Identity) resp {
		return e.do(t, probes[p].method, strings.Replace(probes[p].path, "%s", room, 1), as, probes[p].body)
	}
	ref := send(0, priv.ID, mallory)
	want(t, "reference probe", ref, http.StatusNotFound, "not_found")
	same := func(what string, r resp) {
		t.Helper()
		if r.status != ref.status || !bytes.Equal(r.body, ref.body) || r.header.Get("Content-Type") != ref.header.Get("Content-Type") ||
			r.header.Get("Content-Length") != ref.header.Get("Content-Length") {
			t.Fatalf("%s: %d %q differs from the answer for a real room: %d %q", what, r.status, r.body, ref.status, ref.body)
		}
	}
	for p := range probes {
		for _, room := range real {
			same(probes[p].method+" "+probes[p].path+" real "+room, send(p, room, mallory))
		}
		// An invitation is not a membership: bob (invited) sees no members.
		if p == 0 {
			same("invited lists members", send(p, priv.ID, bob))
		}
	}
	for i := range 1000 {
		prefix := protocol.PrivateRoomPrefix
		if i%2 == 1 {
			prefix = protocol.DirectRoomPrefix
		}
		guess := NewID(prefix)
		p := 0
		if i%10 == 0 { // every probe on some of the guesses, the listing on all
			p = (i / 10) % len(probes)
		}
		same("guess "+guess, send(p, guess, mallory))
		if err := e.svc.Enter(ctx, mallory, guess); !isNoRoom(err) {
			t.Fatalf("Enter guess %s = %v", guess, err)
		}
	}
	for _, room := range real {
		if err := e.svc.Enter(ctx, mallory, room); !isNoRoom(err) {
			t.Fatalf("Enter real %s = %v", room, err)
		}
	}
	// Nothing changed.
	if r := e.role(t, priv.ID, alice.UserID); r != store.RoleOwner {
		t.Fatalf("alice's role = %q", r)
	}
	if r := e.role(t, priv.ID, mallory.UserID); r != "" {
		t.Fatalf("mallory's role = %q", r)
	}
	if evs := e.takeEvents(); len(evs) != 0 {
		t.Fatalf("events = %+v", evs)
	}
}

// TestMemberIsNotOwner: a member who is not the owner cannot invite nor
// remove others; an invited user cannot remove anyone either.
func TestMemberIsNotOwner(t *testing.T) {
	e := sqliteEnv(t)
	alice, bob, carol, dave := e.account(t, "Alice"), e.account(t, "Bob"), e.account(t, "Carol"), e.account(t, "Dave")
	room := e.createRoom(t, alice, "team", "private")
	e.invite(t, alice, room.ID, "Bob", http.StatusCreated, "")
	want(t, "accept", e.do(t, "POST", "/api/rooms/"+room.ID+"/accept", bob, ""), http.StatusNoContent, "")
	e.invite(t, alice, room.ID, "Carol", http.StatusCreated, "")

	e.invite(t, bob, room.ID, "Dave", http.StatusForbidden, "forbidden")
	if r := e.role(t, room.ID, dave.UserID); r != "" {
		t.Fatalf("dave's role after bob's invite = %q", r)
	}
	want(t, "member removes owner", e.do(t, "DELETE", "/api/rooms/"+room.ID+"/members/"+alice.UserID, bob, ""), http.StatusForbidden, "forbidden")
	want(t, "member removes invited", e.do(t, "DELETE", "/api/rooms/"+room.ID+"/members/"+carol.UserID, bob, ""), http.StatusForbidden, "forbidden")
	// Carol is invited only: for her the room is still not found.
	e.invite(t, carol, room.ID, "Dave", http.StatusNotFound, "not_found")
	want(t, "invited removes member", e.do(t, "DELETE", "/api/rooms/"+room.ID+"/members/"+bob.UserID, carol, ""), http.StatusNotFound, "not_found")
	if e.role(t, room.ID, alice.UserID) != store.RoleOwner || e.role(t, room.ID, bob.UserID) != store.RoleMember ||
		e.role(t, room.ID, carol.UserID) != store.RoleInvited {
		t.Fatal("memberships changed")
	}
	if evs := e.takeEvents(); len(evs) != 0 {
		t.Fatalf("events = %+v", evs)
	}
}

// TestSignedOut: guests and requests without credentials (or with ended
// ones) get 401 signed_out everywhere but the directory.
func TestSignedOut(t *testing.T) {
	e := sqliteEnv(t)
	alice := e.account(t, "Alice")
	room := e.createRoom(t, alice, "team", "private")
	guest := auth.Identity{Kind: auth.KindGuest, UserID: "g_visitor", Name: "Visitor"}
	e.register(guest)
	// A guest identity whose id is a member's id must not pass either.
	e.register(auth.Identity{Kind: auth.KindGuest, UserID: "g_" + alice.UserID})
	ended := auth.Identity{UserID: "ended-session"} // not registered: ErrSessionEnded
	for _, who := range []auth.Identity{{}, guest, ended} {
		for _, req := range []struct{ method, path, body string }{
			{"POST", "/api/rooms", `{"name":"x","kind":"private"}`},
			{"POST", "/api/rooms", `{"name":"x","kind":"public"}`},
			{"GET", "/api/conversations", ""},
			{"POST", "/api/direct", `{"name":"Alice"}`},
			{"GET", "/api/rooms/" + room.ID + "/members", ""},
			{"POST", "/api/rooms/" + room.ID + "/members", `{"name":"Alice"}`},
			{"POST", "/api/rooms/" + room.ID + "/accept", ""},
			{"DELETE", "/api/rooms/" + room.ID + "/members/" + alice.UserID, ""},
		} {
			want(t, "as "+who.UserID+": "+req.method+" "+req.path, e.do(t, req.method, req.path, who, req.body), http.StatusUnauthorized, "signed_out")
		}
		want(t, "directory as "+who.UserID, e.do(t, "GET", "/api/rooms", who, ""), http.StatusOK, "")
	}
	if r := e.role(t, room.ID, alice.UserID); r != store.RoleOwner {
		t.Fatalf("alice's role = %q", r)
	}
	rs, err := e.st.PublicRooms(context.Background(), "", 0)
	if err != nil || len(rs) != 0 {
		t.Fatalf("public rooms = %+v, %v", rs, err)
	}
	if err := e.svc.Enter(context.Background(), guest, room.ID); !isNoRoom(err) {
		t.Fatalf("guest Enter = %v", err)
	}
}

// TestCrossOrigin: state changes from another site's page are refused
// before anything happens; GETs are not state changes.
func TestCrossOrigin(t *testing.T) {
	e := newEnvConfig(t, "sqlite://"+filepath.Join(t.TempDir(), "store.db"), func(c *Config) {
		c.AllowedOrigins = []string{"app.example.com"}
	})
	alice, bob := e.account(t, "Alice"), e.account(t, "Bob")
	room := e.createRoom(t, alice, "team", "private")
	e.invite(t, alice, room.ID, "Bob", http.StatusCreated, "")
	for _, h := range [][]string{
		{"Origin", "https://evil.example"},
		{"Origin", "null"},
		{"Sec-Fetch-Site", "cross-site"},
	} {
		for _, req := range []struct {
			method, path, body string
			as                 auth.Identity
		}{
			{"POST", "/api/rooms", `{"name":"x","kind":"public"}`, alice},
			{"POST", "/api/direct", `{"name":"Bob"}`, alice},
			{"POST", "/api/rooms/" + room.ID + "/members", `{"name":"Carol"}`, alice},
			{"POST", "/api/rooms/" + room.ID + "/accept", "", bob},
			{"DELETE", "/api/rooms/" + room.ID + "/members/" + bob.UserID, "", alice},
			{"DELETE", "/api/rooms/" + room.ID + "/members/" + bob.UserID, "", auth.Identity{}}, // before the identity
		} {
			want(t, h[1]+" "+req.method+" "+req.path, e.do(t, req.method, req.path, req.as, req.body, h...), http.StatusForbidden, "cross_origin")
		}
	}
	if r := e.role(t, room.ID, bob.UserID); r != store.RoleInvited {
		t.Fatalf("bob's role after cross-origin requests = %q", r)
	}
	if cs, _ := e.st.RoomsOf(context.Background(), alice.UserID); len(cs) != 1 {
		t.Fatalf("alice's rooms = %+v", cs)
	}
	// Same origin, an allowed origin, and reads pass.
	want(t, "same origin", e.do(t, "POST", "/api/rooms", alice, `{"name":"a","kind":"public"}`, "Origin", e.srv.URL), http.StatusCreated, "")
	want(t, "allowed origin", e.do(t, "POST", "/api/rooms", alice, `{"name":"b","kind":"public"}`, "Origin", "https://app.example.com"), http.StatusCreated, "")
	want(t, "cross-origin read", e.do(t, "GET", "/api/conversations", alice, "", "Origin", "https://evil.example"), http.StatusOK, "")
}

// TestBadBodies: unknown fields, oversized bodies, bad titles and a direct
// chat with oneself are refused.
func TestBadBodies(t *testing.T) {
	e := sqliteEnv(t)
	alice := e.account(t, "Alice")
	e.account(t, "Bob")
	room := e.createRoom(t, alice, "team", "private")
	big := `{"name":"` + strings.Repeat("a", httpapi.MaxBody) + `","kind":"private"}`
	for _, tc := range []struct {
		what, path, body string
		status           int
		code             string
	}{
		{"unknown field", "/api/rooms", `{"name":"x","kind":"private","owner":"u1"}`, 400, "bad_request"},
		{"unknown field invite", "/api/rooms/" + room.ID + "/members", `{"name":"Bob","role":"owner"}`, 400, "bad_request"},
		{"unknown field direct", "/api/direct", `{"name":"Bob","room":"_dx"}`, 400, "bad_request"},
		{"two values", "/api/rooms", `{"name":"x","kind":"private"}{}`, 400, "bad_request"},
		{"not json", "/api/direct", `name=Bob`, 400, "bad_request"},
		{"oversized", "/api/rooms", big, 413, "too_large"},
		{"oversized direct", "/api/direct", big, 413, "too_large"},
		{"control character", "/api/rooms", `{"name":"a\u0007b","kind":"private"}`, 400, "invalid_room"},
		{"newline", "/api/rooms", `{"name":"line\nbreak","kind":"private"}`, 400, "invalid_room"},
		{"escape", "/api/rooms", `{"name":"\u001b[31mred","kind":"private"}`, 400, "invalid_room"},
		{"bidi override", "/api/rooms", `{"name":"abc\u202Egnp.exe","kind":"private"}`, 400, "invalid_room"},
		{"line separator", "/api/rooms", `{"name":"a\u2028b","kind":"private"}`, 400, "invalid_room"},
		{"empty title", "/api/rooms", `{"name":"   ","kind":"private"}`, 400, "invalid_room"},
		{"long title", "/api/rooms", `{"name":"` + strings.Repeat("é", MaxTitleLen+1) + `","kind":"private"}`, 400, "invalid_room"},
		{"missing kind", "/api/rooms", `{"name":"x"}`, 400, "bad_request"},
		{"yourself", "/api/direct", `{"name":"Alice"}`, 400, "bad_request"},
		{"yourself, other case", "/api/direct", `{"name":"ALICE"}`, 400, "bad_request"},
	} {
		want(t, tc.what, e.do(t, "POST", tc.path, alice, tc.body), tc.status, tc.code)
	}
	want(t, "64-rune title", e.do(t, "POST", "/api/rooms", alice, `{"name":"`+strings.Repeat("é", MaxTitleLen)+`","kind":"private"}`), 201, "")
	if cs, _ := e.st.RoomsOf(context.Background(), alice.UserID); len(cs) != 2 {
		t.Fatalf("alice's rooms = %d, want 2", len(cs))
	}
}

// TestRestrictedToken: a token limited to some rooms sees and changes only
// those, and makes no new rooms.
func TestRestrictedToken(t *testing.T) {
	e := sqliteEnv(t)
	alice, bob := e.account(t, "Alice"), e.account(t, "Bob")
	a := e.createRoom(t, alice, "a", "private")
	b := e.createRoom(t, alice, "b", "private")
	tok := auth.Identity{Kind: auth.KindToken, UserID: alice.UserID, Name: "Alice", Rooms: []string{a.ID}}
	e.mu.Lock()
	e.ids["tok"] = tok
	e.mu.Unlock()
	tok.UserID = "tok" // the X-Test-User value
	var convs struct{ Conversations []Conversation }
	e.do(t, "GET", "/api/conversations", tok, "").decode(t, &convs)
	if len(convs.Conversations) != 1 || convs.Conversations[0].Room.ID != a.ID {
		t.Fatalf("restricted conversations = %+v", convs)
	}
	want(t, "members of a", e.do(t, "GET", "/api/rooms/"+a.ID+"/members", tok, ""), http.StatusOK, "")
	want(t, "members of b", e.do(t, "GET", "/api/rooms/"+b.ID+"/members", tok, ""), http.StatusNotFound, "not_found")
	e.invite(t, tok, b.ID, "Bob", http.StatusNotFound, "not_found")
	want(t, "create", e.do(t, "POST", "/api/rooms", tok, `{"name":"c","kind":"private"}`), http.StatusForbidden, "forbidden")
	want(t, "direct", e.do(t, "POST", "/api/direct", tok, `{"name":"Bob"}`), http.StatusForbidden, "forbidden")
	if r := e.role(t, b.ID, bob.UserID); r != "" {
		t.Fatalf("bob's role in b = %q", r)
	}
}

// TestWithdrawRacesAccept: an invitation withdrawn while its user accepts
// never turns into a membership (whichever comes first, the user ends up
// outside: removed after accepting, or refused after the withdrawal).
func TestWithdrawRacesAccept(t *testing.T) {
	e := sqliteEnv(t)
	alice, bob := e.account(t, "Alice"), e.account(t, "Bob")
	room := e.createRoom(t, alice, "team", "private")
	for i := range 40 {
		e.invite(t, alice, room.ID, "Bob", http.StatusCreated, "")
		var wg sync.WaitGroup
		wg.Go(func() { e.do(t, "POST", "/api/rooms/"+room.ID+"/accept", bob, "") })
		wg.Go(func() {
			want(t, "withdraw", e.do(t, "DELETE", "/api/rooms/"+room.ID+"/members/"+bob.UserID, alice, ""), http.StatusNoContent, "")
		})
		wg.Wait()
		if r := e.role(t, room.ID, bob.UserID); r != "" {
			t.Fatalf("round %d: bob's role after a withdrawn invitation = %q", i, r)
		}
	}
}
