package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// runUploadsTagged calls RunUploads with every goroutine it starts (the
// transport's too) labelled with the test's name, then fails the test if
// one of them is still running.
func runUploadsTagged(ctx context.Context, t *testing.T, cfg UploadConfig) UploadResult {
	t.Helper()
	var res UploadResult
	pprof.Do(ctx, pprof.Labels("uploads_test", t.Name()), func(ctx context.Context) {
		res = RunUploads(ctx, cfg)
	})
	label := `"uploads_test":"` + t.Name() + `"`
	deadline := time.Now().Add(5 * time.Second)
	for {
		var buf bytes.Buffer
		if err := pprof.Lookup("goroutine").WriteTo(&buf, 1); err != nil {
			t.Fatal(err)
		}
		var left []string
		for _, g := range strings.Split(buf.String(), "\n\n") {
			if strings.Contains(g, label) {
				left = append(left, g)
			}
		}
		if len(left) == 0 {
			return res
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines left running after RunUploads returned:\n%s", strings.Join(left, "\n\n"))
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
}

// fileServer stands in for the server's files API: POST /api/files takes
// a body that must be the bench's (exactly size bytes, the PDF header),
// from a user with a valid token "tok-<i>" named in the file name; DELETE
// /api/files/{id} withdraws a pending upload (204), else 404.
type fileServer struct {
	size int64
	// refuse, when it returns true for a POST, answers 429
	// too_many_uploads with Retry-After: 1 instead of taking it.
	refuse func(user int) bool
	// hold, if set, is called with each POST after its body was read and
	// before the answer.
	hold func(r *http.Request)
	// signedOut counts the 401s answered.
	signedOut atomic.Int64

	mu      sync.Mutex
	bad     []string            // what the handler found wrong
	pending map[string]int      // id -> user, taken and not deleted
	posts   map[int][]time.Time // user -> when each POST arrived
	created int                 // 201s answered
	deleted int
	bodies  int64 // body bytes read
	nextID  int
	// uploaded is signalled (without blocking) after each 201.
	uploaded chan struct{}
}

var benchFileName = regexp.MustCompile(`^bench-(\d+)-(\d+)\.pdf$`)

func newFileServer(t *testing.T, size int64) (*fileServer, *httptest.Server) {
	fs := &fileServer{size: size, pending: map[string]int{}, posts: map[int][]time.Time{},
		uploaded: make(chan struct{}, 1)}
	ts := httptest.NewServer(fs)
	t.Cleanup(ts.Close)
	return fs, ts
}

func (fs *fileServer) fail(format string, args ...any) {
	fs.mu.Lock()
	fs.bad = append(fs.bad, fmt.Sprintf(format, args...))
	fs.mu.Unlock()
}

func writeError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": code}})
}

func (fs *fileServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user := -1
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer tok-"); ok {
		if n, err := strconv.Atoi(tok); err == nil {
			user = n
		}
	}
	if user < 0 {
		fs.signedOut.Add(1)
		writeError(w, http.StatusUnauthorized, "signed_out")
		return
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/api/files":
		fs.post(w, r, user)
	case r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, "/api/files/"):
		id := strings.TrimPrefix(r.URL.Path, "/api/files/")
		fs.mu.Lock()
		owner, ok := fs.pending[id]
		if ok && owner == user {
			delete(fs.pending, id)
			fs.deleted++
		}
		fs.mu.Unlock()
		if !ok || owner != user {
			writeError(w, http.StatusNotFound, "not_found")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		writeError(w, http.StatusNotFound, "not_found")
	}
}

func (fs *fileServer) post(w http.ResponseWriter, r *http.Request, user int) {
	fs.mu.Lock()
	fs.posts[user] = append(fs.posts[user], time.Now())
	fs.mu.Unlock()
	m := benchFileName.FindStringSubmatch(r.URL.Query().Get("name"))
	if m == nil || m[1] != strconv.Itoa(user) || r.URL.Query().Get("room") != "bench room" {
		fs.fail("user %d: query %q", user, r.URL.RawQuery)
	}
	if r.ContentLength != fs.size {
		fs.fail("user %d: Content-Length %d, want %d", user, r.ContentLength, fs.size)
	}
	head := make([]byte, len(uploadHead))
	n, err := io.ReadFull(r.Body, head)
	if err != nil && int64(n) != fs.size {
		return // the client went away: the run ended
	}
	rest, err := io.Copy(io.Discard, r.Body)
	if err != nil {
		return
	}
	got := int64(n) + rest
	fs.mu.Lock()
	fs.bodies += got
	fs.mu.Unlock()
	if got != fs.size || string(head[:n]) != uploadHead[:min(int64(len(uploadHead)), fs.size)] {
		fs.fail("user %d: body of %d bytes starting %q, want %d starting %q", user, got, head[:n], fs.size, uploadHead)
	}
	if fs.hold != nil {
		fs.hold(r)
	}
	if fs.refuse != nil && fs.refuse(user) {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, "too_many_uploads")
		return
	}
	fs.mu.Lock()
	fs.nextID++
	id := "f" + strconv.Itoa(fs.nextID)
	fs.pending[id] = user
	fs.created++
	fs.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_, _ = fmt.Fprintf(w, `{"file":{"id":%q,"type":"application/pdf","size":%d,"name":"x.pdf"}}`, id, fs.size)
	select {
	case fs.uploaded <- struct{}{}:
	default:
	}
}

func tokens(i int) (string, error) { return "tok-" + strconv.Itoa(i), nil }

// TestRunUploads: every uploader sends bodies of exactly Size bytes with
// its token, withdraws each upload the server took, waits Retry-After
// after a 429 and counts it, and the end of the run is no error.
func TestRunUploads(t *testing.T) {
	const size = 300<<10 + 7
	fs, ts := newFileServer(t, size)
	var refused atomic.Bool
	fs.refuse = func(user int) bool { return user == 1 && !refused.Swap(true) } // user 1's first POST
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// End the run once user 1 has been taken after its 429 and a few
		// uploads were made.
		for {
			select {
			case <-fs.uploaded:
			case <-ctx.Done():
				return
			}
			fs.mu.Lock()
			done := len(fs.posts[1]) >= 2 && fs.created >= 6
			fs.mu.Unlock()
			if done {
				cancel()
				return
			}
		}
	}()
	res := runUploadsTagged(ctx, t, UploadConfig{BaseURL: ts.URL + "/", Room: "bench room", Uploaders: 3, Size: size, Token: tokens})

	fs.mu.Lock()
	defer fs.mu.Unlock()
	if len(fs.bad) > 0 {
		t.Fatalf("the server saw:\n%s", strings.Join(fs.bad, "\n"))
	}
	if p := fs.posts[1]; len(p) < 2 || p[1].Sub(p[0]) < 900*time.Millisecond {
		t.Errorf("user 1 posted at %v: want its second POST a second after the 429", p)
	}
	if res.Uploaders != 3 || res.Size != size || res.Uploads < 6 || res.Uploads > uint64(fs.created) {
		t.Errorf("result %+v: want 3 uploaders of %d bytes, at least 6 and at most %d uploads", res, size, fs.created)
	}
	// Every counted upload was withdrawn; one the run cut after the
	// server took it may stay.
	if res.Deleted != res.Uploads || uint64(fs.deleted) != res.Deleted || len(fs.pending) != fs.created-fs.deleted ||
		fs.created-int(res.Uploads) > 3 {
		t.Errorf("uploads %d, deleted %d; server: created %d, deleted %d, pending %d", res.Uploads, res.Deleted,
			fs.created, fs.deleted, len(fs.pending))
	}
	if len(res.Errors) != 1 || res.Errors["429 too_many_uploads"] != 1 {
		t.Errorf("errors %v, want only 429 too_many_uploads=1", res.Errors)
	}
	if res.Bytes < int64(fs.created+1)*size || res.Bytes < fs.bodies {
		t.Errorf("bytes %d, want at least the %d bodies (%d B) the server read", res.Bytes, fs.created+1, fs.bodies)
	}
	if res.P50 <= 0 || res.P99 < res.P50 || res.MiBPerSec <= 0 || res.Seconds < 1 {
		t.Errorf("p50 %v p99 %v, %v MiB/s over %vs", res.P50, res.P99, res.MiBPerSec, res.Seconds)
	}
}

// TestRunUploadsCancelInFlight: uploads in flight when the context ends
// are cut, and counted neither as uploads nor as errors.
func TestRunUploadsCancelInFlight(t *testing.T) {
	const size = 64 << 10
	fs, ts := newFileServer(t, size)
	var inFlight sync.WaitGroup
	inFlight.Add(2)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	var once [2]sync.Once
	fs.hold = func(r *http.Request) {
		if i := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer tok-"); i == "0" || i == "1" {
			n, _ := strconv.Atoi(i)
			once[n].Do(inFlight.Done)
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		inFlight.Wait()
		cancel()
	}()
	res := runUploadsTagged(ctx, t, UploadConfig{BaseURL: ts.URL, Room: "bench room", Uploaders: 2, Size: size, Token: tokens})
	if res.Uploads != 0 || len(res.Errors) != 0 || res.Bytes != 2*size {
		t.Errorf("result %+v: want no upload, no error, the two bodies sent", res)
	}
}

// TestRunUploadsErrors: answers other than 201 and failed tokens are
// counted by status and code; a server that is not there by kind.
func TestRunUploadsErrors(t *testing.T) {
	const size = 1000
	fs, ts := newFileServer(t, size)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var posts atomic.Int64
	fs.hold = func(*http.Request) {
		// Four uploads by user 2 and at least one refusal of user 0
		// seen, whichever order they came in.
		if posts.Add(1) >= 4 && fs.signedOut.Load() > 0 {
			cancel()
		}
	}
	tok := func(i int) (string, error) {
		switch i {
		case 0:
			return "wrong", nil
		case 1:
			return "", fmt.Errorf("no secret")
		}
		return tokens(i)
	}
	res := runUploadsTagged(ctx, t, UploadConfig{BaseURL: ts.URL, Room: "bench room", Uploaders: 3, Size: size, Token: tok})
	if res.Errors["token"] != 1 || res.Errors["401 signed_out"] == 0 || len(res.Errors) != 2 || res.Uploads == 0 {
		t.Errorf("result %+v: want token=1 and some 401 signed_out errors, uploads by user 2", res)
	}

	ts.Close()
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel) // the run's length, not synchronisation
	res = runUploadsTagged(ctx, t, UploadConfig{BaseURL: ts.URL, Room: "r", Uploaders: 1, Size: size, Token: tokens})
	if res.Errors["refused"] == 0 || res.Errors["refused"] > 3 || res.Uploads != 0 {
		t.Errorf("closed server: %+v, want a few refused (a pause after each)", res)
	}

	if res := RunUploads(context.Background(), UploadConfig{BaseURL: ts.URL}); res.Uploaders != 0 || res.Uploads != 0 {
		t.Errorf("no uploaders: %+v", res)
	}
}

// TestUploadBody: the body is the PDF header and filler, exactly size
// bytes, made without allocating.
func TestUploadBody(t *testing.T) {
	for _, size := range []int64{0, 3, int64(len(uploadHead)), 100, int64(len(uploadFiller)) * 3, 1<<20 + 13} {
		var sent atomic.Int64
		var got bytes.Buffer
		n, err := io.CopyBuffer(struct{ io.Writer }{&got}, struct{ io.Reader }{&uploadBody{size: size, sent: &sent}}, make([]byte, 1000))
		if err != nil || n != size || int64(got.Len()) != size || sent.Load() != size {
			t.Fatalf("size %d: copied %d (%v), sent %d", size, n, err, sent.Load())
		}
		b := got.Bytes()
		if !bytes.HasPrefix([]byte(uploadHead), b[:min(size, int64(len(uploadHead)))]) {
			t.Errorf("size %d: starts %q", size, b[:min(size, 20)])
		}
		if size > int64(len(uploadHead)) {
			filler := b[len(uploadHead):]
			for i := 0; i < len(filler); i += len(uploadFiller) {
				if !bytes.HasPrefix(uploadFiller, filler[i:min(i+len(uploadFiller), len(filler))]) {
					t.Fatalf("size %d: filler differs at %d", size, i)
				}
			}
		}
	}
	buf := make([]byte, 32<<10)
	allocs := testing.AllocsPerRun(3, func() {
		body := &uploadBody{size: 10 << 20}
		for {
			if _, err := body.Read(buf); err != nil {
				break
			}
		}
	})
	if allocs > 1 {
		t.Errorf("reading a 10 MiB body allocated %v times, want at most the body itself", allocs)
	}
}

func TestRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		v  string
		d  time.Duration
		ok bool
	}{
		{"1", time.Second, true},
		{" 5 ", 5 * time.Second, true},
		{"0", 0, true},
		{"3600", maxRetryAfter, true},
		{"-1", 0, false},
		{"", 0, false},
		{"soon", 0, false},
		{"Mon, 02 Jan 2006 15:04:05 GMT", 0, true}, // in the past
	} {
		if d, ok := retryAfter(tc.v); d != tc.d || ok != tc.ok {
			t.Errorf("retryAfter(%q) = %v, %v; want %v, %v", tc.v, d, ok, tc.d, tc.ok)
		}
	}
}
