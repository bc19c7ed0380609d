package loadgen

import (
	"net"
	"time"

	"github.com/gorilla/websocket"
	"github.com/livechat/livechat/pkg/wsframe"
)

// headerConn is a connection gorilla dials through that gives gorilla the
// handshake's response and nothing after it: what the server sent after
// the response's header (the welcome frame, often in the same read) is kept
// for the frame reader, which then reads the connection itself.
type headerConn struct {
	net.Conn
	matched int    // bytes of "\r\n\r\n" matched so far
	done    bool   // the header was given whole
	rest    []byte // read past the header
}

// Read implements net.Conn for gorilla's handshake.
func (h *headerConn) Read(p []byte) (int, error) {
	if h.done { // gorilla reads nothing more; if it did, it gets the rest
		if len(h.rest) > 0 {
			n := copy(p, h.rest)
			h.rest = h.rest[n:]
			return n, nil
		}
		return h.Conn.Read(p)
	}
	n, err := h.Conn.Read(p)
	for i, ch := range p[:n] {
		switch ch {
		case "\r\n\r\n"[h.matched]:
			h.matched++
		case '\r':
			h.matched = 1
		default:
			h.matched = 0
		}
		if h.matched == 4 {
			h.done = true
			h.rest = append([]byte(nil), p[i+1:n]...)
			return i + 1, err
		}
	}
	return n, err
}

// maxFrame bounds what the load generator reads as one message.
const maxFrame = 64 << 20

// readFrames is the reader of a connection dialed through a headerConn: it
// parses the server's frames itself (wsframe), without gorilla's reader and
// its allocation per frame, answers pings, and reads the close frame. A
// socket with receive timestamps is read inside one raw read for the
// connection's life (eachReader), without the read per wake-up
// that finds it empty.
func (b *bench) readFrames(c *conn, h *headerConn) {
	rd := &wsframe.Reader{Limit: maxFrame}
	defer rd.Reset()
	rest := h.rest
	h.rest = nil
	for len(rest) > 0 {
		n := copy(rd.Space(), rest)
		rest = rest[n:]
		rd.Commit(n)
		if err := b.handleFrames(c, rd); err != nil {
			b.readEnded(c, err)
			return
		}
	}
	rd.Release()
	if sc, ok := h.Conn.(eachReader); ok {
		b.readEnded(c, sc.readEach(rd, func() error { return b.handleFrames(c, rd) }))
		return
	}
	for {
		n, err := h.Conn.Read(rd.Space())
		rd.Commit(n)
		if herr := b.handleFrames(c, rd); herr != nil {
			b.readEnded(c, herr)
			return
		}
		rd.Release()
		if err != nil {
			b.readEnded(c, err)
			return
		}
	}
}

// eachReader is a connection that reads itself into a frame reader for its
// whole life (stampConn, Linux).
type eachReader interface {
	readEach(rd *wsframe.Reader, got func() error) error
}

// handleFrames handles the whole frames rd holds. It returns what ends the
// reading: a close frame (as a *websocket.CloseError) or a broken frame;
// nil to read on.
func (b *bench) handleFrames(c *conn, rd *wsframe.Reader) error {
	for {
		f, ok, err := rd.Next()
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		switch f.Op {
		case wsframe.OpText, wsframe.OpBinary:
			b.frame(c, f.Payload)
		case wsframe.OpPing:
			_ = c.ws.WriteControl(websocket.PongMessage, f.Payload, time.Now().Add(b.writeWait()))
		case wsframe.OpClose:
			code, cerr := wsframe.CloseCode(f.Payload)
			if cerr == nil { // answered as gorilla's reader did
				_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""), time.Now().Add(b.writeWait()))
			}
			return &websocket.CloseError{Code: code}
		}
	}
}
