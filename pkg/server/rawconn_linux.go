package server

import (
	"errors"
	"net"
	"runtime"
	"syscall"
	"time"
	"unsafe"

	"github.com/livechat/livechat/pkg/uring"
	"golang.org/x/sys/unix"
)

// rawConn writes to a socket's file descriptor without waiting.
type rawConn struct{ rc syscall.RawConn }

// newRawConn returns nc's raw side; it is not ok when nc has no file
// descriptor (a TLS or in-memory connection): such a connection is written
// by its own writer goroutine only.
func newRawConn(nc net.Conn) rawConn {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return rawConn{}
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return rawConn{}
	}
	return rawConn{rc: rc}
}

// ok reports whether r can write and read.
func (r rawConn) ok() bool { return r.rc != nil }

// read runs f on the descriptor until it returns true, waiting for the
// socket to be readable whenever it returns false (syscall.RawConn.Read).
func (r rawConn) read(f func(fd uintptr) bool) error { return r.rc.Read(f) }

// readRaw reads the socket's file descriptor, run once for the connection's
// life by RawConn.Read, which waits for the socket whenever it returns
// false. It reads what the socket holds and handles every whole frame; a
// read that does not fill the buffer found the socket empty, so it waits
// then without the read that would find it so (bytes that come later wake
// the wait, as the wait's readiness is only reset when RawConn.Read starts).
// While it waits it holds no read buffer. It returns true to stop reading:
// at the end of the stream, on an error, or when the handler says so.
//
// As the callback runs while frames are handled, a Close of the socket
// from another goroutine waits for the handler to return (a Close waits
// for the descriptor's users): the flusher, shared by many connections,
// therefore never closes a socket itself (flusher.write).
func (c *conn) readRaw(fd uintptr) bool {
	rd := &c.rd
	for {
		if c.drained {
			c.drained = false
			rd.Release()
			return false
		}
		space := rd.Space()
		n, err := syscall.Read(int(fd), space)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			rd.Release()
			return false
		case err != nil || n <= 0:
			return true
		}
		rd.Commit(n)
		c.drained = n < len(space)
		if c.extendRead(time.Now()) != nil || !c.consume() {
			return true
		}
	}
}

// rawWriter is a flusher's writev(2) state, kept from one write to the next
// so that a write allocates nothing.
type rawWriter struct {
	bufs [][]byte
	iov  []syscall.Iovec
	n    int
	err  error
	fn   func(fd uintptr) bool // w.write, made once
}

func newRawWriter() *rawWriter {
	w := &rawWriter{}
	w.fn = w.write
	return w
}

// writev writes bufs to r with writev(2) and returns how many bytes the
// socket took, never waiting for room: a full socket buffer is not an
// error, only a short count.
func (w *rawWriter) writev(r rawConn, bufs [][]byte) (int, error) {
	w.bufs, w.n, w.err = bufs, 0, nil
	err := r.rc.Write(w.fn)
	clear(w.iov) // drop the references to the frames' bytes
	w.bufs = nil
	if err == nil {
		err = w.err
	}
	return w.n, err
}

// write is the raw write: as many writev(2) calls as the socket takes whole
// (IOV_MAX buffers each), stopping at a short one.
func (w *rawWriter) write(fd uintptr) bool {
	for len(w.bufs) > 0 {
		chunk := w.bufs[:min(len(w.bufs), maxIOV)]
		iov, want := w.iov[:0], 0
		for _, b := range chunk {
			v := syscall.Iovec{Base: &b[0]}
			v.SetLen(len(b))
			iov = append(iov, v)
			want += len(b)
		}
		w.iov = iov
		m, _, errno := syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
		switch {
		case errno == syscall.EINTR:
			continue
		case errno == syscall.EAGAIN:
			return true
		case errno != 0:
			w.err = errno
			return true
		}
		w.n += int(m)
		if int(m) < want {
			return true // the socket is full
		}
		w.bufs = w.bufs[len(chunk):]
	}
	return true
}

// maxIOV is the most buffers one writev(2) takes (IOV_MAX on Linux).
const maxIOV = 1024

// processCPU returns the CPU time the process has used, user and system.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}

// batchWriter writes the frames of many connections with one
// io_uring_enter(2) (uring.Ring), each send non-blocking like writev above.
// On a host where a system call's entry and exit cost as much as a small
// write's network work (a virtual machine), that halves the CPU of a pass
// over thousands of sockets. While the kernel sends, the batch holds every
// socket's descriptor (RawConn.Write, nested, one per connection), so a
// concurrent Close waits for the batch, as it waits for a writev; the
// batch itself waits for nothing.
type batchWriter struct {
	ring  *uring.Ring
	slots []batchSlot
	n     int     // slots in use
	res   []int32 // the ring's results
	order []int   // the slot of each send queued to the ring
	err   error   // the ring failed: it is not used again
}

// batchSlot is one connection's part of a batch.
type batchSlot struct {
	w    *batchWriter
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

// newBatchWriter returns a batch writer over a new ring, or the reason
// there is none (no io_uring on this kernel, or refused by a sandbox).
func newBatchWriter() (*batchWriter, error) {
	ring, err := uring.New(maxBatch)
	if err != nil {
		return nil, err
	}
	w := &batchWriter{
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
	// The ring's descriptor and memory go with the writer.
	runtime.AddCleanup(w, func(r *uring.Ring) { _ = r.Close() }, ring)
	return w, nil
}

// add puts bufs for r in the batch and returns its slot; bufs may hold at
// most maxIOV buffers. Each slot must be a different socket: run holds
// every socket's write lock at once.
func (w *batchWriter) add(r rawConn, bufs [][]byte) int {
	s := &w.slots[w.n]
	s.rc, s.bufs, s.held, s.n, s.err = r.rc, bufs, false, 0, nil
	w.n++
	return s.i
}

// close releases the ring at once.
func (w *batchWriter) close() { _ = w.ring.Close() }

// run sends every slot's buffers, at most one sendmsg(2) each.
func (w *batchWriter) run() { w.hold(0) }

// result is slot i's outcome: the bytes its socket took (fewer than asked
// when it was full) or the error that ended it.
func (w *batchWriter) result(i int) (int, error) {
	s := &w.slots[i]
	return s.n, s.err
}

// reset empties the batch, dropping its references to the frames.
func (w *batchWriter) reset() {
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
func (w *batchWriter) hold(i int) {
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
func (w *batchWriter) submit() {
	w.order = w.order[:0]
	for i := range w.n {
		s := &w.slots[i]
		if !s.held {
			continue
		}
		iov := s.iov[:0]
		for _, b := range s.bufs {
			v := unix.Iovec{Base: &b[0]}
			v.SetLen(len(b))
			iov = append(iov, v)
		}
		s.iov = iov
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
		// The sends' outcome is unknown, so their connections must end
		// (their clients resume from the history when they come back).
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
			// Nothing taken: the short count hands it to writeLoop.
		default:
			s.err = syscall.Errno(-r)
		}
	}
}

func (w *batchWriter) errOr(err error) error {
	if w.err != nil {
		return w.err
	}
	return err
}

// errBatchFull is a slot the ring had no room for; add's bound prevents it.
var errBatchFull = errors.New("server: write batch larger than its ring")
