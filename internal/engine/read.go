package engine

import (
	"errors"
	"os"
	"time"
	"unicode/utf8"

	"github.com/livechat/livechat/pkg/wsframe"
)

// readLoop is the reader of a connection that no poller watches, a
// goroutine for the connection's life: it parses the client's frames itself
// (wsframe.Reader) from the socket gorilla upgraded, which holds nothing
// buffered then (gorilla refuses a client that sends before the handshake
// ends), and handles each in turn.
func (c *Conn) readLoop() {
	defer c.finish()
	c.in.rd.Limit, c.in.rd.FromClient = c.e.opt.ReadLimit, true
	_ = c.extendRead(time.Now())
	var err error
	if c.raw.ok() {
		err = c.raw.read(c.readReport)
	} else {
		err = c.readStream()
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		c.setEnd(End{Reason: ReasonTimeout})
	}
	c.in.rd.Reset()
}

// readStream is the reader of a connection without a file descriptor
// (TLS, or a system without raw reads): blocking reads of the net.Conn.
// It returns the read error that stopped it, if any.
func (c *Conn) readStream() error {
	rd := &c.in.rd
	for {
		n, err := c.nc.Read(rd.Space())
		rd.Commit(n)
		if n > 0 && (c.extendRead(time.Now()) != nil || !c.consume()) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// readReport reads the socket's file descriptor until it is empty and
// handles every whole frame; it returns true to stop reading: at the end of
// the stream, on an error, when the handler says so, or once the connection
// is cut. A read that does not fill the buffer found the socket empty, so
// it returns false then without the read that would find it so: a polled
// connection gets another report when bytes come, and readLoop, which runs
// it inside RawConn.Read for the connection's life, waits for the socket
// (bytes that came meanwhile wake the wait, as the wait's readiness is only
// reset when RawConn.Read starts). Between reads it holds no read buffer.
//
// As it runs while frames are handled, inside the descriptor's callback, a
// Close of the socket from another goroutine waits for the handler to
// return (a Close waits for the descriptor's users): the flusher, shared by
// many connections, therefore never closes a socket itself (flusher.finish).
func (c *Conn) readReport(fd uintptr) bool {
	rd := &c.in.rd
	for !c.cutReq.Load() {
		space := rd.Space()
		n, empty, err := readFD(fd, space)
		switch {
		case empty:
			rd.Release()
			return false
		case err != nil || n == 0:
			return true
		}
		rd.Commit(n)
		if c.extendRead(time.Now()) != nil || !c.consume() {
			return true
		}
		if n < len(space) {
			rd.Release()
			return false
		}
	}
	return true
}

// consume handles every whole frame the read buffer holds; it returns false
// when the connection must stop reading: it sent a close frame, breached
// the protocol (closed with the breach's code) or the handler stopped it.
func (c *Conn) consume() bool {
	for {
		f, ok, err := c.in.rd.Next()
		if err == nil && ok && f.Op == wsframe.OpClose {
			var code int
			if code, err = wsframe.CloseCode(f.Payload); err == nil {
				c.onClose(code)
				return false
			}
		}
		if err != nil {
			var we *wsframe.Error
			if errors.As(err, &we) {
				c.kick(End{Reason: ReasonProtocol, Code: we.Code}, we.Reason, true, true)
			}
			return false
		}
		if !ok {
			return true
		}
		switch f.Op {
		case wsframe.OpPing:
			c.onPing(f.Payload)
		case wsframe.OpPong:
			// A sign of life: the read deadline moved with the read.
		default:
			if f.Op == wsframe.OpText && !utf8.Valid(f.Payload) {
				c.kick(End{Reason: ReasonInvalidUTF8, Code: CloseInvalidPayload}, "invalid UTF-8", true, true)
				return false
			}
			if code, reason := c.h.Message(c, f.Op, f.Payload); code != 0 {
				c.kick(End{Reason: ReasonHandler, Code: code}, reason, true, true)
				return false
			}
		}
	}
}

// A connection's read deadline is moved only when it is more than
// PongWait/readDeadlineSlack old, and then to that much beyond PongWait: a
// busy sender costs no timer update per read, and a connection is closed
// after between PongWait and PongWait·(1+1/readDeadlineSlack) of silence.
const readDeadlineSlack = 64

// extendRead moves the read deadline to PongWait from now, in steps (see
// readDeadlineSlack): the socket's, or a polled connection's timer. It runs
// on the reader only.
func (c *Conn) extendRead(now time.Time) error {
	if now.Sub(c.in.extended) < c.e.opt.PongWait/readDeadlineSlack {
		return nil // a deadline at most slack shorter than now's stands
	}
	c.in.extended = now
	if c.in.timer != nil {
		c.in.timer.Reset(c.readWait())
		return nil
	}
	return c.nc.SetReadDeadline(now.Add(c.readWait()))
}

// readWait is how long the read deadline lies ahead when it is moved.
func (c *Conn) readWait() time.Duration {
	return c.e.opt.PongWait + c.e.opt.PongWait/readDeadlineSlack
}

// readTimeout is a polled connection's read deadline (its timer): nothing
// came for PongWait.
func (c *Conn) readTimeout() {
	c.setEnd(End{Reason: ReasonTimeout})
	c.cut()
}

// onPing is the reader's ping handler: the pong goes through the writer.
// When a pong is already waiting this ping's is dropped (one answer is
// enough to prove the connection is alive).
func (c *Conn) onPing(payload []byte) {
	c.mu.Lock()
	if !c.out.pongDue {
		c.out.pongDue, c.out.pongData = true, append([]byte(nil), payload...)
	}
	a := c.step(evControl)
	c.mu.Unlock()
	c.act(a)
}

// onClose is the reader's close handler: the writer answers with the same
// code (no code if the peer sent none) and closes, without flushing what is
// queued; the reader then stops. When a close of ours is already under way,
// the peer's frame is the answer to it and nothing more is sent.
func (c *Conn) onClose(code int) {
	c.kick(End{Reason: ReasonPeerClose, Code: code}, "", false, true)
}

// The polled reader: a poller (poll_linux.go) reports a connection's
// socket readable, and the reader runs for that report only.

// The read states of a connection (Conn.in.state).
const (
	readOff     = iota // not polled (not yet, or never: readLoop reads it)
	readIdle           // polled, no reader runs; the next report starts one
	readRunning        // a reader runs
	readAgain          // a reader runs and a report came meanwhile
	readDone           // the reader stopped for good
)

// readable is a report of bytes for c: it runs c's reader (on this
// goroutine when inline, else on one of its own), or asks the running one
// for another pass. It returns false when c is not polled.
func (c *Conn) readable(inline bool) bool {
	for {
		switch c.in.state.Load() {
		case readOff:
			return false
		case readIdle:
			if c.in.state.CompareAndSwap(readIdle, readRunning) {
				if inline {
					c.readPolled(true)
				} else {
					go c.readPolled(false)
				}
				return true
			}
		case readRunning:
			if c.in.state.CompareAndSwap(readRunning, readAgain) {
				return true
			}
		default: // readAgain, readDone
			return true
		}
	}
}

// readPolled is a polled connection's reader for one report: it reads
// and handles what the socket holds, then returns, holding nothing. When
// the connection ends it finishes it, as readLoop does: on a goroutine of
// its own when inline (on the poller's), as finishing may wait for the
// writer.
func (c *Conn) readPolled(inline bool) {
	for {
		stop := true
		err := c.raw.control(func(fd uintptr) { stop = c.readReport(fd) })
		if err != nil || stop || c.cutReq.Load() {
			c.in.state.Store(readDone)
			if inline {
				go c.endPolled()
			} else {
				c.endPolled()
			}
			return
		}
		if c.in.state.CompareAndSwap(readRunning, readIdle) {
			return
		}
		c.in.state.Store(readRunning) // readAgain: bytes came meanwhile
	}
}

// endPolled ends a polled connection whose reader stopped.
func (c *Conn) endPolled() {
	c.in.timer.Stop()
	c.in.pl.remove(c)
	c.in.rd.Reset()
	c.finish()
}
