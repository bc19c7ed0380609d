//go:build unix

package server

import (
	"errors"
	"net"
	"syscall"

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

// ok reports whether r can write.
func (r rawConn) ok() bool { return r.rc != nil }

// writev writes bufs with one writev(2) and returns how many bytes the
// socket took, never waiting for room: a full socket buffer is not an
// error, only a short count.
func (r rawConn) writev(bufs [][]byte) (int, error) {
	var n int
	var werr error
	err := r.rc.Write(func(fd uintptr) bool {
		for len(bufs) > 0 {
			chunk := bufs
			if len(chunk) > maxIOV {
				chunk = chunk[:maxIOV]
			}
			m, e := unix.Writev(int(fd), chunk)
			if errors.Is(e, unix.EINTR) {
				continue
			}
			if e != nil {
				if !errors.Is(e, unix.EAGAIN) {
					werr = e
				}
				return true
			}
			n += m
			if m < bytesIn(chunk) {
				return true // the socket is full
			}
			bufs = bufs[len(chunk):]
		}
		return true
	})
	if err == nil {
		err = werr
	}
	return n, err
}

// maxIOV is the most buffers one writev(2) takes (IOV_MAX on Linux).
const maxIOV = 1024

func bytesIn(bufs [][]byte) int {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	return n
}
