package account

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/argon2"

	"github.com/livechat/livechat/pkg/auth"
	"github.com/livechat/livechat/pkg/store"
)

var otherSecret = []byte("fedcba9876543210fedcba9876543210-other-secret-key")

var b64url = base64.RawURLEncoding

// handToken builds a token by hand: header and claims as JSON, signed with
// HMAC (newHash) under key, or unsigned when newHash is nil.
func handToken(t *testing.T, header, claims map[string]any, newHash func() hash.Hash, key []byte) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	signing := b64url.EncodeToString(h) + "." + b64url.EncodeToString(c)
	if newHash == nil {
		return signing + "."
	}
	m := hmac.New(newHash, key)
	m.Write([]byte(signing))
	return signing + "." + b64url.EncodeToString(m.Sum(nil))
}

var hs256 = map[string]any{"alg": "HS256", "typ": "JWT"}

// claimsAt are claims the service accepts at now.
func claimsAt(now time.Time) map[string]any {
	return map[string]any{"sub": "site-42", "name": "Carol", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
}

// tokenWays are the two places a handshake may carry a token.
var tokenWays = []struct {
	name    string
	request func(tok string) *http.Request
}{
	{"header", func(tok string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/ws", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		return r
	}},
	{"query", func(tok string) *http.Request {
		return httptest.NewRequest(http.MethodGet, "/ws?token="+url.QueryEscape(tok), nil)
	}},
}

// refusedToken asserts that Authenticate (header and query) and Token
// refuse tok with auth.ErrInvalidToken, without quoting it.
func refusedToken(t *testing.T, e *env, what, tok string) {
	t.Helper()
	check := func(how string, id auth.Identity, err error) {
		t.Helper()
		if !errors.Is(err, auth.ErrInvalidToken) {
			t.Errorf("%s (%s): %+v, %v; want ErrInvalidToken", what, how, id, err)
			return
		}
		for _, part := range strings.Split(tok, ".") {
			if len(part) > 8 && strings.Contains(err.Error(), part) {
				t.Errorf("%s (%s): the error quotes the token", what, how)
			}
		}
	}
	for _, way := range tokenWays {
		id, err := e.svc.Authenticate(way.request(tok))
		check(way.name, id, err)
	}
	id, err := e.svc.Token(tok)
	check("auth frame", id, err)
}

func TestTokenIdentity(t *testing.T) {
	e := newEnv(t, opts{memory: true})
	now := e.clock.Now()
	for _, tc := range []struct {
		claims   map[string]any
		wantName string
	}{
		{claimsAt(now), "Carol"},
		{map[string]any{"sub": "dave", "exp": now.Add(time.Hour).Unix()}, "dave"},
		{map[string]any{"sub": "dave@example.com", "exp": now.Add(time.Hour).Unix()}, "user"},
		{map[string]any{"sub": "x", "exp": now.Add(time.Hour).Unix(), "rooms": []string{"a", "b"}}, "x"},
	} {
		tok := handToken(t, hs256, tc.claims, sha256.New, testSecret)
		for _, way := range tokenWays {
			id, err := e.svc.Authenticate(way.request(tok))
			if err != nil {
				t.Fatalf("%v by %s: %v", tc.claims, way.name, err)
			}
			want := auth.Identity{UserID: tc.claims["sub"].(string), Name: tc.wantName, Kind: auth.KindToken,
				Expires: time.Unix(tc.claims["exp"].(int64), 0)}
			if r, ok := tc.claims["rooms"]; ok {
				want.Rooms = r.([]string)
			}
			if id.UserID != want.UserID || id.Name != want.Name || id.Kind != want.Kind || !id.Expires.Equal(want.Expires) ||
				id.Session != "" || !slices.Equal(id.Rooms, want.Rooms) || (id.Rooms == nil) != (want.Rooms == nil) {
				t.Errorf("by %s: %+v, want %+v", way.name, id, want)
			}
		}
		if id, err := e.svc.Token(tok); err != nil || id.UserID != tc.claims["sub"] || id.Name != tc.wantName {
			t.Errorf("Token: %+v, %v", id, err)
		}
	}
}

func TestTokenForgedSignature(t *testing.T) {
	e := newEnv(t, opts{memory: true})
	now := e.clock.Now()
	tok := handToken(t, hs256, claimsAt(now), sha256.New, testSecret)
	if _, err := e.svc.Token(tok); err != nil {
		t.Fatalf("the untouched token: %v", err)
	}
	parts := strings.Split(tok, ".")
	forged := claimsAt(now)
	forged["sub"] = "admin"
	fp, _ := json.Marshal(forged)
	refusedToken(t, e, "payload changed, signature kept", parts[0]+"."+b64url.EncodeToString(fp)+"."+parts[2])
	sig, _ := b64url.DecodeString(parts[2])
	sig[0] ^= 1
	refusedToken(t, e, "signature bit flipped", parts[0]+"."+parts[1]+"."+b64url.EncodeToString(sig))
	refusedToken(t, e, "signature removed", parts[0]+"."+parts[1]+".")
	refusedToken(t, e, "garbage", "not-a-token")
	refusedToken(t, e, "empty", "")
}

func TestTokenWrongKey(t *testing.T) {
	e := newEnv(t, opts{memory: true})
	refusedToken(t, e, "other secret", handToken(t, hs256, claimsAt(e.clock.Now()), sha256.New, otherSecret))
}

func TestTokenAlgNone(t *testing.T) {
	e := newEnv(t, opts{memory: true})
	now := e.clock.Now()
	for _, alg := range []string{"none", "None", "NONE", ""} {
		h := map[string]any{"alg": alg, "typ": "JWT"}
		refusedToken(t, e, "alg "+alg+" unsigned", handToken(t, h, claimsAt(now), nil, nil))
		refusedToken(t, e, "alg "+alg+" HMAC-signed", handToken(t, h, claimsAt(now), sha256.New, testSecret))
	}
}

// TestTokenRSHSConfusion: an RS256 token whose "key" is the HMAC secret
// (HMAC-signed with it while claiming RS256), and a real RS256 token.
func TestTokenRSHSConfusion(t *testing.T) {
	e := newEnv(t, opts{memory: true})
	now := e.clock.Now()
	refusedToken(t, e, "claims RS256, HMAC with the secret", handToken(t, map[string]any{"alg": "RS256", "typ": "JWT"}, claimsAt(now), sha256.New, testSecret))
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims(claimsAt(now))).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	refusedToken(t, e, "RS256-signed", rs)
	// The classic confusion needs a verifier whose secret is the public
	// key: make one.
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	e2 := newEnv(t, opts{memory: true, cfg: func(c *Config) { c.Secret = pub }})
	refusedToken(t, e2, "claims RS256, HMAC with the public key", handToken(t, map[string]any{"alg": "RS256", "typ": "JWT"}, claimsAt(now), sha256.New, pub))
	refusedToken(t, e2, "RS256-signed, public key as secret", rs)
}

func TestTokenTimes(t *testing.T) {
	e := newEnv(t, opts{memory: true})
	now := e.clock.Now()
	with := func(k string, v any) map[string]any {
		c := claimsAt(now)
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	for _, tc := range []struct {
		what   string
		claims map[string]any
	}{
		{"expired", with("exp", now.Add(-time.Minute).Unix())},
		{"not yet valid", with("nbf", now.Add(time.Minute).Unix())},
		{"issued in the future", with("iat", now.Add(time.Minute).Unix())},
		{"missing exp", with("exp", nil)},
	} {
		refusedToken(t, e, tc.what, handToken(t, hs256, tc.claims, sha256.New, testSecret))
	}
	// A valid token expires when the clock passes exp (beyond the leeway).
	tok := handToken(t, hs256, with("exp", now.Add(time.Minute).Unix()), sha256.New, testSecret)
	if _, err := e.svc.Token(tok); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(time.Minute + auth.TokenLeeway + time.Second)
	refusedToken(t, e, "expired later", tok)
}

// TestTokensDisabled: without a secret every token is refused.
func TestTokensDisabled(t *testing.T) {
	e := newEnv(t, opts{memory: true, cfg: func(c *Config) { c.Secret = nil }})
	refusedToken(t, e, "valid elsewhere", handToken(t, hs256, claimsAt(e.clock.Now()), sha256.New, testSecret))
	if _, err := New(Config{Store: e.st, Secret: []byte("short")}); !errors.Is(err, auth.ErrShortSecret) {
		t.Errorf("New with a short secret: %v", err)
	}
	if _, err := New(Config{}); err == nil {
		t.Errorf("New without a store: no error")
	}
}

// TestTokenOverCookie: a token wins over a cookie, and a bad token is an
// error, never a fall back to the cookie.
func TestTokenOverCookie(t *testing.T) {
	e := newEnv(t, opts{memory: true})
	c := e.client()
	c.signup("Alice", pwAlice)
	good := handToken(t, hs256, claimsAt(e.clock.Now()), sha256.New, testSecret)
	bad := handToken(t, hs256, claimsAt(e.clock.Now()), sha256.New, otherSecret)
	for _, way := range tokenWays {
		r := way.request(good)
		r.AddCookie(&http.Cookie{Name: CookieName, Value: c.cookie()})
		if id, err := e.svc.Authenticate(r); err != nil || id.Kind != auth.KindToken || id.UserID != "site-42" {
			t.Errorf("good token and cookie by %s: %+v, %v", way.name, id, err)
		}
		r = way.request(bad)
		r.AddCookie(&http.Cookie{Name: CookieName, Value: c.cookie()})
		if id, err := e.svc.Authenticate(r); !errors.Is(err, auth.ErrInvalidToken) {
			t.Errorf("bad token and cookie by %s: %+v, %v", way.name, id, err)
		}
	}
	// Another Authorization scheme is not ours: the cookie counts.
	r := httptest.NewRequest(http.MethodGet, "/ws", nil)
	r.Header.Set("Authorization", "Basic YWxpY2U6cHc=")
	r.AddCookie(&http.Cookie{Name: CookieName, Value: c.cookie()})
	if id, err := e.svc.Authenticate(r); err != nil || id.Kind != auth.KindAccount {
		t.Errorf("Basic and cookie: %+v, %v", id, err)
	}
	// /me answers 401 invalid_token for a bad bearer token.
	if a := c.do(http.MethodGet, "/api/account/me", nil, "Authorization", "Bearer "+bad); a.Status != http.StatusUnauthorized || a.errorCode() != "invalid_token" {
		t.Errorf("me with a bad token: %d %s", a.Status, a.Body)
	}
}

func TestAuthenticateNoCredentials(t *testing.T) {
	e := newEnv(t, opts{memory: true})
	if _, err := e.svc.Authenticate(httptest.NewRequest(http.MethodGet, "/ws", nil)); !errors.Is(err, auth.ErrNoCredentials) {
		t.Errorf("no credentials: %v", err)
	}
	for _, v := range []string{"", "x", randomValue(), randomValue() + "A", strings.Repeat("%", sessionValueLen)} {
		if _, err := e.authCookie(v); !errors.Is(err, auth.ErrSessionEnded) {
			t.Errorf("cookie %q: %v, want ErrSessionEnded", v, err)
		}
	}
}

// TestBanClosesAccount: a ban ends the sessions, publishes the revocation
// and makes Authenticate fail, for cookies and for a token user's row.
func TestBanClosesAccount(t *testing.T) {
	e := newEnv(t, opts{})
	ctx := context.Background()
	c := e.client()
	alice := c.signup("Alice", pwAlice)
	cookie := c.cookie()
	e.mustAuth(cookie, alice)
	if err := e.svc.SetBanned(ctx, alice.ID, true); err != nil {
		t.Fatal(err)
	}
	if id, err := e.authCookie(cookie); err == nil {
		t.Fatalf("a banned user's cookie authenticates: %+v", id)
	}
	ev := e.published()
	if len(ev) != 1 || ev[0].Subject != "livechat.user."+alice.ID ||
		ev[0].Data != fmt.Sprintf(`{"type":"revoke","user":%q,"reason":"banned"}`, alice.ID) {
		t.Fatalf("published %+v", ev)
	}
	// A session made before the ban took effect (a race with a sign-in)
	// is refused as closed.
	value, sid := newSession()
	if _, err := e.st.CreateSession(ctx, store.Session{ID: sid, UserID: alice.ID, Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.authCookie(value); !errors.Is(err, auth.ErrAccountClosed) {
		t.Fatalf("a live session of a banned user: %v, want ErrAccountClosed", err)
	}
	// A token user with a banned row is refused too.
	if _, err := e.st.CreateUser(ctx, store.User{ID: "site-42", Key: "token:site-42", Name: "Carol"}); err != nil {
		t.Fatal(err)
	}
	tok := handToken(t, hs256, claimsAt(e.clock.Now()), sha256.New, testSecret)
	if _, err := e.svc.Token(tok); err != nil {
		t.Fatalf("token before the ban: %v", err)
	}
	if err := e.svc.SetBanned(ctx, "site-42", true); err != nil {
		t.Fatal(err)
	}
	for _, way := range tokenWays {
		if _, err := e.svc.Authenticate(way.request(tok)); !errors.Is(err, auth.ErrAccountClosed) {
			t.Errorf("banned token user by %s: %v", way.name, err)
		}
	}
	// Unbanned, Alice signs in again.
	if err := e.svc.SetBanned(ctx, alice.ID, false); err != nil {
		t.Fatal(err)
	}
	e.mustAuth(e.client().signinCookie("Alice", pwAlice), alice)
}

// signinCookie signs in and returns the new cookie value.
func (c *client) signinCookie(name, pw string) string {
	c.e.t.Helper()
	c.signin(name, pw)
	return c.cookie()
}

func TestGuestName(t *testing.T) {
	e := newEnv(t, opts{})
	ctx := context.Background()
	e.client().signup("Alice", pwAlice)
	for _, name := range []string{"Alice", "alice", "ＡＬＩＣＥ"} {
		if err := e.svc.GuestName(ctx, name); !errors.Is(err, auth.ErrNameTaken) {
			t.Errorf("GuestName(%q) = %v, want ErrNameTaken", name, err)
		}
	}
	if err := e.svc.GuestName(ctx, "Bob"); err != nil {
		t.Errorf("GuestName(Bob) = %v", err)
	}
	if err := e.svc.GuestName(ctx, "x\u3164"); !errors.Is(err, auth.ErrInvalidUserName) {
		t.Errorf("GuestName(invisible filler) = %v", err)
	}
}

// weakArgon2 hashes pw with argon2id at weaker parameters than the
// current ones (m=8 MiB, t=1), as an older release might have.
func weakArgon2(t *testing.T, pw string) string {
	t.Helper()
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	key := argon2.IDKey([]byte(pw), salt, 1, 8192, 1, 32)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=19$m=8192,t=1,p=1$%s$%s", enc.EncodeToString(salt), enc.EncodeToString(key))
}

// TestUploadToken: a guest's upload token identifies that guest to the
// files API (AuthenticateFiles) and opens nothing else: not a connection
// (auth frame, handshake) nor the other APIs. A token claiming the upload
// use for an account's id is refused everywhere.
func TestUploadToken(t *testing.T) {
	e := newEnv(t, opts{memory: true})
	tok, err := e.svc.UploadToken("g_abc")
	if err != nil {
		t.Fatal(err)
	}
	for _, way := range tokenWays {
		if _, err := e.svc.Authenticate(way.request(tok)); !errors.Is(err, auth.ErrInvalidToken) {
			t.Errorf("Authenticate by %s: %v, want invalid token", way.name, err)
		}
		id, err := e.svc.AuthenticateFiles(way.request(tok))
		if err != nil || id.UserID != "g_abc" || !id.Guest() || id.Name != "" || id.Expires.IsZero() {
			t.Errorf("AuthenticateFiles by %s: %+v, %v", way.name, id, err)
		}
	}
	if _, err := e.svc.Token(tok); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("an upload token in an auth frame: %v", err)
	}
	// A connection token still works for the files API.
	conn := handToken(t, hs256, claimsAt(e.clock.Now()), sha256.New, testSecret)
	if id, err := e.svc.AuthenticateFiles(tokenWays[0].request(conn)); err != nil || id.Kind != auth.KindToken {
		t.Errorf("a connection token for the files API: %+v, %v", id, err)
	}
	// An upload token for an account's id is refused when minted and when
	// made by hand.
	if _, err := e.svc.UploadToken("alice"); err == nil {
		t.Error("UploadToken minted a token for a non-guest id")
	}
	forged := handToken(t, hs256, map[string]any{"sub": "alice", "use": "upload", "exp": e.clock.Now().Add(time.Hour).Unix()}, sha256.New, testSecret)
	if id, err := e.svc.AuthenticateFiles(tokenWays[0].request(forged)); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("an upload token for an account's id: %+v, %v", id, err)
	}
}
