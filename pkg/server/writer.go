package server

import (
	"errors"
	"os"
	"time"

	"github.com/gorilla/websocket"
	"github.com/livechat/livechat/pkg/wsframe"
)

// This file is a connection's outbound side. The server's frames are not
// masked, so an encoded text frame (header and payload) is the same bytes for
// every recipient: a room message is framed once per server (textFrame) and
// the same *frame is queued to every local member. One writer at a time
// writes to a socket, and only while there is something to write (an idle
// connection costs no goroutine): usually the connection's flusher
// (flusher.go), shared by many connections, which writes everything queued
// without blocking, many connections in one io_uring_enter(2) where the
// kernel allows it, else one writev(2) each; the connection's own writer goroutine
// (writeLoop) when a write may block (a short write, a socket without a file
// descriptor) and for the pings, the pongs and the close frame. The reader
// (readLoop) hands the answers to pings and close frames to the writer, so
// that one writer at a time writes on the socket; gorilla writes nothing
// after the handshake.

// The bounds of the frames the server writes (RFC 6455 section 5.2).
const (
	maxHeader  = 10  // FIN/opcode byte, 127, 8-byte length
	maxControl = 125 // payload bound of a control frame
)

// frame is one or more encoded WebSocket frames, headers included, ready
// for the socket: buf, then tail when it is not empty. It is never modified
// once queued, so one frame may sit in many connections' queues at once.
type frame struct {
	buf  []byte // whole frames, or a header whose payload is tail
	tail []byte // the payload after buf's header, shared, not copied (sharedFrame)
	// n is how many WebSocket frames buf and tail hold (a join's replay
	// carries many), as messages_out counts them: 0 for the heartbeat.
	n int
}

// appendVec appends f's buffers to vec.
func (f *frame) appendVec(vec [][]byte) [][]byte {
	vec = append(vec, f.buf)
	if len(f.tail) > 0 {
		vec = append(vec, f.tail)
	}
	return vec
}

// parts is how many buffers appendVec appends for f.
func (f *frame) parts() int {
	if len(f.tail) > 0 {
		return 2
	}
	return 1
}

// sharedFrame frames payload as one text frame without copying it: the
// frame (one small allocation with its header) points to payload, which
// must not change afterwards. A room's fan-out frames what the broker
// delivered this way.
func sharedFrame(payload []byte) *frame {
	p := new(struct {
		f frame
		h [maxHeader]byte
	})
	p.f.buf, p.f.tail, p.f.n = wsframe.AppendHeader(p.h[:0], wsframe.OpText, len(payload)), payload, 1
	return &p.f
}

// textFrame encodes payload as one text frame.
func textFrame(payload []byte) *frame {
	f := newFrame(maxHeader + len(payload))
	f.buf = append(wsframe.AppendHeader(f.buf, wsframe.OpText, len(payload)), payload...)
	return f
}

// newFrame returns a frame of one WebSocket frame whose buf is empty with
// room for size bytes. Up to about a kilobyte the frame and its bytes are
// one allocation, whose array with the frame's 56 bytes fills one of the
// allocator's size classes (256, 288, 352, 416, 512, 640 or 1,024 bytes):
// the hot path's messages and acks.
func newFrame(size int) *frame {
	var f *frame
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
		f = &frame{buf: make([]byte, 0, size)}
	}
	f.n = 1
	return f
}

// framed allocates a frame with its bytes, an array A, in one object; empty
// gives A as an empty slice.
func framed[A any](empty func(*A) []byte) *frame {
	p := new(struct {
		f frame
		b A
	})
	p.f.buf = empty(&p.b)
	return &p.f
}

// textFrames encodes each payload as a text frame, all in one frame value
// that takes one queue slot.
func textFrames(payloads [][]byte) *frame {
	size := 0
	for _, p := range payloads {
		size += maxHeader + len(p)
	}
	b := make([]byte, 0, size)
	for _, p := range payloads {
		b = append(wsframe.AppendHeader(b, wsframe.OpText, len(p)), p...)
	}
	return &frame{buf: b, n: len(payloads)}
}

// enqueue queues f without blocking and starts a writer when none runs.
// When SendQueue frames are already waiting and the socket has not taken a
// whole write for stallAfter (or queueHardFactor times SendQueue frames are
// waiting), the client is disconnected as too slow (close 1013) and
// counted; f is dropped. A client that reads but whose frames wait for a
// long write interval is not slow: its queue may grow past SendQueue. After
// the connection's writes are over (close handshake, write error, reader
// finished) f is dropped silently.
func (c *conn) enqueue(f *frame) {
	c.mu.Lock()
	if c.over {
		c.mu.Unlock()
		return
	}
	if n := len(c.q); n >= c.s.cfg.SendQueue && (n >= queueHardFactor*c.s.cfg.SendQueue ||
		time.Since(time.Unix(0, c.lastFull.Load())) > stallAfter) {
		c.mu.Unlock()
		if c.kick(websocket.CloseTryAgainLater, "too slow: send queue full", false) {
			c.s.slowDrops.Add(1)
			c.s.log.Info("server: slow client disconnected", "remote", c.ws.RemoteAddr().String())
		}
		return
	}
	start := c.queueLocked(f)
	c.mu.Unlock()
	if start {
		c.startWriter()
	}
}

// queueLocked appends f to c's queue and reports whether a writer must be
// started for it (startWriter, after c.mu is released).
func (c *conn) queueLocked(f *frame) bool {
	if c.q == nil {
		c.q = make([]*frame, 0, idleKeptQueue)
	}
	c.q = append(c.q, f)
	return c.wakeLocked()
}

// startWriter starts the writer a wakeLocked that returned true asked for:
// the flusher, or the connection's own goroutine for a socket without a
// file descriptor.
func (c *conn) startWriter() {
	if c.raw.ok() {
		c.fl.push(c)
	} else {
		go c.writeLoop()
	}
}

// wakeLocked reports whether the caller must start a writer (go
// c.writeLoop()): true when none runs and the connection's writes are not
// over. It then counts the writer as running, so at most one writer exists
// at a time. c.mu must be held.
func (c *conn) wakeLocked() bool {
	if c.running || c.over {
		return false
	}
	c.running = true
	c.writers.Add(1)
	return true
}

// pingTick is the ping timer's function (time.AfterFunc, every PingPeriod):
// it asks for a ping and, when no writer runs, writes it itself (the
// timer's goroutine becomes the writer).
func (c *conn) pingTick() {
	c.mu.Lock()
	if c.over {
		c.mu.Unlock()
		return
	}
	c.pingDue = true
	c.pinger.Reset(c.s.cfg.PingPeriod)
	start := c.wakeLocked()
	c.mu.Unlock()
	if start {
		c.writeLoop()
	}
}

// writeLoop is the connection's own writer: what a flusher's short write
// left, queued frames, pings, pongs and the close frame. It runs only while
// there is something to write: the flusher (handing over its role),
// pingTick, onPing, kick, and enqueue on a socket without a file descriptor
// start it (wakeLocked guarantees one writer at a time). On a socket with a
// file descriptor it writes once and gives the role back to the flusher;
// otherwise it returns once the queue stays empty for an interval after its
// last write. Writes to one
// connection are at least the flusher's interval apart (writeCoalesce when
// the server is not busy): what is queued sooner after the previous write
// waits for the rest of that interval and goes out with whatever else was
// queued meanwhile (one writev). A quiet connection's first frame is
// written at once.
func (c *conn) writeLoop() {
	c.s.ownWriters.Add(1)
	handedBack := false
	defer func() {
		c.s.ownWriters.Add(-1)
		if !handedBack {
			c.writers.Done()
		}
	}()
	if len(c.pending) > 0 {
		if err := c.writePending(); err != nil {
			c.writeFailed(err)
			return
		}
		c.lastSent.Store(c.lastWrite.UnixNano()) // when the flusher began it
	}
	for {
		waited := false
		if wait := c.fl.coalesce() - time.Since(c.lastWrite); wait > 0 {
			// A kick waits for the end of the interval too: at most
			// maxCoalesce.
			time.Sleep(wait)
			waited = true
		}
		c.mu.Lock()
		if c.kicked {
			c.over = true // running stays set: no writer starts again
			batch := c.q
			c.q = nil
			c.mu.Unlock()
			c.closeHandshake(batch)
			return
		}
		batch, ping, pong, pongData := c.q, c.pingDue, c.pongDue, c.pongData
		if c.over || (len(batch) == 0 && !ping && !pong) {
			c.dropDeadlineLocked()
			c.idleLocked()
			c.mu.Unlock()
			return
		}
		c.q, c.spare = c.spare, nil
		c.pingDue, c.pongDue, c.pongData = false, false, nil
		c.mu.Unlock()

		c.lastWrite = time.Now()
		err := c.extendDeadline(c.lastWrite)
		if err == nil && pong {
			err = c.writeControl(wsframe.OpPong, pongData)
		}
		if err == nil && ping {
			err = c.writeControl(wsframe.OpPing, nil)
		}
		if err == nil && len(batch) > 0 {
			err = c.flush(batch)
		}
		if err == nil {
			c.lastFull.Store(time.Now().UnixNano())
			if len(batch) > 0 {
				c.lastSent.Store(c.lastWrite.UnixNano())
			}
		}
		if err != nil {
			c.writeFailed(err)
			return
		}
		// A lone frame after a pause is not a flow: return at once rather
		// than wait out the interval (a short-lived writer's stack is
		// reused at once; thousands of lingering ones would each hold one).
		flow := waited || len(batch) > 1
		clear(batch) // drop the references to the frames
		c.mu.Lock()
		if c.raw.ok() && !c.kicked {
			// What only this goroutine does is done: the flusher takes
			// the role back (or nobody, when nothing waits), so that a
			// busy connection does not keep a goroutine after a ping.
			c.dropDeadlineLocked()
			more := len(c.q) > 0 || c.pingDue || c.pongDue
			if !more {
				c.idleLocked()
			}
			c.mu.Unlock()
			if more {
				handedBack = true
				c.fl.push(c)
			}
			return
		}
		if !flow && len(c.q) == 0 && !c.kicked && !c.pingDue && !c.pongDue {
			c.idleLocked()
			c.mu.Unlock()
			return
		}
		if cap(batch) <= maxKeptQueue {
			c.spare = batch[:0] // the next batch's queue
		}
		c.mu.Unlock()
	}
}

// writeFailed ends the connection's writes after a write error: no writer
// starts again (running stays set) and the socket is closed, which ends the
// reader too.
func (c *conn) writeFailed(err error) {
	c.mu.Lock()
	c.over = true
	// A write that ran out of time is a client that took nothing for
	// WriteTimeout: a slow client, counted as one unless it was already
	// (kicked as too slow, then its close frame timed out).
	slow := !c.kicked && errors.Is(err, os.ErrDeadlineExceeded)
	c.mu.Unlock()
	if slow {
		c.s.slowDrops.Add(1)
		c.s.log.Info("server: slow client disconnected", "remote", c.ws.RemoteAddr().String(), "reason", "write timeout")
	}
	c.cut()
}

// writePending writes, blocking under the write deadline, what a flusher's
// short write left: it goes before anything else, a close frame included,
// so that no frame is cut.
func (c *conn) writePending() error {
	if err := c.extendDeadline(time.Now()); err != nil {
		return err
	}
	c.wbuf = c.pending
	_, err := c.wbuf.WriteTo(c.ws.NetConn())
	c.pending = nil
	if err != nil {
		return err
	}
	c.out.Add(uint64(c.pendingFrames))
	return nil
}

// idleLocked marks the writer as gone and drops its buffers: an idle
// connection keeps nothing. c.mu must be held.
func (c *conn) idleLocked() {
	c.running = false
	// A busy connection goes idle after every write: keep one small
	// emptied queue (its slots cleared) for its next frames, drop the rest.
	q := c.q
	if cap(q) == 0 || cap(q) > idleKeptQueue {
		q = c.spare
	}
	if cap(q) > idleKeptQueue {
		q = nil
	}
	c.q, c.spare, c.vec = q[:0], nil, nil
}

// flush writes batch with one writev(2), under the write deadline the
// caller set.
func (c *conn) flush(batch []*frame) error {
	vec := c.vec[:0]
	n := 0
	for _, f := range batch {
		vec = f.appendVec(vec)
		n += f.n
	}
	// WriteTo consumes its receiver, so write through a copy of the slice
	// header kept in c (no allocation); vec stays intact.
	c.wbuf = vec
	_, err := c.wbuf.WriteTo(c.ws.NetConn())
	clear(vec) // drop the references to the frames' bytes
	if cap(vec) > maxKeptVec {
		vec = nil // a burst's big slice is not kept
	}
	c.vec = vec[:0]
	if err != nil {
		return err
	}
	c.out.Add(uint64(n))
	return nil
}

// extendDeadline keeps the socket's write deadline between 3/4 and all of
// WriteTimeout after now. Moving a deadline updates a runtime timer, so it
// is not moved on every write.
func (c *conn) extendDeadline(now time.Time) error {
	if wt := c.s.cfg.WriteTimeout; c.deadline.Sub(now) < wt*3/4 {
		return c.setDeadline(now.Add(wt))
	}
	return nil
}

// dropDeadlineLocked clears the socket's write deadline before writeLoop
// gives up the writer role on a socket the flusher writes: the flusher's
// writes never block, and a deadline left behind (by a ping, a pong or a
// short write's rest) would fail its next write once passed, closing a
// healthy connection as a slow one. It runs under c.mu while the role is
// still held, so a writer that starts next sets its own deadline after it.
func (c *conn) dropDeadlineLocked() {
	if !c.raw.ok() || c.deadline.IsZero() {
		return
	}
	_ = c.setDeadline(time.Time{})
}

// setDeadline sets the socket's write deadline to d.
func (c *conn) setDeadline(d time.Time) error {
	c.deadline = d
	return c.ws.NetConn().SetWriteDeadline(d)
}

const (
	// maxKeptVec bounds the write vector a running writer keeps between
	// flushes.
	maxKeptVec = 64
	// maxKeptQueue bounds the emptied queue a running writer keeps for the
	// next batch.
	maxKeptQueue = 64
	// idleKeptQueue bounds the emptied queue an idle connection keeps, and
	// is a new queue's capacity.
	idleKeptQueue = 8
	// writeCoalesce is the least time between two writes to a connection
	// (the flushers' shortest interval).
	writeCoalesce = 20 * time.Millisecond
	// stallAfter is how long a socket may take no whole write, with
	// SendQueue frames waiting, before its client counts as too slow: past
	// the longest write interval.
	stallAfter = 2 * maxCoalesce
	// queueHardFactor times SendQueue frames waiting is too slow whatever
	// the socket does.
	queueHardFactor = 4
)

// writeControl writes one control frame (ping, pong or close) under the
// current write deadline; payload is cut to the 125 bytes a control frame
// may carry.
func (c *conn) writeControl(op int, payload []byte) error {
	if len(payload) > maxControl {
		payload = payload[:maxControl]
	}
	var b [2 + maxControl]byte
	buf := append(wsframe.AppendHeader(b[:0], op, len(payload)), payload...)
	_, err := c.ws.NetConn().Write(buf)
	return err
}

// onPing is the reader's ping handler: the pong goes through the writer.
// When a pong is already waiting this ping's is dropped (one answer is
// enough to prove the connection is alive).
func (c *conn) onPing(payload []byte) {
	c.mu.Lock()
	if !c.pongDue {
		c.pongDue, c.pongData = true, append([]byte(nil), payload...)
	}
	start := c.wakeLocked()
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
}

// onClose is the reader's close handler: the writer answers with the same
// code (no code if the peer sent none) and closes, without flushing what is
// queued; the reader then stops. When a close of ours is already under way,
// the peer's frame is the answer to it and nothing more is sent.
func (c *conn) onClose(code int) {
	c.kickAs(code, "", false, true)
}

// closeHandshake writes the close frame the kick asked for (after queued,
// the frames that were queued when flushing), waits a little for the peer's
// answer and closes.
func (c *conn) closeHandshake(queued []*frame) {
	wait := c.s.cfg.WriteTimeout
	if !c.kickFlush && wait > closeWait {
		wait = closeWait // a slow client gets little time
	}
	if c.setDeadline(time.Now().Add(wait)) == nil {
		if c.kickFlush && len(queued) > 0 {
			_ = c.flush(queued)
		}
		_ = c.writeControl(wsframe.OpClose, websocket.FormatCloseMessage(c.kickCode, c.kickReason))
	}
	if c.selfClose.Load() {
		return // the reader has stopped reading and waits for us
	}
	t := time.NewTimer(closeWait)
	select {
	case <-c.readerDone:
	case <-t.C:
	}
	t.Stop()
	c.cut()
}
