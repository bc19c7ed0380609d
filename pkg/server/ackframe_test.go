package server

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"testing"
	"unsafe"

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
		if f := ackFrame(&a); !bytes.Equal(f.buf, textFrame(want).buf) || f.n != 1 {
			t.Errorf("ack frame differs from textFrame of %s", want)
		}
	}
}

// TestFrameAllocs: an ack and a message's frame are one allocation each,
// the frame and its bytes together, in a size class they fill; a room's
// frame of the broker's data points to that data.
func TestFrameAllocs(t *testing.T) {
	a := protocol.Ack{Type: protocol.TypeAck, CID: "c-123456", ID: "s1000-lx3k2-1a2b3c", Room: "room-42", TS: math.MinInt64, Seq: math.MaxUint64, Dup: true}
	if n := testing.AllocsPerRun(100, func() { _ = ackFrame(&a) }); n != 1 {
		t.Errorf("ackFrame: %v allocations, want 1", n)
	}
	payload := bytes.Repeat([]byte("x"), 300)
	if n := testing.AllocsPerRun(100, func() { _ = textFrame(payload) }); n != 1 {
		t.Errorf("textFrame: %v allocations, want 1", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = sharedFrame(payload) }); n != 1 {
		t.Errorf("sharedFrame: %v allocations, want 1", n)
	}
	if f := sharedFrame(payload); &f.tail[0] != &payload[0] || len(f.buf)+len(f.tail) != len(textFrame(payload).buf) {
		t.Error("sharedFrame copied its payload or framed it wrong")
	}
	for _, n := range []int{1, 200, 201, 232, 233, 296, 360, 456, 584, 968} {
		f := newFrame(n)
		size := unsafe.Sizeof(*f) + uintptr(cap(f.buf))
		if n <= 968 && !slices.Contains([]uintptr{256, 288, 352, 416, 512, 640, 1024}, size) {
			t.Errorf("newFrame(%d): %d bytes, not a size class", n, size)
		}
	}
	for _, n := range []int{0, 1, 200, 201, 456, 457, 968, 969, 5000} {
		if f := newFrame(n); cap(f.buf) < n || len(f.buf) != 0 || f.n != 1 {
			t.Errorf("newFrame(%d): len %d cap %d n %d", n, len(f.buf), cap(f.buf), f.n)
		}
	}
}
