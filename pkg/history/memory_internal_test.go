package history

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/livechat/livechat/pkg/protocol"
)

// TestMemoryDedupHashCollision forces two dedup keys onto one index hash:
// the second key's message is stored as a new one (never answered with the
// first key's message), the first key still deduplicates, and trimming the
// first message frees the index entry.
func TestMemoryDedupHashCollision(t *testing.T) {
	ctx := context.Background()
	s := NewMemory(Options{MaxLen: 2})
	msg := func(text string) *protocol.Message {
		return &protocol.Message{Room: "r", ID: "id-" + text, From: "ann", Text: text, Server: "1000"}
	}
	if seq, dup, err := s.Append(ctx, msg("one"), "ann\x00a"); err != nil || dup || seq != 1 {
		t.Fatalf("first append = %d, %v, %v", seq, dup, err)
	}
	r := s.rooms["r"]
	r.dedup[s.hashKey("ann\x00b")] = 1 // "b" collides with "a"
	m := msg("two")
	if seq, dup, err := s.Append(ctx, m, "ann\x00b"); err != nil || dup || seq != 2 || m.Text != "two" {
		t.Fatalf("colliding key: append = %d, %v, %v, text %q; want a new message 2", seq, dup, err, m.Text)
	}
	m = msg("again")
	if seq, dup, err := s.Append(ctx, m, "ann\x00a"); err != nil || !dup || seq != 1 || m.Text != "one" || m.ID != "id-one" {
		t.Fatalf("first key again = %d, %v, %v, %+v; want the duplicate of 1", seq, dup, err, m)
	}
	if got := r.dedup[s.hashKey("ann\x00b")]; got != 1 {
		t.Fatalf("the colliding key took over the index entry: %d", got)
	}
	if _, _, err := s.Append(ctx, msg("three"), ""); err != nil { // trims 1
		t.Fatal(err)
	}
	if _, ok := r.dedup[s.hashKey("ann\x00a")]; ok {
		t.Fatal("index entry of the trimmed message kept")
	}
	got, err := s.After(ctx, "r", 0, 10)
	if err != nil || len(got) != 2 || got[0].Seq != 2 || got[0].Text != "two" || got[0].CID != "" || got[1].Text != "three" {
		t.Fatalf("After = %+v, %v", got, err)
	}
}

// TestMemoryChunks: a room's text lives in chunks that trimming frees, a
// message bigger than a chunk gets its own, and every message reads back
// whole across chunk boundaries.
func TestMemoryChunks(t *testing.T) {
	ctx := context.Background()
	const maxLen = 50
	s := NewMemory(Options{MaxLen: maxLen})
	big := strings.Repeat("b", 2*maxChunk)
	text := func(i int) string {
		if i%97 == 0 {
			return big + strconv.Itoa(i)
		}
		return "message " + strconv.Itoa(i) + strings.Repeat("x", i%300)
	}
	const n = 5000
	for i := range n {
		m := &protocol.Message{Room: "r", ID: "id" + strconv.Itoa(i), From: "ann", Text: text(i), Server: "1"}
		if _, _, err := s.Append(ctx, m, "ann\x00c"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	r := s.rooms["r"]
	held := 0
	for _, c := range r.chunks {
		held += cap(c)
	}
	// 50 messages of at most ~65 KiB; the chunks hold them with at most
	// one chunk of slack before the oldest.
	if len(r.chunks) > maxLen+2 || held > maxLen*(len(big)+400)+2*maxChunk {
		t.Fatalf("%d chunks, %d bytes held for %d messages", len(r.chunks), held, maxLen)
	}
	got, err := s.After(ctx, "r", 0, maxLen)
	if err != nil || len(got) != maxLen {
		t.Fatalf("After = %d messages, %v", len(got), err)
	}
	for k, m := range got {
		i := n - maxLen + k
		if m.Seq != uint64(i+1) || m.Text != text(i) || m.ID != "id"+strconv.Itoa(i) || m.From != "ann" || m.Server != "1" {
			t.Fatalf("message %d read back as seq %d id %q text %.20q", i, m.Seq, m.ID, m.Text)
		}
	}
	// The newest key still deduplicates.
	m := &protocol.Message{Room: "r", From: "ann", Text: "again", Server: "1"}
	if seq, dup, err := s.Append(ctx, m, "ann\x00c"+strconv.Itoa(n-1)); err != nil || !dup || seq != n || m.Text != text(n-1) {
		t.Fatalf("dedup of the newest = %d, %v, %v", seq, dup, err)
	}
}
