package files_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livechat/livechat/internal/mediatest"
	"github.com/livechat/livechat/pkg/blob"
	"github.com/livechat/livechat/pkg/files"
	"github.com/livechat/livechat/pkg/protocol"
	"github.com/livechat/livechat/pkg/store"
)

// TestPictureInADirectChat: alice uploads a photo with a GPS tag into her
// direct chat with bob and attaches it; bob gets the picture re-encoded
// without the tag, its thumbnail, ranges and a 304 for his cached copy;
// carol, not a member, gets the same 404 as for an id that does not exist.
func TestPictureInADirectChat(t *testing.T) {
	forBackends(t, func(t *testing.T, e *env) {
		alice, bob, carol := e.user(t, "alice"), e.user(t, "bob"), e.user(t, "carol")
		room := e.direct(t, alice, bob)
		photo := mediatest.PhotoWithGPS(640, 480)
		if !bytes.Contains(photo, []byte(mediatest.GPSMarker)) {
			t.Fatal("the fixture has no GPS marker")
		}
		f := e.uploaded(t, alice, room, "holiday.jpg", photo)
		if f.Type != "image/jpeg" || f.Width != 640 || f.Height != 480 || f.Name != "holiday.jpg" || f.Size <= 0 {
			t.Fatalf("file = %+v", f)
		}
		// Before it is attached, only alice sees it.
		if a := e.do(t, "GET", "/api/files/"+f.ID, bob, nil, nil); a.status != http.StatusNotFound {
			t.Fatalf("bob before the message: %d, want 404", a.status)
		}
		if _, err := e.svc.Attach(context.Background(), alice, room, "m1", []string{f.ID}); err != nil {
			t.Fatal(err)
		}

		a := e.do(t, "GET", "/api/files/"+f.ID, bob, nil, nil)
		if a.status != http.StatusOK {
			t.Fatalf("bob: %d %s", a.status, a.body)
		}
		if bytes.Contains(a.body, []byte(mediatest.GPSMarker)) || bytes.Contains(a.body, []byte("Exif\x00")) {
			t.Error("the picture bob gets still has the EXIF and GPS data")
		}
		cfg, format, err := image.DecodeConfig(bytes.NewReader(a.body))
		if err != nil || format != "jpeg" || cfg.Width != 640 || cfg.Height != 480 {
			t.Errorf("bob's picture: %v %s %dx%d", err, format, cfg.Width, cfg.Height)
		}
		for k, want := range map[string]string{
			"Content-Type":           "image/jpeg",
			"X-Content-Type-Options": "nosniff",
			"Cache-Control":          "private, max-age=31536000, immutable",
			"Content-Disposition":    `inline; filename=holiday.jpg`,
		} {
			if got := a.header.Get(k); got != want {
				t.Errorf("%s: %q, want %q", k, got, want)
			}
		}
		if csp := a.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "sandbox") {
			t.Errorf("Content-Security-Policy %q", csp)
		}
		etag := a.header.Get("ETag")
		if len(etag) != 66 {
			t.Errorf("ETag %q, want the quoted SHA-256", etag)
		}
		if c := e.do(t, "GET", "/api/files/"+f.ID, bob, nil, map[string]string{"If-None-Match": etag}); c.status != http.StatusNotModified {
			t.Errorf("If-None-Match: %d, want 304", c.status)
		}
		r := e.do(t, "GET", "/api/files/"+f.ID, bob, nil, map[string]string{"Range": "bytes=10-19"})
		if r.status != http.StatusPartialContent || !bytes.Equal(r.body, a.body[10:20]) {
			t.Errorf("range: %d, %d bytes", r.status, len(r.body))
		}

		th := e.do(t, "GET", "/api/files/"+f.ID+"/thumb", bob, nil, nil)
		if th.status != http.StatusOK || th.header.Get("Content-Type") != "image/jpeg" {
			t.Fatalf("thumb: %d %s", th.status, th.header.Get("Content-Type"))
		}
		tc, _, err := image.DecodeConfig(bytes.NewReader(th.body))
		if err != nil || tc.Width != 320 || tc.Height != 240 {
			t.Errorf("thumb: %v %dx%d, want 320x240", err, tc.Width, tc.Height)
		}
		if bytes.Contains(th.body, []byte(mediatest.GPSMarker)) {
			t.Error("the thumbnail has the GPS data")
		}

		// carol, a guessed id, a signed-out request.
		stranger := e.do(t, "GET", "/api/files/"+f.ID, carol, nil, nil)
		missing := e.do(t, "GET", "/api/files/aaaaaaaaaaaaaaaaaaaaaaaaaa", carol, nil, nil)
		if stranger.status != http.StatusNotFound || !bytes.Equal(stranger.body, missing.body) {
			t.Errorf("carol: %d %s; a missing id: %d %s (want the same 404)", stranger.status, stranger.body, missing.status, missing.body)
		}
		if th := e.do(t, "GET", "/api/files/"+f.ID+"/thumb", carol, nil, nil); th.status != http.StatusNotFound {
			t.Errorf("carol's thumb: %d", th.status)
		}
		if out := e.do(t, "GET", "/api/files/"+f.ID, "", nil, nil); out.status != http.StatusUnauthorized || out.code() != "signed_out" {
			t.Errorf("signed out: %d %s", out.status, out.body)
		}
		if bad := e.do(t, "GET", "/api/files/..%2Fetc%2Fpasswd", carol, nil, nil); bad.status != http.StatusNotFound {
			t.Errorf("a path as id: %d", bad.status)
		}
	})
}

// TestFileKinds: PDF and text are downloads; text gets a .txt name.
func TestFileKinds(t *testing.T) {
	e := newEnv(t, backends(t)["node"], nil)
	alice := e.user(t, "alice")
	pdf := e.uploaded(t, alice, "general", "report.pdf", []byte("%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"))
	txt := e.uploaded(t, alice, "general", "notes.html.js", []byte("console.log('hi')\n"))
	if _, err := e.svc.Attach(context.Background(), alice, "general", "m1", []string{pdf.ID, txt.ID}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		id, typ, disp string
	}{
		{pdf.ID, "application/pdf", "attachment; filename=report.pdf"},
		{txt.ID, "text/plain; charset=utf-8", "attachment; filename=notes.html.js.txt"},
	} {
		a := e.do(t, "GET", "/api/files/"+c.id, alice, nil, nil)
		if a.status != 200 || a.header.Get("Content-Type") != c.typ || a.header.Get("Content-Disposition") != c.disp {
			t.Errorf("%s: %d %q %q", c.id, a.status, a.header.Get("Content-Type"), a.header.Get("Content-Disposition"))
		}
		if th := e.do(t, "GET", "/api/files/"+c.id+"/thumb", alice, nil, nil); th.status != 404 {
			t.Errorf("thumb of a non-image: %d", th.status)
		}
	}
}

// TestBadUploads: each is refused with a clear error, nothing is stored,
// and the service goes on taking uploads.
func TestBadUploads(t *testing.T) {
	const max = 1 << 20
	big := bytes.Repeat([]byte("a"), max+1)
	huge := pngHeader(50_000, 50_000)
	jpg := mediatest.PhotoWithGPS(64, 64)
	poly := gifPolyglot(t)
	cases := []struct {
		name, file string
		data       []byte
		status     int
		code       string
	}{
		{"one byte over the cap", "big.txt", big, 413, "too_large"},
		{"HTML named .png", "cat.png", []byte("<!DOCTYPE html><html><script>alert(1)</script></html>"), 415, "type_refused"},
		{"JavaScript named .png", "cat.png", []byte("alert(document.cookie)\n"), 415, "type_refused"},
		{"GIF/JavaScript polyglot", "x.gif", poly, 415, "type_refused"},
		{"GIF/JavaScript polyglot, damaged", "x.gif", []byte("GIF89a/*\x00\x00\x00\x00*/=1;alert(document.cookie);//"), 415, "type_refused"},
		{"SVG", "logo.svg", []byte(`<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`), 415, "type_refused"},
		{"SVG named .txt", "logo.txt", []byte(`<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>`), 415, "type_refused"},
		{"PNG of 50,000 x 50,000 pixels", "huge.png", huge, 422, "bad_image"},
		{"truncated JPEG", "cut.jpg", jpg[:len(jpg)/2], 422, "bad_image"},
		{"name with ../", "../../etc/passwd", []byte("hello\n"), 400, "bad_name"},
		{"name with NUL", "a\x00.txt", []byte("hello\n"), 400, "bad_name"},
		{"name of 10,000 characters", strings.Repeat("n", 10_000), []byte("hello\n"), 400, "bad_name"},
		{"executable", "tool.txt", []byte("\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00"), 415, "type_refused"},
	}
	e := newEnv(t, backends(t)["node"], func(c *files.Config) { c.MaxBytes = max })
	alice := e.user(t, "alice")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := e.upload(t, alice, "general", c.file, c.data)
			if a.status != c.status || a.code() != c.code {
				t.Fatalf("%d %s, want %d %s", a.status, a.body, c.status, c.code)
			}
			if a.header.Get("Content-Type") != "application/json; charset=utf-8" {
				t.Errorf("Content-Type %q", a.header.Get("Content-Type"))
			}
			e.nothingStored(t, alice)
		})
	}
	// The cap also holds without a Content-Length (chunked): refused while
	// streaming.
	t.Run("one byte over the cap, chunked", func(t *testing.T) {
		a := e.do(t, "POST", "/api/files?room=general&name=big.txt", alice, io.MultiReader(bytes.NewReader(big)), nil)
		if a.status != 413 {
			t.Fatalf("%d %s", a.status, a.body)
		}
		e.nothingStored(t, alice)
	})
	// Refused while streaming: a client that sends one byte over the cap
	// and then nothing more (its body never ends) gets 413 at once; the
	// server does not wait for the rest.
	t.Run("one byte over the cap, the rest never sent", func(t *testing.T) {
		rest := make(chan struct{})
		var once sync.Once
		release := func() { once.Do(func() { close(rest) }) }
		defer release()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		body := io.MultiReader(bytes.NewReader(big), stall{ctx, rest})
		req, err := http.NewRequestWithContext(ctx, "POST", e.srv.URL+"/api/files?room=general&name=big.txt", body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Test-User", alice)
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatalf("no answer before the body ended: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		release()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("%d %s, want 413", resp.StatusCode, b)
		}
		e.nothingStored(t, alice)
	})
	// Still serving.
	e.uploaded(t, alice, "general", "ok.png", pngOf(t, 8, 8))
}

// pngHeader is the start of a PNG that declares w x h pixels (a valid
// IHDR) and carries no pixels.
func pngHeader(w, h uint32) []byte {
	ihdr := make([]byte, 13)
	be := func(b []byte, v uint32) { b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v) }
	be(ihdr[0:], w)
	be(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 6 // 8 bits, RGBA
	chunk := append([]byte("IHDR"), ihdr...)
	out := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0d")
	out = append(out, chunk...)
	crc := crc32.ChecksumIEEE(chunk)
	return append(out, byte(crc>>24), byte(crc>>16), byte(crc>>8), byte(crc))
}

// TestUploadRules: the room must admit the uploader; a cross-origin page
// may not upload; the query must name the room and the file.
func TestUploadRules(t *testing.T) {
	e := newEnv(t, backends(t)["node"], nil)
	alice, bob, carol := e.user(t, "alice"), e.user(t, "bob"), e.user(t, "carol")
	room := e.direct(t, alice, bob)
	data := []byte("hello\n")
	if a := e.upload(t, carol, room, "x.txt", data); a.status != 404 || a.code() != "not_found" {
		t.Errorf("a stranger's upload: %d %s", a.status, a.body)
	}
	if a := e.upload(t, "", "general", "x.txt", data); a.status != 401 {
		t.Errorf("signed out: %d %s", a.status, a.body)
	}
	if a := e.do(t, "POST", "/api/files?room=general&name=x.txt", alice, bytes.NewReader(data), map[string]string{"Origin": "https://evil.example"}); a.status != 403 || a.code() != "cross_origin" {
		t.Errorf("cross-origin: %d %s", a.status, a.body)
	}
	if a := e.do(t, "POST", "/api/files?name=x.txt", alice, bytes.NewReader(data), nil); a.status != 400 {
		t.Errorf("no room: %d %s", a.status, a.body)
	}
	e.nothingStored(t, carol)
	e.nothingStored(t, alice)
}

// TestAttach: only the uploader's uploads into that room attach, all or
// nothing; a retry attaches again; too old uploads are refused.
func TestAttach(t *testing.T) {
	e := newEnv(t, backends(t)["node"], nil)
	ctx := context.Background()
	alice, bob := e.user(t, "alice"), e.user(t, "bob")
	room := e.direct(t, alice, bob)
	fa := e.uploaded(t, alice, room, "a.txt", []byte("a\n"))
	fb := e.uploaded(t, bob, room, "b.txt", []byte("b\n"))
	fg := e.uploaded(t, alice, "general", "g.txt", []byte("g\n"))
	for name, ids := range map[string][]string{
		"another's":        {fa.ID, fb.ID},
		"another room's":   {fa.ID, fg.ID},
		"missing":          {fa.ID, "nothere"},
		"not an id at all": {"../x"},
	} {
		if _, err := e.svc.Attach(ctx, alice, room, "m1", ids); !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: %v, want not found", name, err)
		}
	}
	if u, _ := e.st.Upload(ctx, fa.ID); u.Message != "" {
		t.Fatalf("a refused attach changed the upload: %+v", u)
	}
	got, err := e.svc.Attach(ctx, alice, room, "m1", []string{fa.ID})
	if err != nil || len(got) != 1 || got[0] != fa {
		t.Fatalf("Attach = %+v, %v", got, err)
	}
	if _, err := e.svc.Attach(ctx, alice, room, "m2", []string{fa.ID}); err != nil {
		t.Fatalf("a retried send: %v", err)
	}
	// An upload waiting longer than half of Keep is not attached: the
	// sweep may be deleting it.
	old := e.uploaded(t, alice, room, "old.txt", []byte("old\n"))
	e.advance(files.DefaultKeep/2 + time.Second)
	if _, err := e.svc.Attach(ctx, alice, room, "m3", []string{old.ID}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an old upload: %v, want not found", err)
	}
	// Deleting the message deletes its files: those attached under its id
	// and those its Files name (attached under a failed attempt's id).
	retried := e.uploaded(t, alice, room, "r.txt", []byte("r\n"))
	if _, err := e.svc.Attach(ctx, alice, room, "failed-attempt", []string{retried.ID}); err != nil {
		t.Fatal(err)
	}
	msg := &protocol.Message{Room: room, ID: "m1", Files: []protocol.File{fa, retried, fg}}
	if n, err := e.svc.DeleteMessageFiles(ctx, msg); err != nil || n != 2 { // fg is another room's
		t.Fatalf("DeleteMessageFiles = %d, %v; want 2", n, err)
	}
	if _, err := e.st.Upload(ctx, fg.ID); err != nil {
		t.Errorf("another room's upload named by the message: %v, want kept", err)
	}
	if a := e.do(t, "GET", "/api/files/"+fa.ID, bob, nil, nil); a.status != 404 {
		t.Errorf("a deleted message's file: %d", a.status)
	}
	if _, err := e.bl.Stat(ctx, fa.ID); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("its blob: %v", err)
	}
}

// TestWithdraw: the uploader deletes an upload not yet attached; nobody
// else can, and an attached one stays.
func TestWithdraw(t *testing.T) {
	e := newEnv(t, backends(t)["node"], nil)
	alice, bob := e.user(t, "alice"), e.user(t, "bob")
	f := e.uploaded(t, alice, "general", "p.png", pngOf(t, 4, 4))
	if a := e.do(t, "DELETE", "/api/files/"+f.ID, bob, nil, nil); a.status != 404 {
		t.Errorf("bob deletes alice's: %d", a.status)
	}
	if a := e.do(t, "DELETE", "/api/files/"+f.ID, alice, nil, nil); a.status != 204 {
		t.Fatalf("alice withdraws: %d %s", a.status, a.body)
	}
	e.nothingStored(t, alice)
	if a := e.do(t, "DELETE", "/api/files/"+f.ID, alice, nil, nil); a.status != 404 {
		t.Errorf("again: %d", a.status)
	}
	g := e.uploaded(t, alice, "general", "q.txt", []byte("q\n"))
	if _, err := e.svc.Attach(context.Background(), alice, "general", "m", []string{g.ID}); err != nil {
		t.Fatal(err)
	}
	if a := e.do(t, "DELETE", "/api/files/"+g.ID, alice, nil, nil); a.status != 404 {
		t.Errorf("an attached upload: %d", a.status)
	}
}

// TestQuota: an upload that would pass the user's quota is refused and
// not kept; the limits answer says how much is used.
func TestQuota(t *testing.T) {
	e := newEnv(t, backends(t)["node"], func(c *files.Config) { c.Quota = 100; c.MaxBytes = 80 })
	alice := e.user(t, "alice")
	e.uploaded(t, alice, "general", "a.txt", bytes.Repeat([]byte("a"), 60))
	a := e.upload(t, alice, "general", "b.txt", bytes.Repeat([]byte("b"), 60))
	if a.status != 429 || a.code() != "quota_exceeded" || a.header.Get("Retry-After") != "" {
		t.Fatalf("over quota: %d %s (Retry-After %q)", a.status, a.body, a.header.Get("Retry-After"))
	}
	// Without a Content-Length: the stored size is checked.
	a = e.do(t, "POST", "/api/files?room=general&name=c.txt", alice, io.MultiReader(bytes.NewReader(bytes.Repeat([]byte("c"), 60))), nil)
	if a.status != 429 {
		t.Fatalf("over quota, chunked: %d %s", a.status, a.body)
	}
	if n, used, _ := e.st.UploadUsage(context.Background(), alice); n != 1 || used != 60 {
		t.Errorf("usage %d uploads, %d bytes; want 1, 60", n, used)
	}
	l := e.do(t, "GET", "/api/files", alice, nil, nil)
	if l.status != 200 || !strings.Contains(string(l.body), `"used_bytes":60`) || !strings.Contains(string(l.body), `"quota_bytes":100`) {
		t.Errorf("limits: %d %s", l.status, l.body)
	}
}

// TestParallelUploads: 100 uploads at once from one user: PerUser go
// through, the rest get 429 too_many_uploads with Retry-After at once,
// and the service goes on serving.
func TestParallelUploads(t *testing.T) {
	e := newEnv(t, backends(t)["node"], nil)
	alice := e.user(t, "alice")
	const n = 100
	// Every body blocks until all answers but PerUser's have come.
	release := make(chan struct{})
	var once sync.Once
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		codes = map[int]int{}
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := io.MultiReader(strings.NewReader("line\n"), &gate{release}, strings.NewReader("end\n"))
			a := e.do(t, "POST", fmt.Sprintf("/api/files?room=general&name=f%d.txt", i), alice, body, nil)
			mu.Lock()
			codes[a.status]++
			if a.status == 429 && (a.code() != "too_many_uploads" || a.header.Get("Retry-After") == "") {
				t.Errorf("429 %s, Retry-After %q", a.body, a.header.Get("Retry-After"))
			}
			refused := codes[429]
			mu.Unlock()
			if refused == n-files.DefaultPerUser {
				once.Do(func() { close(release) })
			}
		}()
	}
	wg.Wait()
	if codes[201] != files.DefaultPerUser || codes[429] != n-files.DefaultPerUser {
		t.Errorf("answers %v, want %d x 201 and the rest 429", codes, files.DefaultPerUser)
	}
	e.uploaded(t, alice, "general", "after.txt", []byte("after\n"))
}

// gate is a reader that blocks until its channel is closed, then ends.
type gate struct{ c chan struct{} }

func (g *gate) Read([]byte) (int, error) {
	<-g.c
	return 0, io.EOF
}

// stall is a reader that blocks until rest is closed (then ends) or ctx
// is done (then fails: a request body blocked in Read cannot be
// interrupted otherwise).
type stall struct {
	ctx  context.Context
	rest chan struct{}
}

func (s stall) Read([]byte) (int, error) {
	select {
	case <-s.rest:
		return 0, io.EOF
	case <-s.ctx.Done():
		return 0, s.ctx.Err()
	}
}

// TestSlowUpload: a client sending a byte now and then is cut off after
// the upload timeout with 408, and nothing is kept.
func TestSlowUpload(t *testing.T) {
	e := newEnv(t, backends(t)["node"], func(c *files.Config) { c.Timeout = time.Second })
	alice := e.user(t, "alice")
	pr, pw := io.Pipe()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				pw.Close()
				return
			case <-t.C:
				if _, err := pw.Write([]byte("x")); err != nil {
					return
				}
			}
		}
	}()
	start := time.Now()
	req, _ := http.NewRequest("POST", e.srv.URL+"/api/files?room=general&name=slow.txt", pr)
	req.Header.Set("X-Test-User", alice)
	resp, err := e.srv.Client().Do(req)
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Errorf("slow upload: %d %s, want 408", resp.StatusCode, b)
		}
	} // else: the server closed the connection, also an answer
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("the slow upload took %v", d)
	}
	e.nothingStored(t, alice)
	e.uploaded(t, alice, "general", "fast.txt", []byte("fast\n"))
}

// TestSweep: uploads never attached are deleted after Keep, blobs and
// records; attached ones stay; a blob without a record (a server died
// between the two) is deleted too.
func TestSweep(t *testing.T) {
	forBackends(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		alice := e.user(t, "alice")
		kept := e.uploaded(t, alice, "general", "kept.png", pngOf(t, 16, 16))
		lost := e.uploaded(t, alice, "general", "lost.png", pngOf(t, 16, 16))
		if _, err := e.svc.Attach(ctx, alice, "general", "m", []string{kept.ID}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.bl.Put(ctx, "orphan", strings.NewReader("o"), 10); err != nil {
			t.Fatal(err)
		}
		if n, err := e.svc.Sweep(ctx); err != nil || n != 0 {
			t.Fatalf("early sweep deleted %d, %v", n, err)
		}
		// Blobs carry their real creation time: the sweep is given a clock
		// past Keep, and the blobs' times are compared with it.
		e.advance(files.DefaultKeep + time.Minute)
		n, err := e.svc.Sweep(ctx)
		if err != nil || n != 2 { // lost (its two blobs, one upload) and the orphan
			t.Fatalf("Sweep = %d, %v; want 2", n, err)
		}
		for _, id := range []string{lost.ID, lost.ID + store.ThumbSuffix, "orphan"} {
			if _, err := e.bl.Stat(ctx, id); !errors.Is(err, blob.ErrNotFound) {
				t.Errorf("blob %s: %v, want deleted", id, err)
			}
		}
		if _, err := e.st.Upload(ctx, lost.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("record of the lost upload: %v", err)
		}
		for _, id := range []string{kept.ID, kept.ID + store.ThumbSuffix} {
			if _, err := e.bl.Stat(ctx, id); err != nil {
				t.Errorf("blob %s of the attached upload: %v", id, err)
			}
		}
	})
}

// TestUploadRate: uploads are read no faster than Config.Rate (together),
// and an upload that the pace would take past the timeout gets 408.
func TestUploadRate(t *testing.T) {
	e := newEnv(t, backends(t)["node"], func(c *files.Config) { c.Rate = 200 << 10; c.Timeout = 3 * time.Second })
	alice := e.user(t, "alice")
	data := bytes.Repeat([]byte("r"), 700<<10) // 256 KiB at once, then 200 KiB/s: at least 2.2 s
	start := time.Now()
	e.uploaded(t, alice, "general", "paced.txt", data)
	if d := time.Since(start); d < 2*time.Second {
		t.Errorf("700 KiB at 200 KiB/s took %v", d)
	}
	big := bytes.Repeat([]byte("r"), 1000<<10) // past the 3 s timeout at that pace
	if a := e.upload(t, alice, "general", "slow.txt", big); a.status != http.StatusRequestTimeout || a.code() != "timeout" {
		t.Errorf("an upload the pace takes past the timeout: %d %s", a.status, a.body)
	}
}

// TestGuestReads: with Config.Guests, a request without credentials reads
// the files of public rooms (as a guest reads those rooms), and gets the
// 404 of a missing id for a direct chat's file or an upload not yet in a
// message; it still may not upload.
func TestGuestReads(t *testing.T) {
	e := newEnv(t, backends(t)["node"], func(c *files.Config) { c.Guests = true })
	ctx := context.Background()
	alice, bob := e.user(t, "alice"), e.user(t, "bob")
	room := e.direct(t, alice, bob)
	pub := e.uploaded(t, alice, "general", "map.png", pngOf(t, 8, 8))
	dm := e.uploaded(t, alice, room, "secret.png", pngOf(t, 8, 8))
	waiting := e.uploaded(t, alice, "general", "later.png", pngOf(t, 8, 8))
	if _, err := e.svc.Attach(ctx, alice, "general", "m1", []string{pub.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Attach(ctx, alice, room, "m2", []string{dm.ID}); err != nil {
		t.Fatal(err)
	}
	if a := e.do(t, "GET", "/api/files/"+pub.ID+"/thumb", "", nil, nil); a.status != 200 {
		t.Errorf("a guest reading a public room's picture: %d %s", a.status, a.body)
	}
	missing := e.do(t, "GET", "/api/files/aaaaaaaaaaaaaaaaaaaaaaaaaa", "", nil, nil)
	for name, id := range map[string]string{"a direct chat's": dm.ID, "an unsent": waiting.ID} {
		if a := e.do(t, "GET", "/api/files/"+id, "", nil, nil); a.status != 404 || !bytes.Equal(a.body, missing.body) {
			t.Errorf("a guest reading %s file: %d %s", name, a.status, a.body)
		}
	}
	if a := e.upload(t, "", "general", "x.txt", []byte("x\n")); a.status != 401 {
		t.Errorf("a guest's upload: %d %s", a.status, a.body)
	}
	if a := e.do(t, "GET", "/api/files", "", nil, nil); a.status != 401 {
		t.Errorf("a guest's limits: %d", a.status)
	}
}

// TestGuestUploads: with Config.GuestUploads a guest with an upload token
// uploads into public rooms (never a direct chat), with its own quota, and
// attaches its uploads; without it the same guest is signed out.
func TestGuestUploads(t *testing.T) {
	const guest = "g_visitor"
	off := newEnv(t, backends(t)["node"], nil)
	if a := off.upload(t, guest, "general", "x.txt", []byte("x\n")); a.status != 401 {
		t.Errorf("a guest's upload, guest uploads off: %d %s", a.status, a.body)
	}
	e := newEnv(t, backends(t)["node"], func(c *files.Config) { c.GuestUploads = true; c.Quota = 1 << 20 })
	alice, bob := e.user(t, "alice"), e.user(t, "bob")
	f := e.uploaded(t, guest, "general", "hello.txt", []byte("hello\n"))
	if _, err := e.svc.Attach(context.Background(), guest, "general", "m1", []string{f.ID}); err != nil {
		t.Fatalf("a guest attaching its upload: %v", err)
	}
	if a := e.upload(t, guest, e.direct(t, alice, bob), "x.txt", []byte("x\n")); a.status != 404 {
		t.Errorf("a guest's upload into a direct chat: %d %s", a.status, a.body)
	}
	if a := e.do(t, "GET", "/api/files", guest, nil, nil); a.status != 200 || !strings.Contains(string(a.body), `"used_bytes":6`) {
		t.Errorf("a guest's limits: %d %s", a.status, a.body)
	}
}

// TestUploadStreams: an upload is streamed from the request into the blob
// store, never held whole in memory: a 12 MiB file costs the process far
// less than 12 MiB of allocations. On a single node's stores (SQLite and a
// directory) every buffer is reused, so the total allocated bounds what is
// held; PostgreSQL's driver allocates per 256 KiB row, garbage at once,
// which this measure cannot tell from holding the file.
func TestUploadStreams(t *testing.T) {
	const size = 12 << 20
	e := newEnv(t, backends(t)["node"], func(c *files.Config) { c.MaxBytes = 16 << 20; c.Rate = -1 })
	alice := e.user(t, "alice")
	data := bytes.Repeat([]byte("streamed line of text\n"), size/22)
	e.uploaded(t, alice, "general", "warmup.txt", []byte("warm\n"))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f := e.uploaded(t, alice, "general", "big.txt", data)
	runtime.ReadMemStats(&after)
	if f.Size != int64(len(data)) {
		t.Fatalf("stored %d bytes of %d", f.Size, len(data))
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("a %d-byte upload allocated %d bytes", len(data), alloc)
	if alloc > size/4 {
		t.Errorf("a %d-byte upload allocated %d bytes: it was held in memory", len(data), alloc)
	}
}

// TestServerInFlight: past Config.InFlight uploads in flight on a server,
// whoever sends one more gets 503 unavailable with Retry-After at once;
// once they end, uploads are taken again.
func TestServerInFlight(t *testing.T) {
	e := newEnv(t, backends(t)["node"], func(c *files.Config) { c.InFlight = 2 })
	alice, bob := e.user(t, "alice"), e.user(t, "bob")
	type result struct {
		f   protocol.File
		err error
	}
	done := make(chan result, 2)
	var writers []*io.PipeWriter
	for i := range 2 {
		pr, pw := io.Pipe()
		writers = append(writers, pw)
		go func() {
			f, err := e.svc.Ingest(context.Background(), alice, "general", fmt.Sprintf("held%d.txt", i), pr, -1)
			done <- result{f, err}
		}()
		// The write returns once Ingest reads: its slot is taken.
		if _, err := pw.Write([]byte("held\n")); err != nil {
			t.Fatal(err)
		}
	}
	a := e.upload(t, bob, "general", "one-more.txt", []byte("more\n"))
	if a.status != http.StatusServiceUnavailable || a.code() != "unavailable" || a.header.Get("Retry-After") == "" {
		t.Errorf("an upload past InFlight: %d %s (Retry-After %q), want 503 unavailable", a.status, a.body, a.header.Get("Retry-After"))
	}
	if n, _, err := e.st.UploadUsage(context.Background(), bob); err != nil || n != 0 {
		t.Errorf("bob's uploads: %d, %v; want none", n, err)
	}
	for _, pw := range writers {
		pw.Close()
	}
	for range writers {
		if r := <-done; r.err != nil {
			t.Errorf("a held upload: %v", r.err)
		}
	}
	e.uploaded(t, bob, "general", "after.txt", []byte("after\n"))
}

// gifPolyglot is a valid GIF that is also JavaScript: "GIF89a/*" opens a
// comment (the width is 0x2A2F), closed in a GIF comment extension before
// the script.
func gifPolyglot(t *testing.T) []byte {
	t.Helper()
	img := image.NewPaletted(image.Rect(0, 0, 10799, 1), color.Palette{color.Black, color.White})
	var buf bytes.Buffer
	if err := gif.Encode(&buf, img, nil); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	const script = "*/=1;alert(document.cookie);/*"
	ext := append([]byte{0x21, 0xFE, byte(len(script))}, script...)
	ext = append(ext, 0)
	end := len(data) - 1 // the trailer
	return append(append(append([]byte{}, data[:end]...), ext...), data[end:]...)
}
