package engine

import (
	"net"
	"syscall"
	"time"
	"unsafe"

	"github.com/livechat/livechat/internal/engine/sockio"
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

// control runs f with the socket's descriptor (syscall.RawConn.Control): a
// Close of the socket waits for f to return.
func (r rawConn) control(f func(fd uintptr)) error { return r.rc.Control(f) }

// syscallConn is the socket's syscall.RawConn, nil when there is none.
func (r rawConn) syscallConn() syscall.RawConn { return r.rc }

// read runs f on the descriptor until it returns true, waiting for the
// socket to be readable whenever it returns false (syscall.RawConn.Read).
func (r rawConn) read(f func(fd uintptr) bool) error { return r.rc.Read(f) }

// readFD reads the socket's descriptor once into p without waiting (see
// sockio.Read): empty when it holds nothing now, n == 0 at the end of the
// stream.
func readFD(fd uintptr, p []byte) (n int, empty bool, err error) {
	return sockio.Read(func() (int, error) { return syscall.Read(int(fd), p) })
}

// shutdown shuts both directions of the socket down: its reader sees the
// end of the stream, a write fails.
func (r rawConn) shutdown() error {
	var serr error
	err := r.rc.Control(func(fd uintptr) { serr = syscall.Shutdown(int(fd), syscall.SHUT_RDWR) })
	if err != nil {
		return err
	}
	return serr
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
