package server

import (
	"github.com/livechat/livechat/pkg/protocol"
	"github.com/livechat/livechat/pkg/wsframe"
)

// ackFrame encodes an ack directly as a WebSocket text frame: one
// allocation, no intermediate payload.
func ackFrame(a *protocol.Ack) *frame {
	// Header is at most 4 bytes for an ack (< 64 KiB); encode the payload
	// after room for it, then move the header in front.
	f := newFrame(4 + protocol.AckSizeHint(a))
	b := protocol.AppendAck(append(f.buf, 0, 0, 0, 0), a)
	n := len(b) - 4
	var h [4]byte
	hdr := wsframe.AppendHeader(h[:0], wsframe.OpText, n)
	off := 4 - len(hdr)
	copy(b[off:], hdr)
	f.buf = b[off:]
	return f
}
