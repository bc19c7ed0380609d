package server

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/livechat/livechat/internal/wstest"
	"github.com/livechat/livechat/pkg/history"
	"github.com/livechat/livechat/pkg/protocol"
	"github.com/livechat/livechat/pkg/store"
)

// fakeFiles is a FileAttacher over a map of uploads: the real one (pkg/files
// over pkg/store) is tested end to end elsewhere. fail, when set, is the
// error of every Attach (an outage, or a refusal the fake would not make).
type fakeFiles struct {
	fail  atomic.Pointer[error]
	calls atomic.Int64

	mu       sync.Mutex
	uploads  map[string]fakeUpload
	attached map[string]string // upload id -> message id
}

type fakeUpload struct {
	user, room string
	file       protocol.File
}

func newFakeFiles() *fakeFiles {
	return &fakeFiles{uploads: map[string]fakeUpload{}, attached: map[string]string{}}
}

// upload records an upload of user into room and returns its description.
func (f *fakeFiles) upload(user, room, id, name string, w, h int) protocol.File {
	f.mu.Lock()
	defer f.mu.Unlock()
	typ := "application/pdf"
	if w > 0 {
		typ = "image/png"
	}
	file := protocol.File{ID: id, Type: typ, Size: int64(1000 + len(f.uploads)), Name: name, Width: w, Height: h}
	f.uploads[id] = fakeUpload{user: user, room: room, file: file}
	return file
}

func (f *fakeFiles) Attach(_ context.Context, user, room, msgID string, ids []string) ([]protocol.File, error) {
	f.calls.Add(1)
	if err := f.fail.Load(); err != nil {
		return nil, *err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]protocol.File, 0, len(ids))
	for i, id := range ids {
		if slicesIndex(ids[:i], id) >= 0 {
			return nil, fmt.Errorf("files: %w: repeated id", store.ErrInvalid)
		}
		u, ok := f.uploads[id]
		if !ok || u.user != user || u.room != room {
			return nil, fmt.Errorf("files: %w", store.ErrNotFound)
		}
		out = append(out, u.file)
	}
	for _, id := range ids {
		if _, ok := f.attached[id]; !ok {
			f.attached[id] = msgID
		}
	}
	return out, nil
}

func slicesIndex(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

var _ FileAttacher = (*fakeFiles)(nil)

// filesCluster starts two servers on one broker, with a shared history
// (when hist) and f as their FileAttacher; alice (uA) and bob (uB) sign in
// with the cookies "ca" and "cb".
func filesCluster(t *testing.T, f FileAttacher, hist bool) (sa, sb *testServer) {
	t.Helper()
	fa := newFakeAuth()
	fa.session("ca", "uA", "alice", "s1")
	fa.session("cb", "uB", "bob", "s2")
	prefix := testPrefix(t)
	b := memBroker(t)
	var h history.Store
	if hist {
		h = memStore(t, history.Options{})
	}
	cfg := func(id string) Config {
		c := histConfig(id, prefix, h)
		c.Auth, c.Files = fa, f
		if !hist {
			c.History = nil
		}
		return c
	}
	sa, sb = startServer(t, b, cfg("1000")), startServer(t, b, cfg("2000"))
	return sa, sb
}

// joinBoth connects alice to sa and bob to sb, both in lobby, and waits
// until each sees the other.
func joinBoth(t *testing.T, sa, sb *testServer) (alice, bob *client) {
	t.Helper()
	alice, bob = dialH(t, sa.url, cookie("ca")), dialH(t, sb.url, cookie("cb"))
	alice.join("lobby", "")
	bob.join("lobby", "")
	alice.waitUntil("bob in lobby", hasMembers("lobby", "alice", "bob"))
	bob.waitUntil("alice in lobby", hasMembers("lobby", "alice", "bob"))
	return alice, bob
}

// TestFilesSend: a send with files (and no text) reaches every member on
// both servers with the files as the attacher described them, attached to
// the acknowledged message; a reconnecting client gets them in the join's
// replay and in a history page. Without files an empty text is refused.
func TestFilesSend(t *testing.T) {
	t.Parallel()
	ff := newFakeFiles()
	want := []protocol.File{
		ff.upload("uA", "lobby", "up1", `photo "1" <é>.png`, 640, 480),
		ff.upload("uA", "lobby", "up-2_x", "ünïcødé\x01.pdf", 0, 0),
	}
	sa, sb := filesCluster(t, ff, true)
	alice, bob := joinBoth(t, sa, sb)

	alice.sendJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "lobby", Text: "", Files: []string{"up1", "up-2_x"}, CID: "c1"})
	ack := alice.next(protocol.TypeAck, protocol.TypeError)
	if ack.Type != protocol.TypeAck || ack.CID != "c1" {
		t.Fatalf("send with files and no text: %+v, want an ack", ack)
	}
	for who, c := range map[string]*client{"alice": alice, "bob": bob} {
		m := c.next(protocol.TypeMessage)
		if m.ID != ack.ID || m.Text != "" || !reflect.DeepEqual(m.Files, want) {
			t.Errorf("%s got %+v, want id %s with files %+v", who, m, ack.ID, want)
		}
	}
	ff.mu.Lock()
	for _, id := range []string{"up1", "up-2_x"} {
		if got := ff.attached[id]; got != ack.ID {
			t.Errorf("upload %s attached to %q, want %q", id, got, ack.ID)
		}
	}
	ff.mu.Unlock()

	// A caption with the files, then a plain message: no files on it.
	ff.upload("uA", "lobby", "up3", "c.png", 1, 1)
	alice.sendJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "lobby", Text: "caption", Files: []string{"up3"}})
	alice.sendJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "lobby", Text: "plain"})
	for _, text := range []string{"caption", "plain"} {
		if a := alice.next(protocol.TypeAck, protocol.TypeError); a.Type != protocol.TypeAck {
			t.Fatalf("send of %q: %+v, want an ack", text, a)
		}
	}
	bob.waitSeq("lobby", 3)

	// Without files an empty or blank text is refused.
	for _, text := range []string{"", "  \n"} {
		alice.sendJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "lobby", Text: text, CID: "empty"})
		if e := alice.next(protocol.TypeAck, protocol.TypeError); e.Type != protocol.TypeError || e.Code != protocol.CodeInvalidText || e.CID != "empty" {
			t.Errorf("send of %q without files: %+v, want invalid_text", text, e)
		}
	}

	check := func(who string, msgs []protocol.Message) {
		t.Helper()
		if len(msgs) != 3 || !reflect.DeepEqual(msgs[0].Files, want) || len(msgs[1].Files) != 1 || msgs[1].Files[0].ID != "up3" || msgs[2].Files != nil {
			t.Errorf("%s: %+v", who, msgs)
		}
	}
	// Reconnect to the other server: the replay, then a history page.
	again := dialH(t, sa.url, cookie("cb"))
	again.joinSince("lobby", "", since(0))
	again.waitSeq("lobby", 3)
	var replay []protocol.Message
	for _, f := range again.messages("lobby") {
		replay = append(replay, protocol.Message{ID: f.ID, Text: f.Text, Files: f.Files})
	}
	check("replay", replay)
	again.sendJSON(protocol.Inbound{Type: protocol.TypeHistory, Room: "lobby"})
	check("history", again.next(protocol.TypeHistory).Messages)
}

// TestFilesRefused: every refusal of a send's files is an invalid_files
// error for its cid and room, nothing is delivered, and the attacher is not
// asked when the send is refused before.
func TestFilesRefused(t *testing.T) {
	t.Parallel()
	ff := newFakeFiles()
	ff.upload("uA", "lobby", "mine", "a.png", 2, 2)
	ff.upload("uB", "lobby", "bobs", "b.png", 2, 2)
	ff.upload("uA", "other", "elsewhere", "c.png", 2, 2)
	sa, sb := filesCluster(t, ff, true)
	alice, bob := joinBoth(t, sa, sb)
	eleven := make([]string, protocol.MaxFiles+1)
	for i := range eleven {
		eleven[i] = "f" + strconv.Itoa(i)
	}
	for i, tc := range []struct {
		desc   string
		files  []string
		asked  bool // the attacher is called
		expect string
	}{
		{"11 files", eleven, false, protocol.ErrTooManyFiles.Error()},
		{"a repeated id", []string{"mine", "mine"}, false, protocol.ErrRepeatedFile.Error()},
		{"bad id characters", []string{"../mine"}, false, protocol.ErrInvalidFileID.Error()},
		{"an empty id", []string{""}, false, protocol.ErrInvalidFileID.Error()},
		{"a missing upload", []string{"mine", "nope"}, true, errFileNotAvailable},
		{"another user's upload", []string{"bobs"}, true, errFileNotAvailable},
		{"another room's upload", []string{"elsewhere"}, true, errFileNotAvailable},
	} {
		before := ff.calls.Load()
		cid := "c" + strconv.Itoa(i)
		alice.sendJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "lobby", Text: "x", Files: tc.files, CID: cid})
		e := alice.next(protocol.TypeAck, protocol.TypeError)
		if e.Type != protocol.TypeError || e.Code != protocol.CodeInvalidFiles || e.CID != cid || e.Room != "lobby" || e.Message != tc.expect {
			t.Errorf("%s: %+v, want invalid_files %q", tc.desc, e, tc.expect)
		}
		if asked := ff.calls.Load() > before; asked != tc.asked {
			t.Errorf("%s: attacher called %v, want %v", tc.desc, asked, tc.asked)
		}
	}
	// An attacher's ErrInvalid is a refusal too.
	invalid := fmt.Errorf("files: %w: refused", store.ErrInvalid)
	ff.fail.Store(&invalid)
	alice.sendJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "lobby", Text: "x", Files: []string{"mine"}, CID: "inv"})
	if e := alice.next(protocol.TypeAck, protocol.TypeError); e.Code != protocol.CodeInvalidFiles || e.Message != errFileNotAvailable || e.CID != "inv" {
		t.Errorf("attacher's ErrInvalid: %+v, want invalid_files", e)
	}
	ff.fail.Store(nil)
	// "files" of another type than an array of strings: bad_request.
	for _, raw := range []string{`"mine"`, `[1]`, `{"id":"mine"}`, `[["mine"]]`} {
		alice.sendRaw(wstest.TextMessage, []byte(`{"type":"send","room":"lobby","text":"x","files":`+raw+`}`))
		if e := alice.next(protocol.TypeAck, protocol.TypeError); e.Type != protocol.TypeError || e.Code != protocol.CodeBadRequest {
			t.Errorf("files %s: %+v, want bad_request", raw, e)
		}
	}
	// A guest may not attach files, not even an existing upload's id.
	guest := dial(t, sb.url)
	guest.join("lobby", "zed")
	before := ff.calls.Load()
	guest.sendJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "lobby", Text: "x", Files: []string{"mine"}, CID: "g"})
	if e := guest.next(protocol.TypeAck, protocol.TypeError); e.Type != protocol.TypeError || e.Code != protocol.CodeInvalidFiles || e.CID != "g" {
		t.Errorf("guest: %+v, want invalid_files", e)
	}
	if ff.calls.Load() != before {
		t.Error("guest: the attacher was asked")
	}
	// Nothing was delivered: the first message bob gets is the next one.
	alice.sendJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "lobby", Text: "after"})
	if m := bob.next(protocol.TypeMessage); m.Text != "after" || m.Seq != 1 {
		t.Errorf("bob's first message: %+v, want \"after\" at seq 1", m)
	}
	ff.mu.Lock()
	if len(ff.attached) != 0 {
		t.Errorf("attached after refusals: %v", ff.attached)
	}
	ff.mu.Unlock()
}

// TestFilesNotEnabled: a server without Config.Files refuses a send with
// files (invalid_files) and still takes text.
func TestFilesNotEnabled(t *testing.T) {
	t.Parallel()
	sa, sb := filesCluster(t, nil, false)
	alice, bob := joinBoth(t, sa, sb)
	alice.sendJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "lobby", Text: "x", Files: []string{"up1"}, CID: "c"})
	if e := alice.next(protocol.TypeAck, protocol.TypeError); e.Type != protocol.TypeError || e.Code != protocol.CodeInvalidFiles || e.CID != "c" || e.Room != "lobby" {
		t.Errorf("files on a server without files: %+v, want invalid_files", e)
	}
	alice.sendJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "lobby", Text: "after"})
	if m := bob.next(protocol.TypeMessage); m.Text != "after" || m.Files != nil {
		t.Errorf("bob's first message: %+v, want \"after\"", m)
	}
}

// TestFilesAttacherDown: an attacher that cannot tell gets unavailable, no
// ack and nothing delivered; the retry with the same cid, once it is back,
// sends the message once, with its files (with and without history).
func TestFilesAttacherDown(t *testing.T) {
	t.Parallel()
	for _, hist := range []bool{true, false} {
		t.Run("history="+strconv.FormatBool(hist), func(t *testing.T) {
			t.Parallel()
			ff := newFakeFiles()
			want := []protocol.File{ff.upload("uA", "lobby", "up1", "a.png", 3, 4)}
			sa, sb := filesCluster(t, ff, hist)
			alice, bob := joinBoth(t, sa, sb)
			down := errors.New("files: store down (injected)")
			ff.fail.Store(&down)
			send := protocol.Inbound{Type: protocol.TypeSend, Room: "lobby", Text: "look", Files: []string{"up1"}, CID: "retry"}
			alice.sendJSON(send)
			if e := alice.next(protocol.TypeAck, protocol.TypeError); e.Type != protocol.TypeError || e.Code != protocol.CodeUnavailable || e.CID != "retry" {
				t.Fatalf("attacher down: %+v, want unavailable", e)
			}
			ff.fail.Store(nil)
			alice.sendJSON(send)
			ack := alice.next(protocol.TypeAck, protocol.TypeError)
			if ack.Type != protocol.TypeAck || ack.CID != "retry" || ack.Dup != nil && *ack.Dup {
				t.Fatalf("retry: %+v, want a fresh ack", ack)
			}
			// A plain message after it: bob's messages are the retry, then it.
			alice.sendJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "lobby", Text: "next"})
			if a := alice.next(protocol.TypeAck, protocol.TypeError); a.Type != protocol.TypeAck {
				t.Fatalf("next: %+v, want an ack", a)
			}
			first, second := bob.next(protocol.TypeMessage), bob.next(protocol.TypeMessage)
			if first.ID != ack.ID || !reflect.DeepEqual(first.Files, want) || second.Text != "next" {
				t.Errorf("bob got %+v then %+v, want the retried message with %+v then \"next\"", first, second, want)
			}
			if n := len(alice.frameList(protocol.TypeAck)); n != 2 {
				t.Errorf("alice got %d acks, want 2 (the retry's and next's)", n)
			}
			if hist {
				if first.Seq != 1 {
					t.Errorf("the retried message has seq %d, want 1: the failed send stored something", first.Seq)
				}
				// The same cid again: a duplicate of the stored message.
				alice.sendJSON(send)
				if d := alice.next(protocol.TypeAck, protocol.TypeError); d.Dup == nil || !*d.Dup || d.ID != ack.ID {
					t.Errorf("second retry: %+v, want dup of %s", d, ack.ID)
				}
			}
		})
	}
}

// TestFilesNoFilesNoAttach: a send without files never reaches the
// attacher.
func TestFilesNoFilesNoAttach(t *testing.T) {
	t.Parallel()
	ff := newFakeFiles()
	sa, sb := filesCluster(t, ff, false)
	alice, bob := joinBoth(t, sa, sb)
	alice.sendJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "lobby", Text: strings.Repeat("x", 10)})
	if m := bob.next(protocol.TypeMessage); m.Files != nil {
		t.Errorf("plain message with files: %+v", m)
	}
	if n := ff.calls.Load(); n != 0 {
		t.Errorf("attacher called %d times for a message without files", n)
	}
}

// TestGuestFiles: with Config.GuestUploadToken a guest's welcome carries
// an upload token for its guest id (an account's carries none), and the
// guest may attach its own uploads; without it, guests get no token.
func TestGuestFiles(t *testing.T) {
	t.Parallel()
	ff := newFakeFiles()
	fa := newFakeAuth()
	fa.session("s1", "uA", "alice", "sess1")
	minted := make(chan string, 4)
	ts := authServer(t, Config{Auth: fa, Files: ff, GuestUploadToken: func(id string) (string, error) {
		minted <- id
		return "tok-" + id, nil
	}})
	g := dial(t, ts.url)
	w := g.next(protocol.TypeWelcome)
	gid := user(t, w).ID
	if w.UploadToken != "tok-"+gid || <-minted != gid {
		t.Fatalf("guest welcome upload_token %q for %s", w.UploadToken, gid)
	}
	a := dialH(t, ts.url, cookie("s1"))
	if w := a.next(protocol.TypeWelcome); w.UploadToken != "" {
		t.Errorf("an account's welcome has upload_token %q", w.UploadToken)
	}
	ff.upload(gid, "lobby", "gfile", "g.png", 3, 2)
	g.join("lobby", "zed")
	g.sendJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "lobby", Files: []string{"gfile"}, CID: "g1"})
	m := g.next(protocol.TypeMessage, protocol.TypeError)
	if m.Type != protocol.TypeMessage || len(m.Files) != 1 || m.Files[0].ID != "gfile" || !m.Guest {
		t.Fatalf("the guest's send with its file: %+v", m)
	}

	off := authServer(t, Config{Auth: newFakeAuth(), Files: ff})
	if w := dial(t, off.url).next(protocol.TypeWelcome); w.UploadToken != "" {
		t.Errorf("upload_token %q without GuestUploadToken", w.UploadToken)
	}
}
