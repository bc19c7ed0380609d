package engine

import (
	"errors"
	"os"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// A poller watches the sockets of some of a server's connections (one
// poller per processor, connections take turns) in one epoll(7) set, so
// that no goroutine waits on a connection: an idle connection costs no
// goroutine stack (memory, and a stack for the garbage collector to scan in
// every cycle), whatever the number of connections.
//
// The set is edge-triggered: the kernel reports a socket when bytes (or the
// end of the stream) arrive, and the connection's reader (readPolled) reads
// and handles them. With in-process backends, whose calls never wait on the
// network, the reader runs on the poller's goroutine: an event loop, with no
// goroutine start or wake-up per message, and one goroutine stack that
// stays grown (a fresh goroutine per report grew its stack, copying it, at
// every message). Otherwise (Redis, PostgreSQL: a handler may wait) each
// report starts a goroutine that lives while the bytes are handled. A
// connection's read state (Conn.in.state) makes sure that one reader at a
// time reads it: a report while it is read asks the reader for one more
// pass instead of starting another.
//
// The epoll descriptor is itself watched by the runtime's network poller
// (os.NewFile of a non-blocking descriptor), so the poller's goroutine waits
// like any reader and takes no thread. It exists only while connections
// are registered: the set is made at the first and closed after the last.
type poller struct {
	inline bool // the readers run on the poller's goroutine

	mu    sync.Mutex
	set   *epollSet // the set new connections join; nil when none
	slots []*Conn   // registered connections by slot; nil for a free slot
	gens  []uint32  // each slot's generation, bumped when it is freed
	free  []uint32
}

// epollSet is one epoll descriptor and the connections registered in it.
type epollSet struct {
	fd   int
	file *os.File // fd, for the runtime's poller
	n    int      // connections registered, under poller.mu
}

// pollBatch is the most events one epoll_wait(2) returns.
const pollBatch = 128

// newPoller returns an empty poller; it opens nothing until a connection is
// added. inline runs the readers on the poller's goroutine: only for
// handlers that never wait long.
func newPoller(inline bool) *poller { return &poller{inline: inline} }

// add registers c's socket; c's reader runs (readPolled) whenever bytes
// arrive. An error leaves c unregistered: it then needs a reader goroutine
// of its own.
func (p *poller) add(c *Conn) error {
	p.mu.Lock()
	set := p.set
	if set == nil {
		var err error
		if set, err = newEpollSet(); err != nil {
			p.mu.Unlock()
			return err
		}
		p.set = set
		go p.run(set)
	}
	set.n++
	slot := p.alloc(c)
	gen := p.gens[slot]
	p.mu.Unlock()
	c.in.pl, c.in.pset, c.in.pslot = p, set, slot
	c.in.state.Store(readIdle)
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(slot), Pad: int32(gen)}
	var cerr error
	err := c.raw.rc.Control(func(fd uintptr) {
		// Bytes already waiting are reported at once.
		cerr = unix.EpollCtl(set.fd, unix.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		if !c.in.state.CompareAndSwap(readIdle, readOff) {
			// A cut started the reader meanwhile (readable): it ends
			// the connection and removes it.
			return nil
		}
		p.remove(c)
		return err
	}
	if c.cutReq.Load() {
		c.readable(false) // cut while being added: see cut
	}
	return nil
}

// alloc gives c a slot; p.mu is held.
func (p *poller) alloc(c *Conn) uint32 {
	if n := len(p.free); n > 0 {
		slot := p.free[n-1]
		p.free = p.free[:n-1]
		p.slots[slot] = c
		return slot
	}
	p.slots = append(p.slots, c)
	p.gens = append(p.gens, 0)
	return uint32(len(p.slots) - 1)
}

// remove forgets c (its reader has stopped): a report still on its way for
// c's slot is ignored. The socket leaves the epoll set when it is closed.
// The last connection of a set closes it.
func (p *poller) remove(c *Conn) {
	p.mu.Lock()
	p.slots[c.in.pslot] = nil
	p.gens[c.in.pslot]++
	p.free = append(p.free, c.in.pslot)
	set := c.in.pset
	set.n--
	last := set.n == 0
	if last && p.set == set {
		p.set = nil
	}
	p.mu.Unlock()
	if last {
		_ = set.file.Close() // ends its run goroutine
	}
}

func newEpollSet() (*epollSet, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	return &epollSet{fd: fd, file: os.NewFile(uintptr(fd), "livechat-poller")}, nil
}

// run waits for reports from set and starts or prods the readers, until
// set is closed.
func (p *poller) run(set *epollSet) {
	rc, err := set.file.SyscallConn()
	if err != nil {
		return
	}
	evs := make([]unix.EpollEvent, pollBatch)
	ready := make([]*Conn, 0, pollBatch)
	_ = rc.Read(func(fd uintptr) bool {
		for {
			n, err := unix.EpollWait(int(fd), evs, 0)
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			if err != nil || n == 0 {
				// Empty: wait for the runtime's poller to report the set
				// readable (an error: the set was closed).
				return err != nil
			}
			p.mu.Lock()
			for _, ev := range evs[:n] {
				slot := uint32(ev.Fd)
				if int(slot) < len(p.slots) && p.gens[slot] == uint32(ev.Pad) && p.slots[slot] != nil {
					ready = append(ready, p.slots[slot])
				}
			}
			p.mu.Unlock()
			for i, c := range ready {
				c.readable(p.inline)
				ready[i] = nil
			}
			ready = ready[:0]
			if n < len(evs) {
				return false
			}
			if p.inline {
				// More reports wait: let the flusher and the timers run
				// first, as readers woken one by one would.
				runtime.Gosched()
			}
		}
	})
}
