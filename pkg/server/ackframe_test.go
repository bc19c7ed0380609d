package server

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"

	"github.com/livechat/livechat/internal/engine"
	"github.com/livechat/livechat/pkg/protocol"
)

// TestAckFrame: an ack's frame is the text frame of encoding/json's ack.
func TestAckFrame(t *testing.T) {
	for _, a := range []protocol.Ack{
		{Type: protocol.TypeAck, CID: "c1", ID: "s1-x-1", Room: "general", TS: 5},
		{Type: protocol.TypeAck, CID: `a "quoted" <cid>`, ID: "i", Room: "r", TS: -1, Seq: 12, Dup: true},
	} {
		want, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		if f := ackFrame(&a); !bytes.Equal(f.AppendTo(nil), engine.TextFrame(want).AppendTo(nil)) {
			t.Errorf("ack frame differs from the text frame of %s", want)
		}
	}
}

// TestAckFrameAllocs: an ack's frame is one allocation, the frame and its
// bytes together.
func TestAckFrameAllocs(t *testing.T) {
	a := protocol.Ack{Type: protocol.TypeAck, CID: "c-123456", ID: "s1000-lx3k2-1a2b3c", Room: "room-42", TS: math.MinInt64, Seq: math.MaxUint64, Dup: true}
	if n := testing.AllocsPerRun(100, func() { _ = ackFrame(&a) }); n != 1 {
		t.Errorf("ackFrame: %v allocations, want 1", n)
	}
}
