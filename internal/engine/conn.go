package engine

import (
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livechat/livechat/pkg/wsframe"
)

// A Handler gets a connection's messages and its end.
type Handler interface {
	// Message handles one message (a text message is valid UTF-8; a
	// fragmented message comes whole). It runs on the connection's reader,
	// one message at a time; data is valid until it returns. A non-zero
	// closeCode ends the connection: the close frame (with reason) follows
	// the frames already queued and no more messages are read.
	Message(c *Conn, op int, data []byte) (closeCode int, reason string)
	// Closed is called exactly once per served connection, after its
	// reader and its writer are done and its socket is closed. It may
	// block.
	Closed(c *Conn, e End)
}

// A Reason tells why a connection ended.
type Reason int

// The reasons a connection ends for. The first cause wins: a connection
// closed as slow whose close frame then times out ended as slow.
const (
	// ReasonPeerGone: the stream ended or failed without a close frame.
	ReasonPeerGone Reason = iota
	// ReasonPeerClose: the peer sent a close frame (End.Code is its code),
	// answered with the same code.
	ReasonPeerClose
	// ReasonClosed: Close was called (End.Code is its code).
	ReasonClosed
	// ReasonHandler: Handler.Message asked for the close (End.Code).
	ReasonHandler
	// ReasonProtocol: the peer broke the protocol (End.Code is the close
	// code it got: 1002, or 1009 for a message over Options.ReadLimit).
	ReasonProtocol
	// ReasonInvalidUTF8: a text message was not UTF-8 (closed with 1007).
	ReasonInvalidUTF8
	// ReasonSlow: the client took its frames too slowly: its queue
	// overflowed (closed with 1013) or a write ran out of WriteTimeout
	// (End.Err).
	ReasonSlow
	// ReasonTimeout: nothing came from the peer for PongWait.
	ReasonTimeout
	// ReasonWriteError: a write failed (End.Err).
	ReasonWriteError
)

var reasonNames = [...]string{"peer gone", "peer close", "closed", "handler", "protocol error", "invalid UTF-8", "slow", "timeout", "write error"}

func (r Reason) String() string {
	if r < 0 || int(r) >= len(reasonNames) {
		return "unknown"
	}
	return reasonNames[r]
}

// End is how a connection ended, as Handler.Closed gets it.
type End struct {
	Reason Reason
	// Code is the close code sent or received, 0 when none was.
	Code int
	// Err is the error that ended it, if any (a write's).
	Err error
}

// Conn is one WebSocket connection. Send, SendIfIdle, Idle, Close,
// FramesOut and RemoteAddr are safe for concurrent use and never block.
//
// Its reader owns the inbound side (in): run by a poller while the client's
// bytes are read and handled or, where there is no poller, a goroutine for
// the connection's life. One writer at a time owns the socket's writes
// (w): the flusher, or the connection's own writer goroutine, which runs
// only while there is something to write. The outbound state (out), under
// mu, says which and what there is to write.
type Conn struct {
	e   *Engine
	nc  net.Conn // the upgraded socket
	raw rawConn  // nc's descriptor, for raw reads and writes; not ok() without one
	fl  *flusher // writes c when no writer runs; nil with Options.NoFlusher
	h   Handler  // set by Serve

	framesOut atomic.Uint64 // WebSocket frames written whole
	// lastFull is the UnixNano of the last write that left nothing behind
	// (or the upgrade): the clock of the slow-client check.
	lastFull atomic.Int64
	// lastSent is when the last write that put data frames whole on the
	// socket started, UnixNano; math.MaxInt64 until the first: the clock
	// of SendIfIdle and Idle.
	lastSent   atomic.Int64
	cutReq     atomic.Bool   // set by cut: the reader stops at its next read
	selfClose  atomic.Bool   // the reader asked for the close and stops reading
	readerDone chan struct{} // closed by the reader when it stops
	writers    sync.WaitGroup

	in inbound // owned by the reader

	// mu guards out.
	mu  sync.Mutex
	out outbound

	w writeState // owned by the writer role's holder
}

// inbound is a connection's read side, owned by its reader.
type inbound struct {
	rd wsframe.Reader // the frame parser and its buffer
	// extended is when the reader last moved the read deadline
	// (extendRead).
	extended time.Time
	// With a poller (poll_linux.go): the read state (readIdle...), the
	// connection's epoll set and slot, and the timer that cuts it after
	// PongWait of silence (the read deadline of a polled socket, which no
	// goroutine waits on).
	state atomic.Int32
	pl    *poller
	pset  *epollSet
	pslot uint32
	timer *time.Timer
}

// outbound is what a connection has to write and who writes it, under
// Conn.mu.
type outbound struct {
	role     role        // who writes the socket (role.go); changed by step only
	q        []*Frame    // queued frames, oldest first
	spare    []*Frame    // the holder's emptied batch, the next q
	pingDue  bool        // a ping is to be written (by the own writer)
	pongDue  bool        // a pong is to be written (by the own writer)
	pongData []byte      // the ping's payload to answer
	pinger   *time.Timer // calls pingTick every PingPeriod; set by Serve
	// closeReq is set by the first kick: the own writer sends the close
	// frame (closeCode, closeReason), after the queued frames when
	// closeFlush; frames sent from then on are dropped.
	closeReq    bool
	closeCode   int
	closeReason string
	closeFlush  bool
	stop        bool // the reader finished: the holder ends the writes at its turn
	end         End  // why the connection ends: the first cause
	endSet      bool // end holds a cause
}

// writeState is the writer's own state, owned by the writer role's holder
// (the flusher or writeLoop).
type writeState struct {
	vec       [][]byte    // the write vector of the frames being flushed
	wbuf      net.Buffers // the copy of vec that net.Buffers.WriteTo consumes
	deadline  time.Time   // the socket's write deadline; zero when none is set
	lastWrite time.Time   // when the last write began
	// from is when the interval before the next write counts from:
	// lastWrite, or zero (the next write is due at once) after a write
	// that followed a quiet spell (wrote).
	from time.Time
	// pending is what a flusher's short write left, with pendingFrames
	// frames in it, for writeLoop.
	pending       net.Buffers
	pendingFrames int
}

func newConn(e *Engine, nc net.Conn) *Conn {
	c := &Conn{
		e:          e,
		nc:         nc,
		raw:        newRawConn(nc),
		readerDone: make(chan struct{}),
	}
	if c.raw.ok() {
		c.fl = e.flusherFor()
	}
	c.lastFull.Store(time.Now().UnixNano())
	c.lastSent.Store(math.MaxInt64) // nothing sent yet
	return c
}

// Serve starts the connection's reader and pings: h gets its messages, and
// its end. Call it once, after registering the connection wherever Closed
// unregisters it; frames sent before it are written meanwhile. It does not
// block.
func (c *Conn) Serve(h Handler) {
	c.h = h
	c.mu.Lock()
	c.out.pinger = time.AfterFunc(c.e.opt.PingPeriod, c.pingTick)
	c.mu.Unlock()
	if pl := c.e.pollerFor(); pl != nil && c.raw.ok() {
		c.in.rd.Limit, c.in.rd.FromClient = c.e.opt.ReadLimit, true
		c.in.extended = time.Now()
		c.in.timer = time.AfterFunc(c.readWait(), c.readTimeout)
		if pl.add(c) == nil {
			return
		}
		c.in.timer.Stop()
		c.in.timer = nil
	}
	go c.readLoop()
}

// Send queues f without blocking. When SendQueue frames already wait and
// the socket has taken no whole write for a while (or four times as many
// wait), the client is too slow: the connection is closed with 1013 and
// ReasonSlow, and f is dropped. Once the connection closes (Close or
// another cause) f is dropped.
func (c *Conn) Send(f *Frame) { c.enqueue(f) }

// SendIfIdle queues f only when no data frame went out since cutoff and
// nothing waits to be written (a heartbeat for a quiet connection); it
// reports whether it queued f. It never blocks.
func (c *Conn) SendIfIdle(f *Frame, cutoff time.Time) bool {
	if !c.Idle(cutoff) {
		return false
	}
	c.mu.Lock()
	if c.out.role == roleDone || c.out.closeReq || len(c.out.q) > 0 {
		c.mu.Unlock()
		return false
	}
	a := c.queueLocked(f)
	c.mu.Unlock()
	c.act(a)
	return true
}

// Idle reports whether the last write of data frames to c started at or
// before cutoff. It is false until the first data frame has been written,
// so that nothing conditional goes before the first frame Sent.
func (c *Conn) Idle(cutoff time.Time) bool { return c.lastSent.Load() <= cutoff.UnixNano() }

// FramesOut is the number of WebSocket frames written whole to c, those of
// UncountedTextFrame excepted.
func (c *Conn) FramesOut() uint64 { return c.framesOut.Load() }

// RemoteAddr is the client's network address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// Close ends the connection from outside: the close frame with code and
// reason follows the frames already queued, and the socket is closed once
// the peer answers, or after at most WriteTimeout plus a second. With
// CloseAbnormal (1006, never sent in a close frame) it cuts the socket at
// once, without a close frame. Only the first Close (or other cause of the
// end) counts. It never blocks.
func (c *Conn) Close(code int, reason string) {
	if code == CloseAbnormal {
		c.setEnd(End{Reason: ReasonClosed, Code: code})
		c.cut()
		return
	}
	c.kick(End{Reason: ReasonClosed, Code: code}, reason, true, false)
}

// setEnd records e as the cause of the end unless one is recorded.
func (c *Conn) setEnd(e End) {
	c.mu.Lock()
	c.setEndLocked(e)
	c.mu.Unlock()
}

func (c *Conn) setEndLocked(e End) {
	if !c.out.endSet {
		c.out.end, c.out.endSet = e, true
	}
}

// kick asks the writer for the close handshake with e.Code and reason,
// after writing what is queued when flush is set; self tells that the
// reader asked and stops reading. Only the first call counts; it reports
// whether this call was it. It never blocks.
func (c *Conn) kick(e End, reason string, flush, self bool) bool {
	c.mu.Lock()
	if c.out.closeReq {
		c.mu.Unlock()
		return false
	}
	c.setEndLocked(e)
	c.out.closeReq = true
	c.out.closeCode, c.out.closeReason, c.out.closeFlush = e.Code, reason, flush
	if self {
		c.selfClose.Store(true)
	}
	a := c.step(evClose)
	c.mu.Unlock()
	c.act(a)
	return true
}

// cut ends the connection from outside its reader (a failed write, the end
// of a close handshake, the read deadline of a polled socket, Close with
// CloseAbnormal). It shuts the socket down both ways, so that a blocked
// write fails and the reader sees the end of the stream; a polled
// connection's reader is also started, as the socket may report nothing
// more (a reset one). The reader then finishes the connection, which closes
// the socket. Where the socket cannot be shut down (no file descriptor, or
// reset) and no polled reader will finish it, cut closes it: a reader
// goroutine waiting on it returns.
func (c *Conn) cut() {
	c.cutReq.Store(true) // before readable: see poller.add
	shut := c.raw.ok() && c.raw.shutdown() == nil
	if !c.readable(false) && !shut {
		_ = c.nc.Close()
	}
}

// finish runs when the reader stops: it ends the writer, closes the socket
// and tells the handler.
func (c *Conn) finish() {
	if c.selfClose.Load() {
		c.writers.Wait() // the writer sends the close frame, then returns
		close(c.readerDone)
		c.stopWriter()
	} else {
		close(c.readerDone)
		c.stopWriter()
		_ = c.nc.Close() // unblocks a writer stuck on a dead peer
		c.writers.Wait()
	}
	_ = c.nc.Close()
	c.mu.Lock()
	e := c.out.end
	c.mu.Unlock()
	c.h.Closed(c, e)
}

// stopWriter ends the connection's writes: no writer starts any more and
// the ping timer stops. A holder of the writer role ends at its next turn.
func (c *Conn) stopWriter() {
	c.mu.Lock()
	c.out.stop = true
	c.step(evStop)
	if c.out.pinger != nil {
		c.out.pinger.Stop()
	}
	c.mu.Unlock()
}
