package server

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livechat/livechat/pkg/auth"
	"github.com/livechat/livechat/pkg/history"
	"github.com/livechat/livechat/pkg/protocol"
)

// testSecret signs the tests' tokens (real pkg/auth tokens).
var testSecret = []byte("test-secret-of-at-least-32-bytes-for-hs256!")

// fakeAuth is an Authenticator: tokens are real pkg/auth tokens signed with
// testSecret, sessions a fixed map of cookie values, accounts a set of names.
type fakeAuth struct {
	mu       sync.Mutex
	sessions map[string]auth.Identity // livechat_session cookie value -> account identity
	accounts map[string]bool          // auth.NameKey of the account names
}

func newFakeAuth(accountNames ...string) *fakeAuth {
	a := &fakeAuth{sessions: map[string]auth.Identity{}, accounts: map[string]bool{}}
	for _, n := range accountNames {
		k, _ := auth.NameKey(n)
		a.accounts[k] = true
	}
	return a
}

// session adds a signed-in session of an account.
func (a *fakeAuth) session(cookie, userID, name, sessionID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.sessions[cookie] = auth.Identity{Kind: auth.KindAccount, UserID: userID, Name: name, Session: sessionID}
	k, _ := auth.NameKey(name)
	a.accounts[k] = true
}

func (a *fakeAuth) Authenticate(r *http.Request) (auth.Identity, error) {
	tok := r.URL.Query().Get("token")
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		tok = strings.TrimPrefix(h, "Bearer ")
	}
	if tok != "" {
		return a.Token(tok)
	}
	if ck, err := r.Cookie("livechat_session"); err == nil {
		a.mu.Lock()
		defer a.mu.Unlock()
		id, ok := a.sessions[ck.Value]
		if !ok {
			return auth.Identity{}, auth.ErrSessionEnded
		}
		return id, nil
	}
	return auth.Identity{}, auth.ErrNoCredentials
}

func (a *fakeAuth) Token(tok string) (auth.Identity, error) {
	c, err := auth.VerifyToken(testSecret, tok, time.Now())
	if err != nil {
		return auth.Identity{}, err
	}
	return auth.Identity{Kind: auth.KindToken, UserID: c.Subject, Name: cmp.Or(c.Name, c.Subject), Rooms: c.Rooms, Expires: c.ExpiresAt.Time}, nil
}

func (a *fakeAuth) GuestName(_ context.Context, name string) error {
	k, err := auth.NameKey(name)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.accounts[k] {
		return auth.ErrNameTaken
	}
	return nil
}

// fakeAccess is an Authorizer: public rooms are open, a reserved room
// only to its members (by user id), as pkg/rooms decides.
type fakeAccess struct {
	mu      sync.Mutex
	members map[string]map[string]bool // reserved room -> user ids
	fail    error                      // returned by Enter when set
	active  atomic.Int64               // Active calls
}

func newFakeAccess() *fakeAccess { return &fakeAccess{members: map[string]map[string]bool{}} }

func (f *fakeAccess) add(room string, users ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.members[room] == nil {
		f.members[room] = map[string]bool{}
	}
	for _, u := range users {
		f.members[room][u] = true
	}
}

func (f *fakeAccess) Enter(_ context.Context, id auth.Identity, room string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	if protocol.PublicRoom(room) {
		return nil
	}
	if id.Guest() || !f.members[room][id.UserID] {
		return auth.ErrNoRoom
	}
	return nil
}

func (f *fakeAccess) Active(string, time.Time) { f.active.Add(1) }

// mint returns a token of user sub (named name) valid for ttl.
func mint(t testing.TB, sub, name string, ttl time.Duration, rooms ...string) string {
	t.Helper()
	c := auth.Claims{Name: name, Rooms: rooms}
	c.Subject = sub
	tok, err := auth.MintToken(testSecret, c, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// bearer is the header of a token.
func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

// cookie is the header of a session cookie.
func cookie(v string) http.Header { return http.Header{"Cookie": {"livechat_session=" + v}} }

// dialH dials with headers and fails the test when the handshake fails.
func dialH(t testing.TB, url string, h http.Header) *client {
	t.Helper()
	ws, status, err := dialRaw(url, h)
	if err != nil {
		t.Fatalf("dial %s: %v (HTTP %d)", url, err, status)
	}
	return newClient(t, ws)
}

// user decodes a welcome's or authed frame's user.
func user(t testing.TB, f rx) protocol.User {
	t.Helper()
	var u protocol.User
	if len(f.User) == 0 || json.Unmarshal(f.User, &u) != nil {
		t.Fatalf("%s frame without a user object: %s", f.Type, f.User)
	}
	return u
}

// msgUser is a message's "user" string.
func msgUser(t testing.TB, f rx) string {
	t.Helper()
	var u string
	if len(f.User) > 0 {
		if err := json.Unmarshal(f.User, &u); err != nil {
			t.Fatalf("message user %s: %v", f.User, err)
		}
	}
	return u
}

func authServer(t testing.TB, cfg Config) *testServer {
	t.Helper()
	if cfg.AppID == "" {
		cfg.AppID = "a1"
	}
	if cfg.Prefix == "" {
		cfg.Prefix = testPrefix(t)
	}
	return startServer(t, memBroker(t), cfg)
}

// TestAuthGuest: with Auth and guests allowed, a connection without
// credentials is a guest: its welcome says so, its first join names it,
// its messages carry its guest id and guest:true; it may not take an
// account's name nor rename itself later.
func TestAuthGuest(t *testing.T) {
	fa := newFakeAuth("Alice")
	ts := authServer(t, Config{Auth: fa})
	g := dial(t, ts.url)
	w := g.next(protocol.TypeWelcome)
	u := user(t, w)
	if !u.Guest || !strings.HasPrefix(u.ID, auth.GuestIDPrefix) || u.Name != "" {
		t.Fatalf("guest welcome user %+v", u)
	}
	// An account's name (name keys: case and width folded) is refused.
	g.sendJSON(protocol.Inbound{Type: protocol.TypeJoin, Room: "lobby", Name: "alice"})
	if e := g.next(protocol.TypeError); e.Code != protocol.CodeNameTaken {
		t.Fatalf("guest joining as an account's name: %+v, want name_taken", e)
	}
	if j := g.join("lobby", "zed"); j.Name != "zed" {
		t.Fatalf("joined %+v", j)
	}
	g.sendJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "lobby", Text: "hi", CID: "c1"})
	m := g.next(protocol.TypeMessage)
	if m.From != "zed" || msgUser(t, m) != u.ID || !m.Guest {
		t.Fatalf("guest message from %q user %q guest %v, want zed %s true", m.From, msgUser(t, m), m.Guest, u.ID)
	}
	// The name is fixed: another join under another name is refused, one
	// without a name takes it.
	g.sendJSON(protocol.Inbound{Type: protocol.TypeJoin, Room: "other", Name: "zoe"})
	if e := g.next(protocol.TypeError); e.Code != protocol.CodeForbiddenName {
		t.Fatalf("guest renaming: %+v, want forbidden_name", e)
	}
	if j := g.join("other", ""); j.Name != "zed" {
		t.Fatalf("join without a name: %+v, want zed", j)
	}
}

// TestAuthNoGuests: without guests, a connection without credentials is
// told to authenticate, may send nothing but auth frames, and is closed
// with 4001 at the timeout or on a bad token; a good token authenticates it.
func TestAuthNoGuests(t *testing.T) {
	ts := authServer(t, Config{Auth: newFakeAuth(), NoGuests: true, AuthTimeout: 300 * time.Millisecond})

	t.Run("timeout", func(t *testing.T) {
		c := dial(t, ts.url)
		w := c.next(protocol.TypeWelcome)
		if !w.AuthRequired || w.AuthTimeoutMS != 300 || len(w.User) != 0 {
			t.Fatalf("welcome %+v, want auth_required, auth_timeout_ms 300, no user", w)
		}
		c.sendJSON(protocol.Inbound{Type: protocol.TypeJoin, Room: "lobby", Name: "x"})
		if e := c.next(protocol.TypeError); e.Code != protocol.CodeAuthRequired {
			t.Fatalf("join before auth: %+v, want auth_required", e)
		}
		if len(c.frameList(protocol.TypeJoined)) != 0 {
			t.Fatal("joined before auth")
		}
		if code := closeCode(c.closeErr()); code != protocol.CloseAuthFailed {
			t.Fatalf("close %d, want %d at the auth timeout", code, protocol.CloseAuthFailed)
		}
	})
	t.Run("bad token", func(t *testing.T) {
		// Long before the auth timeout: the bad token closes it.
		ts := authServer(t, Config{Auth: newFakeAuth(), NoGuests: true, AuthTimeout: time.Minute})
		c := dial(t, ts.url)
		c.next(protocol.TypeWelcome)
		c.sendJSON(map[string]string{"type": "auth", "token": mint(t, "u1", "Ann", time.Hour)[:40] + "x"})
		if code := closeCode(c.closeErr()); code != protocol.CloseAuthFailed {
			t.Fatalf("close %d, want %d on a bad token", code, protocol.CloseAuthFailed)
		}
	})
	t.Run("good token", func(t *testing.T) {
		c := dial(t, ts.url)
		c.next(protocol.TypeWelcome)
		c.sendJSON(map[string]string{"type": "auth", "token": mint(t, "u1", "Ann", time.Hour)})
		a := c.next(protocol.TypeAuthed)
		if u := user(t, a); u.ID != "u1" || u.Name != "Ann" || u.Guest || a.ExpiresMS == 0 {
			t.Fatalf("authed %+v user %+v", a, u)
		}
		if j := c.join("lobby", ""); j.Name != "Ann" {
			t.Fatalf("joined %+v", j)
		}
		// Still open after the auth timeout.
		time.Sleep(400 * time.Millisecond) // past AuthTimeout: nothing should happen
		c.sendJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "lobby", Text: "hi"})
		if m := c.next(protocol.TypeMessage); m.From != "Ann" || msgUser(t, m) != "u1" {
			t.Fatalf("message %+v", m)
		}
	})
}

// TestAuthHandshake: a token in the Authorization header or the query, and
// a session cookie, identify the connection (welcome user); a refused
// token or an ended session gets 401 and no upgrade.
func TestAuthHandshake(t *testing.T) {
	fa := newFakeAuth()
	fa.session("cookie1", "uA", "Alice", "s1")
	ts := authServer(t, Config{Auth: fa})
	tok := mint(t, "u7", "Tom", time.Hour)
	for _, tc := range []struct {
		name string
		url  string
		h    http.Header
		want protocol.User
	}{
		{"header", ts.url, bearer(tok), protocol.User{ID: "u7", Name: "Tom"}},
		{"query", ts.url + "?token=" + url.QueryEscape(tok), nil, protocol.User{ID: "u7", Name: "Tom"}},
		{"cookie", ts.url, cookie("cookie1"), protocol.User{ID: "uA", Name: "Alice"}},
	} {
		c := dialH(t, tc.url, tc.h)
		if u := user(t, c.next(protocol.TypeWelcome)); u != tc.want {
			t.Errorf("%s: welcome user %+v, want %+v", tc.name, u, tc.want)
		}
	}
	forged := tok[:len(tok)-2] + "xx"
	for _, tc := range []struct {
		name string
		url  string
		h    http.Header
	}{
		{"forged header", ts.url, bearer(forged)},
		{"forged query", ts.url + "?token=" + url.QueryEscape(forged), nil},
		{"ended session", ts.url, cookie("nope")},
		// A bad token is never a fall back to the cookie, nor to a guest.
		{"forged token and a good cookie", ts.url, http.Header{"Authorization": {"Bearer " + forged}, "Cookie": {"livechat_session=cookie1"}}},
	} {
		ws, status, err := dialRaw(tc.url, tc.h)
		if err == nil {
			_ = ws.Close()
			t.Errorf("%s: upgraded, want 401", tc.name)
			continue
		}
		if status != http.StatusUnauthorized {
			t.Errorf("%s: HTTP %d, want 401", tc.name, status)
		}
	}
	// The 401's body is plain text and never repeats the token.
	req, _ := http.NewRequest(http.MethodGet, ts.http.URL+"/ws", nil)
	req.Header.Set("Authorization", "Bearer "+forged)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || strings.Contains(string(body), forged[:20]) ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("401 answer %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if m := scrape(t, ts); !strings.Contains(m, `livechat_rejected_connections_total{reason="auth"} 5`) {
		t.Errorf("metrics lack 5 auth rejections:\n%s", grep(m, "rejected"))
	}
}

// TestAuthRefresh: an auth frame with a fresh token of the same user moves
// the expiry; another user's token (or a bad one) is refused and changes
// nothing.
func TestAuthRefresh(t *testing.T) {
	ts := authServer(t, Config{Auth: newFakeAuth()})
	c := dialH(t, ts.url, bearer(mint(t, "u1", "Ann", 2*time.Second)))
	c.next(protocol.TypeWelcome)
	c.join("lobby", "")
	c.sendJSON(map[string]string{"type": "auth", "token": mint(t, "u1", "Ann", time.Hour)})
	a := c.next(protocol.TypeAuthed)
	if u := user(t, a); u.ID != "u1" || a.ExpiresMS < time.Now().Add(50*time.Minute).UnixMilli() {
		t.Fatalf("refresh: authed %+v user %+v", a, u)
	}
	c.sendJSON(map[string]string{"type": "auth", "token": mint(t, "u2", "Bob", time.Hour)})
	if e := c.next(protocol.TypeError); e.Code != protocol.CodeInvalidToken {
		t.Fatalf("another user's token: %+v, want invalid_token", e)
	}
	c.sendJSON(map[string]string{"type": "auth", "token": "garbage"})
	if e := c.next(protocol.TypeError); e.Code != protocol.CodeInvalidToken {
		t.Fatalf("a bad token: %+v, want invalid_token", e)
	}
	// Past the first token's expiry, still open and still u1.
	time.Sleep(2500 * time.Millisecond) // the first token's ttl: the refresh must have moved the expiry
	c.sendJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "lobby", Text: "still here"})
	if m := c.next(protocol.TypeMessage); m.From != "Ann" || msgUser(t, m) != "u1" {
		t.Fatalf("after refresh: %+v user %s", m, m.User)
	}
	if len(c.frameList(protocol.TypeAuthed)) != 1 {
		t.Fatalf("authed frames %d, want 1", len(c.frameList(protocol.TypeAuthed)))
	}
}

// TestAuthExpiry: a token connection is closed with 4002 when its token
// expires without a refresh.
func TestAuthExpiry(t *testing.T) {
	ts := authServer(t, Config{Auth: newFakeAuth()})
	c := dialH(t, ts.url, bearer(mint(t, "u1", "Ann", time.Second)))
	c.next(protocol.TypeWelcome)
	if code := closeCode(c.closeErr()); code != protocol.CloseTokenExpired {
		t.Fatalf("close %d, want %d at the token's expiry", code, protocol.CloseTokenExpired)
	}
}

// TestAuthImpersonation: a connection's frames cannot name anyone else: a
// join under another name and a send carrying "name" are refused
// (forbidden_name) and not delivered; a "from" field is ignored, the
// message carries the identity.
func TestAuthImpersonation(t *testing.T) {
	fa := newFakeAuth()
	fa.session("ca", "uA", "alice", "s1")
	ts := authServer(t, Config{Auth: fa})
	a := dialH(t, ts.url, cookie("ca"))
	obs := dial(t, ts.url) // a guest watching the room
	obs.join("lobby", "watcher")

	a.sendJSON(protocol.Inbound{Type: protocol.TypeJoin, Room: "lobby", Name: "bob"})
	if e := a.next(protocol.TypeError); e.Code != protocol.CodeForbiddenName {
		t.Fatalf("join as bob: %+v, want forbidden_name", e)
	}
	if j := a.join("lobby", ""); j.Name != "alice" {
		t.Fatalf("joined as %q, want alice", j.Name)
	}
	a.sendJSON(map[string]string{"type": "send", "room": "lobby", "text": "i am bob", "cid": "n1", "name": "bob"})
	if e := a.next(protocol.TypeError); e.Code != protocol.CodeForbiddenName || e.CID != "n1" {
		t.Fatalf("send with name bob: %+v, want forbidden_name", e)
	}
	a.sendJSON(map[string]string{"type": "send", "room": "lobby", "text": "from bob", "cid": "f1", "from": "bob"})
	m := obs.next(protocol.TypeMessage)
	if m.CID != "f1" || m.From != "alice" || msgUser(t, m) != "uA" || m.Guest {
		t.Fatalf("delivered %+v (user %s), want cid f1 from alice user uA", m, m.User)
	}
	for _, f := range obs.frameList(protocol.TypeMessage) {
		if f.CID == "n1" {
			t.Fatalf("the send naming bob was delivered: %+v", f)
		}
	}
	// Typing carries the identity's name too.
	a.sendJSON(map[string]string{"type": "typing", "room": "lobby"})
	if ty := obs.next(protocol.TypeTyping); ty.Name != "alice" {
		t.Fatalf("typing %+v", ty)
	}
}

// TestAuthRooms: a reserved room is entered by its members only; a missing
// and a forbidden one get identical error frames; a token's room list
// restricts too; an Authorizer that fails gives unavailable; every accepted
// message reports the room active.
func TestAuthRooms(t *testing.T) {
	fa := newFakeAuth()
	fa.session("ca", "uA", "alice", "s1")
	acc := newFakeAccess()
	acc.add("_pours", "uA")
	acc.add("_ptheirs", "uZ")
	ts := authServer(t, Config{Auth: fa, Access: acc})
	a := dialH(t, ts.url, cookie("ca"))
	a.join("_pours", "")

	notFound := func(c *client, room string) rx {
		t.Helper()
		c.sendJSON(protocol.Inbound{Type: protocol.TypeJoin, Room: room})
		e := c.next(protocol.TypeError)
		if e.Code != protocol.CodeNotFound {
			t.Fatalf("join %s: %+v, want not_found", room, e)
		}
		e.Room = "" // the frames differ only by the room asked for
		return e
	}
	forbidden, missing := notFound(a, "_ptheirs"), notFound(a, "_pmissing")
	if forbidden.Message != missing.Message || forbidden.Code != missing.Code || forbidden.CID != missing.CID {
		t.Fatalf("forbidden %+v and missing %+v differ", forbidden, missing)
	}
	// A guest never enters a reserved room.
	g := dial(t, ts.url)
	g.sendJSON(protocol.Inbound{Type: protocol.TypeJoin, Room: "_pours", Name: "gus"})
	if e := g.next(protocol.TypeError); e.Code != protocol.CodeNotFound {
		t.Fatalf("guest into a private room: %+v", e)
	}
	// A token restricted to one room enters no other.
	tc := dialH(t, ts.url, bearer(mint(t, "uT", "Tim", time.Hour, "only")))
	tc.join("only", "")
	notFound(tc, "lobby")

	before := acc.active.Load()
	a.sendJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "_pours", Text: "hi", CID: "x"})
	a.next(protocol.TypeAck)
	if acc.active.Load() != before+1 {
		t.Fatalf("Active calls %d, want %d", acc.active.Load(), before+1)
	}

	acc.mu.Lock()
	acc.fail = errors.New("store down")
	acc.mu.Unlock()
	a.sendJSON(protocol.Inbound{Type: protocol.TypeJoin, Room: "lobby"})
	if e := a.next(protocol.TypeError); e.Code != protocol.CodeUnavailable {
		t.Fatalf("join while the Authorizer fails: %+v, want unavailable", e)
	}
}

// TestReservedRoomsWithoutAccess: without an Authorizer every public room is
// open (no Auth: as before) and no reserved room exists.
func TestReservedRoomsWithoutAccess(t *testing.T) {
	ts := authServer(t, Config{})
	c := dial(t, ts.url)
	c.sendJSON(protocol.Inbound{Type: protocol.TypeJoin, Room: "_pany", Name: "x"})
	if e := c.next(protocol.TypeError); e.Code != protocol.CodeNotFound || e.Message != notFoundMessage {
		t.Fatalf("reserved room without Access: %+v", e)
	}
	c.join("public-room", "x")
	c.join("second", "y") // without Auth each join names the connection anew
}

// TestAuthHistoryDedupByUser: with history, a retried cid is taken for the
// same message when the same user sends it (from another connection too),
// and never confused with another user's message of the same cid, even
// under the same name (a token user named like an account).
func TestAuthHistoryDedupByUser(t *testing.T) {
	fa := newFakeAuth()
	fa.session("ca1", "uA", "alice", "s1")
	fa.session("ca2", "uA", "alice", "s2")
	ts := authServer(t, Config{Auth: fa, History: memStore(t, history.Options{})})
	a1, a2 := dialH(t, ts.url, cookie("ca1")), dialH(t, ts.url, cookie("ca2"))
	bob := dialH(t, ts.url, bearer(mint(t, "uT", "alice", time.Hour)))
	for _, c := range []*client{a1, a2, bob} {
		c.join("lobby", "")
	}
	send := func(c *client) rx {
		t.Helper()
		c.sendJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "lobby", Text: "once", CID: "same"})
		return c.next(protocol.TypeAck)
	}
	first := send(a1)
	if again := send(a2); again.Dup == nil || !*again.Dup || again.Seq != first.Seq {
		t.Fatalf("the same user's retry from another connection: %+v, want dup of seq %d", again, first.Seq)
	}
	if other := send(bob); other.Dup != nil && *other.Dup || other.Seq == first.Seq {
		t.Fatalf("another user's message with the same cid: %+v, taken for a duplicate", other)
	}
}

// TestAuthHistoryDedupGuest: a guest's id is new on every connection, so a
// guest that reconnects and resends a cid (after a server died before its
// ack) is recognised by its name; a guest named like a user's id is not
// taken for that user.
func TestAuthHistoryDedupGuest(t *testing.T) {
	fa := newFakeAuth()
	fa.session("ca1", "uA", "alice", "s1")
	ts := authServer(t, Config{Auth: fa, History: memStore(t, history.Options{})})
	send := func(c *client, name string) rx {
		t.Helper()
		c.join("lobby", name)
		c.sendJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "lobby", Text: "once", CID: "same"})
		return c.next(protocol.TypeAck)
	}
	first := send(dial(t, ts.url), "zed")
	if again := send(dial(t, ts.url), "zed"); again.Dup == nil || !*again.Dup || again.Seq != first.Seq {
		t.Fatalf("a guest's retry from a new connection: %+v, want dup of seq %d", again, first.Seq)
	}
	alice := send(dialH(t, ts.url, cookie("ca1")), "")
	if mimic := send(dial(t, ts.url), "uA"); mimic.Dup != nil && *mimic.Dup || mimic.Seq == alice.Seq {
		t.Fatalf("a guest named like alice's id: %+v, taken for alice's message", mimic)
	}
}
