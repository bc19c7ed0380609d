package account

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/livechat/livechat/pkg/auth"
	"github.com/livechat/livechat/pkg/protocol"
	"github.com/livechat/livechat/pkg/store"
)

// backends runs f on a SQLite file and on memory://.
func backends(t *testing.T, f func(t *testing.T, o opts)) {
	t.Run("sqlite", func(t *testing.T) { f(t, opts{}) })
	t.Run("memory", func(t *testing.T) { f(t, opts{memory: true}) })
}

func TestSignupSignsIn(t *testing.T) {
	backends(t, func(t *testing.T, o opts) {
		e := newEnv(t, o)
		c := e.client()
		a := c.post("/api/account/signup", credentials{"  Alice  ", pwAlice})
		if a.Status != http.StatusCreated {
			t.Fatalf("signup: %d %s", a.Status, a.Body)
		}
		var b userAnswer
		if err := json.Unmarshal(a.Body, &b); err != nil {
			t.Fatal(err)
		}
		if b.User.Name != "Alice" || len(b.User.ID) != 21 || b.User.ID[0] != 'u' || protocol.ValidRoom(b.User.ID) != nil {
			t.Fatalf("user = %+v: want name Alice (trimmed), id u + 20 chars", b.User)
		}
		if cc := a.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control = %q", cc)
		}
		e.mustAuth(c.cookie(), *b.User)
		u, err := e.st.UserByKey(context.Background(), "alice")
		if err != nil || u.ID != b.User.ID || u.PasswordHash == "" || strings.Contains(u.PasswordHash, pwAlice) {
			t.Fatalf("stored user %+v, %v", u, err)
		}
	})
}

func TestSigninAndMe(t *testing.T) {
	backends(t, func(t *testing.T, o opts) {
		e := newEnv(t, o)
		alice := e.client().signup("Alice", pwAlice)
		c := e.client()
		a := c.do(http.MethodGet, "/api/account/me", nil)
		if a.Status != http.StatusOK || string(a.Body) != `{"user":null,"guests":false}`+"\n" {
			t.Fatalf("me signed out: %d %s", a.Status, a.Body)
		}
		if got := c.signin("alice", pwAlice); got != alice {
			t.Fatalf("signin user %+v, want %+v", got, alice)
		}
		a = c.do(http.MethodGet, "/api/account/me", nil)
		want := fmt.Sprintf(`{"user":{"id":%q,"name":"Alice"},"guests":false}`+"\n", alice.ID)
		if a.Status != http.StatusOK || string(a.Body) != want {
			t.Fatalf("me signed in: %d %s, want %s", a.Status, a.Body, want)
		}
	})
}

func TestMeReportsGuests(t *testing.T) {
	e := newEnv(t, opts{memory: true, cfg: func(c *Config) { c.Guests = true }})
	a := e.client().do(http.MethodGet, "/api/account/me", nil)
	if string(a.Body) != `{"user":null,"guests":true}`+"\n" {
		t.Fatalf("me: %s", a.Body)
	}
}

func TestSignout(t *testing.T) {
	backends(t, func(t *testing.T, o opts) {
		e := newEnv(t, o)
		c := e.client()
		alice := c.signup("Alice", pwAlice)
		old := c.cookie()
		e.mustAuth(old, alice)
		a := c.post("/api/account/signout", nil)
		if a.Status != http.StatusNoContent {
			t.Fatalf("signout: %d %s", a.Status, a.Body)
		}
		if c.cookie() != "" {
			t.Errorf("the cookie is still in the jar after signout")
		}
		e.mustEnded(old)
		// Without a session: 204 too.
		if a := e.client().post("/api/account/signout", nil); a.Status != http.StatusNoContent {
			t.Fatalf("signout without a session: %d %s", a.Status, a.Body)
		}
	})
}

// TestSignedOutCookieRejected: a cookie kept after signing out (copied by
// an attacker, or a tab that missed the Set-Cookie) authenticates nothing.
func TestSignedOutCookieRejected(t *testing.T) {
	e := newEnv(t, opts{})
	c := e.client()
	alice := c.signup("Alice", pwAlice)
	stolen := c.cookie()
	e.mustAuth(stolen, alice)
	c.post("/api/account/signout", nil)
	e.mustEnded(stolen)
	thief := e.client()
	thief.setCookie(stolen)
	a := thief.do(http.MethodGet, "/api/account/me", nil)
	if !bytes.HasPrefix(a.Body, []byte(`{"user":null`)) {
		t.Fatalf("me with the signed-out cookie: %s", a.Body)
	}
	if a := thief.post("/api/account/password", map[string]string{"old": pwAlice, "new": pwOther}); a.Status != http.StatusUnauthorized || a.errorCode() != "signed_out" {
		t.Fatalf("password with the signed-out cookie: %d %s", a.Status, a.Body)
	}
}

func TestPasswordChange(t *testing.T) {
	backends(t, func(t *testing.T, o opts) {
		e := newEnv(t, o)
		c, other := e.client(), e.client()
		alice := c.signup("Alice", pwAlice)
		other.signin("Alice", pwAlice)
		before, otherCookie := c.cookie(), other.cookie()
		a := c.post("/api/account/password", map[string]string{"old": pwAlice, "new": pwOther})
		if a.Status != http.StatusNoContent {
			t.Fatalf("password: %d %s", a.Status, a.Body)
		}
		after := c.cookie()
		if after == before || after == "" {
			t.Fatalf("no new cookie after a password change")
		}
		e.mustAuth(after, alice)
		e.mustEnded(before)
		e.mustEnded(otherCookie)
		if a := e.client().post("/api/account/signin", credentials{"Alice", pwAlice}); a.Status != http.StatusUnauthorized {
			t.Fatalf("the old password still signs in: %d %s", a.Status, a.Body)
		}
		e.client().signin("Alice", pwOther)
	})
}

func TestPasswordChangeWrongOld(t *testing.T) {
	e := newEnv(t, opts{})
	c := e.client()
	c.signup("Alice", pwAlice)
	a := c.post("/api/account/password", map[string]string{"old": "not the password", "new": pwOther})
	if a.Status != http.StatusUnauthorized || a.errorCode() != "bad_credentials" {
		t.Fatalf("wrong old password: %d %s", a.Status, a.Body)
	}
	a = c.post("/api/account/password", map[string]string{"old": pwAlice, "new": "short"})
	if a.Status != http.StatusBadRequest || a.errorCode() != "invalid_password" {
		t.Fatalf("weak new password: %d %s", a.Status, a.Body)
	}
	c.post("/api/account/signout", nil)
	if a := c.post("/api/account/password", map[string]string{"old": pwAlice, "new": pwOther}); a.Status != http.StatusUnauthorized || a.errorCode() != "signed_out" {
		t.Fatalf("signed out: %d %s", a.Status, a.Body)
	}
	e.client().signin("Alice", pwAlice)
}

func TestDeleteAccount(t *testing.T) {
	backends(t, func(t *testing.T, o opts) {
		e := newEnv(t, o)
		c := e.client()
		alice := c.signup("Alice", pwAlice)
		cookie := c.cookie()
		if a := c.do(http.MethodDelete, "/api/account", map[string]string{"password": "wrong password!"}); a.Status != http.StatusUnauthorized || a.errorCode() != "bad_credentials" {
			t.Fatalf("delete with a wrong password: %d %s", a.Status, a.Body)
		}
		e.mustAuth(cookie, alice)
		if a := c.do(http.MethodDelete, "/api/account", map[string]string{"password": pwAlice}); a.Status != http.StatusNoContent {
			t.Fatalf("delete: %d %s", a.Status, a.Body)
		}
		if _, err := e.st.UserByID(context.Background(), alice.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("the user is still stored: %v", err)
		}
		e.mustEnded(cookie)
		if a := e.client().post("/api/account/signin", credentials{"Alice", pwAlice}); a.Status != http.StatusUnauthorized {
			t.Fatalf("signin after delete: %d %s", a.Status, a.Body)
		}
		// The name is free again.
		e.client().signup("alice", pwOther)
	})
}

// TestArgon2EndToEnd runs the happy paths once with the real argon2id
// hashing.
func TestArgon2EndToEnd(t *testing.T) {
	e := newEnv(t, opts{argon2: true})
	c := e.client()
	alice := c.signup("Alice", pwAlice)
	u, err := e.st.UserByID(context.Background(), alice.ID)
	if err != nil || !strings.HasPrefix(u.PasswordHash, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("stored hash %q, %v", u.PasswordHash, err)
	}
	c.signin("ALICE", pwAlice)
	if a := c.post("/api/account/password", map[string]string{"old": pwAlice, "new": pwOther}); a.Status != http.StatusNoContent {
		t.Fatalf("password: %d %s", a.Status, a.Body)
	}
	if a := c.do(http.MethodDelete, "/api/account", map[string]string{"password": pwOther}); a.Status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", a.Status, a.Body)
	}
	if n := e.hashes.Load(); n != 5 {
		t.Errorf("%d derivations, want 5 (signup, signin, password: verify + hash, delete)", n)
	}
}

// TestDuplicateNameForms: names that differ only in case, width or
// folding are one account name.
func TestDuplicateNameForms(t *testing.T) {
	e := newEnv(t, opts{})
	c := e.client()
	c.signup("Alice", pwAlice)
	c.signup("Straße", pwAlice)
	for _, name := range []string{"Alice", "alice", "ALICE", "ＡＬＩＣＥ", " alice ", "STRASSE", "strasse"} {
		a := e.client().post("/api/account/signup", credentials{name, pwOther})
		if a.Status != http.StatusConflict || a.errorCode() != "name_taken" {
			t.Errorf("signup %q: %d %s, want 409 name_taken", name, a.Status, a.Body)
		}
	}
	// Distinct names (dotless i, Cyrillic а) are accepted.
	e.client().signup("alıce", pwAlice)
	e.client().signup("аlice", pwAlice)
}

func TestSignupInvalidName(t *testing.T) {
	e := newEnv(t, opts{})
	for _, name := range []string{"", "   ", "a\u200bb", "x\u3164", "<script>", strings.Repeat("a", protocol.MaxNameLen+1), "a\x00b"} {
		a := e.client().post("/api/account/signup", credentials{name, pwAlice})
		if a.Status != http.StatusBadRequest || a.errorCode() != "invalid_name" {
			t.Errorf("signup %q: %d %s, want 400 invalid_name", name, a.Status, a.Body)
		}
	}
	if n := e.hashes.Load(); n != 0 {
		t.Errorf("%d hashes for invalid names", n)
	}
}

// TestSignupWeakPassword: too short, too long, NUL → 400 invalid_password
// whose message says the rule; nothing is hashed or stored.
func TestSignupWeakPassword(t *testing.T) {
	e := newEnv(t, opts{})
	for _, tc := range []struct{ pw, says string }{
		{"", "at least 8"},
		{"short", "at least 8"},
		{"1234567", "at least 8"},
		{strings.Repeat("x", auth.MaxPasswordLen+1), "at most 128"},
		{strings.Repeat("é", auth.MaxPasswordLen+1), "at most 128"},
		{"long enough\x00", "NUL"},
	} {
		a := e.client().post("/api/account/signup", credentials{"Alice", tc.pw})
		var b struct {
			Error struct{ Code, Message string }
		}
		_ = json.Unmarshal(a.Body, &b)
		if a.Status != http.StatusBadRequest || b.Error.Code != "invalid_password" || !strings.Contains(b.Error.Message, tc.says) {
			t.Errorf("password of %d bytes: %d %s, want 400 invalid_password saying %q", len(tc.pw), a.Status, a.Body, tc.says)
		}
	}
	if n := e.hashes.Load(); n != 0 {
		t.Errorf("%d hashes for refused passwords", n)
	}
	if _, err := e.st.UserByKey(context.Background(), "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a user was stored: %v", err)
	}
}

// TestUnknownUserAndWrongPasswordAlike: the same status and body, byte for
// byte, and the same work (one argon2id derivation each, so about the same
// time).
func TestUnknownUserAndWrongPasswordAlike(t *testing.T) {
	e := newEnv(t, opts{argon2: true})
	if _, err := e.svc.AddUser(context.Background(), "Alice", pwAlice); err != nil {
		t.Fatal(err)
	}
	c := e.client()
	base := e.hashes.Load()
	wrong := c.post("/api/account/signin", credentials{"Alice", "not the password"})
	afterWrong := e.hashes.Load()
	unknown := c.post("/api/account/signin", credentials{"Mallory", "not the password"})
	afterUnknown := e.hashes.Load()
	if wrong.Status != http.StatusUnauthorized || unknown.Status != wrong.Status || !bytes.Equal(wrong.Body, unknown.Body) {
		t.Fatalf("wrong password: %d %s; unknown user: %d %s", wrong.Status, wrong.Body, unknown.Status, unknown.Body)
	}
	if string(wrong.Body) != `{"error":{"code":"bad_credentials","message":"wrong name or password"}}`+"\n" {
		t.Errorf("body %s", wrong.Body)
	}
	for _, h := range []string{"Content-Type", "Cache-Control", "Set-Cookie", "Retry-After", "Content-Length"} {
		if wrong.Header.Get(h) != unknown.Header.Get(h) {
			t.Errorf("header %s: %q vs %q", h, wrong.Header.Get(h), unknown.Header.Get(h))
		}
	}
	if afterWrong-base != 1 || afterUnknown-afterWrong != 1 {
		t.Errorf("derivations: wrong password %d, unknown user %d; want 1 each", afterWrong-base, afterUnknown-afterWrong)
	}
}

// TestBannedOnlyAfterCorrectPassword: a banned account answers like any
// other to a wrong password; only the right one learns it is closed.
func TestBannedOnlyAfterCorrectPassword(t *testing.T) {
	e := newEnv(t, opts{})
	alice := e.client().signup("Alice", pwAlice)
	if err := e.svc.SetBanned(context.Background(), alice.ID, true); err != nil {
		t.Fatal(err)
	}
	c := e.client()
	wrong := c.post("/api/account/signin", credentials{"Alice", "not the password"})
	unknown := c.post("/api/account/signin", credentials{"Nobody", "not the password"})
	if wrong.Status != http.StatusUnauthorized || !bytes.Equal(wrong.Body, unknown.Body) {
		t.Fatalf("banned, wrong password: %d %s", wrong.Status, wrong.Body)
	}
	a := c.post("/api/account/signin", credentials{"Alice", pwAlice})
	if a.Status != http.StatusForbidden || a.errorCode() != "account_closed" {
		t.Fatalf("banned, right password: %d %s", a.Status, a.Body)
	}
	if c.cookie() != "" {
		t.Errorf("a banned user got a cookie")
	}
}

// TestRehashWeakHash: a hash made with weaker argon2id parameters is
// replaced by one at the current parameters on the next sign-in.
func TestRehashWeakHash(t *testing.T) {
	e := newEnv(t, opts{argon2: true})
	ctx := context.Background()
	weak := weakArgon2(t, pwAlice)
	if !auth.NeedsRehash(weak) {
		t.Fatal("the weak hash does not need a rehash")
	}
	if _, err := e.st.CreateUser(ctx, store.User{ID: "uweak", Name: "Alice", Key: "alice", PasswordHash: weak}); err != nil {
		t.Fatal(err)
	}
	e.client().signin("Alice", pwAlice)
	u, err := e.st.UserByID(ctx, "uweak")
	if err != nil {
		t.Fatal(err)
	}
	if u.PasswordHash == weak || auth.NeedsRehash(u.PasswordHash) {
		t.Fatalf("hash after sign-in %q: not rehashed", u.PasswordHash)
	}
	if ok, err := auth.VerifyPassword(u.PasswordHash, pwAlice); !ok || err != nil {
		t.Fatalf("the new hash does not verify: %v %v", ok, err)
	}
	e.client().signin("Alice", pwAlice)
}

// TestSessionFixationChosenValue: a cookie value planted in the browser
// before sign-in (by a sibling subdomain, a script, a shared machine) is
// never the session after it.
func TestSessionFixationChosenValue(t *testing.T) {
	e := newEnv(t, opts{})
	e.client().signup("Alice", pwAlice)
	planted := randomValue()
	victim := e.client()
	victim.setCookie(planted)
	alice := victim.signin("Alice", pwAlice)
	got := victim.cookie()
	if got == planted || got == "" {
		t.Fatalf("the planted cookie value is the session after sign-in")
	}
	e.mustAuth(got, alice)
	e.mustEnded(planted)
}

// TestSessionFixationRotation: a live session sent with a sign-in (the
// attacker's own, planted in the victim's browser, or the victim's from
// before) is ended by it.
func TestSessionFixationRotation(t *testing.T) {
	e := newEnv(t, opts{})
	attacker := e.client()
	attacker.signup("Mallory", pwOther)
	e.client().signup("Alice", pwAlice)
	planted := attacker.cookie()
	victim := e.client()
	victim.setCookie(planted)
	alice := victim.signin("Alice", pwAlice)
	e.mustAuth(victim.cookie(), alice)
	e.mustEnded(planted)
	// Signing in again as the same user rotates too.
	before := victim.cookie()
	victim.signin("Alice", pwAlice)
	if victim.cookie() == before {
		t.Fatal("the cookie did not change on a second sign-in")
	}
	e.mustEnded(before)
}

// TestCrossOriginRefused: state changes from another origin are refused
// before anything is done: no hash, no session ended, no account made.
func TestCrossOriginRefused(t *testing.T) {
	e := newEnv(t, opts{})
	c := e.client()
	alice := c.signup("Alice", pwAlice)
	cookie := c.cookie()
	hashes := e.hashes.Load()
	for _, hdr := range [][]string{
		{"Origin", "http://evil.example"},
		{"Origin", "null"},
		{"Sec-Fetch-Site", "cross-site"},
		{"Sec-Fetch-Site", "same-site"},
	} {
		for _, req := range []struct {
			method, path string
			body         any
		}{
			{http.MethodPost, "/api/account/signin", credentials{"Alice", pwAlice}},
			{http.MethodPost, "/api/account/signup", credentials{"Bob", pwAlice}},
			{http.MethodPost, "/api/account/signout", nil},
			{http.MethodPost, "/api/account/password", map[string]string{"old": pwAlice, "new": pwOther}},
			{http.MethodDelete, "/api/account", map[string]string{"password": pwAlice}},
		} {
			a := c.do(req.method, req.path, req.body, hdr...)
			if a.Status != http.StatusForbidden || a.errorCode() != "cross_origin" {
				t.Errorf("%s %s with %s: %d %s, want 403 cross_origin", req.method, req.path, hdr, a.Status, a.Body)
			}
		}
	}
	if n := e.hashes.Load() - hashes; n != 0 {
		t.Errorf("%d hashes computed for cross-origin requests", n)
	}
	if c.cookie() != cookie {
		t.Errorf("the cookie changed")
	}
	e.mustAuth(cookie, alice)
	if _, err := e.st.UserByKey(context.Background(), "bob"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a cross-origin signup made an account")
	}
	if n := len(e.published()); n != 0 {
		t.Errorf("%d revocations published", n)
	}
	// The same origin and an allowed one pass.
	if a := c.post("/api/account/signout", nil, "Origin", e.srv.URL, "Sec-Fetch-Site", "same-origin"); a.Status != http.StatusNoContent {
		t.Errorf("same-origin signout: %d %s", a.Status, a.Body)
	}
}

func TestAllowedOrigin(t *testing.T) {
	e := newEnv(t, opts{cfg: func(c *Config) { c.AllowedOrigins = []string{"*.example.com"} }})
	c := e.client()
	c.signup("Alice", pwAlice)
	if a := c.post("/api/account/signin", credentials{"Alice", pwAlice}, "Origin", "https://chat.example.com"); a.Status != http.StatusOK {
		t.Errorf("allowed origin: %d %s", a.Status, a.Body)
	}
	if a := c.post("/api/account/signin", credentials{"Alice", pwAlice}, "Origin", "https://example.com.evil.example"); a.Status != http.StatusForbidden {
		t.Errorf("other origin: %d %s", a.Status, a.Body)
	}
}

// sessionSetCookie returns the Set-Cookie header of the session cookie.
func sessionSetCookie(t *testing.T, a answer) string {
	t.Helper()
	for _, v := range a.Header.Values("Set-Cookie") {
		if strings.HasPrefix(v, CookieName+"=") {
			return v
		}
	}
	t.Fatalf("no %s cookie in %d %s", CookieName, a.Status, a.Body)
	return ""
}

func TestCookieAttributes(t *testing.T) {
	e := newEnv(t, opts{})
	a := e.client().post("/api/account/signup", credentials{"Alice", pwAlice})
	sc := sessionSetCookie(t, a)
	value := strings.TrimPrefix(strings.SplitN(sc, ";", 2)[0], CookieName+"=")
	if _, ok := sessionID(value); !ok {
		t.Errorf("cookie value %d chars is not 32 bytes of base64url", len(value))
	}
	for _, attr := range []string{"Path=/", "Max-Age=2592000", "HttpOnly", "SameSite=Lax"} {
		if !strings.Contains(sc, "; "+attr) {
			t.Errorf("Set-Cookie lacks %s", attr)
		}
	}
	if strings.Contains(sc, "Secure") {
		t.Errorf("Secure over plain HTTP (the browser would drop it)")
	}
	// A spoofed X-Forwarded-Proto is ignored without TrustProxy.
	a = e.client().post("/api/account/signin", credentials{"Alice", pwAlice}, "X-Forwarded-Proto", "https")
	if strings.Contains(sessionSetCookie(t, a), "Secure") {
		t.Errorf("Secure from X-Forwarded-Proto without TrustProxy")
	}
	// The store keeps only the hash of the value.
	if _, err := e.st.Session(context.Background(), value); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the store holds the raw cookie value as a session id")
	}
	if _, err := e.st.Session(context.Background(), hashValue(value)); err != nil {
		t.Errorf("the session is not stored under the value's SHA-256: %v", err)
	}
}

func TestCookieSecureUnderTLS(t *testing.T) {
	e := newEnv(t, opts{tls: true})
	c := e.client()
	a := c.post("/api/account/signup", credentials{"Alice", pwAlice})
	if !strings.Contains(sessionSetCookie(t, a), "; Secure") {
		t.Fatalf("no Secure flag over TLS")
	}
	a = c.post("/api/account/signout", nil)
	if sc := sessionSetCookie(t, a); !strings.Contains(sc, "; Secure") || !strings.Contains(sc, "Max-Age=0") {
		t.Fatalf("signout cookie %q", sc)
	}
}

func TestCookieSecureBehindTrustedProxy(t *testing.T) {
	e := newEnv(t, opts{cfg: func(c *Config) { c.TrustProxy = true }})
	a := e.client().post("/api/account/signup", credentials{"Alice", pwAlice}, "X-Forwarded-Proto", "https")
	if !strings.Contains(sessionSetCookie(t, a), "; Secure") {
		t.Fatalf("no Secure flag with X-Forwarded-Proto: https and TrustProxy")
	}
	a = e.client().post("/api/account/signin", credentials{"Alice", pwAlice}, "X-Forwarded-Proto", "http")
	if strings.Contains(sessionSetCookie(t, a), "Secure") {
		t.Fatalf("Secure with X-Forwarded-Proto: http")
	}
}

func TestBadBodies(t *testing.T) {
	e := newEnv(t, opts{})
	c := e.client()
	for _, tc := range []struct {
		what   string
		body   any
		status int
		code   string
	}{
		{"too large", `{"name":"Alice","password":"` + strings.Repeat("x", 20<<10) + `"}`, http.StatusRequestEntityTooLarge, "too_large"},
		{"unknown field", `{"name":"Alice","password":"` + pwAlice + `","admin":true}`, http.StatusBadRequest, "bad_request"},
		{"not JSON", `name=Alice&password=x`, http.StatusBadRequest, "bad_request"},
		{"empty", ``, http.StatusBadRequest, "bad_request"},
		{"an array", `[]`, http.StatusBadRequest, "bad_request"},
		{"two values", `{"name":"Alice","password":"` + pwAlice + `"}{}`, http.StatusBadRequest, "bad_request"},
		{"wrong type", `{"name":1,"password":"` + pwAlice + `"}`, http.StatusBadRequest, "bad_request"},
	} {
		for _, path := range []string{"/api/account/signup", "/api/account/signin"} {
			a := c.post(path, tc.body)
			if a.Status != tc.status || a.errorCode() != tc.code {
				t.Errorf("%s to %s: %d %s, want %d %s", tc.what, path, a.Status, a.Body, tc.status, tc.code)
			}
		}
	}
	if a := c.post("/api/account/signin", `{}`, "Content-Type", "text/plain"); a.Status != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain: %d %s", a.Status, a.Body)
	}
	if n := e.hashes.Load(); n != 0 {
		t.Errorf("%d hashes for bad bodies", n)
	}
}

func TestRoutes(t *testing.T) {
	e := newEnv(t, opts{memory: true})
	c := e.client()
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/api/account/signin", http.StatusMethodNotAllowed},
		{http.MethodPost, "/api/account/me", http.StatusMethodNotAllowed},
		{http.MethodGet, "/api/account", http.StatusMethodNotAllowed},
		{http.MethodGet, "/api/account/nothing", http.StatusNotFound},
	} {
		a := c.do(tc.method, tc.path, nil)
		if a.Status != tc.status || !strings.HasPrefix(a.Header.Get("Content-Type"), "application/json") {
			t.Errorf("%s %s: %d %q %s", tc.method, tc.path, a.Status, a.Header.Get("Content-Type"), a.Body)
		}
	}
}

// throttled asserts a 429 throttled answer with a Retry-After.
func throttled(a answer) bool {
	return a.Status == http.StatusTooManyRequests && a.errorCode() == "throttled" && a.Header.Get("Retry-After") != ""
}

// TestThrottlePerAccount: 1,000 sign-in attempts on one account, each from
// another address, compute a handful of hashes: the rest are throttled
// before any work.
func TestThrottlePerAccount(t *testing.T) {
	e := newEnv(t, opts{argon2: true, cfg: func(c *Config) { c.TrustProxy = true }})
	if _, err := e.svc.AddUser(context.Background(), "Alice", pwAlice); err != nil {
		t.Fatal(err)
	}
	c := e.client()
	base := e.hashes.Load()
	start := time.Now()
	var limited, first int
	for i := 0; i < 1000; i++ {
		a := c.post("/api/account/signin", credentials{"Alice", fmt.Sprintf("guess number %d", i)},
			"X-Forwarded-For", fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255))
		switch {
		case throttled(a):
			if limited == 0 {
				first = i
			}
			limited++
			if ra := a.Header.Get("Retry-After"); ra != "10" {
				t.Fatalf("Retry-After %q, want 10", ra)
			}
		case a.Status != http.StatusUnauthorized:
			t.Fatalf("attempt %d: %d %s", i, a.Status, a.Body)
		}
	}
	elapsed := time.Since(start)
	hashes := e.hashes.Load() - base
	t.Logf("1000 attempts: %d hashes, %d throttled (from attempt %d), %v", hashes, limited, first, elapsed)
	if hashes != accountBurst || limited != 1000-accountBurst || first != accountBurst {
		t.Fatalf("%d hashes, %d throttled from attempt %d; want %d hashes, then all throttled", hashes, limited, first, accountBurst)
	}
	if elapsed > 1000*25*time.Millisecond/2 {
		t.Errorf("1000 attempts took %v", elapsed)
	}
	// The right password is throttled too until the bucket refills.
	if a := c.post("/api/account/signin", credentials{"ALICE", pwAlice}, "X-Forwarded-For", "192.0.2.1"); !throttled(a) {
		t.Fatalf("the right password while throttled: %d %s", a.Status, a.Body)
	}
	e.clock.Add(accountEvery)
	c.signin("Alice", pwAlice, "X-Forwarded-For", "192.0.2.2")
}

// TestThrottlePerAddress: one address trying many accounts is throttled
// after addressBurst attempts; another address is not.
func TestThrottlePerAddress(t *testing.T) {
	e := newEnv(t, opts{cfg: func(c *Config) { c.TrustProxy = true }})
	c := e.client()
	for i := 0; i < addressBurst; i++ {
		a := c.post("/api/account/signin", credentials{fmt.Sprintf("user%d", i), pwAlice}, "X-Forwarded-For", "203.0.113.7")
		if a.Status != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d %s", i, a.Status, a.Body)
		}
	}
	hashes := e.hashes.Load()
	for i := addressBurst; i < 3*addressBurst; i++ {
		// A proxy chain: only the last hop (the trusted proxy's) counts.
		a := c.post("/api/account/signin", credentials{fmt.Sprintf("user%d", i), pwAlice}, "X-Forwarded-For", fmt.Sprintf("198.51.100.%d, 203.0.113.7", i))
		if !throttled(a) {
			t.Fatalf("attempt %d from the same address: %d %s", i, a.Status, a.Body)
		}
	}
	if n := e.hashes.Load() - hashes; n != 0 {
		t.Errorf("%d hashes while throttled", n)
	}
	// Sign-up from that address is throttled too (it hashes).
	if a := c.post("/api/account/signup", credentials{"Newcomer", pwAlice}, "X-Forwarded-For", "203.0.113.7"); !throttled(a) {
		t.Errorf("signup from the throttled address: %d %s", a.Status, a.Body)
	}
	if a := c.post("/api/account/signin", credentials{"someone", pwAlice}, "X-Forwarded-For", "203.0.113.8"); a.Status != http.StatusUnauthorized {
		t.Errorf("another address: %d %s", a.Status, a.Body)
	}
	e.clock.Add(addressEvery)
	if a := c.post("/api/account/signin", credentials{"someone", pwAlice}, "X-Forwarded-For", "203.0.113.7"); a.Status != http.StatusUnauthorized {
		t.Errorf("after a refill: %d %s", a.Status, a.Body)
	}
}

// TestHashingBounded: a flood of sign-ins never runs more than maxHashing
// derivations at once, and a request that waits too long for a slot gets
// 503 instead of piling up.
func TestHashingBounded(t *testing.T) {
	e := newEnv(t, opts{cfg: func(c *Config) { c.TrustProxy = true }})
	e.svc.hashWait = 200 * time.Millisecond
	c := e.client()
	c.signup("Alice", pwAlice)
	gate := make(chan struct{})
	block := func() { <-gate }
	e.during.Store(&block)
	const flood = 12
	done := make(chan answer, flood)
	for i := 0; i < flood; i++ {
		go func() {
			done <- c.post("/api/account/signin", credentials{fmt.Sprintf("user%d", i), pwAlice}, "X-Forwarded-For", fmt.Sprintf("10.0.0.%d", i))
		}()
	}
	// maxHashing requests get a slot; the others wait hashWait and fail.
	for i := 0; i < flood-maxHashing; i++ {
		var a answer
		select {
		case a = <-done:
		case <-time.After(10 * time.Second):
			n := e.inFlight.Load()
			close(gate)
			for j := i; j < flood; j++ {
				<-done
			}
			t.Fatalf("no request refused after 10 s; %d derivations in flight, bound %d", n, maxHashing)
		}
		if a.Status != http.StatusServiceUnavailable || a.errorCode() != "unavailable" || a.Header.Get("Retry-After") == "" {
			t.Fatalf("a waiting request: %d %s", a.Status, a.Body)
		}
	}
	if n := e.inFlight.Load(); n != maxHashing {
		t.Errorf("%d derivations in flight, want %d", n, maxHashing)
	}
	close(gate)
	for i := 0; i < maxHashing; i++ {
		if a := <-done; a.Status != http.StatusUnauthorized {
			t.Errorf("a hashing request: %d %s", a.Status, a.Body)
		}
	}
	if m := e.maxInFlight.Load(); m > maxHashing {
		t.Errorf("%d derivations ran at once, bound %d", m, maxHashing)
	}
	e.during.Store(nil)
	c.signin("Alice", pwAlice, "X-Forwarded-For", "10.1.0.1")
}

func TestSessionExpires(t *testing.T) {
	e := newEnv(t, opts{cfg: func(c *Config) { c.SessionTTL = time.Hour }})
	c := e.client()
	alice := c.signup("Alice", pwAlice)
	if sc := sessionSetCookie(t, c.post("/api/account/signin", credentials{"Alice", pwAlice})); !strings.Contains(sc, "Max-Age=3600") {
		t.Errorf("cookie %q: want Max-Age=3600", sc)
	}
	e.mustAuth(c.cookie(), alice)
	e.clock.Add(time.Hour)
	e.mustEnded(c.cookie())
	n, err := e.svc.SweepSessions(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("SweepSessions = %d, %v; want 1 (the sign-in's; the sign-up's was rotated away)", n, err)
	}
}
