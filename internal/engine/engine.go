// Package engine is livechat's WebSocket connection engine: it owns
// everything about a client's socket, and nothing of the chat. It upgrades
// the HTTP request, reads and parses the client's frames (on a shared epoll
// poller where there is one, else a goroutine per connection), validates
// text messages as UTF-8, answers pings, pings the client, keeps the read
// and write deadlines, queues outbound frames without blocking and writes
// them (many connections' queues per system call from a shared flusher, or
// a connection's own writer goroutine for writes that may block), runs the
// close handshake and disconnects a client too slow to take its frames.
//
// A user of the engine sees a Conn: it queues frames with Send (which never
// blocks), ends the connection with Close, and gets the client's messages
// and the connection's end through a Handler:
//
//	e := engine.New(engine.Options{PongWait: time.Minute})
//	http.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
//		c, err := e.Upgrade(w, r) // answers the HTTP error itself
//		if err != nil {
//			return
//		}
//		c.Send(engine.TextFrame([]byte("hello")))
//		c.Serve(echo{}) // reading and pings start; it does not block
//	})
//
//	type echo struct{}
//
//	func (echo) Message(c *engine.Conn, op int, data []byte) (int, string) {
//		c.Send(engine.TextFrame(data)) // data is valid until Message returns
//		return 0, "" // keep reading; a close code ends the connection
//	}
//
//	func (echo) Closed(c *engine.Conn, e engine.End) { log.Print(e) }
//
// Exactly one owner writes a socket at a time: the flusher, or the
// connection's own writer goroutine (pings, pongs, the close frame, the rest
// of a short write, and every write where the socket has no file descriptor
// or Options.NoFlusher is set).
package engine

import (
	"log/slog"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/livechat/livechat/pkg/uring"
	"github.com/livechat/livechat/pkg/wsframe"
)

// Opcodes of the messages a Handler gets (pkg/wsframe's).
const (
	OpText   = wsframe.OpText
	OpBinary = wsframe.OpBinary
)

// Close codes (RFC 6455, section 7.4.1; pkg/wsframe's). CloseAbnormal is
// never sent: Close with it cuts the connection without a close frame.
const (
	CloseNormal          = wsframe.CloseNormal
	CloseGoingAway       = wsframe.CloseGoingAway
	CloseProtocolError   = wsframe.CloseProtocolError
	CloseAbnormal        = wsframe.CloseAbnormal
	CloseInvalidPayload  = wsframe.CloseInvalidPayload
	ClosePolicyViolation = wsframe.ClosePolicyViolation
	CloseMessageTooBig   = wsframe.CloseMessageTooBig
	CloseTryAgainLater   = wsframe.CloseTryAgainLater
)

// Options configures an Engine. Every field has the default stated on it,
// applied by New when the field is zero.
type Options struct {
	// ReadLimit is the largest inbound message in bytes; a bigger one
	// closes the connection with 1009. Default: 16 KiB.
	ReadLimit int64
	// PongWait is how long a connection may stay silent (no frame, no
	// pong) before it is cut (up to 1/64 longer: the deadline is moved in
	// steps). Default: 60s.
	PongWait time.Duration
	// PingPeriod is the interval of the engine's pings; it should be
	// shorter than PongWait. Default: PongWait*9/10.
	PingPeriod time.Duration
	// WriteTimeout bounds each write that may block (the connection's own
	// writer); a write that runs out of it ends the connection as slow.
	// Default: 10s.
	WriteTimeout time.Duration
	// SendQueue is the length of each connection's outbound queue: when it
	// is full and the socket has taken no whole write for twice the
	// longest write interval (or four times as many frames wait), Send
	// closes the connection with 1013 and ReasonSlow. Default: 256.
	SendQueue int
	// Inline runs each polled connection's reader on its poller's
	// goroutine (no goroutine per read): only for handlers that never wait
	// long (no network call in Message). Default: false, a goroutine per
	// read of a polled connection.
	Inline bool
	// NoPoller gives every connection a reader goroutine for its whole
	// life. By default (Linux) the engine watches its connections' sockets
	// in epoll(7) sets and a connection has a reader only while its
	// client's bytes are read and handled. Default: false.
	NoPoller bool
	// NoFlusher makes each connection's own writer goroutine drain its
	// queue into one writev(2) (blocking under WriteTimeout), as gorilla's
	// writePump does. By default the flushers write the queues of many
	// connections without blocking. Default: false.
	NoFlusher bool
	// NoBatchedWrites makes the flushers write each connection with its own
	// writev(2). By default, where the kernel allows io_uring (Linux; a
	// container's default seccomp profile refuses it), they hand the kernel
	// the writes of up to 64 connections in one system call. Default: false.
	NoBatchedWrites bool
	// NoWriteBurst applies the write interval to every write. By default a
	// connection that had no write for quietGap may be written twice
	// before the interval applies: a new connection's welcome and the
	// answer to its first request (a join) both go out at once, instead
	// of the answer waiting an interval (20 ms, up to 250 ms on a busy
	// server). A busy connection is never quiet, so its writes stay an
	// interval apart. Default: false.
	NoWriteBurst bool
	// CheckOrigin decides whether Upgrade accepts a request's Origin; a
	// refusal is answered 403. Default: nil, a missing Origin or the
	// request's own host only.
	CheckOrigin func(r *http.Request) bool
	// Logger receives the engine's events. Default: slog.Default().
	Logger *slog.Logger
}

// Defaults.
const (
	defaultReadLimit    = 16 << 10
	defaultPongWait     = 60 * time.Second
	defaultWriteTimeout = 10 * time.Second
	defaultSendQueue    = 256
	// handshakeTimeout bounds the upgrade's handshake.
	handshakeTimeout = 10 * time.Second
	// closeWait bounds how long a closing connection waits for the peer's
	// close frame after sending its own.
	closeWait = time.Second
)

func (o *Options) fill() {
	if o.ReadLimit <= 0 {
		o.ReadLimit = defaultReadLimit
	}
	if o.PongWait <= 0 {
		o.PongWait = defaultPongWait
	}
	if o.PingPeriod <= 0 {
		o.PingPeriod = o.PongWait * 9 / 10
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = defaultWriteTimeout
	}
	if o.SendQueue <= 0 {
		o.SendQueue = defaultSendQueue
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// An Engine upgrades, reads and writes WebSocket connections. Its methods
// are safe for concurrent use. It starts goroutines only while it has
// connections (pollers, flushers, writers): an Engine without connections
// holds none and needs no closing.
type Engine struct {
	opt      Options
	upgrader websocket.Upgrader

	flushers []*flusher    // one per processor, connections take turns; none with NoFlusher
	pollers  []*poller     // one per processor; none: a reader goroutine each
	pollSeq  atomic.Uint64 // picks a new connection's poller
	connSeq  atomic.Uint64 // picks a new connection's flusher

	// batchedWrites and singleWrites count the flushers' writes to
	// sockets, one per connection: sent in a batch (one io_uring_enter for
	// many connections) or with a writev of their own.
	batchedWrites, singleWrites atomic.Uint64
	// shortWrites counts flusher writes the socket did not take whole,
	// finished by the connection's own writer.
	shortWrites atomic.Uint64
	// ownWriters counts the connections' own writer goroutines running.
	ownWriters atomic.Int64
}

// New returns an Engine with o's settings (defaults filled in). It starts
// no goroutine.
func New(o Options) *Engine {
	o.fill()
	e := &Engine{opt: o}
	if !o.NoFlusher {
		batched := !o.NoBatchedWrites && batchedWritesOK(o.Logger)
		e.flushers = make([]*flusher, runtime.GOMAXPROCS(0))
		for i := range e.flushers {
			e.flushers[i] = newFlusher(e, batched)
		}
	}
	if !o.NoPoller {
		for range runtime.GOMAXPROCS(0) {
			if p := newPoller(o.Inline); p != nil {
				e.pollers = append(e.pollers, p)
			}
		}
	}
	e.upgrader = websocket.Upgrader{
		HandshakeTimeout: handshakeTimeout,
		// The connection's reader parses frames from the socket itself
		// (wsframe.Reader): gorilla's read buffer, kept for the
		// connection's life, is never used, and 1 asks for the least it
		// allows.
		ReadBufferSize:    1,
		WriteBufferSize:   1024,
		WriteBufferPool:   &sync.Pool{},
		EnableCompression: false,
		// Upgrade checks the origin itself, to tell a refusal apart.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	return e
}

// Stats are an Engine's write counters since New.
type Stats struct {
	// BatchedWrites and SingleWrites count the flushers' writes, one per
	// connection: in a batch of many connections (one io_uring_enter), or
	// with a writev(2) of their own.
	BatchedWrites, SingleWrites uint64
	// ShortWrites counts flusher writes the socket did not take whole,
	// finished by the connection's own writer.
	ShortWrites uint64
	// OwnWriters is the connections' own writer goroutines running now.
	OwnWriters int64
	// WriteInterval is the longest of the flushers' current intervals, the
	// least time between two writes to one connection (0 without
	// flushers).
	WriteInterval time.Duration
}

// Stats returns the engine's counters. It never blocks.
func (e *Engine) Stats() Stats {
	st := Stats{
		BatchedWrites: e.batchedWrites.Load(),
		SingleWrites:  e.singleWrites.Load(),
		ShortWrites:   e.shortWrites.Load(),
		OwnWriters:    e.ownWriters.Load(),
	}
	for _, f := range e.flushers {
		st.WriteInterval = max(st.WriteInterval, f.coalesce())
	}
	return st
}

// pollerFor returns the poller of a new connection, nil when there is none.
func (e *Engine) pollerFor() *poller {
	if len(e.pollers) == 0 {
		return nil
	}
	return e.pollers[e.pollSeq.Add(1)%uint64(len(e.pollers))]
}

// flusherFor returns the flusher of a new connection, nil when there is
// none.
func (e *Engine) flusherFor() *flusher {
	if len(e.flushers) == 0 {
		return nil
	}
	return e.flushers[e.connSeq.Add(1)%uint64(len(e.flushers))]
}

// coalesce is the least time between two writes to a connection written
// through f (writeCoalesce without a flusher).
func coalesceOf(f *flusher) time.Duration {
	if f == nil {
		return writeCoalesce
	}
	return f.coalesce()
}

// batchedWritesOK reports whether this process can batch writes with
// io_uring, trying once and logging the answer.
func batchedWritesOK(log *slog.Logger) bool {
	batchProbe.Do(func() {
		bw, err := uring.NewBatch(maxBatch)
		if err != nil {
			log.Info("engine: io_uring not available, each connection is written with its own writev", "reason", err)
			return
		}
		bw.Close()
		batchProbe.ok = true
	})
	return batchProbe.ok
}

var batchProbe struct {
	sync.Once
	ok bool
}
