package engine

import "github.com/livechat/livechat/pkg/wsframe"

const (
	maxHeader  = 10  // FIN/opcode byte, 127, 8-byte length
	maxControl = 125 // payload bound of a control frame
)

// A Frame is one or more encoded WebSocket frames, headers included, ready
// for the socket. It is never modified once made, so one Frame may sit in
// many connections' queues at once (a room's fan-out queues one Frame to
// every member). Make it with TextFrame, SharedTextFrame, TextFrames,
// UncountedTextFrame or BuildTextFrame.
type Frame struct {
	buf  []byte // whole frames, or a header whose payload is tail
	tail []byte // the payload after buf's header, shared, not copied (SharedTextFrame)
	// n is how many WebSocket frames buf and tail hold (a join's replay
	// carries many), as Conn.FramesOut counts them: 0 for an uncounted one.
	n int
}

// Len is the frame's size on the wire, headers included.
func (f *Frame) Len() int { return len(f.buf) + len(f.tail) }

// appendVec appends f's buffers to vec.
func (f *Frame) appendVec(vec [][]byte) [][]byte {
	vec = append(vec, f.buf)
	if len(f.tail) > 0 {
		vec = append(vec, f.tail)
	}
	return vec
}

// parts is how many buffers appendVec appends for f.
func (f *Frame) parts() int {
	if len(f.tail) > 0 {
		return 2
	}
	return 1
}

// SharedTextFrame frames payload as one text frame without copying it: the
// frame (one small allocation with its header) points to payload, which
// must not change afterwards. A room's fan-out frames what the broker
// delivered this way.
func SharedTextFrame(payload []byte) *Frame {
	p := new(struct {
		f Frame
		h [maxHeader]byte
	})
	p.f.buf, p.f.tail, p.f.n = wsframe.AppendHeader(p.h[:0], wsframe.OpText, len(payload)), payload, 1
	return &p.f
}

// TextFrame encodes a copy of payload as one text frame: one allocation up
// to about a kilobyte (see newFrame).
func TextFrame(payload []byte) *Frame {
	f := newFrame(maxHeader + len(payload))
	f.buf = append(wsframe.AppendHeader(f.buf, wsframe.OpText, len(payload)), payload...)
	return f
}

// UncountedTextFrame is TextFrame for a frame that Conn.FramesOut does not
// count (a heartbeat, counted by its sender on its own).
func UncountedTextFrame(payload []byte) *Frame {
	f := TextFrame(payload)
	f.n = 0
	return f
}

// BuildTextFrame encodes one text frame whose payload fill appends to the
// slice it is given, with no intermediate copy: one allocation when the
// payload stays within size bytes (it may grow past them, at the cost of a
// copy). fill must not keep the slice.
func BuildTextFrame(size int, fill func(b []byte) []byte) *Frame {
	// The header goes in front of the payload once its length is known:
	// room is left for the header of a size-byte payload.
	room := headerLen(size)
	f := newFrame(room + size)
	b := fill(f.buf[:room])
	n := len(b) - room
	if h := headerLen(n); h > room {
		// Grown past size into a longer length encoding: move the payload.
		b = append(b, make([]byte, h-room)...)
		copy(b[h:], b[room:room+n])
		room = h
	}
	var h [maxHeader]byte
	hdr := wsframe.AppendHeader(h[:0], wsframe.OpText, n)
	off := room - len(hdr)
	copy(b[off:], hdr)
	f.buf = b[off:]
	return f
}

// headerLen is the length of a server frame's header with an n-byte
// payload.
func headerLen(n int) int {
	switch {
	case n < 126:
		return 2
	case n <= 0xFFFF:
		return 4
	default:
		return 10
	}
}

// newFrame returns a frame of one WebSocket frame whose buf is empty with
// room for size bytes. Up to about a kilobyte the frame and its bytes are
// one allocation, whose array with the frame's 56 bytes fills one of the
// allocator's size classes (256, 288, 352, 416, 512, 640 or 1,024 bytes):
// the hot path's messages and acks.
func newFrame(size int) *Frame {
	var f *Frame
	switch {
	case size <= 200:
		f = framed(func(a *[200]byte) []byte { return a[:0] })
	case size <= 232:
		f = framed(func(a *[232]byte) []byte { return a[:0] })
	case size <= 296:
		f = framed(func(a *[296]byte) []byte { return a[:0] })
	case size <= 360:
		f = framed(func(a *[360]byte) []byte { return a[:0] })
	case size <= 456:
		f = framed(func(a *[456]byte) []byte { return a[:0] })
	case size <= 584:
		f = framed(func(a *[584]byte) []byte { return a[:0] })
	case size <= 968:
		f = framed(func(a *[968]byte) []byte { return a[:0] })
	default:
		f = &Frame{buf: make([]byte, 0, size)}
	}
	f.n = 1
	return f
}

// framed allocates a frame with its bytes, an array A, in one object; empty
// gives A as an empty slice.
func framed[A any](empty func(*A) []byte) *Frame {
	p := new(struct {
		f Frame
		b A
	})
	p.f.buf = empty(&p.b)
	return &p.f
}

// TextFrames encodes each payload as a text frame, all in one Frame that
// takes one queue slot (a join's replay).
func TextFrames(payloads [][]byte) *Frame {
	size := 0
	for _, p := range payloads {
		size += maxHeader + len(p)
	}
	b := make([]byte, 0, size)
	for _, p := range payloads {
		b = append(wsframe.AppendHeader(b, wsframe.OpText, len(p)), p...)
	}
	return &Frame{buf: b, n: len(payloads)}
}

// AppendTo appends f's bytes, as they go on the wire, to b.
func (f *Frame) AppendTo(b []byte) []byte { return append(append(b, f.buf...), f.tail...) }
