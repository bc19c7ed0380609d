package account

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livechat/livechat/internal/leaktest"
	"github.com/livechat/livechat/pkg/auth"
	"github.com/livechat/livechat/pkg/protocol"
	"github.com/livechat/livechat/pkg/store"
)

// TestMain fails the run when a goroutine of the package or the store is
// left running after the tests.
func TestMain(m *testing.M) { leaktest.Main(m) }

// The compile-time check that Service is pkg/server's Authenticator
// (pkg/server is not imported: it must never depend on account).
var _ interface {
	Authenticate(r *http.Request) (auth.Identity, error)
	Token(token string) (auth.Identity, error)
	GuestName(ctx context.Context, name string) error
} = (*Service)(nil)

var testSecret = []byte("0123456789abcdef0123456789abcdef-account-test-secret")

// A password that meets the policy, and another.
const (
	pwAlice = "correct horse battery"
	pwOther = "another long password"
)

// clock is a settable clock (Config.Now).
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// published is one captured Publish call.
type published struct {
	Subject string
	Data    string
	Event   protocol.UserEvent
}

// opts choose a test environment.
type opts struct {
	// memory uses memory:// instead of a SQLite file.
	memory bool
	// argon2 uses the real password hashing; otherwise a fast stand-in
	// (same policy, SHA-256) keeps the suite fast under -race, where one
	// argon2id hash takes about 300 ms.
	argon2 bool
	// tls serves over HTTPS (httptest.NewTLSServer).
	tls bool
	// cfg adjusts the Config before New.
	cfg func(*Config)
}

// env is a Service on a real store behind a real HTTP server.
type env struct {
	t     *testing.T
	svc   *Service
	st    store.Store
	srv   *httptest.Server
	clock *clock

	// hashes counts the password derivations (hash, verify, verify
	// unknown); inFlight and maxInFlight the concurrent ones.
	hashes      atomic.Int64
	inFlight    atomic.Int64
	maxInFlight atomic.Int64
	// during, when set, runs inside every derivation.
	during atomic.Pointer[func()]

	mu     sync.Mutex
	events []published
	// publishErr, when set, is returned by Publish (after capturing).
	publishErr error
}

func newEnv(t *testing.T, o opts) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, clock: &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}}
	// The store checks expiry against the real clock: keep the test clock
	// near it so sessions made "now" are live for the store too.
	e.clock.t = time.Now().UTC().Truncate(time.Second)
	u := "memory://"
	if !o.memory {
		u = "sqlite://" + filepath.Join(t.TempDir(), "account.db")
	}
	st, err := store.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	e.st = st
	cfg := Config{
		Store:  st,
		Secret: testSecret,
		Publish: func(_ context.Context, subject string, data []byte) error {
			var ev protocol.UserEvent
			if err := json.Unmarshal(data, &ev); err != nil {
				t.Errorf("published %q: %v", data, err)
			}
			e.mu.Lock()
			defer e.mu.Unlock()
			e.events = append(e.events, published{subject, string(data), ev})
			return e.publishErr
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:    e.clock.Now,
	}
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	svc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if o.argon2 {
		svc.pw = e.instrument(argon2id)
	} else {
		svc.pw = e.instrument(fastPasswords)
	}
	e.svc = svc
	if o.tls {
		e.srv = httptest.NewTLSServer(svc.Handler())
	} else {
		e.srv = httptest.NewServer(svc.Handler())
	}
	t.Cleanup(e.srv.Close)
	return e
}

// instrument counts p's derivations and runs e.during inside them.
func (e *env) instrument(p passwords) passwords {
	enter := func() func() {
		e.hashes.Add(1)
		n := e.inFlight.Add(1)
		for m := e.maxInFlight.Load(); n > m && !e.maxInFlight.CompareAndSwap(m, n); m = e.maxInFlight.Load() {
		}
		if f := e.during.Load(); f != nil {
			(*f)()
		}
		return func() { e.inFlight.Add(-1) }
	}
	return passwords{
		hash: func(pw string) (string, error) {
			defer enter()()
			return p.hash(pw)
		},
		verify: func(hash, pw string) (bool, error) {
			defer enter()()
			return p.verify(hash, pw)
		},
		verifyUnknown: func(pw string) bool {
			defer enter()()
			return p.verifyUnknown(pw)
		},
		needsRehash: p.needsRehash,
	}
}

// fastPasswords stand in for argon2id in the tests that are not about
// hashing: the same policy (auth.CheckPassword) and the same errors, with
// a salted SHA-256 instead of the 19 MiB derivation.
var fastPasswords = passwords{
	hash: func(pw string) (string, error) {
		if err := auth.CheckPassword(pw); err != nil {
			return "", err
		}
		salt := make([]byte, 8)
		_, _ = rand.Read(salt)
		sum := sha256.Sum256(append(salt, pw...))
		return "$fast$" + hex.EncodeToString(salt) + "$" + hex.EncodeToString(sum[:]), nil
	},
	verify: func(hash, pw string) (bool, error) {
		f := strings.Split(hash, "$")
		if len(f) != 4 || f[1] != "fast" {
			return false, auth.ErrMalformedHash
		}
		salt, err1 := hex.DecodeString(f[2])
		want, err2 := hex.DecodeString(f[3])
		if err1 != nil || err2 != nil {
			return false, auth.ErrMalformedHash
		}
		if len(pw) > 4*auth.MaxPasswordLen {
			return false, auth.ErrPasswordTooLong
		}
		sum := sha256.Sum256(append(salt, pw...))
		return subtle.ConstantTimeCompare(sum[:], want) == 1, nil
	},
	verifyUnknown: func(string) bool { return false },
	needsRehash:   func(hash string) bool { return !strings.HasPrefix(hash, "$fast$") },
}

// published returns the events captured so far.
func (e *env) published() []published {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]published(nil), e.events...)
}

func (e *env) setPublishErr(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.publishErr = err
}

// client is a browser: a real http.Client with a cookie jar.
type client struct {
	e   *env
	c   *http.Client
	jar *cookiejar.Jar
}

func (e *env) client() *client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	c := *e.srv.Client()
	c.Jar = jar
	return &client{e: e, c: &c, jar: jar}
}

// answer is an HTTP answer, read whole.
type answer struct {
	Status int
	Header http.Header
	Body   []byte
}

// errorCode returns the "code" of an error body.
func (a answer) errorCode() string {
	var b struct {
		Error struct{ Code, Message string }
	}
	_ = json.Unmarshal(a.Body, &b)
	return b.Error.Code
}

// do sends a request: body is nil, a string or []byte (sent as is) or a
// value sent as JSON; hdr are header name/value pairs.
func (c *client) do(method, path string, body any, hdr ...string) answer {
	c.e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			c.e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, c.e.srv.URL+path, rd)
	if err != nil {
		c.e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := c.c.Do(req)
	if err != nil {
		c.e.t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		c.e.t.Fatal(err)
	}
	return answer{res.StatusCode, res.Header, b}
}

func (c *client) post(path string, body any, hdr ...string) answer {
	c.e.t.Helper()
	return c.do(http.MethodPost, path, body, hdr...)
}

// signup signs up and fails the test unless it answered 201; it returns
// the user.
func (c *client) signup(name, pw string) User {
	c.e.t.Helper()
	a := c.post("/api/account/signup", credentials{name, pw})
	if a.Status != http.StatusCreated {
		c.e.t.Fatalf("signup %q: %d %s", name, a.Status, a.Body)
	}
	var b userAnswer
	if err := json.Unmarshal(a.Body, &b); err != nil || b.User == nil {
		c.e.t.Fatalf("signup body %s: %v", a.Body, err)
	}
	return *b.User
}

// signin signs in and fails the test unless it answered 200.
func (c *client) signin(name, pw string, hdr ...string) User {
	c.e.t.Helper()
	a := c.post("/api/account/signin", credentials{name, pw}, hdr...)
	if a.Status != http.StatusOK {
		c.e.t.Fatalf("signin %q: %d %s", name, a.Status, a.Body)
	}
	var b userAnswer
	if err := json.Unmarshal(a.Body, &b); err != nil || b.User == nil {
		c.e.t.Fatalf("signin body %s: %v", a.Body, err)
	}
	return *b.User
}

// cookie returns the session cookie value in c's jar ("" for none).
func (c *client) cookie() string {
	u, _ := url.Parse(c.e.srv.URL)
	for _, k := range c.jar.Cookies(u) {
		if k.Name == CookieName {
			return k.Value
		}
	}
	return ""
}

// setCookie puts a session cookie value into c's jar.
func (c *client) setCookie(value string) {
	u, _ := url.Parse(c.e.srv.URL)
	c.jar.SetCookies(u, []*http.Cookie{{Name: CookieName, Value: value, Path: "/"}})
}

// authCookie runs Authenticate on a request carrying the cookie value.
func (e *env) authCookie(value string) (auth.Identity, error) {
	r := httptest.NewRequest(http.MethodGet, "/ws", nil)
	r.AddCookie(&http.Cookie{Name: CookieName, Value: value})
	return e.svc.Authenticate(r)
}

// mustAuth asserts that value authenticates as user.
func (e *env) mustAuth(value string, u User) auth.Identity {
	e.t.Helper()
	id, err := e.authCookie(value)
	if err != nil {
		e.t.Fatalf("Authenticate: %v", err)
	}
	if id.UserID != u.ID || id.Name != u.Name || id.Kind != auth.KindAccount || id.Session != hashValue(value) {
		e.t.Fatalf("Authenticate = %+v, want user %+v with session %s", id, u, hashValue(value))
	}
	return id
}

// mustEnded asserts that value no longer authenticates: ErrSessionEnded.
func (e *env) mustEnded(value string) {
	e.t.Helper()
	if id, err := e.authCookie(value); !errors.Is(err, auth.ErrSessionEnded) {
		e.t.Fatalf("Authenticate(old cookie) = %+v, %v; want ErrSessionEnded", id, err)
	}
}

// randomValue is a well-formed cookie value no session has.
func randomValue() string {
	v, _ := newSession()
	return v
}
