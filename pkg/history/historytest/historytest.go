// Package historytest is the conformance suite that every history.Store
// backend passes, and helpers for tests that need a store (PostgresURL).
//
// A backend's test calls Run from a top-level test that is not parallel
// (Run's last check counts goroutines):
//
//	func TestMemory(t *testing.T) {
//		historytest.Run(t, historytest.Backend{Bounded: true,
//			New: func(t testing.TB, o history.Options) func() history.Store {
//				s := history.NewMemory(o)
//				return func() history.Store { return s }
//			}})
//	}
package historytest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livechat/livechat/pkg/broker/brokertest"
	"github.com/livechat/livechat/pkg/history"
	"github.com/livechat/livechat/pkg/protocol"
)

// Backend describes the stores under test.
type Backend struct {
	// New prepares a fresh, empty namespace (its own Redis key prefix or
	// PostgreSQL schema, removed when t ends) and returns a function that
	// opens a store on it. Every call of open returns another instance on
	// that same namespace, as another server would open it (a backend that
	// cannot share, like memory, returns the same store). The suite closes
	// what open returns; Close must be idempotent. Both fail t on error.
	New func(t testing.TB, opts history.Options) (open func() history.Store)
	// Bounded says the backend honours Options.MaxLen and Options.MaxAge.
	Bounded bool
	// Legacy, when set, prepares a fresh namespace as New does, holding
	// ms (all of one room, with seqs 1..len(ms)) written the way the
	// backend stored messages before they carried a sender identity and files
	// (Message.User and Message.Guest: older tables, older JSON), and
	// returns the opener of stores on it. The suite then checks that the
	// store opens on that data, reads it back with an empty User and Guest
	// false, and appends to it. A backend that keeps nothing across
	// processes (memory) leaves it nil.
	Legacy func(t testing.TB, opts history.Options, ms []protocol.Message) (open func() history.Store)
}

// timeout bounds every call of the suite; generous for a loaded 2-core box.
const timeout = 20 * time.Second

// Run runs the conformance suite. Its subtests run in parallel with each
// other, each in its own namespace; the last one counts goroutines.
func Run(t *testing.T, b Backend) {
	tests := []struct {
		name string
		fn   func(*testing.T, Backend)
	}{
		{"SeqStartsAtOneAndIncrementsPerRoom", testSeq},
		{"RoundTripAllFields", testRoundTrip},
		{"SenderIdentity", testSenderIdentity},
		{"Files", testFiles},
		{"Reads", testReads},
		{"InvalidArguments", testInvalid},
		{"Dedup", testDedup},
		{"DedupConcurrentAcrossInstances", testDedupConcurrent},
		{"ConcurrentAppendsGapless", testConcurrent},
		{"TrimByLength", testTrimLen},
		{"TrimByAge", testTrimAge},
		{"LastSeqs", testLastSeqs},
		{"CanceledContext", testCanceled},
		{"Closed", testClosed},
	}
	if b.Legacy != nil {
		tests = append(tests, struct {
			name string
			fn   func(*testing.T, Backend)
		}{"LegacyMessagesWithoutSender", testLegacy})
	}
	t.Run("group", func(t *testing.T) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				tc.fn(t, b)
			})
		}
	})
	// Sequential, after the group: it counts goroutines.
	t.Run("CloseReleasesEverything", func(t *testing.T) { testLeak(t, b) })
}

// open returns a store closed when the test ends, and the opener of more
// instances on the same namespace.
func open(t *testing.T, b Backend, opts history.Options) (history.Store, func() history.Store) {
	t.Helper()
	return track(t, b.New(t, opts))
}

// track returns the first store of o and an opener of more, each closed
// when the test ends.
func track(t *testing.T, o func() history.Store) (history.Store, func() history.Store) {
	t.Helper()
	more := func() history.Store {
		s := o()
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	}
	return more(), more
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// msg returns a message of room as a server would build it.
func msg(room, text string) *protocol.Message {
	return &protocol.Message{Type: protocol.TypeMessage, Room: room, ID: "id-" + text, From: "alice",
		Text: text, TS: time.Now().UnixMilli(), Server: "1000"}
}

func appendOK(t testing.TB, s history.Store, m *protocol.Message, key string) uint64 {
	t.Helper()
	seq, dup, err := s.Append(ctxT(t), m, key)
	if err != nil {
		t.Fatalf("Append(%q, %q): %v", m.Text, key, err)
	}
	if dup {
		t.Fatalf("Append(%q, %q): dup=true, want a new message", m.Text, key)
	}
	if seq == 0 || m.Seq != seq {
		t.Fatalf("Append(%q): seq %d, m.Seq %d", m.Text, seq, m.Seq)
	}
	return seq
}

func bounds(t testing.TB, s history.Store, room string) history.Bounds {
	t.Helper()
	b, err := s.Bounds(ctxT(t), room)
	if err != nil {
		t.Fatalf("Bounds(%q): %v", room, err)
	}
	return b
}

func seqs(ms []protocol.Message) []uint64 {
	out := make([]uint64, len(ms))
	for i, m := range ms {
		out[i] = m.Seq
	}
	return out
}

// span returns lo..hi.
func span(lo, hi uint64) []uint64 {
	var out []uint64
	for i := lo; i <= hi && lo > 0; i++ {
		out = append(out, i)
	}
	return out
}

func eqSeqs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func room(t testing.TB, name string) string {
	return name + "_" + brokertest.Prefix(t)
}

func testSeq(t *testing.T, b Backend) {
	s, _ := open(t, b, history.Options{})
	a, c := room(t, "a"), room(t, "c")
	if got := bounds(t, s, a); got != (history.Bounds{}) {
		t.Errorf("Bounds of an unused room = %+v, want zero", got)
	}
	for i := 1; i <= 5; i++ {
		if got := appendOK(t, s, msg(a, "a"+strconv.Itoa(i)), ""); got != uint64(i) {
			t.Errorf("room a: append %d got seq %d", i, got)
		}
		if i <= 3 {
			if got := appendOK(t, s, msg(c, "c"+strconv.Itoa(i)), ""); got != uint64(i) {
				t.Errorf("room c: append %d got seq %d", i, got)
			}
		}
	}
	if got := bounds(t, s, a); got != (history.Bounds{First: 1, Last: 5}) {
		t.Errorf("Bounds(a) = %+v, want {1 5}", got)
	}
	if got := bounds(t, s, c); got != (history.Bounds{First: 1, Last: 3}) {
		t.Errorf("Bounds(c) = %+v, want {1 3}", got)
	}
	ms, err := s.After(ctxT(t), a, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		if m.Text != "a"+strconv.Itoa(i+1) || m.Seq != uint64(i+1) {
			t.Errorf("After(a, 0)[%d] = seq %d %q", i, m.Seq, m.Text)
		}
	}
	// An input seq is ignored.
	m := msg(a, "a6")
	m.Seq = 99
	if got := appendOK(t, s, m, ""); got != 6 {
		t.Errorf("append with m.Seq=99 got seq %d, want 6", got)
	}
}

func testRoundTrip(t *testing.T, b Backend) {
	s, more := open(t, b, history.Options{})
	r := room(t, "rt")
	// 4000 bytes of mixed scripts, emoji, quotes, backslashes, NUL-free
	// control characters and JSON-hostile text.
	unit := `héllo wörld «»“” 日本語 🙂👍🏽 \ " ' <b>&amp;</b> ` + "\t\n\u2028\u00a0"
	var sb strings.Builder
	for sb.Len()+len(unit) <= protocol.MaxTextLen {
		sb.WriteString(unit)
	}
	for sb.Len() < protocol.MaxTextLen {
		sb.WriteByte('x')
	}
	text := sb.String()
	if len(text) != protocol.MaxTextLen {
		t.Fatalf("test text is %d bytes", len(text))
	}
	in := []protocol.Message{
		{Type: protocol.TypeMessage, Room: r, ID: "01HX-id-1", From: "Zoë O'Brien", User: "u5mhq2c7xk0a1b2c3d4e5", Text: text,
			TS: time.Now().UnixMilli() - 2000, Server: "2000", CID: "c-1", Files: testFileList()},
		{Type: protocol.TypeMessage, Room: r, ID: "01HX-id-2", From: "operator", Text: "maintenance at 5", TS: time.Now().UnixMilli() - 1000, Server: "cli", System: true},
		{Type: protocol.TypeMessage, Room: r, ID: "01HX-id-3", From: "visitor", User: "g_9d2f4a7c", Guest: true, Text: "hi, guest here",
			TS: time.Now().UnixMilli() - 500, Server: "2000", CID: "c-3"},
	}
	for i := range in {
		m := in[i]
		appendOK(t, s, &m, "")
		in[i].Seq = m.Seq
	}
	// Every field of protocol.Message is set in some input: a field that a
	// backend does not store fails this test (a new field must be added
	// to in above, and to every backend).
	for i := range reflect.TypeFor[protocol.Message]().NumField() {
		set := false
		for j := range in {
			set = set || !reflect.ValueOf(in[j]).Field(i).IsZero()
		}
		if !set {
			t.Errorf("no input sets protocol.Message.%s: add it to this test", reflect.TypeFor[protocol.Message]().Field(i).Name)
		}
	}
	s2 := more()
	check := func(what string, got []protocol.Message, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if len(got) != len(in) {
			t.Fatalf("%s: %d messages, want %d", what, len(got), len(in))
		}
		for i := range in {
			if !reflect.DeepEqual(got[i], in[i]) {
				t.Errorf("%s[%d] differs:\n got %+v\nwant %+v", what, i, short(got[i]), short(in[i]))
			}
		}
	}
	for _, st := range []history.Store{s, s2} {
		ms, err := st.After(ctxT(t), r, 0, 10)
		check("After", ms, err)
		ms, err = st.Latest(ctxT(t), r, 10)
		check("Latest", ms, err)
		ms, err = st.Before(ctxT(t), r, uint64(len(in))+1, 10)
		check("Before", ms, err)
	}
	// A zero TS and an empty Type are filled in.
	m := &protocol.Message{Room: r, ID: "x", From: "bob", Text: "t"}
	before := time.Now().UnixMilli()
	appendOK(t, s, m, "")
	if m.Type != protocol.TypeMessage || m.TS < before || m.TS > time.Now().UnixMilli() {
		t.Errorf("after Append: Type %q TS %d, want %q and now", m.Type, m.TS, protocol.TypeMessage)
	}
}

// testSenderIdentity: a message's sender identity (User, Guest) comes back
// from every read, on every instance, and with the original when a retry
// is taken for a duplicate; a message without one reads back without one.
func testSenderIdentity(t *testing.T, b Backend) {
	s, more := open(t, b, history.Options{})
	r := room(t, "id")
	account := msg(r, "from an account")
	account.User = "u5mhq2c7xk0a1b2c3d4e5"
	guest := msg(r, "from a guest")
	guest.From, guest.User, guest.Guest, guest.CID = "visitor", "g_9d2f4a7c", true, "c-g"
	anon := msg(r, "no identity") // an older server's message
	var want []protocol.Message
	for _, m := range []*protocol.Message{account, guest, anon} {
		user, isGuest := m.User, m.Guest
		key := ""
		if m.CID != "" {
			key = m.User + "\x00" + m.CID
		}
		appendOK(t, s, m, key)
		if m.User != user || m.Guest != isGuest {
			t.Errorf("Append changed the sender to user %q guest %v, want %q %v", m.User, m.Guest, user, isGuest)
		}
		want = append(want, *m)
	}
	check := func(what string, got []protocol.Message, err error, want []protocol.Message) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d messages, want %d", what, len(got), len(want))
		}
		for i := range want {
			if got[i].User != want[i].User || got[i].Guest != want[i].Guest {
				t.Errorf("%s[%d] (seq %d): user %q guest %v, want user %q guest %v",
					what, i, got[i].Seq, got[i].User, got[i].Guest, want[i].User, want[i].Guest)
			} else if !reflect.DeepEqual(got[i], want[i]) {
				t.Errorf("%s[%d] differs:\n got %+v\nwant %+v", what, i, got[i], want[i])
			}
		}
	}
	for _, st := range []history.Store{s, more()} {
		ms, err := st.After(ctxT(t), r, 0, 10)
		check("After(0)", ms, err, want)
		ms, err = st.After(ctxT(t), r, 1, 1)
		check("After(1,1)", ms, err, want[1:2])
		ms, err = st.Latest(ctxT(t), r, 10)
		check("Latest", ms, err, want)
		ms, err = st.Before(ctxT(t), r, 4, 10)
		check("Before(4)", ms, err, want)
		ms, err = st.Before(ctxT(t), r, 3, 1)
		check("Before(3,1)", ms, err, want[1:2])

		// The server builds a retry again (new ID and TS); the store
		// answers with the original, its sender identity included.
		retry := msg(r, "from a guest")
		retry.From, retry.CID, retry.ID, retry.TS = "visitor", "c-g", "id-retry", guest.TS+5000
		seq, dup, err := st.Append(ctxT(t), retry, guest.User+"\x00c-g")
		if err != nil || !dup || seq != guest.Seq {
			t.Fatalf("retry = %d, dup %v, %v; want %d, dup", seq, dup, err, guest.Seq)
		}
		check("duplicate", []protocol.Message{*retry}, nil, want[1:2])
	}
}

// testLegacy: a store opens on data written before messages carried a
// sender identity (migrating it if it must, twice without harm), reads it
// back with an empty User and Guest false, and goes on from its last seq.
func testLegacy(t *testing.T, b Backend) {
	r := room(t, "lg")
	now := time.Now().UnixMilli()
	old := []protocol.Message{
		{Type: protocol.TypeMessage, Room: r, ID: "old-1", Seq: 1, From: "alice", Text: "before the upgrade",
			TS: now - 3000, Server: "1000", CID: "c-1"},
		{Type: protocol.TypeMessage, Room: r, ID: "old-2", Seq: 2, From: "ops", Text: "maintenance at 5",
			TS: now - 2000, Server: "cli", System: true},
		{Type: protocol.TypeMessage, Room: r, ID: "old-3", Seq: 3, From: "bob", Text: "the last old one",
			TS: now - 1000, Server: "1000"},
	}
	s, more := track(t, b.Legacy(t, history.Options{}, slices.Clone(old)))
	check := func(what string, got []protocol.Message, err error, want []protocol.Message) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d messages, want %d", what, len(got), len(want))
		}
		for i := range want {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Errorf("%s[%d] differs:\n got %+v\nwant %+v", what, i, got[i], want[i])
			}
		}
	}
	ms, err := s.After(ctxT(t), r, 0, 10)
	check("After(0)", ms, err, old)
	ms, err = s.Latest(ctxT(t), r, 10)
	check("Latest", ms, err, old)
	ms, err = s.Before(ctxT(t), r, 3, 10)
	check("Before(3)", ms, err, old[:2])
	if bd := bounds(t, s, r); bd != (history.Bounds{First: 1, Last: 3}) {
		t.Errorf("Bounds = %+v, want {1 3}", bd)
	}
	m := msg(r, "after the upgrade")
	m.User, m.Guest = "g_9d2f4a7c", true
	if seq := appendOK(t, s, m, "g_9d2f4a7c\x00c-9"); seq != 4 {
		t.Errorf("first append after the upgrade got seq %d, want 4", seq)
	}
	// Another instance opens the upgraded data (migrating again is a no-op).
	want := append(slices.Clone(old), *m)
	ms, err = more().After(ctxT(t), r, 0, 10)
	check("After(0) on another instance", ms, err, want)
}

// testFileList is a message's attachments: images and other files, names
// in several scripts and with characters JSON and SQL must carry.
func testFileList() []protocol.File {
	return []protocol.File{
		{ID: "upA1b2C3d4", Type: "image/png", Size: 204800, Name: "Zoë's «photo» 日本 🙂.png", Width: 1920, Height: 1080},
		{ID: "up-2_x", Type: "application/pdf", Size: 1, Name: `report "final" \ <b>&amp;</b>` + "	 .pdf"},
		{ID: "up3", Type: "image/gif", Size: 10 << 20, Name: "tall.gif", Width: 1, Height: 65535},
		{ID: "up4", Type: "text/plain", Size: 0, Name: "'; DROP TABLE history_messages; --.txt"},
	}
}

// testFiles: a message's files come back from every read, on every
// instance, in order and unchanged, and with the original when a retry is
// taken for a duplicate; a message without files reads back with nil
// Files; a caller changing what it appended or read changes nothing stored.
func testFiles(t *testing.T, b Backend) {
	s, more := open(t, b, history.Options{})
	r := room(t, "fl")
	many := msg(r, "")
	many.User, many.CID, many.Files = "uA", "c-f", testFileList()
	one := msg(r, "a caption")
	one.User, one.Files = "uA", []protocol.File{{ID: "only", Type: "image/jpeg", Size: 99, Name: "ä.jpg", Width: 3}}
	none := msg(r, "no files")
	empty := msg(r, "empty files")
	empty.Files = []protocol.File{}
	var want []protocol.Message
	for _, m := range []*protocol.Message{many, one, none, empty} {
		key := ""
		if m.CID != "" {
			key = m.User + "\x00" + m.CID
		}
		appendOK(t, s, m, key)
		w := *m
		w.Files = slices.Clone(m.Files)
		if len(w.Files) == 0 {
			w.Files = nil // none and empty read back as nil
		}
		want = append(want, w)
	}
	// The caller reuses its slices: the store kept its own copy.
	many.Files[0].Name, one.Files[0].ID = "changed", "changed"
	check := func(what string, got []protocol.Message, err error, want []protocol.Message) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d messages, want %d", what, len(got), len(want))
		}
		for i := range want {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Errorf("%s[%d] (seq %d) differs:\n got %+v\nwant %+v", what, i, got[i].Seq, got[i].Files, want[i].Files)
			}
		}
	}
	for _, st := range []history.Store{s, more()} {
		ms, err := st.After(ctxT(t), r, 0, 10)
		check("After(0)", ms, err, want)
		ms[0].Files[1].Name = "scribbled" // a reader's change stays its own
		ms, err = st.After(ctxT(t), r, 1, 2)
		check("After(1,2)", ms, err, want[1:3])
		ms, err = st.Latest(ctxT(t), r, 10)
		check("Latest", ms, err, want)
		ms, err = st.Before(ctxT(t), r, 5, 10)
		check("Before(5)", ms, err, want)
		ms, err = st.Before(ctxT(t), r, 2, 1)
		check("Before(2,1)", ms, err, want[:1])

		// A retry (new ID, no files described yet): the original, files
		// included.
		retry := msg(r, "")
		retry.User, retry.CID, retry.ID = "uA", "c-f", "id-retry"
		seq, dup, err := st.Append(ctxT(t), retry, "uA\x00c-f")
		if err != nil || !dup || seq != want[0].Seq {
			t.Fatalf("retry = %d, dup %v, %v; want %d, dup", seq, dup, err, want[0].Seq)
		}
		check("duplicate", []protocol.Message{*retry}, nil, want[:1])
	}
}

func short(m protocol.Message) protocol.Message {
	if len(m.Text) > 40 {
		m.Text = m.Text[:40] + fmt.Sprintf("...(%d bytes)", len(m.Text))
	}
	return m
}

func testReads(t *testing.T, b Backend) {
	s, _ := open(t, b, history.Options{})
	r := room(t, "rd")
	ctx := ctxT(t)
	empty := room(t, "empty")
	for _, read := range []func() ([]protocol.Message, error){
		func() ([]protocol.Message, error) { return s.After(ctx, empty, 0, 10) },
		func() ([]protocol.Message, error) { return s.Latest(ctx, empty, 10) },
		func() ([]protocol.Message, error) { return s.Before(ctx, empty, 10, 10) },
	} {
		if ms, err := read(); err != nil || len(ms) != 0 {
			t.Errorf("read of an empty room = %v, %v; want nothing", seqs(ms), err)
		}
	}
	for i := 1; i <= 20; i++ {
		appendOK(t, s, msg(r, strconv.Itoa(i)), "")
	}
	cases := []struct {
		name string
		read func() ([]protocol.Message, error)
		want []uint64
	}{
		{"After(0,5)", func() ([]protocol.Message, error) { return s.After(ctx, r, 0, 5) }, span(1, 5)},
		{"After(5,5)", func() ([]protocol.Message, error) { return s.After(ctx, r, 5, 5) }, span(6, 10)},
		{"After(18,5)", func() ([]protocol.Message, error) { return s.After(ctx, r, 18, 5) }, span(19, 20)},
		{"After(20,5)", func() ([]protocol.Message, error) { return s.After(ctx, r, 20, 5) }, nil},
		{"After(99,5)", func() ([]protocol.Message, error) { return s.After(ctx, r, 99, 5) }, nil},
		{"After(0,0)", func() ([]protocol.Message, error) { return s.After(ctx, r, 0, 0) }, nil},
		{"After(0,-1)", func() ([]protocol.Message, error) { return s.After(ctx, r, 0, -1) }, nil},
		{"After(0,max)", func() ([]protocol.Message, error) { return s.After(ctx, r, 0, 1<<31-1) }, span(1, 20)},
		{"Latest(3)", func() ([]protocol.Message, error) { return s.Latest(ctx, r, 3) }, span(18, 20)},
		{"Latest(100)", func() ([]protocol.Message, error) { return s.Latest(ctx, r, 100) }, span(1, 20)},
		{"Latest(0)", func() ([]protocol.Message, error) { return s.Latest(ctx, r, 0) }, nil},
		{"Before(10,3)", func() ([]protocol.Message, error) { return s.Before(ctx, r, 10, 3) }, span(7, 9)},
		{"Before(3,10)", func() ([]protocol.Message, error) { return s.Before(ctx, r, 3, 10) }, span(1, 2)},
		{"Before(1,10)", func() ([]protocol.Message, error) { return s.Before(ctx, r, 1, 10) }, nil},
		{"Before(0,10)", func() ([]protocol.Message, error) { return s.Before(ctx, r, 0, 10) }, nil},
		{"Before(99,2)", func() ([]protocol.Message, error) { return s.Before(ctx, r, 99, 2) }, span(19, 20)},
		{"Before(10,0)", func() ([]protocol.Message, error) { return s.Before(ctx, r, 10, 0) }, nil},
	}
	for _, c := range cases {
		ms, err := c.read()
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got := seqs(ms); !eqSeqs(got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
		for _, m := range ms {
			if m.Text != strconv.FormatUint(m.Seq, 10) || m.Room != r {
				t.Errorf("%s: seq %d carries text %q room %q", c.name, m.Seq, m.Text, m.Room)
			}
		}
	}
	bd := bounds(t, s, r)
	for _, c := range []struct {
		since uint64
		want  bool
	}{{0, true}, {10, true}, {20, true}, {21, false}} {
		if got := bd.Covers(c.since); got != c.want {
			t.Errorf("%+v.Covers(%d) = %v, want %v", bd, c.since, got, c.want)
		}
	}
}

func testInvalid(t *testing.T, b Backend) {
	s, _ := open(t, b, history.Options{})
	ctx := ctxT(t)
	for _, r := range []string{"", "a b", "a.b", "a:b", "{x}", strings.Repeat("r", protocol.MaxRoomLen+1)} {
		if _, _, err := s.Append(ctx, msg(r, "x"), ""); !errors.Is(err, history.ErrInvalid) {
			t.Errorf("Append to room %q = %v, want ErrInvalid", r, err)
		}
		if _, err := s.After(ctx, r, 0, 1); !errors.Is(err, history.ErrInvalid) {
			t.Errorf("After(%q) = %v, want ErrInvalid", r, err)
		}
		if _, err := s.Bounds(ctx, r); !errors.Is(err, history.ErrInvalid) {
			t.Errorf("Bounds(%q) = %v, want ErrInvalid", r, err)
		}
	}
	for _, text := range []string{"a\x00b", "bad \xff utf-8"} {
		if _, _, err := s.Append(ctx, msg(room(t, "inv"), text), ""); !errors.Is(err, history.ErrInvalid) {
			t.Errorf("Append of text %q = %v, want ErrInvalid", text, err)
		}
	}
	bad := msg(room(t, "inv"), "x")
	bad.User = "u\x00"
	if _, _, err := s.Append(ctx, bad, ""); !errors.Is(err, history.ErrInvalid) {
		t.Errorf("Append with a NUL in User = %v, want ErrInvalid", err)
	}
	if _, _, err := s.Append(ctx, nil, ""); !errors.Is(err, history.ErrInvalid) {
		t.Errorf("Append(nil) = %v, want ErrInvalid", err)
	}
	if _, _, err := s.Append(ctx, msg(room(t, "inv"), "x"), strings.Repeat("k", history.MaxDedupKeyLen+1)); !errors.Is(err, history.ErrInvalid) {
		t.Errorf("Append with a long dedup key = %v, want ErrInvalid", err)
	}
}

func testDedup(t *testing.T, b Backend) {
	s, more := open(t, b, history.Options{})
	r, other := room(t, "dd"), room(t, "dd2")
	first := msg(r, "hello")
	first.CID = "c1"
	seq := appendOK(t, s, first, "alice\x00c1")
	appendOK(t, s, msg(r, "between"), "")
	// The retry carries a new ID and TS, as a server would build it again.
	for _, st := range []history.Store{s, more()} {
		retry := msg(r, "hello")
		retry.ID, retry.TS, retry.CID = "id-retry", first.TS+5000, "c1"
		got, dup, err := st.Append(ctxT(t), retry, "alice\x00c1")
		if err != nil || !dup || got != seq {
			t.Fatalf("retry = %d, dup %v, %v; want %d, dup", got, dup, err, seq)
		}
		if !reflect.DeepEqual(*retry, *first) {
			t.Errorf("retry message = %+v, want the original %+v", *retry, *first)
		}
	}
	// Same key, other room: a new message. Other key, same room: a new one.
	appendOK(t, s, msg(other, "hello"), "alice\x00c1")
	if got := appendOK(t, s, msg(r, "again"), "alice\x00c2"); got != seq+2 {
		t.Errorf("new key got seq %d, want %d", got, seq+2)
	}
	// No key: never a duplicate.
	appendOK(t, s, msg(r, "same"), "")
	appendOK(t, s, msg(r, "same"), "")
	if got := bounds(t, s, r); got.Last != seq+4 {
		t.Errorf("Bounds = %+v, want Last %d", got, seq+4)
	}
	ms, err := s.After(ctxT(t), r, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if got := seqs(ms); !eqSeqs(got, span(1, seq+4)) {
		t.Errorf("After(0) = %v, want %v", got, span(1, seq+4))
	}
}

func testDedupConcurrent(t *testing.T, b Backend) {
	s, more := open(t, b, history.Options{})
	stores := []history.Store{s, more()}
	r := room(t, "ddc")
	const workers = 16
	var mu sync.Mutex
	var got []uint64
	dups := 0
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			m := msg(r, "once")
			m.ID = "id-" + strconv.Itoa(w)
			seq, dup, err := stores[w%2].Append(ctxT(t), m, "bob\x00c9")
			if err != nil {
				t.Errorf("Append: %v", err)
				return
			}
			mu.Lock()
			got = append(got, seq)
			if dup {
				dups++
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, g := range got {
		if g != 1 {
			t.Errorf("seqs %v, want all 1", got)
			break
		}
	}
	if dups != workers-1 {
		t.Errorf("%d duplicates, want %d", dups, workers-1)
	}
	if bd := bounds(t, s, r); bd.Last != 1 {
		t.Errorf("Bounds = %+v, want Last 1: a duplicate consumed a seq", bd)
	}
}

func testConcurrent(t *testing.T, b Backend) {
	s, more := open(t, b, history.Options{})
	stores := []history.Store{s, more()}
	rooms := []string{room(t, "c0"), room(t, "c1"), room(t, "c2")}
	const workers, each = 8, 40
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := make(map[string]map[uint64]string)
	for _, r := range rooms {
		seen[r] = make(map[uint64]string)
	}
	for w := range workers {
		wg.Go(func() {
			st := stores[w%2]
			last := make(map[string]uint64)
			for i := range each {
				r := rooms[(w+i)%len(rooms)]
				if w%2 == 0 {
					r = rooms[0] // half the workers hammer one room
				}
				text := fmt.Sprintf("w%d-%d", w, i)
				seq, dup, err := st.Append(ctxT(t), msg(r, text), text)
				if err != nil || dup {
					t.Errorf("Append: %d, dup %v, %v", seq, dup, err)
					return
				}
				if seq <= last[r] {
					t.Errorf("worker %d: seq %d in %s after %d: not increasing", w, seq, r, last[r])
				}
				last[r] = seq
				mu.Lock()
				if prev, ok := seen[r][seq]; ok {
					t.Errorf("seq %d of %s given to %s and %s", seq, r, prev, text)
				}
				seen[r][seq] = text
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	total := 0
	for _, r := range rooms {
		n := uint64(len(seen[r]))
		total += int(n)
		for seq := uint64(1); seq <= n; seq++ {
			if _, ok := seen[r][seq]; !ok {
				t.Errorf("%s: seq %d missing among %d messages", r, seq, n)
			}
		}
		if bd := bounds(t, stores[1], r); bd != (history.Bounds{First: 1, Last: n}) {
			t.Errorf("Bounds(%s) = %+v, want {1 %d}", r, bd, n)
		}
		// Read it back in pages; each message is the one its Append got.
		var since uint64
		for {
			ms, err := s.After(ctxT(t), r, since, 7)
			if err != nil {
				t.Fatal(err)
			}
			if len(ms) == 0 {
				break
			}
			for _, m := range ms {
				if m.Seq != since+1 || m.Text != seen[r][m.Seq] {
					t.Fatalf("%s: after %d read seq %d %q, want seq %d %q", r, since, m.Seq, m.Text, since+1, seen[r][since+1])
				}
				since = m.Seq
			}
		}
		if since != n {
			t.Errorf("%s: read %d messages, want %d", r, since, n)
		}
	}
	if total != workers*each {
		t.Errorf("%d messages stored, want %d", total, workers*each)
	}
}

func testTrimLen(t *testing.T, b Backend) {
	if !b.Bounded {
		t.Skip("backend keeps everything")
	}
	s, _ := open(t, b, history.Options{MaxLen: 10})
	r := room(t, "tl")
	for i := 1; i <= 25; i++ {
		appendOK(t, s, msg(r, strconv.Itoa(i)), "k"+strconv.Itoa(i))
	}
	bd := bounds(t, s, r)
	if bd != (history.Bounds{First: 16, Last: 25}) {
		t.Fatalf("Bounds = %+v, want {16 25}", bd)
	}
	ms, err := s.After(ctxT(t), r, 3, 100)
	if err != nil {
		t.Fatal(err)
	}
	if got := seqs(ms); !eqSeqs(got, span(16, 25)) {
		t.Errorf("After(3) = %v, want 16..25 (the caller sees the gap as first seq > since+1)", got)
	}
	if ms, err := s.Before(ctxT(t), r, 18, 10); err != nil || !eqSeqs(seqs(ms), span(16, 17)) {
		t.Errorf("Before(18) = %v, %v; want [16 17]", seqs(ms), err)
	}
	for since, want := range map[uint64]bool{0: false, 14: false, 15: true, 20: true, 25: true, 26: false} {
		if got := bd.Covers(since); got != want {
			t.Errorf("%+v.Covers(%d) = %v, want %v", bd, since, got, want)
		}
	}
	// A retry of a message still held is a duplicate; the seq counter goes on.
	seq, dup, err := s.Append(ctxT(t), msg(r, "20"), "k20")
	if err != nil || !dup || seq != 20 {
		t.Errorf("retry of a held message = %d, dup %v, %v; want 20, dup", seq, dup, err)
	}
	if got := appendOK(t, s, msg(r, "26"), ""); got != 26 {
		t.Errorf("next seq %d, want 26", got)
	}
}

func testTrimAge(t *testing.T, b Backend) {
	if !b.Bounded {
		t.Skip("backend keeps everything")
	}
	s, _ := open(t, b, history.Options{MaxAge: time.Hour})
	r := room(t, "ta")
	old := time.Now().Add(-2 * time.Hour).UnixMilli()
	for i := 1; i <= 5; i++ {
		m := msg(r, strconv.Itoa(i))
		m.TS = old + int64(i)
		appendOK(t, s, m, "")
	}
	// The newest message is kept even when it is old.
	if bd := bounds(t, s, r); bd.Last != 5 || bd.First != 5 {
		t.Errorf("Bounds after old appends = %+v, want {5 5}", bd)
	}
	appendOK(t, s, msg(r, "6"), "")
	appendOK(t, s, msg(r, "7"), "")
	if bd := bounds(t, s, r); bd != (history.Bounds{First: 6, Last: 7}) {
		t.Errorf("Bounds = %+v, want {6 7}", bd)
	}
	if ms, err := s.Latest(ctxT(t), r, 10); err != nil || !eqSeqs(seqs(ms), span(6, 7)) {
		t.Errorf("Latest = %v, %v; want [6 7]", seqs(ms), err)
	}
}

func testLastSeqs(t *testing.T, b Backend) {
	s, _ := open(t, b, history.Options{})
	busy, quiet, once := room(t, "lb"), room(t, "lq"), room(t, "lo")
	for i := range 3 {
		appendOK(t, s, msg(busy, strconv.Itoa(i)), "")
	}
	appendOK(t, s, msg(once, "x"), "")
	got, err := history.LastSeqs(ctxT(t), s, []string{busy, quiet, once, busy})
	if err != nil || !slices.Equal(got, []uint64{3, 0, 1, 3}) {
		t.Errorf("LastSeqs = %v, %v; want [3 0 1 3]", got, err)
	}
	if got, err := history.LastSeqs(ctxT(t), s, nil); err != nil || len(got) != 0 {
		t.Errorf("LastSeqs of no room = %v, %v", got, err)
	}
	if _, err := history.LastSeqs(ctxT(t), s, []string{busy, "bad room"}); !errors.Is(err, history.ErrInvalid) {
		t.Errorf("LastSeqs with an invalid room: %v, want ErrInvalid", err)
	}
}

func testCanceled(t *testing.T, b Backend) {
	s, _ := open(t, b, history.Options{})
	r := room(t, "cx")
	appendOK(t, s, msg(r, "1"), "")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	seq, _, err := s.Append(ctx, msg(r, "2"), "")
	if err == nil || seq != 0 || !errors.Is(err, context.Canceled) {
		t.Errorf("Append with a canceled context = %d, %v; want 0 and context.Canceled", seq, err)
	}
	if _, err := s.After(ctx, r, 0, 10); err == nil {
		t.Error("After with a canceled context succeeded")
	}
	if got := appendOK(t, s, msg(r, "3"), ""); got != 2 {
		t.Errorf("next seq %d, want 2", got)
	}
}

func testClosed(t *testing.T, b Backend) {
	s, _ := open(t, b, history.Options{})
	r := room(t, "cl")
	appendOK(t, s, msg(r, "1"), "")
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx := ctxT(t)
	if seq, _, err := s.Append(ctx, msg(r, "2"), ""); !errors.Is(err, history.ErrClosed) || seq != 0 {
		t.Errorf("Append after Close = %d, %v; want ErrClosed", seq, err)
	}
	if _, err := s.After(ctx, r, 0, 10); !errors.Is(err, history.ErrClosed) {
		t.Errorf("After after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Latest(ctx, r, 10); !errors.Is(err, history.ErrClosed) {
		t.Errorf("Latest after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Before(ctx, r, 10, 10); !errors.Is(err, history.ErrClosed) {
		t.Errorf("Before after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Bounds(ctx, r); !errors.Is(err, history.ErrClosed) {
		t.Errorf("Bounds after Close = %v, want ErrClosed", err)
	}
}

func testLeak(t *testing.T, b Backend) {
	check := brokertest.GoroutineCheck(t)
	o := b.New(t, history.Options{})
	s := o()
	r := room(t, "lk")
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() { appendOK(t, s, msg(r, strconv.Itoa(i)), "") })
	}
	wg.Wait()
	if _, err := s.Latest(ctxT(t), r, 5); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check()
}
