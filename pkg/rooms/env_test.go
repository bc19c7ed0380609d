package rooms

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livechat/livechat/internal/leaktest"
	"github.com/livechat/livechat/pkg/auth"
	"github.com/livechat/livechat/pkg/protocol"
	"github.com/livechat/livechat/pkg/store"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

// testPrefix is the subject prefix of the tests' events.
const testPrefix = "roomstest"

// env is one Service on a real store behind a real HTTP server. Requests
// name their user in the X-Test-User header (identity is pkg/account's
// job); the header's value is looked up in ids.
type env struct {
	st  store.Store
	svc *Service
	srv *httptest.Server

	mu sync.Mutex
	// ids maps X-Test-User values to identities.
	ids map[string]auth.Identity
	// events are the published user events, with their subjects.
	events []event
	// publishErr, when set, makes Publish fail.
	publishErr error
}

type event struct {
	subject string
	ev      protocol.UserEvent
}

// stores are the backends every flow test runs on.
func stores(t *testing.T) map[string]string {
	return map[string]string{
		"memory": "memory://",
		"sqlite": "sqlite://" + filepath.Join(t.TempDir(), "store.db"),
	}
}

// forStores runs f on a fresh env of each backend.
func forStores(t *testing.T, f func(t *testing.T, e *env)) {
	for name, url := range stores(t) {
		t.Run(name, func(t *testing.T) { f(t, newEnv(t, url)) })
	}
}

func newEnv(t *testing.T, url string) *env {
	t.Helper()
	return newEnvConfig(t, url, func(*Config) {})
}

func newEnvConfig(t *testing.T, url string, tweak func(*Config)) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := store.Open(ctx, url)
	if err != nil {
		t.Fatalf("store.Open(%s): %v", url, err)
	}
	e := &env{st: st, ids: map[string]auth.Identity{}}
	cfg := Config{
		Store:    st,
		Identify: e.identify,
		Publish:  e.publish,
		Prefix:   testPrefix,
	}
	tweak(&cfg)
	svc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	e.srv = httptest.NewServer(svc.Handler())
	t.Cleanup(func() {
		e.srv.Close()
		svc.Close()
		_ = st.Close()
	})
	return e
}

func (e *env) identify(r *http.Request) (auth.Identity, error) {
	v := r.Header.Get("X-Test-User")
	if v == "" {
		return auth.Identity{}, auth.ErrNoCredentials
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	id, ok := e.ids[v]
	if !ok {
		return auth.Identity{}, auth.ErrSessionEnded
	}
	return id, nil
}

func (e *env) publish(_ context.Context, subject string, data []byte) error {
	var ev protocol.UserEvent
	if err := json.Unmarshal(data, &ev); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.publishErr != nil {
		return e.publishErr
	}
	e.events = append(e.events, event{subject, ev})
	return nil
}

// takeEvents returns and forgets the events published so far.
func (e *env) takeEvents() []event {
	e.mu.Lock()
	defer e.mu.Unlock()
	evs := e.events
	e.events = nil
	return evs
}

// account makes an account in the store and returns its identity (its
// X-Test-User value is its user id).
func (e *env) account(t *testing.T, name string) auth.Identity {
	t.Helper()
	key, err := auth.NameKey(name)
	if err != nil {
		t.Fatal(err)
	}
	u, err := e.st.CreateUser(context.Background(), store.User{ID: NewID("u"), Name: name, Key: key, PasswordHash: "x"})
	if err != nil {
		t.Fatal(err)
	}
	id := auth.Identity{Kind: auth.KindAccount, UserID: u.ID, Name: name, Session: "s" + u.ID}
	e.register(id)
	return id
}

// register lets requests use id.
func (e *env) register(id auth.Identity) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ids[id.UserID] = id
}

// resp is an answer of the API.
type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// errCode returns the error code of an error answer.
func (r resp) errCode() string {
	var v struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(r.body, &v)
	return v.Error.Code
}

// do sends a request as user (empty: none) with body (empty: none) and
// extra headers (name, value pairs).
func (e *env) do(t *testing.T, method, path string, user auth.Identity, body string, headers ...string) resp {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if user.UserID != "" {
		req.Header.Set("X-Test-User", user.UserID)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

// want fails unless r has status (and, for errors, code).
func want(t *testing.T, what string, r resp, status int, code string) {
	t.Helper()
	if r.status != status || (code != "" && r.errCode() != code) {
		t.Fatalf("%s: got %d %s, want %d %s", what, r.status, bytes.TrimSpace(r.body), status, code)
	}
}

// createRoom makes a room through the API as user.
func (e *env) createRoom(t *testing.T, user auth.Identity, name, kind string) Room {
	t.Helper()
	r := e.do(t, "POST", "/api/rooms", user, `{"name":`+quote(name)+`,"kind":"`+kind+`"}`)
	want(t, "create room", r, http.StatusCreated, "")
	var v struct{ Room Room }
	r.decode(t, &v)
	return v.Room
}

// invite invites name to room as user and wants status.
func (e *env) invite(t *testing.T, user auth.Identity, room, name string, status int, code string) resp {
	t.Helper()
	r := e.do(t, "POST", "/api/rooms/"+room+"/members", user, `{"name":`+quote(name)+`}`)
	want(t, "invite "+name, r, status, code)
	return r
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
}

// role returns user's role in room ("" when none).
func (e *env) role(t *testing.T, room, user string) store.Role {
	t.Helper()
	r, err := e.st.Member(context.Background(), room, user)
	if errors.Is(err, store.ErrNotFound) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return r
}
