package engine

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/livechat/livechat/pkg/wsframe"
)

// TestTextFrameHeader checks the three length encodings of RFC 6455.
func TestTextFrameHeader(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 0xFFFF, 0x10000, 70000} {
		payload := bytes.Repeat([]byte("x"), n)
		f := TextFrame(payload)
		var want []byte
		switch {
		case n < 126:
			want = []byte{0x81, byte(n)}
		case n <= 0xFFFF:
			want = []byte{0x81, 126, byte(n >> 8), byte(n)}
		default:
			want = []byte{0x81, 127, 0, 0, 0, 0, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
		}
		if !bytes.Equal(f.buf[:len(want)], want) || !bytes.Equal(f.buf[len(want):], payload) || f.n != 1 || f.Len() != len(want)+n {
			t.Fatalf("len %d: header % x, want % x", n, f.buf[:min(len(f.buf), 10)], want)
		}
	}
	batch := TextFrames([][]byte{[]byte("a"), bytes.Repeat([]byte("b"), 200)})
	if batch.n != 2 || len(batch.buf) != 2+1+4+200 {
		t.Fatalf("batch n=%d len=%d", batch.n, len(batch.buf))
	}
	if f := UncountedTextFrame([]byte("hb")); f.n != 0 || string(f.buf) != "\x81\x02hb" {
		t.Fatalf("uncounted frame n=%d % x", f.n, f.buf)
	}
}

// TestBuildTextFrame: a frame built in place is the frame TextFrame makes
// of the same payload, whether it stays within its size, fills it, or
// grows past it into a longer length encoding.
func TestBuildTextFrame(t *testing.T) {
	for _, tc := range []struct{ size, n int }{
		{0, 0}, {10, 5}, {125, 125}, {100, 126}, {125, 300}, {200, 70000}, {70000, 70000}, {70000, 10},
	} {
		payload := []byte(strings.Repeat("p", tc.n))
		f := BuildTextFrame(tc.size, func(b []byte) []byte { return append(b, payload...) })
		if want := TextFrame(payload); !bytes.Equal(f.buf, want.buf) || f.n != 1 || f.tail != nil {
			t.Errorf("size %d, payload %d: % x…, want % x…", tc.size, tc.n, f.buf[:min(12, len(f.buf))], want.buf[:min(12, len(want.buf))])
		}
	}
}

// TestFrameAllocs: a text frame is one allocation, the frame and its bytes
// together, in a size class it fills; a shared frame points to its payload.
func TestFrameAllocs(t *testing.T) {
	payload := bytes.Repeat([]byte("x"), 300)
	if n := testing.AllocsPerRun(100, func() { _ = TextFrame(payload) }); n != 1 {
		t.Errorf("TextFrame: %v allocations, want 1", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = SharedTextFrame(payload) }); n != 1 {
		t.Errorf("SharedTextFrame: %v allocations, want 1", n)
	}
	if n := testing.AllocsPerRun(100, func() {
		_ = BuildTextFrame(200, func(b []byte) []byte { return append(b, payload[:150]...) })
	}); n != 1 {
		t.Errorf("BuildTextFrame: %v allocations, want 1", n)
	}
	if f := SharedTextFrame(payload); &f.tail[0] != &payload[0] || f.Len() != len(TextFrame(payload).buf) {
		t.Error("SharedTextFrame copied its payload or framed it wrong")
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

// TestClosePayload: a close frame carries the code and the reason, and
// nothing when answering a close without a code.
func TestClosePayload(t *testing.T) {
	if p := closePayload(CloseGoingAway, "bye"); string(p) != "\x03\xe9bye" {
		t.Errorf("close payload % x", p)
	}
	if p := closePayload(wsframe.CloseNoStatus, ""); len(p) != 0 {
		t.Errorf("close payload for no status: % x", p)
	}
}

// benchMessage is a room message frame of about 250 bytes.
func benchMessage() []byte {
	return []byte(`{"type":"message","room":"bench","id":"1000-mwys7n6y-2a","from":"bench","text":"` +
		strings.Repeat("x", 120) + `","ts":1764233880764,"server":"1000","seq":42}`)
}

// BenchmarkTextFrame is the once-per-server encoding of a room message:
// header and payload copied into one buffer that every recipient shares.
func BenchmarkTextFrame(b *testing.B) {
	data := benchMessage()
	b.ReportAllocs()
	for b.Loop() {
		_ = TextFrame(data)
	}
}
