package account

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/livechat/livechat/pkg/auth"
	"github.com/livechat/livechat/pkg/protocol"
	"github.com/livechat/livechat/pkg/store"
)

// wantEvents asserts the published events, subject and exact JSON.
func wantEvents(t *testing.T, e *env, want ...published) {
	t.Helper()
	got := e.published()
	if len(got) != len(want) {
		t.Fatalf("published %d events %+v, want %d %+v", len(got), got, len(want), want)
	}
	for i := range want {
		if got[i].Subject != want[i].Subject || got[i].Data != want[i].Data {
			t.Errorf("event %d: %s %s, want %s %s", i, got[i].Subject, got[i].Data, want[i].Subject, want[i].Data)
		}
	}
}

func revoke(prefix, user, session, reason string) published {
	data := fmt.Sprintf(`{"type":"revoke","user":%q,"reason":%q}`, user, reason)
	if session != "" {
		data = fmt.Sprintf(`{"type":"revoke","user":%q,"session":%q,"reason":%q}`, user, session, reason)
	}
	return published{Subject: prefix + ".user." + user, Data: data}
}

func TestRevokeOnSignout(t *testing.T) {
	e := newEnv(t, opts{cfg: func(c *Config) { c.Prefix = "acme" }})
	c := e.client()
	alice := c.signup("Alice", pwAlice)
	sid := hashValue(c.cookie())
	wantEvents(t, e)
	c.post("/api/account/signout", nil)
	wantEvents(t, e, revoke("acme", alice.ID, sid, protocol.ReasonSignedOut))
	// No session, no event.
	c.post("/api/account/signout", nil)
	wantEvents(t, e, revoke("acme", alice.ID, sid, protocol.ReasonSignedOut))
}

// TestRevokeOnRotation: the session a sign-in replaces is signed out
// everywhere (its connections belong to a browser that now is someone
// else, or the same user with a new cookie).
func TestRevokeOnRotation(t *testing.T) {
	e := newEnv(t, opts{})
	c := e.client()
	alice := c.signup("Alice", pwAlice)
	sid := hashValue(c.cookie())
	c.signin("Alice", pwAlice)
	wantEvents(t, e, revoke(protocol.DefaultPrefix, alice.ID, sid, protocol.ReasonSignedOut))
}

func TestRevokeOnPasswordChange(t *testing.T) {
	e := newEnv(t, opts{})
	c := e.client()
	alice := c.signup("Alice", pwAlice)
	c.post("/api/account/password", map[string]string{"old": "wrong password", "new": pwOther})
	wantEvents(t, e)
	if a := c.post("/api/account/password", map[string]string{"old": pwAlice, "new": pwOther}); a.Status != http.StatusNoContent {
		t.Fatalf("password: %d %s", a.Status, a.Body)
	}
	wantEvents(t, e, revoke(protocol.DefaultPrefix, alice.ID, "", protocol.ReasonPasswordChanged))
}

func TestRevokeOnDelete(t *testing.T) {
	e := newEnv(t, opts{})
	c := e.client()
	alice := c.signup("Alice", pwAlice)
	c.do(http.MethodDelete, "/api/account", map[string]string{"password": pwAlice})
	wantEvents(t, e, revoke(protocol.DefaultPrefix, alice.ID, "", protocol.ReasonDeleted))
	bob := e.client().signup("Bob", pwAlice)
	if err := e.svc.DeleteUser(context.Background(), bob.ID); err != nil {
		t.Fatal(err)
	}
	wantEvents(t, e, revoke(protocol.DefaultPrefix, alice.ID, "", protocol.ReasonDeleted),
		revoke(protocol.DefaultPrefix, bob.ID, "", protocol.ReasonDeleted))
	if err := e.svc.DeleteUser(context.Background(), bob.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteUser of a deleted user: %v", err)
	}
}

// TestRevokeSubjectOfTokenUser: a token subject that is no subject token
// is hashed into one (protocol.UserSubject).
func TestRevokeSubjectOfTokenUser(t *testing.T) {
	e := newEnv(t, opts{memory: true})
	ctx := context.Background()
	if _, err := e.st.CreateUser(ctx, store.User{ID: "carol@example.com", Key: "token:carol@example.com"}); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.SetBanned(ctx, "carol@example.com", true); err != nil {
		t.Fatal(err)
	}
	ev := e.published()
	if len(ev) != 1 || ev[0].Subject != protocol.UserSubject(protocol.DefaultPrefix, "carol@example.com") ||
		!strings.HasPrefix(ev[0].Subject, "livechat.user.h") || ev[0].Event.User != "carol@example.com" {
		t.Fatalf("published %+v", ev)
	}
}

// TestPublishFailure: an operator call reports a failed publish; the
// change stays. A user's sign-out still succeeds.
func TestPublishFailure(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	e := newEnv(t, opts{cfg: func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&lockedWriter{mu: &mu, w: &logs}, nil))
	}})
	ctx := context.Background()
	c := e.client()
	alice := c.signup("Alice", pwAlice)
	cookie := c.cookie()
	e.setPublishErr(errors.New("broker down"))
	err := e.svc.SetBanned(ctx, alice.ID, true)
	if err == nil || !strings.Contains(err.Error(), "broker down") {
		t.Fatalf("SetBanned with the broker down: %v", err)
	}
	if u, err := e.st.UserByID(ctx, alice.ID); err != nil || !u.Banned {
		t.Fatalf("the ban did not stay: %+v, %v", u, err)
	}
	e.mustEnded(cookie)
	if err := e.svc.SetBanned(ctx, alice.ID, false); err != nil {
		t.Fatalf("an unban publishes nothing: %v", err)
	}
	c.signin("Alice", pwAlice)
	if a := c.post("/api/account/signout", nil); a.Status != http.StatusNoContent {
		t.Fatalf("signout with the broker down: %d %s", a.Status, a.Body)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "broker down") {
		t.Errorf("the failure was not logged: %s", logs.String())
	}
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestNoSecretsLogged drives every path that logs (store and publish
// failures, malformed hashes, busy hashing) and checks that no password,
// cookie, session id or token appears in the log.
func TestNoSecretsLogged(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	e := newEnv(t, opts{cfg: func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&lockedWriter{mu: &mu, w: &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}})
	ctx := context.Background()
	c := e.client()
	alice := c.signup("Alice", pwAlice)
	cookie := c.cookie()
	e.setPublishErr(errors.New("broker down"))
	c.post("/api/account/password", map[string]string{"old": pwAlice, "new": pwOther})
	cookie2 := c.cookie()
	c.post("/api/account/signout", nil)
	if _, err := e.st.CreateUser(ctx, store.User{ID: "ubroken", Key: "broken", Name: "Broken", PasswordHash: "$argon2id$garbage"}); err != nil {
		t.Fatal(err)
	}
	c.post("/api/account/signin", credentials{"Broken", pwAlice})
	_ = e.svc.SetBanned(ctx, alice.ID, true)
	tok := handToken(t, hs256, claimsAt(e.clock.Now()), nil, nil)
	c.do(http.MethodGet, "/api/account/me", nil, "Authorization", "Bearer "+tok)
	_ = e.st.Close() // every store call fails from here
	c.post("/api/account/signin", credentials{"Alice", pwOther})
	c.setCookie(cookie2)
	c.post("/api/account/signout", nil)
	c.do(http.MethodGet, "/api/account/me", nil)

	mu.Lock()
	defer mu.Unlock()
	out := logs.String()
	if !strings.Contains(out, "broker down") || !strings.Contains(out, "malformed password hash") || !strings.Contains(out, "store: closed") {
		t.Errorf("the failures were not all logged:\n%s", out)
	}
	for what, secret := range map[string]string{
		"password": pwAlice, "new password": pwOther, "cookie": cookie, "cookie 2": cookie2,
		"session id": hashValue(cookie), "session id 2": hashValue(cookie2), "token": tok, "token secret": string(testSecret),
	} {
		if strings.Contains(out, secret) {
			t.Errorf("the log holds the %s:\n%s", what, out)
		}
	}
}

func TestAddUser(t *testing.T) {
	e := newEnv(t, opts{})
	ctx := context.Background()
	u, err := e.svc.AddUser(ctx, " Alice ", pwAlice)
	if err != nil {
		t.Fatal(err)
	}
	if u.Name != "Alice" || u.Key != "alice" || u.PasswordHash != "" || !strings.HasPrefix(u.ID, "u") || len(u.ID) != 21 {
		t.Fatalf("AddUser = %+v", u)
	}
	if _, err := e.svc.AddUser(ctx, "ALICE", pwOther); !errors.Is(err, auth.ErrNameTaken) {
		t.Errorf("AddUser of a taken name: %v", err)
	}
	if _, err := e.svc.AddUser(ctx, "a\u200bb", pwOther); !errors.Is(err, auth.ErrInvalidUserName) {
		t.Errorf("AddUser of an invalid name: %v", err)
	}
	if _, err := e.svc.AddUser(ctx, "Bob", "short"); !errors.Is(err, auth.ErrPasswordTooShort) || strings.Contains(err.Error(), "short\"") {
		t.Errorf("AddUser with a short password: %v", err)
	}
	if got := e.client().signin("alice", pwAlice); got.ID != u.ID {
		t.Errorf("sign-in as the added user: %+v", got)
	}
}

func TestUsersAndUserByName(t *testing.T) {
	e := newEnv(t, opts{})
	ctx := context.Background()
	var ids []string
	for _, name := range []string{"Carol", "alice", "Bob"} {
		u, err := e.svc.AddUser(ctx, name, pwAlice)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, u.ID)
	}
	page, err := e.svc.Users(ctx, "", 2)
	if err != nil || len(page) != 2 || page[0].Name != "alice" || page[1].Name != "Bob" {
		t.Fatalf("Users page 1 = %+v, %v", page, err)
	}
	next, err := e.svc.Users(ctx, page[1].Key, 2)
	if err != nil || len(next) != 1 || next[0].Name != "Carol" {
		t.Fatalf("Users page 2 = %+v, %v", next, err)
	}
	for _, u := range append(page, next...) {
		if u.PasswordHash != "" {
			t.Errorf("Users returns the hash of %s", u.Name)
		}
	}
	u, err := e.svc.UserByName(ctx, "CAROL")
	if err != nil || u.ID != ids[0] || u.PasswordHash != "" {
		t.Fatalf("UserByName = %+v, %v", u, err)
	}
	if _, err := e.svc.UserByName(ctx, "Dave"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UserByName(unknown) = %v", err)
	}
}

func TestSetBannedUnknownUser(t *testing.T) {
	e := newEnv(t, opts{memory: true})
	if err := e.svc.SetBanned(context.Background(), "unobody", true); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetBanned(unknown) = %v", err)
	}
	wantEvents(t, e)
}

func TestUserIDs(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := newUserID()
		if len(id) != 21 || id[0] != 'u' || strings.Trim(id[1:], idAlphabet) != "" || protocol.ValidRoom(id) != nil || seen[id] {
			t.Fatalf("id %q", id)
		}
		seen[id] = true
	}
}
