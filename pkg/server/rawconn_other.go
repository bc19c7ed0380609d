//go:build !linux

package server

import (
	"net"
	"time"

	"github.com/livechat/livechat/pkg/uring"
)

// rawConn is not available here: every connection is written by its own
// writer goroutine.
type rawConn struct{}

func newRawConn(net.Conn) rawConn { return rawConn{} }

func (rawConn) ok() bool { return false }

func (rawConn) read(func(uintptr) bool) error {
	panic("server: no raw reads on this system")
}

func (*conn) readRaw(uintptr) bool { panic("server: no raw reads on this system") }

// rawWriter is never used here.
type rawWriter struct{}

func newRawWriter() *rawWriter { return nil }

func (*rawWriter) writev(rawConn, [][]byte) (int, error) {
	panic("server: no raw writes on this system")
}

// processCPU is not read here (flushers do not run without raw writes).
func processCPU() (time.Duration, bool) { return 0, false }

// batchWriter is never used here: newBatchWriter always fails.
type batchWriter struct{ err error }

func newBatchWriter() (*batchWriter, error) { return nil, uring.ErrUnsupported }

func (*batchWriter) add(rawConn, [][]byte) int { panic("server: no batched writes on this system") }
func (*batchWriter) run()                      {}
func (*batchWriter) result(int) (int, error)   { return 0, nil }
func (*batchWriter) reset()                    {}

// maxIOV bounds a batched write's buffers (unused here).
const maxIOV = 1024

func (*batchWriter) close() {}
