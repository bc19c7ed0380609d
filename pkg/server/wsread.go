package server

import (
	"encoding/binary"
	"sync"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// WebSocket opcodes (RFC 6455, section 5.2) besides writer.go's.
const (
	opContinuation = 0
	opBinary       = 2
)

// wsFrame is one frame a client sent, its payload unmasked. payload points
// into the reader's buffer and is valid until the next call of next.
type wsFrame struct {
	fin     bool
	op      int
	payload []byte
}

// A wsError is a client's breach of the WebSocket protocol: the connection
// is closed with code.
type wsError struct {
	code   int
	reason string
}

func (e *wsError) Error() string { return e.reason }

var (
	errNotMasked   = &wsError{websocket.CloseProtocolError, "frame not masked"}
	errRSV         = &wsError{websocket.CloseProtocolError, "reserved bits set"}
	errOpcode      = &wsError{websocket.CloseProtocolError, "unknown opcode"}
	errControl     = &wsError{websocket.CloseProtocolError, "control frame fragmented or over 125 bytes"}
	errLength      = &wsError{websocket.CloseProtocolError, "invalid payload length"}
	errTooBig      = &wsError{websocket.CloseMessageTooBig, "message too big"}
	errContinue    = &wsError{websocket.CloseProtocolError, "continuation frame without a message"}
	errInterleaved = &wsError{websocket.CloseProtocolError, "data frame inside a fragmented message"}
	errCloseLen    = &wsError{websocket.CloseProtocolError, "close frame of one byte"}
	errCloseCode   = &wsError{websocket.CloseProtocolError, "invalid close code"}
	errCloseUTF8   = &wsError{websocket.CloseInvalidFramePayloadData, "close reason not UTF-8"}
)

// wsReader parses the frames a client sends (RFC 6455, section 5) from the
// bytes read off its socket, in place: a frame's payload is unmasked in the
// read buffer, which is taken from a pool when bytes arrive and given back
// when all of them are parsed, so an idle connection holds none. Fragmented
// messages are put together in a buffer of their own. Messages over limit
// bytes are refused from their header, before their payload is read.
type wsReader struct {
	bp    *[]byte // the read buffer, nil when none is held
	r, w  int     // (*bp)[r:w] is read but not parsed
	limit int64

	// The fragmented message being put together: its opcode (0: none) and
	// its payload so far.
	fragOp int
	frag   []byte

	// drained is set by a read that did not fill the buffer (readRaw).
	drained bool
}

// wsReadBufSize is the size of the pooled read buffers: one read takes
// every frame a busy client sent meanwhile.
const wsReadBufSize = 4096

var wsReadBufs = sync.Pool{New: func() any { b := make([]byte, wsReadBufSize); return &b }}

// space returns the free end of the read buffer, taking one from the pool
// when none is held, making room first: the unparsed bytes move to its
// start, and a buffer too small for the frame they begin is replaced by
// one that fits it whole.
func (rd *wsReader) space() []byte {
	if rd.bp == nil {
		rd.bp = wsReadBufs.Get().(*[]byte)
		rd.r, rd.w = 0, 0
	}
	buf := *rd.bp
	if need := rd.need(); need > len(buf) {
		nb := make([]byte, need)
		w := copy(nb, buf[rd.r:rd.w])
		rd.put()
		rd.bp, rd.w = &nb, w
		buf = nb
	} else if rd.r > 0 && (rd.w == len(buf) || rd.r+need > len(buf)) {
		rd.w = copy(buf, buf[rd.r:rd.w])
		rd.r = 0
	}
	return buf[rd.w:]
}

// need is how many bytes the frame that the unparsed bytes begin takes
// whole, as far as its header tells (at most the largest header before it
// is complete).
func (rd *wsReader) need() int {
	b := (*rd.bp)[rd.r:rd.w]
	hdr, n, ok := frameLen(b)
	if !ok || n > rd.limit {
		return maxFrameHeader // a refused length is not read
	}
	return hdr + int(n)
}

// release gives the read buffer back when it holds nothing unparsed.
func (rd *wsReader) release() {
	if rd.bp != nil && rd.r == rd.w {
		rd.put()
	}
}

// put gives the read buffer back (or drops it when it was grown).
func (rd *wsReader) put() {
	if cap(*rd.bp) == wsReadBufSize {
		wsReadBufs.Put(rd.bp)
	}
	rd.bp, rd.r, rd.w = nil, 0, 0
}

// maxFrameHeader is the longest frame header a client sends: 2 bytes,
// 8 of extended length, 4 of mask.
const maxFrameHeader = 14

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
		if u > 1<<62 {
			u = 1 << 62 // invalid (bit 63 set) or absurd: refused by next
		}
		hdr, n = 10, int64(u)
	}
	if b[1]&0x80 != 0 {
		hdr += 4
	}
	return hdr, n, true
}

// next returns the next whole frame of the buffer; ok is false when the
// buffer holds none yet. An error is a breach of the protocol: the
// connection must be closed with its code.
func (rd *wsReader) next() (f wsFrame, ok bool, err error) {
	if rd.bp == nil {
		return f, false, nil
	}
	b := (*rd.bp)[rd.r:rd.w]
	hdr, n, ok := frameLen(b)
	if !ok {
		return f, false, nil
	}
	b0, b1 := b[0], b[1]
	f.fin, f.op = b0&0x80 != 0, int(b0&0x0f)
	switch {
	case b0&0x70 != 0:
		return f, false, errRSV
	case b1&0x80 == 0:
		return f, false, errNotMasked
	case n >= 1<<62:
		return f, false, errLength
	}
	switch f.op {
	case opClose, opPing, opPong:
		if !f.fin || n > 125 {
			return f, false, errControl
		}
	case opText, opBinary:
		if rd.fragOp != 0 {
			return f, false, errInterleaved
		}
		if n > rd.limit {
			return f, false, errTooBig
		}
	case opContinuation:
		if rd.fragOp == 0 {
			return f, false, errContinue
		}
		if int64(len(rd.frag))+n > rd.limit {
			return f, false, errTooBig
		}
	default:
		return f, false, errOpcode
	}
	if int64(len(b)-hdr) < n {
		return f, false, nil
	}
	f.payload = b[hdr : hdr+int(n)]
	maskBytes(b[hdr-4:hdr], f.payload)
	rd.r += hdr + int(n)

	// Put fragments together; a message's last one returns it whole.
	switch {
	case f.op == opContinuation:
		rd.frag = append(rd.frag, f.payload...)
		if !f.fin {
			return rd.next()
		}
		f.op, f.payload = rd.fragOp, rd.frag
		rd.fragOp, rd.frag = 0, nil
	case (f.op == opText || f.op == opBinary) && !f.fin:
		rd.fragOp, rd.frag = f.op, append([]byte(nil), f.payload...)
		return rd.next()
	}
	return f, true, nil
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

// closeFrame parses a close frame's payload: the peer's code
// (CloseNoStatusReceived when it sent none) or a breach of the protocol.
func closeFrame(p []byte) (int, error) {
	switch {
	case len(p) == 0:
		return websocket.CloseNoStatusReceived, nil
	case len(p) == 1:
		return 0, errCloseLen
	}
	code := int(binary.BigEndian.Uint16(p))
	if !validCloseCode(code) {
		return 0, errCloseCode
	}
	if !utf8.Valid(p[2:]) {
		return 0, errCloseUTF8
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
