//go:build linux

package uring

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
	"testing"
	"unsafe"
)

// newRing returns a ring of 8 entries, failing the test where io_uring is
// refused unless outside CI (a sandbox may refuse it; the server then
// writes with writev).
func newRing(t *testing.T) *Ring {
	t.Helper()
	r, err := New(8)
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// pair returns a connected loopback TCP pair: the server side's descriptor
// (kept open by the returned conn) and the client side.
func pair(t *testing.T) (int, net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	var fd int
	rc, _ := s.(*net.TCPConn).SyscallConn()
	_ = rc.Control(func(f uintptr) { fd = int(f) })
	return fd, s, c
}

// msg returns a msghdr over bufs.
func msg(bufs ...[]byte) *unix.Msghdr {
	iov := make([]unix.Iovec, len(bufs))
	for i, b := range bufs {
		iov[i].Base = &b[0]
		iov[i].SetLen(len(b))
	}
	m := &unix.Msghdr{Iov: &iov[0]}
	m.SetIovlen(len(iov))
	return m
}

func TestSendmsgBatch(t *testing.T) {
	r := newRing(t)
	if r.Entries() != 8 {
		t.Fatalf("entries %d, want 8", r.Entries())
	}
	var clients []net.Conn
	for i := range 5 {
		fd, _, c := pair(t)
		clients = append(clients, c)
		m := msg([]byte("hello "), []byte{byte('a' + i)})
		if !r.Sendmsg(fd, m) {
			t.Fatal("Sendmsg refused with room left")
		}
	}
	// A descriptor that is no socket fails alone; the rest of the batch runs.
	if !r.Sendmsg(-1, msg([]byte("x"))) {
		t.Fatal("Sendmsg refused with room left")
	}
	res := make([]int32, 8)
	if err := r.Submit(res); err != nil {
		t.Fatal(err)
	}
	for i, c := range clients {
		if res[i] != 7 {
			t.Fatalf("send %d: result %d, want 7", i, res[i])
		}
		got := make([]byte, 7)
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatal(err)
		}
		if want := "hello " + string(rune('a'+i)); string(got) != want {
			t.Fatalf("client %d read %q, want %q", i, got, want)
		}
	}
	if res[5] != -int32(syscall.EBADF) {
		t.Fatalf("bad descriptor: result %d, want -EBADF", res[5])
	}
	// The ring is reusable, and full at Entries.
	fd, _, c := pair(t)
	for i := range 8 {
		if !r.Sendmsg(fd, msg([]byte{byte('0' + i)})) {
			t.Fatalf("Sendmsg %d refused", i)
		}
	}
	if r.Sendmsg(fd, msg([]byte("9"))) {
		t.Fatal("Sendmsg took a ninth send in a ring of 8")
	}
	if err := r.Submit(res); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 8)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != "01234567" {
		t.Fatalf("read %q: sends to one socket out of order", got)
	}
}

// A full socket takes part of a send or nothing, without an error and
// without waiting; a reset one reports its error.
func TestSendmsgFullAndReset(t *testing.T) {
	r := newRing(t)
	fd, s, c := pair(t)
	_ = s.(*net.TCPConn).SetWriteBuffer(4096)
	_ = c.(*net.TCPConn).SetReadBuffer(4096)
	big := bytes.Repeat([]byte("x"), 64<<10)
	res := make([]int32, 1)
	var total int
	for i := 0; ; i++ {
		if i > 1000 {
			t.Fatal("the socket never filled")
		}
		r.Sendmsg(fd, msg(big))
		if err := r.Submit(res); err != nil {
			t.Fatal(err)
		}
		if res[0] < 0 {
			t.Fatalf("full socket: result %d, want a count", res[0])
		}
		total += int(res[0])
		if res[0] == 0 {
			break // full: nothing taken, no error
		}
	}
	if total == 0 {
		t.Fatal("nothing was sent")
	}
	// Reset the client (SO_LINGER 0): the next sends fail, not block.
	_ = c.(*net.TCPConn).SetLinger(0)
	c.Close()
	for i := 0; ; i++ {
		if i > 1000 {
			t.Fatal("sends to a reset socket never failed")
		}
		r.Sendmsg(fd, msg([]byte("y")))
		if err := r.Submit(res); err != nil {
			t.Fatal(err)
		}
		if res[0] == -int32(syscall.ECONNRESET) || res[0] == -int32(syscall.EPIPE) {
			break
		}
		if res[0] < 0 {
			t.Fatalf("reset socket: result %d, want -ECONNRESET or -EPIPE", res[0])
		}
	}
}

func TestSizes(t *testing.T) {
	if unsafe.Sizeof(sqe{}) != 64 || unsafe.Sizeof(cqe{}) != 16 || unsafe.Sizeof(params{}) != 120 {
		t.Fatalf("sizes: sqe %d cqe %d params %d, want 64 16 120", unsafe.Sizeof(sqe{}), unsafe.Sizeof(cqe{}), unsafe.Sizeof(params{}))
	}
}

// tcpPair returns a connected loopback TCP pair: the side a batch writes
// and the side that reads.
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	_, s, c := pair(t)
	return s, c
}

// rawConn returns c's syscall.RawConn.
func rawConn(t *testing.T, c net.Conn) syscall.RawConn {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// TestBatch: one batch writes several sockets; a closed socket fails
// alone, a full one takes part without an error, and the batch is reused
// up to its size.
func TestBatch(t *testing.T) {
	newRing(t) // io_uring is there (or the test skips outside CI)
	bw, err := NewBatch(64)
	if err != nil {
		t.Fatal(err)
	}
	defer bw.Close()
	var peers []net.Conn
	var slots []int
	for i := range 3 {
		s, c := tcpPair(t)
		peers = append(peers, c)
		slots = append(slots, bw.Add(rawConn(t, s), [][]byte{[]byte("frame "), []byte(strconv.Itoa(i))}))
	}
	closed, _ := tcpPair(t)
	closedRC := rawConn(t, closed)
	_ = closed.Close()
	closedSlot := bw.Add(closedRC, [][]byte{[]byte("lost")})
	// A socket with small buffers whose reader reads nothing: 1 MiB does
	// not fit.
	full, fullPeer := tcpPair(t)
	_ = full.(*net.TCPConn).SetWriteBuffer(4096)
	_ = fullPeer.(*net.TCPConn).SetReadBuffer(4096)
	big := bytes.Repeat([]byte("y"), 1<<20)
	fullSlot := bw.Add(rawConn(t, full), [][]byte{big})
	bw.Run()

	for i, c := range peers {
		n, err := bw.Result(slots[i])
		if err != nil || n != 7 {
			t.Fatalf("socket %d: %d bytes, %v; want 7, nil", i, n, err)
		}
		got := make([]byte, 7)
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatal(err)
		}
		if want := "frame " + strconv.Itoa(i); string(got) != want {
			t.Fatalf("socket %d read %q, want %q", i, got, want)
		}
	}
	if _, err := bw.Result(closedSlot); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("closed socket: %v, want net.ErrClosed", err)
	}
	n, err := bw.Result(fullSlot)
	if err != nil || n <= 0 || n >= len(big) {
		t.Fatalf("full socket: %d bytes, %v; want part of %d and no error", n, err, len(big))
	}
	bw.Reset()
	for i := range bw.slots {
		if bw.slots[i].bufs != nil || bw.slots[i].rc != nil {
			t.Fatalf("slot %d keeps its buffers after reset", i)
		}
	}

	// Reused, as many connections as the ring takes.
	peers = peers[:0]
	for i := range bw.Size() {
		s, c := tcpPair(t)
		peers = append(peers, c)
		bw.Add(rawConn(t, s), [][]byte{{byte('a' + i%26)}})
	}
	bw.Run()
	for i, c := range peers {
		if n, err := bw.Result(i); n != 1 || err != nil {
			t.Fatalf("send %d: %d bytes, %v", i, n, err)
		}
		got := make([]byte, 1)
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatal(err)
		}
		if got[0] != byte('a'+i%26) {
			t.Fatalf("socket %d read %q, want %q", i, got, byte('a'+i%26))
		}
	}
	bw.Reset()
}
