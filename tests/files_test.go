//go:build unix

package tests

import (
	"bytes"
	"encoding/json"
	"image"
	"image/png"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/livechat/livechat/internal/mediatest"
)

// fileJSON is a message's file, as the tests read it.
type fileJSON struct {
	ID     string `json:"id"`
	Type   string `json:"type"`
	Size   int64  `json:"size"`
	Name   string `json:"name"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
}

// messageFiles returns the files of the messages c got in room with cid
// (any cid when empty), decoded from the frames it recorded.
func messageFiles(c *wsClient, room, cid string) [][]fileJSON {
	var out [][]fileJSON
	for _, f := range c.find(func(f frame) bool {
		return f.Type == "message" && f.Room == room && (cid == "" || f.CID == cid)
	}) {
		out = append(out, f.Files)
	}
	return out
}

// upload posts data to /api/files as a and returns the status and body.
func (a *apiClient) upload(room, name string, data []byte) (int, []byte) {
	a.t.Helper()
	req, err := http.NewRequest("POST", a.base+"/api/files?room="+url.QueryEscape(room)+"&name="+url.QueryEscape(name), bytes.NewReader(data))
	if err != nil {
		a.t.Fatal(err)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		a.t.Fatalf("%s: upload: %v", a.name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// get fetches path as a and returns the status, headers and body.
func (a *apiClient) get(path string) (int, http.Header, []byte) {
	a.t.Helper()
	resp, err := a.hc.Get(a.base + path)
	if err != nil {
		a.t.Fatalf("%s: GET %s: %v", a.name, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body
}

// TestFilesAcrossServers: the reference topology with the store and the
// blobs in one PostgreSQL. alice, on one server, uploads a photo with a
// GPS tag into her direct chat with bob and sends it; bob, on another
// server, gets the message with the file described and fetches the
// picture and its thumbnail through HAProxy (whichever server answers):
// re-encoded, without the GPS data. carol, signed in, and a signed-out
// request get the same 404 as for an id that does not exist. An operator's
// `livechat publish --file` reaches a public room with its file, which
// bob, carol and a guest (signed out) fetch.
func TestFilesAcrossServers(t *testing.T) {
	ic := newIdentityCluster(t)
	alice, bob, carol := ic.user(t, "alice"), ic.user(t, "bob"), ic.user(t, "carol")
	var dm roomJSON
	alice.must("POST", "/api/direct", map[string]string{"name": "bob"}, http.StatusCreated, &dm)
	room := dm.Room.ID

	wa := ic.dialAs(t, alice)
	wb := ic.dialAs(t, bob, wa)
	for _, c := range []*wsClient{wa, wb} {
		c.send(map[string]string{"type": "join", "room": room})
		c.send(map[string]string{"type": "join", "room": "general"})
	}
	waitFor(t, 10*time.Second, func() bool {
		return wa.joined(room) && wb.joined(room) && wb.joined("general")
	}, "alice and bob did not join")

	photo := mediatest.PhotoWithGPS(800, 600)
	st, body := alice.upload(room, "IMG_0001.jpg", photo)
	if st != http.StatusCreated {
		t.Fatalf("alice's upload: %d %s", st, body)
	}
	var up struct{ File fileJSON }
	if err := json.Unmarshal(body, &up); err != nil {
		t.Fatal(err)
	}
	if up.File.Type != "image/jpeg" || up.File.Width != 800 || up.File.Height != 600 {
		t.Fatalf("uploaded file %+v", up.File)
	}
	wa.send(map[string]any{"type": "send", "room": room, "text": "", "cid": "photo-1", "files": []string{up.File.ID}})
	waitFor(t, 10*time.Second, func() bool { return len(messageFiles(wb, room, "photo-1")) == 1 },
		"bob (server %s) did not get alice's (server %s) picture", wb.server, wa.server)
	got := messageFiles(wb, room, "photo-1")[0]
	if len(got) != 1 || got[0] != up.File {
		t.Fatalf("bob's message files %+v, want %+v", got, up.File)
	}

	// Fetched through HAProxy several times: every server answers alike.
	for range 4 {
		st, h, img := bob.get("/api/files/" + up.File.ID)
		if st != http.StatusOK || h.Get("Content-Type") != "image/jpeg" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("bob's picture: %d %v", st, h)
		}
		if bytes.Contains(img, []byte(mediatest.GPSMarker)) || bytes.Contains(img, []byte("Exif\x00")) {
			t.Fatal("the picture bob got still has its EXIF and GPS data")
		}
		if c, _, err := image.DecodeConfig(bytes.NewReader(img)); err != nil || c.Width != 800 || c.Height != 600 {
			t.Fatalf("bob's picture: %v %dx%d", err, c.Width, c.Height)
		}
	}
	if st, h, th := bob.get("/api/files/" + up.File.ID + "/thumb"); st != http.StatusOK || h.Get("Content-Type") != "image/jpeg" || bytes.Contains(th, []byte(mediatest.GPSMarker)) {
		t.Fatalf("bob's thumbnail: %d %v", st, h)
	}

	st1, _, stranger := carol.get("/api/files/" + up.File.ID)
	st2, _, missing := carol.get("/api/files/aaaaaaaaaaaaaaaaaaaaaaaaaa")
	if st1 != http.StatusNotFound || st1 != st2 || !bytes.Equal(stranger, missing) {
		t.Errorf("carol: %d %s; a missing id: %d %s (want the same 404)", st1, stranger, st2, missing)
	}
	if st, _, _ := carol.get("/api/files/" + up.File.ID + "/thumb"); st != http.StatusNotFound {
		t.Errorf("carol's thumbnail: %d", st)
	}
	// Signed out (the servers allow guests): a direct chat's file is
	// missing, as for carol.
	nobody := newAPIClient(t, ic.base, "nobody")
	if st, _, body := nobody.get("/api/files/" + up.File.ID); st != http.StatusNotFound || !bytes.Equal(body, missing) {
		t.Errorf("signed out: %d %s", st, body)
	}
	// A send naming another's upload, or a made-up id, is refused.
	wb.send(map[string]any{"type": "send", "room": room, "text": "mine", "cid": "steal", "files": []string{up.File.ID}})
	wb.send(map[string]any{"type": "send", "room": room, "text": "made up", "cid": "fake", "files": []string{"aaaaaaaaaaaaaaaaaaaaaaaaaa"}})
	waitFor(t, 10*time.Second, func() bool {
		n := 0
		for _, f := range errorsFor(wb, room) {
			if f.Code == "invalid_files" && (f.CID == "steal" || f.CID == "fake") {
				n++
			}
		}
		return n == 2
	}, "bob's sends with another's and a made-up file were not refused with invalid_files")

	// The operator's announcement with a file, into a public room.
	pic := filepath.Join(t.TempDir(), "map.png")
	var pb bytes.Buffer
	if err := png.Encode(&pb, image.NewGray(image.Rect(0, 0, 40, 30))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pic, pb.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := ic.cli("publish", "--room", "general", "--store", ic.store, "--file", pic, "the new office"); err != nil {
		t.Fatalf("publish --file: %v %s", err, out)
	}
	waitFor(t, 10*time.Second, func() bool {
		for _, fs := range messageFiles(wb, "general", "") {
			if len(fs) == 1 && fs[0].Name == "map.png" && fs[0].Width == 40 {
				return true
			}
		}
		return false
	}, "bob did not get the operator's announcement with its file")
	var opsFile fileJSON
	for _, fs := range messageFiles(wb, "general", "") {
		if len(fs) == 1 {
			opsFile = fs[0]
		}
	}
	if st, _, _ := bob.get("/api/files/" + opsFile.ID); st != http.StatusOK {
		t.Errorf("bob fetching the operator's file: %d", st)
	}
	if st, _, _ := carol.get("/api/files/" + opsFile.ID); st != http.StatusOK {
		t.Errorf("carol fetching the public room's file: %d", st)
	}
	if st, _, _ := nobody.get("/api/files/" + opsFile.ID + "/thumb"); st != http.StatusOK {
		t.Errorf("a guest fetching the public room's thumbnail: %d", st)
	}
}
