package server

import (
	"sync"
	"sync/atomic"
	"time"
)

// A flusher writes the queued frames of many connections from one
// goroutine, so that a busy server spends no goroutine start, timer or
// context switch per write. A connection whose writer is idle and that gets
// a frame is appended to its flusher's queue (it then counts as having a
// running writer); the flusher takes connections in that order, the one
// waiting longest first, and writes each one's whole queue with one
// non-blocking writev(2). Under load the queue grows and every connection
// is written once per pass with everything it got meanwhile, so the batch
// grows with the load and the wait stays about one pass, the same for every
// connection.
//
// Each write costs a system call and, on the same host, the receiving
// side's TCP work too, whatever its size, so a server with thousands of
// busy sockets spends its core on writes unless they carry more. A flusher
// therefore adapts the least time between two writes to one connection
// (its interval, from writeCoalesce up to maxCoalesce): it measures the
// share of its time spent in writes and lengthens the interval while that
// share is above busyHigh, shortens it while below busyLow. Under a light
// load a connection is written at most every writeCoalesce (a quiet
// connection's first frame at once); under a heavy one, batches grow
// before the core runs out, and latency stays about one interval instead
// of growing with a backlog.
//
// The flusher never blocks on a socket: a write the kernel does not take
// whole (a slow reader's full buffer), a ping or pong to send, a kick, or a
// connection whose socket gives no file descriptor, is handed to the
// connection's own writer goroutine (writeLoop), which may block under the
// write deadline. The flusher runs only while its queue is not empty.
type flusher struct {
	mu      sync.Mutex
	q       []*conn // connections to write, in the order they got work
	running bool    // a run goroutine exists

	interval atomic.Int64 // least time between two writes to one connection, ns

	// Owned by run: the write time measured since winStart.
	spare    []*conn
	vec      [][]byte
	raw      *rawWriter
	winStart time.Time
	busy     time.Duration
}

const (
	// maxCoalesce bounds a flusher's interval.
	maxCoalesce = 250 * time.Millisecond
	// adaptEvery is how often a flusher reconsiders its interval.
	adaptEvery = 100 * time.Millisecond
	// busyHigh and busyLow bound the share of a flusher's time spent in
	// writes: above busyHigh the interval grows by a quarter, below
	// busyLow it shrinks by a fifth.
	busyHigh = 0.55
	busyLow  = 0.35
)

// newFlusher returns an idle flusher at the shortest interval.
func newFlusher() *flusher {
	f := &flusher{raw: newRawWriter()}
	f.interval.Store(int64(writeCoalesce))
	return f
}

// coalesce is the flusher's current interval.
func (f *flusher) coalesce() time.Duration { return time.Duration(f.interval.Load()) }

// adapt ends a measuring window at now and moves the interval.
func (f *flusher) adapt(now time.Time) {
	el := now.Sub(f.winStart)
	if el < adaptEvery {
		return
	}
	share := float64(f.busy) / float64(el)
	iv := f.coalesce()
	switch {
	case share > busyHigh:
		iv = min(iv*5/4, maxCoalesce)
	case share < busyLow:
		// One step per window: a flusher that was idle for a while
		// (its goroutine gone) comes back at a short interval.
		for n := min(el/adaptEvery, 20); n > 0 && iv > writeCoalesce; n-- {
			iv = max(iv*4/5, writeCoalesce)
		}
	}
	f.interval.Store(int64(iv))
	f.winStart, f.busy = now, 0
}

// A flusher sleeps yieldSleep after every yieldEvery connections, so that
// a long pass does not hold off the other goroutines (the readers, above
// all). A sleep rather than runtime.Gosched: the scheduler polls the
// network only when nothing else is runnable, which a goroutine that only
// yields never lets happen.
const (
	yieldEvery = 64
	yieldSleep = 50 * time.Microsecond
)

// push queues c; the caller holds c's writer role and passes it on (it
// took it with wakeLocked, or it is the flusher or writeLoop handing it
// back with frames waiting).
func (f *flusher) push(c *conn) {
	f.mu.Lock()
	f.q = append(f.q, c)
	start := !f.running
	f.running = true
	f.mu.Unlock()
	if start {
		go f.run()
	}
}

// run writes the queued connections until the queue is empty.
func (f *flusher) run() {
	for {
		f.mu.Lock()
		batch := f.q
		if len(batch) == 0 {
			f.running = false
			f.q, f.spare, f.vec = nil, nil, nil // an idle flusher keeps nothing
			f.mu.Unlock()
			return
		}
		f.q = f.spare[:0]
		f.mu.Unlock()
		for i, c := range batch {
			// Writes to one connection stay an interval apart, as with
			// its own writer; the queue is in order of arrival, so the
			// first one waited for is about the first one due.
			now := time.Now()
			if wait := f.coalesce() - now.Sub(c.lastWrite); wait > 0 {
				time.Sleep(wait)
				now = time.Now()
			}
			f.adapt(now)
			f.write(c, now)
			batch[i] = nil
			if i%yieldEvery == yieldEvery-1 {
				time.Sleep(yieldSleep)
			}
		}
		if cap(batch) <= maxKeptFlusherQueue {
			f.spare = batch[:0]
		} else {
			f.spare = nil
		}
	}
}

// maxKeptFlusherQueue bounds the emptied queue a flusher keeps for its next
// pass.
const maxKeptFlusherQueue = 1 << 14

// write writes c's queue without blocking, as c's writer. It gives the
// writer role back when c has nothing more, queues c again when more came
// meanwhile, and hands the role to a writeLoop goroutine for anything that
// may block or that only writeLoop does (control frames, the close).
func (f *flusher) write(c *conn, now time.Time) {
	c.mu.Lock()
	if c.kicked || c.pingDue || c.pongDue {
		c.mu.Unlock()
		go c.writeLoop() // the role passes on: running stays set
		return
	}
	batch := c.q
	if c.over || len(batch) == 0 {
		c.idleLocked()
		c.mu.Unlock()
		c.writers.Done()
		return
	}
	c.q, c.spare = c.spare, nil
	c.mu.Unlock()

	c.lastWrite = now
	vec := f.vec[:0]
	for _, fr := range batch {
		vec = append(vec, fr.buf)
	}
	written, err := f.raw.writev(c.raw, vec)
	f.busy += time.Since(now)
	if err != nil {
		clear(vec)
		f.vec = vec[:0]
		clear(batch)
		c.writeFailed()
		c.writers.Done()
		return
	}
	rest, frames := remainder(vec, batch, written)
	c.out.Add(uint64(frames))
	clear(vec)
	if cap(vec) > maxKeptVec {
		vec = nil
	}
	f.vec = vec[:0]
	if rest != nil {
		// The socket took only part: the rest waits for it in writeLoop.
		c.s.shortWrites.Add(1)
		c.pending, c.pendingFrames = rest, countFrames(batch)-frames
		clear(batch)
		go c.writeLoop()
		return
	}
	clear(batch)
	c.lastFull.Store(now.UnixNano())
	c.mu.Lock()
	if cap(batch) <= maxKeptQueue && c.spare == nil {
		c.spare = batch[:0]
	}
	more := len(c.q) > 0 || c.kicked || c.pingDue || c.pongDue
	if !more {
		c.idleLocked()
	}
	c.mu.Unlock()
	if more {
		f.push(c)
		return
	}
	c.writers.Done()
}

// remainder returns what of vec, the buffers of batch's frames, is left
// after the first n bytes were written (nil when all were), and how many
// WebSocket frames went out whole.
func remainder(vec [][]byte, batch []*frame, n int) ([][]byte, int) {
	frames := 0
	for i, b := range vec {
		if n < len(b) {
			rest := make([][]byte, 0, len(vec)-i)
			rest = append(rest, b[n:])
			rest = append(rest, vec[i+1:]...)
			return rest, frames
		}
		n -= len(b)
		frames += batch[i].n
	}
	return nil, frames
}

// countFrames returns the WebSocket frames in batch.
func countFrames(batch []*frame) int {
	n := 0
	for _, f := range batch {
		n += f.n
	}
	return n
}
