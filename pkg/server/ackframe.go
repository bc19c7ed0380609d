package server

import (
	"github.com/livechat/livechat/internal/engine"
	"github.com/livechat/livechat/pkg/protocol"
)

// ackFrame encodes an ack directly as a WebSocket text frame: one
// allocation, no intermediate payload.
func ackFrame(a *protocol.Ack) *engine.Frame {
	return engine.BuildTextFrame(protocol.AckSizeHint(a), func(b []byte) []byte { return protocol.AppendAck(b, a) })
}
