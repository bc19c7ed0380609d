// Package uring is the little of Linux's io_uring that livechat uses: many
// non-blocking sendmsg(2) calls, to different sockets, in one system call.
//
// A write to a socket costs a system call's entry and exit besides the
// network stack's work, and on some hosts (virtual machines above all) the
// entry and exit are most of it. A server that writes thousands of sockets
// per pass saves that by handing the kernel a batch: queue sends with
// Sendmsg, then Submit runs them all and waits for their results. Every
// send is non-blocking (MSG_DONTWAIT): a full socket takes part or nothing,
// reported in its result, and no send is left running after Submit returns,
// so the caller's buffers are free again at once, as after writev(2).
//
// A Ring is not safe for concurrent use.
package uring

import (
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
	"unsafe"
)

// The io_uring system calls have these numbers on every architecture.
const (
	sysSetup = 425
	sysEnter = 426
)

const (
	opSendmsg      = 9          // IORING_OP_SENDMSG
	setupSubmitAll = 1 << 7     // IORING_SETUP_SUBMIT_ALL: a failing entry does not stop the batch
	enterGetEvents = 1 << 0     // IORING_ENTER_GETEVENTS
	offSQRing      = 0          // IORING_OFF_SQ_RING
	offCQRing      = 0x8000000  // IORING_OFF_CQ_RING
	offSQEs        = 0x10000000 // IORING_OFF_SQES
	featSingleMmap = 1 << 0     // IORING_FEAT_SINGLE_MMAP
	sendFlags      = syscall.MSG_DONTWAIT | syscall.MSG_NOSIGNAL
)

// params is struct io_uring_params.
type params struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff                                                                  sqOffsets
	cqOff                                                                  cqOffsets
}

// sqOffsets is struct io_sqring_offsets.
type sqOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

// cqOffsets is struct io_cqring_offsets.
type cqOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

// sqe is struct io_uring_sqe, as a send uses it.
type sqe struct {
	opcode, flags uint8
	ioprio        uint16
	fd            int32
	off, addr     uint64
	len, msgFlags uint32
	userData      uint64
	_             [3]uint64
}

// cqe is struct io_uring_cqe.
type cqe struct {
	userData uint64
	res      int32
	flags    uint32
}

// Ring is an io_uring instance with room for Entries sends per Submit.
type Ring struct {
	fd      int
	rings   []byte // the submission and completion rings, mapped
	cqMap   []byte // the completion ring, when mapped apart
	sqeMap  []byte
	sqHead  *uint32
	sqTail  *uint32
	sqMask  uint32
	sqArray []uint32
	sqes    []sqe
	cqHead  *uint32
	cqTail  *uint32
	cqMask  uint32
	cqes    []cqe
	entries int
	queued  int // sends queued since the last Submit
	// msgs holds the queued messages: the ring's entries point to them
	// unseen by the garbage collector.
	msgs     []*unix.Msghdr
	released bool
}

// ErrUnsupported is returned by New where the kernel offers no io_uring
// (too old, or refused by a sandbox such as a container's seccomp profile).
var ErrUnsupported = errors.New("uring: io_uring not available")

// New returns a ring that runs up to entries sends per Submit (rounded up
// to a power of two by the kernel).
func New(entries int) (*Ring, error) {
	p := params{flags: setupSubmitAll}
	fd, _, errno := syscall.Syscall(sysSetup, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("%w: io_uring_setup: %w", ErrUnsupported, errno)
	}
	r := &Ring{fd: int(fd), entries: int(p.sqEntries)}
	if err := r.mmap(&p); err != nil {
		_ = r.Close()
		return nil, err
	}
	return r, nil
}

func (r *Ring) mmap(p *params) error {
	const prot, flags = syscall.PROT_READ | syscall.PROT_WRITE, syscall.MAP_SHARED | syscall.MAP_POPULATE
	sqSize := int(p.sqOff.array + p.sqEntries*4)
	cqSize := int(p.cqOff.cqes + p.cqEntries*uint32(unsafe.Sizeof(cqe{})))
	single := p.features&featSingleMmap != 0
	if single {
		sqSize = max(sqSize, cqSize)
	}
	var err error
	if r.rings, err = syscall.Mmap(r.fd, offSQRing, sqSize, prot, flags); err != nil {
		return fmt.Errorf("uring: mmap: %w", err)
	}
	cq := r.rings
	if !single {
		if r.cqMap, err = syscall.Mmap(r.fd, offCQRing, cqSize, prot, flags); err != nil {
			return fmt.Errorf("uring: mmap: %w", err)
		}
		cq = r.cqMap
	}
	if r.sqeMap, err = syscall.Mmap(r.fd, offSQEs, int(p.sqEntries)*int(unsafe.Sizeof(sqe{})), prot, flags); err != nil {
		return fmt.Errorf("uring: mmap: %w", err)
	}
	u32 := func(b []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&b[off])) }
	r.sqHead, r.sqTail, r.sqMask = u32(r.rings, p.sqOff.head), u32(r.rings, p.sqOff.tail), *u32(r.rings, p.sqOff.ringMask)
	r.sqArray = unsafe.Slice(u32(r.rings, p.sqOff.array), p.sqEntries)
	r.sqes = unsafe.Slice((*sqe)(unsafe.Pointer(&r.sqeMap[0])), p.sqEntries)
	r.cqHead, r.cqTail, r.cqMask = u32(cq, p.cqOff.head), u32(cq, p.cqOff.tail), *u32(cq, p.cqOff.ringMask)
	r.cqes = unsafe.Slice((*cqe)(unsafe.Pointer(&cq[p.cqOff.cqes])), p.cqEntries)
	r.msgs = make([]*unix.Msghdr, 0, p.sqEntries)
	return nil
}

// Entries is the most sends one Submit runs.
func (r *Ring) Entries() int { return r.entries }

// Sendmsg queues a non-blocking sendmsg(2) of msg on the socket fd; it
// reports false, queuing nothing, when Entries sends are queued already.
// msg and the memory it points to must stay unchanged until Submit
// returns; the ring keeps msg reachable until then.
func (r *Ring) Sendmsg(fd int, msg *unix.Msghdr) bool {
	if r.queued == r.entries {
		return false
	}
	tail := atomic.LoadUint32(r.sqTail)
	i := tail & r.sqMask
	r.sqes[i] = sqe{
		opcode:   opSendmsg,
		fd:       int32(fd),
		addr:     uint64(uintptr(unsafe.Pointer(msg))),
		len:      1,
		msgFlags: sendFlags,
		userData: uint64(r.queued),
	}
	r.sqArray[i] = i
	r.msgs = append(r.msgs, msg)
	atomic.StoreUint32(r.sqTail, tail+1)
	r.queued++
	return true
}

// Submit runs the queued sends and waits until all are done. res[i] gets
// the i-th queued send's result: the bytes the socket took (0 when it was
// full), or the negated errno (-EPIPE, -ECONNRESET, ...). res must hold one
// slot per queued send. An error means the ring itself failed: the sends'
// results are then unknown and the ring must not be used again.
//
// The calling goroutine keeps its processor (a raw system call): the sends
// never wait, so a batch is CPU work like as many writes, and handing the
// processor to another thread for it only cost a thread switch and, on a
// busy processor, the caller's turn (its goroutine queued again behind
// every runnable one when the call returned).
func (r *Ring) Submit(res []int32) error {
	n := r.queued
	r.queued = 0
	if n == 0 {
		return nil
	}
	defer func() { clear(r.msgs); r.msgs = r.msgs[:0] }()
	res = res[:n]
	toSubmit, done := n, 0
	for done < n {
		_, _, errno := syscall.RawSyscall6(sysEnter, uintptr(r.fd), uintptr(toSubmit), uintptr(n-done), enterGetEvents, 0, 0)
		switch errno {
		case 0:
		case syscall.EINTR, syscall.EAGAIN, syscall.EBUSY:
			// Interrupted or short of memory before or while waiting:
			// what was not taken is submitted again, what was is awaited.
		default:
			return fmt.Errorf("uring: io_uring_enter: %w", errno)
		}
		toSubmit = int(atomic.LoadUint32(r.sqTail) - atomic.LoadUint32(r.sqHead))
		head, tail := atomic.LoadUint32(r.cqHead), atomic.LoadUint32(r.cqTail)
		for ; head != tail; head++ {
			c := &r.cqes[head&r.cqMask]
			if c.userData < uint64(n) {
				res[c.userData] = c.res
				done++
			}
		}
		atomic.StoreUint32(r.cqHead, head)
	}
	for i, v := range res {
		if v == -int32(syscall.EAGAIN) {
			res[i] = 0 // a full socket took nothing
		}
	}
	return nil
}

// Close releases the ring.
func (r *Ring) Close() error {
	if r.released {
		return nil
	}
	r.released = true
	for _, m := range [][]byte{r.sqeMap, r.cqMap, r.rings} {
		if m != nil {
			_ = syscall.Munmap(m)
		}
	}
	return syscall.Close(r.fd)
}
