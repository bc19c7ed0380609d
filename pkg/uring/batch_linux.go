package uring

import (
	"errors"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// Batch writes buffers to many sockets with one io_uring_enter(2), a
// non-blocking sendmsg(2) each: Add the sockets' buffers, Run, read each
// Result, Reset. While the kernel sends, Run holds every socket's
// descriptor (syscall.RawConn.Write, nested, one per socket), so a
// concurrent Close waits for the batch as it waits for a write; the batch
// itself waits for nothing. A Batch is not safe for concurrent use.
type Batch struct {
	ring  *Ring
	slots []batchSlot
	n     int     // slots in use
	res   []int32 // the ring's results
	order []int   // the slot of each send queued to the ring
	err   error   // the ring failed: it is not used again
}

// batchSlot is one socket's part of a batch.
type batchSlot struct {
	w    *Batch
	i    int
	rc   syscall.RawConn
	bufs [][]byte
	held bool // its descriptor is held (the send is queued)
	fd   int
	n    int // bytes the socket took
	err  error
	iov  []unix.Iovec
	msg  unix.Msghdr
	fn   func(uintptr) bool // the slot's enter, made once
}

// NewBatch returns a batch of up to size sockets over a new ring, or the
// reason there is none (ErrUnsupported: no io_uring on this kernel, or
// refused by a sandbox).
func NewBatch(size int) (*Batch, error) {
	ring, err := New(size)
	if err != nil {
		return nil, err
	}
	w := &Batch{
		ring:  ring,
		slots: make([]batchSlot, ring.Entries()),
		res:   make([]int32, ring.Entries()),
		order: make([]int, 0, ring.Entries()),
	}
	for i := range w.slots {
		s := &w.slots[i]
		s.w, s.i = w, i
		s.fn = s.enter
	}
	// The ring's descriptor and memory go with the batch.
	runtime.AddCleanup(w, func(r *Ring) { _ = r.Close() }, ring)
	return w, nil
}

// Add puts bufs (at most MaxIOV buffers) for the socket rc in
// the batch and returns its number, or -1 when the batch is full. Each
// socket may be added once per batch: Run holds all their write locks at
// once.
func (w *Batch) Add(rc syscall.RawConn, bufs [][]byte) int {
	if w.n == len(w.slots) {
		return -1
	}
	s := &w.slots[w.n]
	s.rc, s.bufs, s.held, s.n, s.err = rc, bufs, false, 0, nil
	w.n++
	return s.i
}

// Close releases the ring at once (else the garbage collector does).
func (w *Batch) Close() { _ = w.ring.Close() }

// Size is the most sockets one batch takes.
func (w *Batch) Size() int { return len(w.slots) }

// Len is the number of sockets added since the last Reset.
func (w *Batch) Len() int { return w.n }

// Err is the ring's failure, nil while it works. After a failure every
// Run fails its sockets with it: use another way to write.
func (w *Batch) Err() error { return w.err }

// Run sends every added socket's buffers, one sendmsg(2) each.
func (w *Batch) Run() { w.hold(0) }

// Result is the outcome of the socket Add numbered i: the bytes it took
// (fewer than asked when it was full, 0 when it took none) or the error
// that ended it (the socket closed, its write deadline passed, a network
// error, or the ring's failure).
func (w *Batch) Result(i int) (int, error) {
	s := &w.slots[i]
	return s.n, s.err
}

// Reset empties the batch, dropping its references to the buffers.
func (w *Batch) Reset() {
	for i := range w.n {
		s := &w.slots[i]
		s.rc, s.bufs = nil, nil
		clear(s.iov)
		s.msg = unix.Msghdr{}
	}
	w.n = 0
}

// hold takes slot i's descriptor and, inside, the next slot's; with the
// last one held it submits the batch.
func (w *Batch) hold(i int) {
	if i == w.n {
		w.submit()
		return
	}
	s := &w.slots[i]
	err := s.rc.Write(s.fn)
	if !s.held {
		// Closed, or its write deadline passed: not sent; the rest goes on.
		s.err = err
		w.hold(i + 1)
	}
}

// enter is slot's RawConn.Write callback: with the descriptor held, it goes
// on to the next slot.
func (s *batchSlot) enter(fd uintptr) bool {
	s.held, s.fd = true, int(fd)
	s.w.hold(s.i + 1)
	return true
}

// submit queues a sendmsg for every held slot and runs them.
func (w *Batch) submit() {
	w.order = w.order[:0]
	for i := range w.n {
		s := &w.slots[i]
		if !s.held {
			continue
		}
		iov := s.iov[:0]
		for _, b := range s.bufs {
			if len(b) == 0 {
				continue
			}
			v := unix.Iovec{Base: &b[0]}
			v.SetLen(len(b))
			iov = append(iov, v)
		}
		s.iov = iov
		if len(iov) == 0 {
			continue // nothing to send: 0 bytes, no error
		}
		s.msg = unix.Msghdr{Iov: &iov[0]}
		s.msg.SetIovlen(len(iov))
		if w.err == nil && w.ring.Sendmsg(s.fd, &s.msg) {
			w.order = append(w.order, i)
		} else {
			s.err = w.errOr(errBatchFull)
		}
	}
	if len(w.order) == 0 {
		return
	}
	if err := w.ring.Submit(w.res); err != nil {
		// The sends' outcome is unknown: the caller must give their
		// sockets up (Err tells).
		w.err = err
		for _, i := range w.order {
			w.slots[i].err = err
		}
		return
	}
	for k, i := range w.order {
		s := &w.slots[i]
		switch r := w.res[k]; {
		case r >= 0:
			s.n = int(r)
		case r == -int32(syscall.EINTR):
			// Nothing taken: reported as a socket that took nothing.
		default:
			s.err = syscall.Errno(-r)
		}
	}
}

func (w *Batch) errOr(err error) error {
	if w.err != nil {
		return w.err
	}
	return err
}

// errBatchFull is a socket the ring had no room for; Add's bound prevents it.
var errBatchFull = errors.New("uring: batch larger than its ring")

// MaxIOV is the most buffers one socket's send takes (IOV_MAX).
const MaxIOV = 1024
