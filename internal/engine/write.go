package engine

import (
	"encoding/binary"
	"errors"
	"os"
	"time"

	"github.com/livechat/livechat/pkg/wsframe"
)

const (
	// maxKeptVec bounds the write vector a writer keeps between flushes.
	maxKeptVec = 64
	// maxKeptQueue bounds the emptied queue a writer keeps for the next
	// batch.
	maxKeptQueue = 64
	// idleKeptQueue bounds the emptied queue an idle connection keeps, and
	// is a new queue's capacity.
	idleKeptQueue = 8
	// writeCoalesce is the least time between two writes to a connection
	// (the flushers' shortest interval, and the own writer's without a
	// flusher).
	writeCoalesce = 20 * time.Millisecond
	// stallAfter is how long a socket may take no whole write, with
	// SendQueue frames waiting, before its client counts as too slow: past
	// the longest write interval.
	stallAfter = 2 * maxCoalesce
	// queueHardFactor times SendQueue frames waiting is too slow whatever
	// the socket does.
	queueHardFactor = 4
	// quietGap is how long a connection goes without a write to be quiet:
	// its next two writes go out at once (Options.NoWriteBurst). Longer
	// than the longest interval, so a busy connection is never quiet.
	quietGap = 2 * maxCoalesce
)

// wrote records a write that began at now: the next write is due an
// interval later, or at once when this one followed a quiet spell (and
// burst, the engine's Options.NoWriteBurst unset), so that a quiet
// connection's first two frames both go at once. The writer role's holder
// only.
func (w *writeState) wrote(now time.Time, burst bool) {
	quiet := w.lastWrite.IsZero() || now.Sub(w.lastWrite) >= quietGap
	w.lastWrite, w.from = now, now
	if burst && quiet {
		w.from = time.Time{}
	}
}

// enqueue queues f without blocking and starts a writer when none runs.
// When SendQueue frames are already waiting and the socket has not taken a
// whole write for stallAfter (or queueHardFactor times SendQueue frames are
// waiting), the client is closed as too slow (1013, ReasonSlow); f is
// dropped. A client that reads but whose frames wait for a long write
// interval is not slow: its queue may grow past SendQueue. Once the
// connection closes (a close requested, a write error, the reader
// finished) f is dropped silently.
func (c *Conn) enqueue(f *Frame) {
	c.mu.Lock()
	if c.out.role == roleDone || c.out.closeReq {
		c.mu.Unlock()
		return
	}
	if n, max := len(c.out.q), c.e.opt.SendQueue; n >= max && (n >= queueHardFactor*max ||
		time.Since(time.Unix(0, c.lastFull.Load())) > stallAfter) {
		c.mu.Unlock()
		c.kick(End{Reason: ReasonSlow, Code: CloseTryAgainLater}, "too slow: send queue full", false, false)
		return
	}
	a := c.queueLocked(f)
	c.mu.Unlock()
	c.act(a)
}

// queueLocked appends f to c's queue and returns what to start for it
// (act, after c.mu is released).
func (c *Conn) queueLocked(f *Frame) action {
	if c.out.q == nil {
		c.out.q = make([]*Frame, 0, idleKeptQueue)
	}
	c.out.q = append(c.out.q, f)
	if c.fl == nil {
		return c.step(evQueuedOwn)
	}
	return c.step(evQueued)
}

// act starts the writer a step asked for, c.mu released: the flusher, or
// the own writer on a goroutine of its own.
func (c *Conn) act(a action) {
	switch a {
	case actFlusher:
		c.fl.push(c)
	case actOwn:
		go c.writeLoop()
	}
}

// idleEvent is the event of a holder that found nothing to write: idle, or
// the end of the writes once the reader has finished. c.mu must be held.
func (c *Conn) idleEvent() event {
	if c.out.stop {
		return evEnd
	}
	return evIdle
}

// pingTick is the ping timer's function (time.AfterFunc, every PingPeriod):
// it asks for a ping and, when no writer runs, writes it itself (the
// timer's goroutine becomes the own writer).
func (c *Conn) pingTick() {
	c.mu.Lock()
	if c.out.role == roleDone {
		c.mu.Unlock()
		return
	}
	c.out.pingDue = true
	c.out.pinger.Reset(c.e.opt.PingPeriod)
	a := c.step(evControl)
	c.mu.Unlock()
	if a == actOwn {
		c.writeLoop()
	}
}

// writeLoop is the connection's own writer: what a flusher's short write
// left, queued frames, pings, pongs and the close frame. It runs only while
// it holds the writer role (roleOwn, then roleClosing for the close
// handshake), which it got from the flusher (evNeedOwn), pingTick, onPing,
// kick, or a frame queued without a flusher. With a flusher it writes once
// and hands the role back to the flusher (evHandBack); otherwise it
// returns once the queue stays empty for an interval after its last write.
// Writes to one connection are at least the flusher's interval apart
// (writeCoalesce without a flusher or when the server is not busy): what is
// queued sooner after the previous write waits for the rest of that
// interval and goes out with whatever else was queued meanwhile (one
// writev). A quiet connection's first frame is written at once.
func (c *Conn) writeLoop() {
	c.e.ownWriters.Add(1)
	handedBack := false
	defer func() {
		c.e.ownWriters.Add(-1)
		if !handedBack {
			c.writers.Done() // actRelease
		}
	}()
	if len(c.w.pending) > 0 {
		if err := c.writePending(); err != nil {
			c.writeFailed(err)
			return
		}
		c.lastSent.Store(c.w.lastWrite.UnixNano()) // when the flusher began it
	}
	for {
		waited := false
		if wait := coalesceOf(c.fl) - time.Since(c.w.from); wait > 0 {
			// A close waits for the end of the interval too: at most
			// maxCoalesce.
			time.Sleep(wait)
			waited = true
		}
		c.mu.Lock()
		if c.out.closeReq {
			c.step(evCloseTurn) // actHandshake
			batch := c.out.q
			c.out.q = nil
			c.mu.Unlock()
			c.closeHandshake(batch)
			c.mu.Lock()
			c.step(evEnd)
			c.mu.Unlock()
			return
		}
		batch, ping, pong, pongData := c.out.q, c.out.pingDue, c.out.pongDue, c.out.pongData
		if c.out.stop || (len(batch) == 0 && !ping && !pong) {
			c.dropDeadlineLocked()
			c.idleLocked()
			c.step(c.idleEvent())
			c.mu.Unlock()
			return
		}
		c.out.q, c.out.spare = c.out.spare, nil
		c.out.pingDue, c.out.pongDue, c.out.pongData = false, false, nil
		c.mu.Unlock()

		c.w.wrote(time.Now(), !c.e.opt.NoWriteBurst)
		err := c.extendDeadline(c.w.lastWrite)
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
				c.lastSent.Store(c.w.lastWrite.UnixNano())
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
		if c.fl != nil && !c.out.closeReq {
			// What only this goroutine does is done: the flusher takes
			// the role back (or nobody, when nothing waits), so that a
			// busy connection does not keep a goroutine after a ping.
			c.dropDeadlineLocked()
			if len(c.out.q) > 0 || c.out.pingDue || c.out.pongDue {
				c.step(evHandBack) // actFlusher
				c.mu.Unlock()
				handedBack = true
				c.fl.push(c)
				return
			}
			c.idleLocked()
			c.step(c.idleEvent())
			c.mu.Unlock()
			return
		}
		if !flow && len(c.out.q) == 0 && !c.out.closeReq && !c.out.pingDue && !c.out.pongDue {
			c.idleLocked()
			c.step(c.idleEvent())
			c.mu.Unlock()
			return
		}
		if cap(batch) <= maxKeptQueue {
			c.out.spare = batch[:0] // the next batch's queue
		}
		c.mu.Unlock()
	}
}

// writeFailed ends the connection's writes after a write error, for the
// role's holder (which then releases it): no writer starts again and the
// socket is cut, which ends the reader too. A write that ran out of time
// is a client that took nothing for WriteTimeout: a slow one.
func (c *Conn) writeFailed(err error) {
	c.mu.Lock()
	c.step(evEnd)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		c.setEndLocked(End{Reason: ReasonSlow, Err: err})
	} else {
		c.setEndLocked(End{Reason: ReasonWriteError, Err: err})
	}
	c.mu.Unlock()
	c.cut()
}

// writePending writes, blocking under the write deadline, what a flusher's
// short write left: it goes before anything else, a close frame included,
// so that no frame is cut.
func (c *Conn) writePending() error {
	if err := c.extendDeadline(time.Now()); err != nil {
		return err
	}
	c.w.wbuf = c.w.pending
	_, err := c.w.wbuf.WriteTo(c.nc)
	c.w.pending = nil
	if err != nil {
		return err
	}
	c.framesOut.Add(uint64(c.w.pendingFrames))
	return nil
}

// idleLocked drops the writer's buffers as the holder gives the role up:
// an idle connection keeps nothing. c.mu must be held.
func (c *Conn) idleLocked() {
	// A busy connection goes idle after every write: keep one small
	// emptied queue (its slots cleared) for its next frames, drop the rest.
	q := c.out.q
	if cap(q) == 0 || cap(q) > idleKeptQueue {
		q = c.out.spare
	}
	if cap(q) > idleKeptQueue {
		q = nil
	}
	c.out.q, c.out.spare, c.w.vec = q[:0], nil, nil
}

// flush writes batch with one writev(2), under the write deadline the
// caller set.
func (c *Conn) flush(batch []*Frame) error {
	vec := c.w.vec[:0]
	n := 0
	for _, f := range batch {
		vec = f.appendVec(vec)
		n += f.n
	}
	// WriteTo consumes its receiver, so write through a copy of the slice
	// header kept in c (no allocation); vec stays intact.
	c.w.wbuf = vec
	_, err := c.w.wbuf.WriteTo(c.nc)
	clear(vec) // drop the references to the frames' bytes
	if cap(vec) > maxKeptVec {
		vec = nil // a burst's big slice is not kept
	}
	c.w.vec = vec[:0]
	if err != nil {
		return err
	}
	c.framesOut.Add(uint64(n))
	return nil
}

// extendDeadline keeps the socket's write deadline between 3/4 and all of
// WriteTimeout after now. Moving a deadline updates a runtime timer, so it
// is not moved on every write.
func (c *Conn) extendDeadline(now time.Time) error {
	if wt := c.e.opt.WriteTimeout; c.w.deadline.Sub(now) < wt*3/4 {
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
func (c *Conn) dropDeadlineLocked() {
	if c.fl == nil || c.w.deadline.IsZero() {
		return
	}
	_ = c.setDeadline(time.Time{})
}

// setDeadline sets the socket's write deadline to d.
func (c *Conn) setDeadline(d time.Time) error {
	c.w.deadline = d
	return c.nc.SetWriteDeadline(d)
}

// writeControl writes one control frame (ping, pong or close) under the
// current write deadline; payload is cut to the 125 bytes a control frame
// may carry.
func (c *Conn) writeControl(op int, payload []byte) error {
	if len(payload) > maxControl {
		payload = payload[:maxControl]
	}
	var b [2 + maxControl]byte
	buf := append(wsframe.AppendHeader(b[:0], op, len(payload)), payload...)
	_, err := c.nc.Write(buf)
	return err
}

// closePayload is a close frame's payload: code and reason, or nothing for
// CloseNoStatus (a peer's close without a code is answered without one).
func closePayload(code int, reason string) []byte {
	if code == wsframe.CloseNoStatus {
		return nil
	}
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

// closeHandshake writes the close frame the kick asked for (after queued,
// the frames that were queued when flushing), waits a little for the peer's
// answer and cuts the socket.
func (c *Conn) closeHandshake(queued []*Frame) {
	wait := c.e.opt.WriteTimeout
	if !c.out.closeFlush && wait > closeWait {
		wait = closeWait // a slow client gets little time
	}
	if c.setDeadline(time.Now().Add(wait)) == nil {
		if c.out.closeFlush && len(queued) > 0 {
			_ = c.flush(queued)
		}
		_ = c.writeControl(wsframe.OpClose, closePayload(c.out.closeCode, c.out.closeReason))
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
