// Package wsframe parses WebSocket frames (RFC 6455, section 5) from the
// bytes read off a socket, in place and with no allocation per frame. The
// server reads its clients' frames with it, the load generator the
// server's.
package wsframe

import (
	"encoding/binary"
	"sync"
	"unicode/utf8"
)

// Opcodes (RFC 6455, section 5.2).
const (
	OpContinuation = 0x0
	OpText         = 0x1
	OpBinary       = 0x2
	OpClose        = 0x8
	OpPing         = 0x9
	OpPong         = 0xA
)

// Close codes (RFC 6455, section 7.4.1): those a breach of the protocol is
// answered with, the code of a close frame that carries none, and those a
// server closes with. CloseAbnormal (1006) is never sent in a close frame:
// it names a connection that ended without one.
const (
	CloseNormal          = 1000
	CloseGoingAway       = 1001
	CloseProtocolError   = 1002
	CloseNoStatus        = 1005
	CloseAbnormal        = 1006
	CloseInvalidPayload  = 1007
	ClosePolicyViolation = 1008
	CloseMessageTooBig   = 1009
	CloseTryAgainLater   = 1013
)

const (
	maxControlPayload = 125
	maxHeader         = 14 // 2 bytes, 8 of extended length, 4 of mask
	bufSize           = 8192
	minRead           = 1024    // less room at the buffer's end: move what waits to its start
	lengthRefused     = 1 << 62 // a length at or above it is refused
	finBit            = 0x80
	rsvBits           = 0x70
	maskBit           = 0x80
)

// Frame is one frame the peer sent, its payload unmasked; a fragmented
// message comes whole, as one frame of its first fragment's opcode. Payload
// points into the reader's buffer and is valid until the next call of Next.
type Frame struct {
	Op      int
	Payload []byte
}

// An Error is the peer's breach of the protocol: the connection is to be
// closed with Code.
type Error struct {
	Code   int
	Reason string
}

func (e *Error) Error() string { return e.Reason }

// The breaches Next and CloseCode report.
var (
	ErrNotMasked   = &Error{CloseProtocolError, "frame not masked"}
	ErrMasked      = &Error{CloseProtocolError, "frame masked"}
	ErrRSV         = &Error{CloseProtocolError, "reserved bits set"}
	ErrOpcode      = &Error{CloseProtocolError, "unknown opcode"}
	ErrControl     = &Error{CloseProtocolError, "control frame fragmented or over 125 bytes"}
	ErrLength      = &Error{CloseProtocolError, "invalid payload length"}
	ErrTooBig      = &Error{CloseMessageTooBig, "message too big"}
	ErrContinue    = &Error{CloseProtocolError, "continuation frame without a message"}
	ErrInterleaved = &Error{CloseProtocolError, "data frame inside a fragmented message"}
	ErrCloseLen    = &Error{CloseProtocolError, "close frame of one byte"}
	ErrCloseCode   = &Error{CloseProtocolError, "invalid close code"}
	ErrCloseUTF8   = &Error{CloseInvalidPayload, "close reason not UTF-8"}
)

// Reader parses the frames one peer sends. Its read buffer is taken from a
// pool when bytes are to be read (Space) and given back once all are parsed
// (Release), so an idle connection holds none; a frame longer than the
// buffer gets one of its own. Messages over Limit bytes are refused from
// their header, before their payload is read.
type Reader struct {
	// Limit is the largest message, in bytes, fragments put together.
	Limit int64
	// FromClient tells the peer is a client, whose frames must be masked;
	// a server's must not be.
	FromClient bool

	bp   *[]byte // the read buffer, nil when none is held
	r, w int     // (*bp)[r:w] is read but not parsed

	// The fragmented message being put together: its opcode (0: none) and
	// its payload so far.
	fragOp int
	frag   []byte
}

var bufs = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// Space returns where the next read goes: the free end of the read buffer,
// which it takes from the pool when none is held, after making room (the
// unparsed bytes move to its start when little room is left after them; a buffer too small for the frame they
// begin is replaced by one that fits it whole). Commit the bytes read.
func (rd *Reader) Space() []byte {
	if rd.bp == nil {
		rd.bp = bufs.Get().(*[]byte)
		rd.r, rd.w = 0, 0
	}
	buf := *rd.bp
	if need := rd.need(); need > len(buf) {
		nb := make([]byte, need)
		w := copy(nb, buf[rd.r:rd.w])
		rd.put()
		rd.bp, rd.w = &nb, w
		buf = nb
	} else if rd.r > 0 && (len(buf)-rd.w < minRead || rd.r+need > len(buf)) {
		rd.w = copy(buf, buf[rd.r:rd.w])
		rd.r = 0
	}
	return buf[rd.w:]
}

// Commit records that n bytes were read into what Space returned.
func (rd *Reader) Commit(n int) { rd.w += n }

// Release gives the read buffer back when it holds nothing unparsed.
func (rd *Reader) Release() {
	if rd.bp != nil && rd.r == rd.w {
		rd.put()
	}
}

// Reset drops the read buffer and any partial message.
func (rd *Reader) Reset() {
	if rd.bp != nil {
		rd.put()
	}
	rd.fragOp, rd.frag = 0, nil
}

// put gives the read buffer back (or drops it when it was grown).
func (rd *Reader) put() {
	if cap(*rd.bp) == bufSize {
		bufs.Put(rd.bp)
	}
	rd.bp, rd.r, rd.w = nil, 0, 0
}

// need is how many bytes the frame the unparsed bytes begin takes whole, as
// far as its header tells (at most the longest header before it is whole).
func (rd *Reader) need() int {
	hdr, n, ok := frameLen((*rd.bp)[rd.r:rd.w])
	if !ok || n > rd.Limit {
		return maxHeader // a refused length is not read
	}
	return hdr + int(n)
}

// frameLen parses the length of the frame b begins: its header's length
// and its payload's; ok is false when b holds less than the header.
func frameLen(b []byte) (hdr int, n int64, ok bool) {
	if len(b) < 2 {
		return 0, 0, false
	}
	hdr, n = 2, int64(b[1]&0x7f)
	switch n {
	case 126:
		if len(b) < 4 {
			return 0, 0, false
		}
		hdr, n = 4, int64(binary.BigEndian.Uint16(b[2:]))
	case 127:
		if len(b) < 10 {
			return 0, 0, false
		}
		u := binary.BigEndian.Uint64(b[2:])
		if u >= lengthRefused {
			u = lengthRefused // invalid (bit 63 set) or absurd: refused by Next
		}
		hdr, n = 10, int64(u)
	}
	if b[1]&maskBit != 0 {
		hdr += 4
	}
	return hdr, n, true
}

// Next returns the next whole frame of the buffer, a fragmented message's
// last fragment returning the message whole; ok is false while the buffer
// holds none. An error is a breach of the protocol: the connection must be
// closed with its code.
func (rd *Reader) Next() (f Frame, ok bool, err error) {
	for {
		if rd.bp == nil {
			return f, false, nil
		}
		b := (*rd.bp)[rd.r:rd.w]
		hdr, n, whole := frameLen(b)
		if !whole {
			return f, false, nil
		}
		b0, b1 := b[0], b[1]
		fin, op := b0&finBit != 0, int(b0&0x0f)
		masked := b1&maskBit != 0
		switch {
		case b0&rsvBits != 0:
			return f, false, ErrRSV
		case rd.FromClient && !masked:
			return f, false, ErrNotMasked
		case !rd.FromClient && masked:
			return f, false, ErrMasked
		case n >= lengthRefused:
			return f, false, ErrLength
		}
		switch op {
		case OpClose, OpPing, OpPong:
			if !fin || n > maxControlPayload {
				return f, false, ErrControl
			}
		case OpText, OpBinary:
			if rd.fragOp != 0 {
				return f, false, ErrInterleaved
			}
			if n > rd.Limit {
				return f, false, ErrTooBig
			}
		case OpContinuation:
			if rd.fragOp == 0 {
				return f, false, ErrContinue
			}
			if int64(len(rd.frag))+n > rd.Limit {
				return f, false, ErrTooBig
			}
		default:
			return f, false, ErrOpcode
		}
		if int64(len(b)-hdr) < n {
			return f, false, nil
		}
		payload := b[hdr : hdr+int(n)]
		if masked {
			maskBytes(b[hdr-4:hdr], payload)
		}
		rd.r += hdr + int(n)

		switch {
		case op == OpContinuation:
			rd.frag = append(rd.frag, payload...)
			if !fin {
				continue
			}
			f = Frame{Op: rd.fragOp, Payload: rd.frag}
			rd.fragOp, rd.frag = 0, nil
			return f, true, nil
		case (op == OpText || op == OpBinary) && !fin:
			rd.fragOp, rd.frag = op, append([]byte(nil), payload...)
			continue
		}
		return Frame{Op: op, Payload: payload}, true, nil
	}
}

// maskBytes applies the 4-byte mask key to b (RFC 6455, section 5.3),
// eight bytes at a time.
func maskBytes(key []byte, b []byte) {
	k := binary.LittleEndian.Uint32(key)
	k8 := uint64(k) | uint64(k)<<32
	i := 0
	for ; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], binary.LittleEndian.Uint64(b[i:])^k8)
	}
	for ; i < len(b); i++ {
		b[i] ^= key[i&3]
	}
}

// CloseCode parses a close frame's payload: the peer's code (CloseNoStatus
// when it sent none) or a breach of the protocol.
func CloseCode(p []byte) (int, error) {
	switch len(p) {
	case 0:
		return CloseNoStatus, nil
	case 1:
		return 0, ErrCloseLen
	}
	code := int(binary.BigEndian.Uint16(p))
	if !validCloseCode(code) {
		return 0, ErrCloseCode
	}
	if !utf8.Valid(p[2:]) {
		return 0, ErrCloseUTF8
	}
	return code, nil
}

// validCloseCode reports whether a peer may send code (RFC 6455, section
// 7.4): the defined codes a close frame may carry, and 3000–4999.
func validCloseCode(code int) bool {
	switch code {
	case 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011:
		return true
	}
	return code >= 3000 && code <= 4999
}

// AppendHeader appends the header of a final, unmasked frame (as a server
// sends) with opcode op and an n-byte payload.
func AppendHeader(b []byte, op, n int) []byte { return appendHeader(b, true, op, n, false) }

// AppendFrame appends a frame with opcode op and payload to b, final when
// fin is set and masked with key when key (4 bytes) is not nil, as a client
// sends.
func AppendFrame(b []byte, fin bool, op int, payload, key []byte) []byte {
	b = appendHeader(b, fin, op, len(payload), key != nil)
	if key == nil {
		return append(b, payload...)
	}
	b = append(b, key[:4]...)
	start := len(b)
	b = append(b, payload...)
	maskBytes(key, b[start:])
	return b
}

// appendHeader appends a frame's first bytes: the opcode and flags, and
// the payload's length (the mask key, when masked, follows).
func appendHeader(b []byte, fin bool, op, n int, masked bool) []byte {
	b0 := byte(op)
	if fin {
		b0 |= finBit
	}
	var b1 byte
	if masked {
		b1 = maskBit
	}
	switch {
	case n < 126:
		return append(b, b0, b1|byte(n))
	case n <= 0xFFFF:
		return binary.BigEndian.AppendUint16(append(b, b0, b1|126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, b0, b1|127), uint64(n))
	}
}
