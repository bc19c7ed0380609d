package files_test

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livechat/livechat/internal/leaktest"
	"github.com/livechat/livechat/pkg/auth"
	"github.com/livechat/livechat/pkg/blob"
	"github.com/livechat/livechat/pkg/files"
	"github.com/livechat/livechat/pkg/history/historytest"
	"github.com/livechat/livechat/pkg/protocol"
	"github.com/livechat/livechat/pkg/rooms"
	"github.com/livechat/livechat/pkg/store"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

// env is a files Service on real stores, with the real rooms Service
// deciding who enters which room, behind a real HTTP server. Requests name
// their user in the X-Test-User header (identity is pkg/account's job).
type env struct {
	st    store.Store
	bl    blob.Store
	rooms *rooms.Service
	svc   *files.Service
	srv   *httptest.Server

	// dir is the blob directory of a file:// blob store ("" for another):
	// nothingStored also checks that its tmp/ keeps no partial upload.
	dir string

	mu  sync.Mutex
	now time.Time // the service's clock, moved by advance
}

// backends are the store and blob store pairs the flow tests run on: a
// single node's (SQLite and a directory) and a cluster's (PostgreSQL).
func backends(t *testing.T) map[string][2]string {
	dir := t.TempDir()
	return map[string][2]string{
		"node":    {"sqlite://" + filepath.Join(dir, "store.db"), "file://" + filepath.Join(dir, "blobs")},
		"cluster": {"postgres", "postgres"},
	}
}

// forBackends runs f on a fresh env of each backend pair.
func forBackends(t *testing.T, f func(t *testing.T, e *env)) {
	for name, urls := range backends(t) {
		t.Run(name, func(t *testing.T) { f(t, newEnv(t, urls, nil)) })
	}
}

// newEnv opens the stores ("postgres" means a fresh schema of the test
// PostgreSQL for both) and the services; tweak may change the Config.
func newEnv(t *testing.T, urls [2]string, tweak func(*files.Config)) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if urls[0] == "postgres" {
		pg := historytest.PostgresURL(t)
		urls = [2]string{pg, pg}
	}
	st, err := store.Open(ctx, urls[0])
	if err != nil {
		t.Fatalf("store.Open(%s): %v", urls[0], err)
	}
	bl, err := blob.Open(ctx, urls[1])
	if err != nil {
		t.Fatalf("blob.Open(%s): %v", urls[1], err)
	}
	rms, err := rooms.New(rooms.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{st: st, bl: bl, rooms: rms, now: time.Now()}
	if dir, ok := strings.CutPrefix(urls[1], "file://"); ok {
		e.dir = dir
	}
	cfg := files.Config{
		Store:    st,
		Blobs:    bl,
		Identify: e.identify,
		Enter:    rms.Enter,
		MaxBytes: 1 << 20,
		Now:      e.clock,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	svc, err := files.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	e.srv = httptest.NewServer(svc.Handler())
	t.Cleanup(func() {
		e.srv.Close()
		svc.Close()
		rms.Close()
		_ = bl.Close()
		_ = st.Close()
	})
	return e
}

func (e *env) identify(r *http.Request) (auth.Identity, error) {
	v := r.Header.Get("X-Test-User")
	if v == "" {
		return auth.Identity{}, auth.ErrNoCredentials
	}
	if strings.HasPrefix(v, auth.GuestIDPrefix) { // a guest's upload token
		return auth.Identity{UserID: v, Kind: auth.KindGuest}, nil
	}
	return auth.Identity{UserID: v, Name: v, Kind: auth.KindAccount}, nil
}

func (e *env) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

func (e *env) advance(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.now = e.now.Add(d)
}

// user makes an account and returns its id (its X-Test-User value).
func (e *env) user(t *testing.T, name string) string {
	t.Helper()
	u, err := e.st.CreateUser(context.Background(), store.User{ID: "u_" + name, Key: name, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	return u.ID
}

// direct returns the direct room of two users.
func (e *env) direct(t *testing.T, a, b string) string {
	t.Helper()
	r, _, err := e.st.DirectRoom(context.Background(), a, b, rooms.NewID(protocol.DirectRoomPrefix))
	if err != nil {
		t.Fatal(err)
	}
	return r.ID
}

// answer is an HTTP answer, read whole.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// apiError is the error code of a JSON error answer.
func (a answer) code() string {
	var v struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(a.body, &v)
	return v.Error.Code
}

// do sends a request as user ("" for none).
func (e *env) do(t *testing.T, method, path, user string, body io.Reader, hdr map[string]string) answer {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.Header.Set("X-Test-User", user)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, path, err)
	}
	return answer{resp.StatusCode, resp.Header, b}
}

// upload posts data as name into room as user.
func (e *env) upload(t *testing.T, user, room, name string, data []byte) answer {
	t.Helper()
	return e.do(t, http.MethodPost, "/api/files?room="+url.QueryEscape(room)+"&name="+url.QueryEscape(name), user, bytes.NewReader(data), nil)
}

// uploaded posts data and returns the file, failing unless 201.
func (e *env) uploaded(t *testing.T, user, room, name string, data []byte) protocol.File {
	t.Helper()
	a := e.upload(t, user, room, name, data)
	if a.status != http.StatusCreated {
		t.Fatalf("upload %s: %d %s", name, a.status, a.body)
	}
	var v struct{ File protocol.File }
	if err := json.Unmarshal(a.body, &v); err != nil {
		t.Fatal(err)
	}
	return v.File
}

// nothingStored fails unless the stores hold no upload of user and no
// blob at all.
func (e *env) nothingStored(t *testing.T, user string) {
	t.Helper()
	ctx := context.Background()
	n, size, err := e.st.UploadUsage(ctx, user)
	if err != nil || n != 0 || size != 0 {
		t.Errorf("UploadUsage(%s) = %d, %d, %v; want nothing stored", user, n, size, err)
	}
	infos, err := e.bl.List(ctx, "", 0)
	if err != nil || len(infos) != 0 {
		t.Errorf("blobs: %d, %v; want none", len(infos), err)
	}
	if e.dir != "" {
		// The part of a refused upload already received is gone too.
		left, err := os.ReadDir(filepath.Join(e.dir, "tmp"))
		if err != nil || len(left) != 0 {
			t.Errorf("the blob directory's tmp/ holds %d files, %v; want none", len(left), err)
		}
	}
}

// pngOf is a w x h PNG with a gradient.
func pngOf(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.NRGBA{uint8(x), uint8(y), 128, 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
