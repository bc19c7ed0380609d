package cli

import (
	"bytes"
	"encoding/json"
	"image"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/livechat/livechat/internal/mediatest"
	"github.com/livechat/livechat/pkg/auth"
	"github.com/livechat/livechat/pkg/protocol"
)

// TestPublishFileSingleNode: `publish --file` next to a single node stores
// the picture in the node's blobs/ (re-encoded: the GPS tag is gone) and
// announces it; a member fetches it from the node with a token.
func TestPublishFileSingleNode(t *testing.T) {
	dir := inTempDir(t)
	addr := freePort(t)
	startSingle(t, addr)
	alice := startSingleJoin(t, addr, "lobby", "alice")
	photo := filepath.Join(dir, "office.jpg")
	if err := os.WriteFile(photo, mediatest.PhotoWithGPS(60, 40), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := run(t, "", "publish", "--broker", "http://"+addr, "--room", "lobby", "--file", photo, "the new office")
	if code != 0 {
		t.Fatalf("publish --file: exit %d: %s", code, stderr)
	}
	m := alice.next(protocol.TypeMessage)
	files, _ := m["files"].([]any)
	if m["text"] != "the new office" || m["system"] != true || len(files) != 1 {
		t.Fatalf("announcement = %v", m)
	}
	f, _ := files[0].(map[string]any)
	if f["name"] != "office.jpg" || f["type"] != "image/jpeg" || f["width"] != float64(60) || f["height"] != float64(40) {
		t.Fatalf("file = %v", f)
	}
	blobs, err := os.ReadDir(filepath.Join(dir, "livechat-data", "blobs", "blobs"))
	if err != nil || len(blobs) != 2 { // the picture and its thumbnail
		t.Fatalf("blobs/ holds %d files (%v), want 2", len(blobs), err)
	}

	secret, err := auth.LoadSecret("", "", filepath.Join(dir, "livechat-data", "secret"))
	if err != nil {
		t.Fatal(err)
	}
	claims := auth.Claims{Name: "bob"}
	claims.Subject = "u_bob"
	tok, err := auth.MintToken(secret, claims, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/api/files/"+f["id"].(string), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	if resp.StatusCode != 200 || bytes.Contains(body.Bytes(), []byte(mediatest.GPSMarker)) {
		t.Errorf("GET the announcement's picture: %d, GPS tag kept %v", resp.StatusCode, bytes.Contains(body.Bytes(), []byte(mediatest.GPSMarker)))
	}
}

// TestPublishFileRefused: a missing file fails (exit 1); a refused type,
// a directory and too many files are usage errors (exit 2); nothing is
// published.
func TestPublishFileRefused(t *testing.T) {
	dir := inTempDir(t)
	addr := freePort(t)
	startSingle(t, addr)
	alice := startSingleJoin(t, addr, "lobby", "alice")
	page := filepath.Join(dir, "cat.png")
	if err := os.WriteFile(page, []byte("<html><script>alert(1)</script></html>"), 0o600); err != nil {
		t.Fatal(err)
	}
	var pic bytes.Buffer
	_ = png.Encode(&pic, image.NewGray(image.Rect(0, 0, 2, 2)))
	ok := filepath.Join(dir, "ok.png")
	if err := os.WriteFile(ok, pic.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	eleven := []string{"publish", "--broker", "http://" + addr, "--room", "lobby"}
	for range 11 {
		eleven = append(eleven, "--file", ok)
	}
	for _, c := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"publish", "--broker", "http://" + addr, "--room", "lobby", "--file", filepath.Join(dir, "nothere.png")}, 1, "no such file"},
		{[]string{"publish", "--broker", "http://" + addr, "--room", "lobby", "--file", page}, 2, "not a PNG"},
		{[]string{"publish", "--broker", "http://" + addr, "--room", "lobby", "--file", dir}, 2, "not a regular file"},
		{eleven, 2, "at most 10 files"},
	} {
		code, _, stderr := run(t, "", c.args...)
		if code != c.code || !strings.Contains(stderr, c.says) {
			t.Errorf("%v: exit %d %q, want %d saying %q", c.args[len(c.args)-1], code, stderr, c.code, c.says)
		}
	}
	// Nothing was announced: the next message alice gets is this one.
	code, _, stderr := run(t, "", "publish", "--broker", "http://"+addr, "--room", "lobby", "after")
	if code != 0 {
		t.Fatalf("publish: %d %s", code, stderr)
	}
	if m := alice.next(protocol.TypeMessage); m["text"] != "after" {
		t.Errorf("alice got %v first", m)
	}
}

// startSingleJoin joins room on the single node at addr as a guest.
func startSingleJoin(t *testing.T, addr, room, name string) *client {
	t.Helper()
	n := &singleNode{addr: addr}
	return n.join(t, room, name)
}

// TestUploadFlags: bad upload limits are usage errors naming the flag.
func TestUploadFlags(t *testing.T) {
	inTempDir(t)
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"--max-upload", "0"}, "--max-upload"},
		{[]string{"--max-upload", "10XB"}, "max-upload"},
		{[]string{"--max-upload", "2MiB", "--upload-quota", "1MiB"}, "--upload-quota"},
		{[]string{"--upload-timeout", "10ms"}, "--upload-timeout"},
		{[]string{"--upload-rate", "-5"}, "upload-rate"},
		{[]string{"--blobs", "ftp://x"}, "--blobs"},
	} {
		code, _, stderr := run(t, "", append([]string{"serve", "--addr", "127.0.0.1:0"}, c.args...)...)
		if code != 2 || !strings.Contains(stderr, c.says) {
			t.Errorf("serve %v: exit %d %q, want 2 naming %s", c.args, code, stderr, c.says)
		}
	}
}

// TestBlobsURLFor: the blob store follows the store: PostgreSQL's own,
// memory for memory, else blobs/ in the data directory.
func TestBlobsURLFor(t *testing.T) {
	for _, c := range []struct{ flag, store, want string }{
		{"file:///srv/b", "postgres://db/x", "file:///srv/b"},
		{"", "postgres://db/x", "postgres://db/x"},
		{"", "memory://", "memory://"},
		{"", "sqlite:///var/lib/lc/livechat.db", "file:///data/blobs"},
	} {
		got, err := blobsURLFor(c.flag, c.store, "/data")
		if err != nil || got != c.want {
			t.Errorf("blobsURLFor(%q, %q) = %q, %v; want %q", c.flag, c.store, got, err, c.want)
		}
	}
}

// TestGuestUploads: with --guest-uploads a guest's welcome carries an
// upload token; the guest uploads a picture with it and sends it into a
// public room. --guest-uploads without --guests is a usage error.
func TestGuestUploads(t *testing.T) {
	inTempDir(t)
	if code, _, stderr := run(t, "", "serve", "--addr", "127.0.0.1:0", "--guest-uploads", "--guests=false"); code != 2 || !strings.Contains(stderr, "--guest-uploads needs --guests") {
		t.Errorf("--guest-uploads --guests=false: exit %d %q", code, stderr)
	}
	addr := freePort(t)
	startSingle(t, addr, "--guest-uploads")
	conn, resp, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws", nil)
	if resp != nil {
		resp.Body.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	g := &client{t: t, conn: conn}
	w := g.next(protocol.TypeWelcome)
	tok, _ := w["upload_token"].(string)
	if tok == "" {
		t.Fatalf("guest welcome without upload_token: %v", w)
	}
	var pic bytes.Buffer
	_ = png.Encode(&pic, image.NewGray(image.Rect(0, 0, 3, 2)))
	req, _ := http.NewRequest("POST", "http://"+addr+"/api/files?room=lobby&name=dot.png", bytes.NewReader(pic.Bytes()))
	req.Header.Set("Authorization", "Bearer "+tok)
	up, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var ans struct{ File protocol.File }
	_ = json.NewDecoder(up.Body).Decode(&ans)
	up.Body.Close()
	if up.StatusCode != http.StatusCreated || ans.File.ID == "" {
		t.Fatalf("the guest's upload: %d %+v", up.StatusCode, ans)
	}
	if err := conn.WriteJSON(protocol.Inbound{Type: protocol.TypeJoin, Room: "lobby", Name: "zed"}); err != nil {
		t.Fatal(err)
	}
	g.next(protocol.TypeJoined)
	if err := conn.WriteJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "lobby", Files: []string{ans.File.ID}, CID: "g1"}); err != nil {
		t.Fatal(err)
	}
	m := g.next(protocol.TypeMessage)
	if files, _ := m["files"].([]any); len(files) != 1 || m["guest"] != true {
		t.Fatalf("the guest's message: %v", m)
	}
	// The upload token opens nothing else: not a connection.
	h := http.Header{"Authorization": {"Bearer " + tok}}
	c2, resp, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws", h)
	if resp != nil {
		resp.Body.Close()
	}
	if err == nil {
		c2.Close()
		t.Error("a connection with the guest's upload token was accepted")
	}
}
