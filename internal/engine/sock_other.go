//go:build !linux

package engine

import (
	"errors"
	"net"
	"syscall"
	"time"
)

// rawConn is not available here: every connection is written by its own
// writer goroutine and read by a goroutine of its own.
type rawConn struct{}

func newRawConn(net.Conn) rawConn { return rawConn{} }

func (rawConn) ok() bool { return false }

// syscallConn is nil here.
func (rawConn) syscallConn() syscall.RawConn { return nil }

func (rawConn) read(func(uintptr) bool) error {
	panic("engine: no raw reads on this system")
}

func (rawConn) shutdown() error { return errors.ErrUnsupported }

func (rawConn) control(func(uintptr)) error { return errors.ErrUnsupported }

func readFD(uintptr, []byte) (int, bool, error) {
	panic("engine: no raw reads on this system")
}

// rawWriter is never used here.
type rawWriter struct{}

func newRawWriter() *rawWriter { return nil }

func (*rawWriter) writev(rawConn, [][]byte) (int, error) {
	panic("engine: no raw writes on this system")
}

// processCPU is not read here (flushers do not run without raw writes).
func processCPU() (time.Duration, bool) { return 0, false }
