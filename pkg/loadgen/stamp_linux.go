package loadgen

import (
	"encoding/binary"
	"io"
	"net"
	"syscall"
	"unsafe"

	"github.com/livechat/livechat/internal/engine/sockio"
	"github.com/livechat/livechat/pkg/wsframe"
)

// stampConn reads a TCP connection with recvmsg(2) and SO_TIMESTAMPNS, so
// that each read tells when the kernel received the newest data it
// returned: on the same host, about when the server wrote it. The time from
// there to the frame's handling is the load generator's own read lag,
// which a loaded bench adds to every latency it measures; bench reports the
// latency up to the socket apart from it.
type stampConn struct {
	*net.TCPConn
	rc   syscall.RawConn
	oob  []byte
	last int64 // UnixNano of the newest data of the last read, 0 if unknown
}

// stamped returns c reading with receive timestamps, or c when the
// socket does not give them.
func stamped(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
	}); err != nil || serr != nil {
		return c
	}
	return &stampConn{TCPConn: tc, rc: rc, oob: make([]byte, syscall.CmsgSpace(16))}
}

// Read implements net.Conn, honouring the read deadline.
func (c *stampConn) Read(p []byte) (int, error) {
	var n, oobn int
	var rerr error
	err := c.rc.Read(func(fd uintptr) bool {
		n, oobn, _, _, rerr = syscall.Recvmsg(int(fd), p, c.oob, 0)
		return rerr != syscall.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return 0, err
	}
	if n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	c.last = rxStamp(c.oob[:oobn])
	return n, nil
}

// readEach reads the socket into rd inside one RawConn.Read for the
// connection's life and calls got after every read; it returns what ended
// the reading (got's error, the end of the stream, a read error or the
// read deadline). After a read that did not fill rd's space the socket is
// taken to be empty: it waits for the socket instead of reading again to
// find so (bytes that come meanwhile wake that wait at once: the
// readiness is reset only when RawConn.Read starts), as the server's
// reader does. got must not close the connection (Close waits for this
// read to return).
func (c *stampConn) readEach(rd *wsframe.Reader, got func() error) error {
	var rerr error
	drained := false
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			if drained {
				drained = false
				rd.Release()
				return false
			}
			space := rd.Space()
			var oobn int
			n, empty, err := sockio.Read(func() (n int, err error) {
				n, oobn, _, _, err = syscall.Recvmsg(int(fd), space, c.oob, 0)
				return n, err
			})
			switch {
			case empty:
				rd.Release()
				return false
			case err != nil:
				rerr = err
				return true
			case n == 0:
				rerr = io.EOF
				return true
			}
			c.last = rxStamp(c.oob[:oobn])
			rd.Commit(n)
			drained = n < len(space)
			if rerr = got(); rerr != nil {
				return true
			}
		}
	})
	if err != nil {
		return err
	}
	return rerr
}

// lastRx returns when the kernel received the newest data of the last
// read, 0 if unknown.
func (c *stampConn) lastRx() int64 { return c.last }

// rxStamp returns the SCM_TIMESTAMPNS time in a control message buffer, 0
// if there is none. It allocates nothing (syscall.ParseSocketControlMessage
// does, once per read).
func rxStamp(oob []byte) int64 {
	for len(oob) >= syscall.SizeofCmsghdr {
		h := (*syscall.Cmsghdr)(unsafe.Pointer(&oob[0]))
		n := int(h.Len)
		if n < syscall.SizeofCmsghdr || n > len(oob) {
			return 0
		}
		data := oob[syscall.SizeofCmsghdr:n]
		if h.Level == syscall.SOL_SOCKET && h.Type == syscall.SCM_TIMESTAMPNS && len(data) >= 16 {
			sec := int64(binary.NativeEndian.Uint64(data[0:8]))
			nsec := int64(binary.NativeEndian.Uint64(data[8:16]))
			return sec*1e9 + nsec
		}
		oob = oob[min(syscall.CmsgSpace(n-syscall.SizeofCmsghdr), len(oob)):]
	}
	return 0
}
