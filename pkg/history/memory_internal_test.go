package history

import (
	"context"
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
