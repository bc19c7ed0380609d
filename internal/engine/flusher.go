package engine

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livechat/livechat/pkg/uring"
)

// A flusher writes the queued frames of many connections from one
// goroutine, so that a busy server spends no goroutine start, timer or
// context switch per write. A connection that nobody writes and that gets
// a frame joins its flusher's queue (its writer role passes to the
// flusher, role.go); the flusher takes the connection due first — the one written
// longest ago, as one interval applies to all — whenever it is due (a
// connection that got work later but was written earlier does not wait
// behind it), and writes its whole queue without blocking. The connections
// due at once (up to maxBatch) go out together: one io_uring_enter(2) for
// all of them where the kernel allows it (uring.Batch), else one writev(2)
// each.
// Under load every connection is written once per interval with everything
// it got meanwhile, so the batch grows with the load and the wait stays
// about one interval, the same for every connection.
//
// Each write costs the network stack's work (and, on the same host, the
// receiving side's too) whatever its size, and a system call unless it is
// batched, so a server with thousands of busy sockets spends its core on
// writes unless they carry more. A flusher therefore adapts the least
// time between two writes to one connection (its interval, from
// writeCoalesce up to maxCoalesce) every adaptEvery:
// it lengthens the interval while writes take more than busyHigh of its
// time and the process uses more than cpuHigh of its processors, and
// shortens it while writes take less than busyLow or the process less than
// cpuLow. Under a light load, or a heavy one the processors still carry, a
// connection is written at most every writeCoalesce (a quiet connection's
// first frame at once); when they run short, batches grow, and latency
// stays about one interval instead of growing with a backlog.
//
// The flusher never blocks on a socket: a write the kernel does not take
// whole (a slow reader's full buffer), a ping or pong to send, a kick, or a
// connection whose socket gives no file descriptor, is handed to the
// connection's own writer goroutine (writeLoop), which may block under the
// write deadline. The flusher runs only while its queue is not empty.
type flusher struct {
	e       *Engine // counts the writes
	mu      sync.Mutex
	q       dueQueue // connections to write, the one due first on top
	running bool     // a run goroutine exists
	// waitFor is when the sleeping run goroutine wakes up (UnixNano), 0
	// when it does not sleep; a push due before it wakes it.
	waitFor int64
	wake    chan struct{}

	interval atomic.Int64 // least time between two writes to one connection, ns

	// Owned by run: the write time measured since winStart.
	vec      [][]byte
	due      []dueItem  // the connections of one pass
	jobs     []flushJob // their writes
	raw      *rawWriter
	batch    *uring.Batch // made at the first batch of two or more
	noBatch  bool         // write each connection on its own
	timer    *time.Timer
	winStart time.Time
	busy     time.Duration
	// cpu reads the process's CPU time (processCPU; tests replace it);
	// winCPU is its value at winStart.
	cpu        func() (time.Duration, bool)
	winCPU     time.Duration
	winStarted bool
}

// dueQueue is a min-heap of connections by the time of their last write:
// with one interval for all, the one written longest ago is due first.
// The keys are kept in the heap, so ordering it reads no connection.
type dueQueue []dueItem

type dueItem struct {
	last int64 // when its interval counts from (writeState.from), UnixNano; 0: due at once
	c    *Conn
}

func (q *dueQueue) push(it dueItem) {
	h := append(*q, it)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if h[p].last <= it.last {
			break
		}
		h[i] = h[p]
		i = p
	}
	h[i] = it
	*q = h
}

func (q *dueQueue) pop() dueItem {
	h := *q
	top := h[0]
	n := len(h) - 1
	last := h[n]
	h[n] = dueItem{}
	h = h[:n]
	i := 0
	for n > 0 {
		l := 2*i + 1
		if l >= n {
			break
		}
		if r := l + 1; r < n && h[r].last < h[l].last {
			l = r
		}
		if last.last <= h[l].last {
			break
		}
		h[i] = h[l]
		i = l
	}
	if n > 0 {
		h[i] = last
	}
	*q = h
	return top
}

const (
	// maxCoalesce bounds a flusher's interval.
	maxCoalesce = 250 * time.Millisecond
	// adaptEvery is how often a flusher reconsiders its interval.
	adaptEvery = 100 * time.Millisecond
	// busyHigh and busyLow bound the share of a flusher's time spent in
	// writes, cpuHigh and cpuLow the process's CPU use as a share of the
	// processors it may use: above busyHigh while the process uses more
	// than cpuHigh, the interval grows by a quarter; below busyLow, or
	// while the process uses less than cpuLow, it shrinks by a fifth.
	// Where the process's CPU time is not known the share alone decides.
	busyHigh = 0.55
	busyLow  = 0.35
	cpuHigh  = 0.95
	cpuLow   = 0.85
)

// newFlusher returns an idle flusher at the shortest interval; batched
// says whether it may write many connections in one system call.
func newFlusher(e *Engine, batched bool) *flusher {
	f := &flusher{e: e, raw: newRawWriter(), wake: make(chan struct{}, 1), cpu: processCPU, noBatch: !batched}
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
	grow, shrink := share > busyHigh, share < busyLow
	if cpu, ok := f.cpu(); ok {
		// The process's CPU over the window, as a share of the processors
		// it may use: longer batches only when they spare processors that
		// run short; with CPU to spare, a write as soon as allowed.
		util := float64(cpu-f.winCPU) / float64(el) / float64(runtime.GOMAXPROCS(0))
		if f.winStarted { // else no CPU time at winStart: the share alone decides
			grow, shrink = grow && util > cpuHigh, shrink || util < cpuLow
		}
		f.winCPU, f.winStarted = cpu, true
	}
	iv := f.coalesce()
	switch {
	case grow:
		iv = min(iv*5/4, maxCoalesce)
	case shrink:
		// One step per window: a flusher that was idle for a while
		// (its goroutine gone) comes back at a short interval.
		for n := min(el/adaptEvery, 20); n > 0 && iv > writeCoalesce; n-- {
			iv = max(iv*4/5, writeCoalesce)
		}
	}
	f.interval.Store(int64(iv))
	f.winStart, f.busy = now, 0
}

// A flusher sleeps yieldSleep once it has written yieldEvery connections
// (after the batch that reaches them: a batch of up to maxBatch goes out
// whole), then yields, so that a long pass does not hold off the other
// goroutines (the readers, above all). The sleep lets the scheduler poll
// the network, which it does only when nothing else is runnable (a
// goroutine that only yields never lets that happen); the yield after it
// puts the flusher behind the readers the poll made runnable, which the
// sleep's wake-up alone would not: a goroutine woken by its timer runs
// next. Inbound messages are thus read within about one such step,
// whatever the flusher's backlog: a shorter step (yieldEvery) costs the
// flusher more sleeps and gives the readers a shorter wait.
const (
	yieldEvery = 16
	yieldSleep = 50 * time.Microsecond
	// maxBatch is the most connections written in one system call.
	maxBatch = 64
)

// push queues c, whose writer role is the flusher's (a step to
// roleFlusher: a frame queued on an idle connection, evMore, evHandBack).
// It wakes the run goroutine when c is due
// before the connection it sleeps for.
func (f *flusher) push(c *Conn) {
	it := dueItem{c: c}
	if !c.w.from.IsZero() {
		it.last = c.w.from.UnixNano()
	}
	f.mu.Lock()
	f.q.push(it)
	start := !f.running
	f.running = true
	wake := f.waitFor != 0 && it.last+int64(f.coalesce()) < f.waitFor
	if wake {
		f.waitFor = 0
	}
	f.mu.Unlock()
	if start {
		go f.run()
	} else if wake {
		select {
		case f.wake <- struct{}{}:
		default:
		}
	}
}

// run writes the queued connections, each when it is due, until the queue
// is empty. It takes every connection due at once, up to maxBatch, and
// writes them together (writeBatch).
func (f *flusher) run() {
	for i := 0; ; {
		f.mu.Lock()
		if len(f.q) == 0 {
			f.running = false
			f.q = nil // an idle flusher keeps nothing
			f.vec, f.due, f.jobs = nil, nil, nil
			f.mu.Unlock()
			return
		}
		// Writes to one connection stay an interval apart, as with its own
		// writer; the queue's top is the one due first.
		now := time.Now()
		iv := int64(f.coalesce())
		if due := f.q[0].last + iv; due > now.UnixNano() {
			f.waitFor = due
			f.mu.Unlock()
			f.sleep(time.Duration(due - now.UnixNano()))
			continue
		}
		due := f.due[:0]
		for len(f.q) > 0 && len(due) < maxBatch && f.q[0].last+iv <= now.UnixNano() {
			due = append(due, f.q.pop())
		}
		f.waitFor = 0
		f.mu.Unlock()
		f.adapt(now)
		f.writeBatch(due, now)
		clear(due)
		f.due = due[:0]
		if i += len(due); i >= yieldEvery {
			i = 0
			time.Sleep(yieldSleep)
			runtime.Gosched()
		}
	}
}

// sleep waits d, or less when a push brings a connection due sooner.
func (f *flusher) sleep(d time.Duration) {
	if f.timer == nil {
		f.timer = time.NewTimer(d)
	} else {
		f.timer.Reset(d)
	}
	select {
	case <-f.timer.C:
	case <-f.wake:
		f.timer.Stop()
	}
}

// flushJob is one connection's part of writeBatch: its frames, and their
// buffers in the flusher's vec.
type flushJob struct {
	c        *Conn
	batch    []*Frame
	from, to int // batch's buffers: f.vec[from:to]
	slot     int // its slot in f.batch, -1 when written on its own
}

// writeBatch writes the queues of the due connections without blocking, as
// their writer: all in one system call where it can (uring.Batch), else
// one writev(2) each. Each connection then gives the writer role back when
// it has nothing more, is queued again when more came meanwhile, or hands
// the role to its writeLoop goroutine for anything that may block or that
// only writeLoop does (control frames, the close, a short write's rest).
func (f *flusher) writeBatch(due []dueItem, now time.Time) {
	vec, jobs := f.vec[:0], f.jobs[:0]
	for _, it := range due {
		batch := f.take(it.c)
		if batch == nil {
			continue
		}
		it.c.w.wrote(now, !f.e.opt.NoWriteBurst)
		from := len(vec)
		for _, fr := range batch {
			vec = fr.appendVec(vec)
		}
		jobs = append(jobs, flushJob{c: it.c, batch: batch, from: from, to: len(vec), slot: -1})
	}
	bw := f.batchWriter(len(jobs))
	if bw != nil {
		for j := range jobs {
			if jb := &jobs[j]; jb.to-jb.from <= uring.MaxIOV {
				jb.slot = bw.Add(jb.c.raw.syscallConn(), vec[jb.from:jb.to])
			}
		}
		bw.Run()
	}
	var batched, single uint64
	for _, jb := range jobs {
		var (
			written int
			err     error
		)
		if jb.slot >= 0 {
			written, err = bw.Result(jb.slot)
			batched++
		} else {
			written, err = f.raw.writev(jb.c.raw, vec[jb.from:jb.to])
			single++
		}
		f.finish(jb.c, jb.batch, vec[jb.from:jb.to], written, err, now)
	}
	f.e.batchedWrites.Add(batched)
	f.e.singleWrites.Add(single)
	if bw != nil {
		bw.Reset()
		if bw.Err() != nil {
			f.batch, f.noBatch = nil, true // the ring failed: writev from now on
		}
	}
	f.busy += time.Since(now)
	clear(vec)
	if cap(vec) > maxKeptVec*maxBatch {
		vec = nil
	}
	f.vec = vec[:0]
	clear(jobs)
	f.jobs = jobs[:0]
}

// batchWriter returns the flusher's batch writer for n connections, made
// the first time, or nil to write them one by one: a single connection,
// batches turned off, or no io_uring here.
func (f *flusher) batchWriter(n int) *uring.Batch {
	if n < 2 || f.noBatch {
		return nil
	}
	if f.batch == nil {
		bw, err := uring.NewBatch(maxBatch)
		if err != nil {
			f.noBatch = true
			return nil
		}
		f.batch = bw
	}
	return f.batch
}

// take takes c's queued frames for a write, as c's writer; it returns nil
// when there is nothing the flusher writes: c went idle or its writes
// ended (the role is given back), or writeLoop took over (a ping, a pong
// or the close).
func (f *flusher) take(c *Conn) []*Frame {
	c.mu.Lock()
	if c.out.closeReq || c.out.pingDue || c.out.pongDue {
		c.step(evNeedOwn) // actOwn
		c.mu.Unlock()
		go c.writeLoop()
		return nil
	}
	batch := c.out.q
	if c.out.stop || len(batch) == 0 {
		c.idleLocked()
		c.step(c.idleEvent()) // actRelease
		c.mu.Unlock()
		c.writers.Done()
		return nil
	}
	c.out.q, c.out.spare = c.out.spare, nil
	c.mu.Unlock()
	return batch
}

// finish ends the write of batch to c, whose buffers are vec: written
// bytes went out, or err ended it.
func (f *flusher) finish(c *Conn, batch []*Frame, vec [][]byte, written int, err error, now time.Time) {
	if err != nil {
		clear(batch)
		// Closing the socket waits for its reader to leave the descriptor,
		// which it holds while it handles a frame (readReport), and a handler
		// may wait for the broker or the store: not on the flusher.
		go func() {
			c.writeFailed(err)
			c.writers.Done()
		}()
		return
	}
	rest, frames := remainder(vec, batch, written)
	c.framesOut.Add(uint64(frames))
	if rest != nil {
		// The socket took only part: the rest waits for it in writeLoop.
		c.e.shortWrites.Add(1)
		c.w.pending, c.w.pendingFrames = rest, countFrames(batch)-frames
		clear(batch)
		c.mu.Lock()
		c.step(evNeedOwn) // actOwn
		c.mu.Unlock()
		go c.writeLoop()
		return
	}
	clear(batch)
	c.lastFull.Store(now.UnixNano())
	c.lastSent.Store(now.UnixNano())
	c.mu.Lock()
	if cap(batch) <= maxKeptQueue && c.out.spare == nil {
		c.out.spare = batch[:0]
	}
	if len(c.out.q) > 0 || c.out.closeReq || c.out.pingDue || c.out.pongDue {
		c.step(evMore) // actFlusher
		c.mu.Unlock()
		f.push(c)
		return
	}
	c.idleLocked()
	c.step(c.idleEvent()) // actRelease
	c.mu.Unlock()
	c.writers.Done()
}

// remainder returns what of vec, the buffers of batch's frames (appendVec),
// is left after the first n bytes were written (nil when all were), and how
// many WebSocket frames went out whole.
func remainder(vec [][]byte, batch []*Frame, n int) ([][]byte, int) {
	frames, i := 0, 0
	for _, f := range batch {
		if size := len(f.buf) + len(f.tail); n >= size {
			n -= size
			frames += f.n
			i += f.parts()
			continue
		}
		rest := make([][]byte, 0, len(vec)-i)
		for _, b := range vec[i:] {
			if n >= len(b) {
				n -= len(b) // written whole: the frame's header
				continue
			}
			rest = append(rest, b[n:])
			n = 0
		}
		return rest, frames
	}
	return nil, frames
}

// countFrames returns the WebSocket frames in batch.
func countFrames(batch []*Frame) int {
	n := 0
	for _, f := range batch {
		n += f.n
	}
	return n
}
