package server

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"github.com/livechat/livechat/pkg/history"
	"github.com/livechat/livechat/pkg/protocol"
	"github.com/livechat/livechat/pkg/wsframe"
	"golang.org/x/time/rate"
)

// conn is one WebSocket client. Its reader owns the inbound side and the
// rooms map: run by the server's poller while the client's bytes are read
// and handled (readPolled, on the poller's goroutine or one of its own) or,
// where there is no poller, a goroutine for the connection's life
// (readLoop). Its writer (writeLoop), which runs only while there is
// something to write, owns every write to the socket (data frames, pings,
// the close frame).
type conn struct {
	s          *Server
	ws         *websocket.Conn
	ip         string
	out        atomic.Uint64 // frames written
	lastFull   atomic.Int64  // UnixNano of the last write that left nothing behind (or the start)
	selfClose  atomic.Bool   // the reader asked for the close
	readerDone chan struct{} // closed by the reader when it stops
	writers    sync.WaitGroup
	// readExtended is when the reader last moved the read deadline (its
	// goroutine only: extendRead).
	readExtended time.Time
	// cutReq is set by cut: the reader stops at its next read.
	cutReq atomic.Bool
	// lastSent is when the last write that put data frames (not pings)
	// whole on the socket started, UnixNano; math.MaxInt64 until the
	// welcome is written. It is the clock of the client heartbeat
	// (heartbeat.go): a connection silent for long enough gets one.
	lastSent atomic.Int64

	// With a poller (poller_linux.go): the read state (readIdle...), the
	// connection's epoll set and slot, and the timer that cuts it after
	// PongWait of silence (the read deadline of a polled socket, which
	// no goroutine waits on).
	rstate    atomic.Int32
	pl        *poller
	pset      *epollSet
	pslot     uint32
	readTimer *time.Timer

	// mu guards the outbound state: the queue, what the writer owes, the
	// kick and whether a writer runs.
	mu         sync.Mutex
	q          []*frame // queued frames, oldest first; at most SendQueue
	spare      []*frame // the running writer's emptied batch, the next q
	pingDue    bool
	pongDue    bool
	pongData   []byte      // the ping's payload to answer
	pinger     *time.Timer // calls pingTick every PingPeriod
	running    bool        // a writer runs (or its writes are over)
	over       bool        // no writer starts any more
	kicked     bool
	kickCode   int
	kickReason string
	kickFlush  bool

	// raw writes to the socket without waiting (when it has a file
	// descriptor); fl is the flusher that does so when c's writer is idle.
	raw rawConn
	fl  *flusher

	// Owned by the running writer (writeLoop or the flusher): the write
	// vector of the frames being flushed, the copy of it that
	// net.Buffers.WriteTo consumes, the socket's write deadline, the time of
	// the last write, and what a flusher's short write left (with the
	// frames in it) for writeLoop.
	vec           [][]byte
	wbuf          net.Buffers
	deadline      time.Time
	lastWrite     time.Time
	pending       net.Buffers
	pendingFrames int

	// Owned by the reader: the frame parser.
	rd      wsframe.Reader
	limiter *rate.Limiter
	strikes int
	rooms   map[string]*membership
}

// membership is a connection's presence in one room.
type membership struct {
	room       *room
	name       string
	lastTyping time.Time
}

func newConn(s *Server, ws *websocket.Conn, ip string) *conn {
	c := &conn{
		s:          s,
		ws:         ws,
		ip:         ip,
		readerDone: make(chan struct{}),
		raw:        newRawConn(ws.NetConn()),
		fl:         s.flusherFor(),
		limiter:    rate.NewLimiter(rate.Limit(s.cfg.RatePerSec), s.cfg.RateBurst),
		rooms:      make(map[string]*membership),
	}
	c.lastSent.Store(math.MaxInt64) // no heartbeat before the welcome
	return c
}

// start queues the welcome, arms the ping timer and starts the reader.
func (c *conn) start() {
	c.lastFull.Store(time.Now().UnixNano())
	c.mu.Lock()
	c.pinger = time.AfterFunc(c.s.cfg.PingPeriod, c.pingTick)
	c.mu.Unlock()
	c.enqueue(c.s.welcome)
	if pl := c.s.pollerFor(); pl != nil && c.raw.ok() {
		c.rd.Limit, c.rd.FromClient = c.s.cfg.ReadLimit, true
		c.readExtended = time.Now()
		c.readTimer = time.AfterFunc(c.readWait(), c.cut)
		if pl.add(c) == nil {
			return
		}
		c.readTimer.Stop()
		c.readTimer = nil
	}
	go c.readLoop()
}

// cut ends the connection from outside its reader (a failed write, the end
// of a close handshake, the read deadline of a polled socket, a forced
// shutdown). It shuts the socket down both ways, so that a blocked write
// fails and the reader sees the end of the stream; a polled connection's
// reader is also started, as the socket may report nothing more (a reset
// one). The reader then finishes the connection, which closes the socket.
// Where the socket cannot be shut down (no file descriptor, or reset) and
// no polled reader will finish it, cut closes it: a reader goroutine
// waiting on it returns.
func (c *conn) cut() {
	c.cutReq.Store(true) // before readable: see poller.add
	shut := c.raw.ok() && c.raw.shutdown() == nil
	if !c.readable(false) && !shut {
		_ = c.ws.Close()
	}
}

// kick asks the writer to close the connection with code and reason, after
// writing what is queued when flush is set. Only the first call counts; it
// reports whether this call was it. It never blocks.
func (c *conn) kick(code int, reason string, flush bool) bool {
	return c.kickAs(code, reason, flush, false)
}

// kickAs is kick; self tells that the reader asked and stops reading.
func (c *conn) kickAs(code int, reason string, flush, self bool) bool {
	c.mu.Lock()
	if c.kicked {
		c.mu.Unlock()
		return false
	}
	c.kicked = true
	c.kickCode, c.kickReason, c.kickFlush = code, reason, flush
	if self {
		c.selfClose.Store(true)
	}
	start := c.wakeLocked()
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
	return true
}

// selfKick is kick from the reader, which then stops reading.
func (c *conn) selfKick(code int, reason string) {
	c.kickAs(code, reason, true, true)
}

// readLoop is the connection's reader: it parses the client's frames itself
// (wsframe.Reader) from the socket gorilla upgraded, which holds nothing buffered
// then (gorilla refuses a client that sends before the handshake ends), and
// handles each in turn.
func (c *conn) readLoop() {
	defer c.finish()
	c.rd.Limit, c.rd.FromClient = c.s.cfg.ReadLimit, true
	_ = c.extendRead(time.Now())
	if c.raw.ok() {
		_ = c.raw.read(c.readReport)
	} else {
		c.readStream()
	}
	c.rd.Reset()
}

// readStream is the reader of a connection without a file descriptor
// (TLS, or a system without raw reads): blocking reads of the net.Conn.
func (c *conn) readStream() {
	nc := c.ws.NetConn()
	rd := &c.rd
	for {
		n, err := nc.Read(rd.Space())
		rd.Commit(n)
		if n > 0 && (c.extendRead(time.Now()) != nil || !c.consume()) {
			return
		}
		if err != nil {
			return
		}
	}
}

// consume handles every whole frame the read buffer holds; it returns false
// when the connection must stop reading: it sent a close frame, breached
// the protocol (closed with the breach's code) or a handler stopped it.
func (c *conn) consume() bool {
	for {
		f, ok, err := c.rd.Next()
		if err == nil && ok && f.Op == wsframe.OpClose {
			var code int
			if code, err = wsframe.CloseCode(f.Payload); err == nil {
				c.onClose(code)
				return false
			}
		}
		if err != nil {
			var we *wsframe.Error
			if errors.As(err, &we) {
				c.s.countError("protocol_error")
				c.selfKick(we.Code, we.Reason)
			}
			return false
		}
		if !ok {
			return true
		}
		switch f.Op {
		case wsframe.OpPing:
			c.onPing(f.Payload)
		case wsframe.OpPong:
			// A sign of life: the read deadline moved with the read.
		default:
			if !c.handle(f.Op, f.Payload) {
				return false
			}
		}
	}
}

// A connection's read deadline is moved only when it is more than
// PongWait/readDeadlineSlack old, and then to that much beyond PongWait: a
// busy sender costs no timer update per read, and a connection is closed
// after between PongWait and PongWait·(1+1/readDeadlineSlack) of silence.
const readDeadlineSlack = 64

// extendRead moves the read deadline to PongWait from now, in steps (see
// readDeadlineSlack): the socket's, or a polled connection's timer. It runs
// on the reader only.
func (c *conn) extendRead(now time.Time) error {
	if now.Sub(c.readExtended) < c.s.cfg.PongWait/readDeadlineSlack {
		return nil // a deadline at most slack shorter than now's stands
	}
	c.readExtended = now
	if c.readTimer != nil {
		c.readTimer.Reset(c.readWait())
		return nil
	}
	return c.ws.NetConn().SetReadDeadline(now.Add(c.readWait()))
}

// readWait is how long the read deadline lies ahead when it is moved.
func (c *conn) readWait() time.Duration {
	return c.s.cfg.PongWait + c.s.cfg.PongWait/readDeadlineSlack
}

// finish runs when the reader stops: it ends the writer, leaves every room
// and unregisters the connection.
func (c *conn) finish() {
	if c.selfClose.Load() {
		c.writers.Wait() // the writer sends the close frame, then returns
		close(c.readerDone)
		c.stopWriter()
	} else {
		close(c.readerDone)
		c.stopWriter()
		_ = c.ws.Close() // unblocks a writer stuck on a dead peer
		c.writers.Wait()
	}
	_ = c.ws.Close()
	for name, m := range c.rooms {
		c.s.leaveRoom(c, m.room, m.name)
		delete(c.rooms, name)
	}
	c.s.removeConn(c)
}

// stopWriter ends the connection's writes: no writer starts any more and
// the ping timer stops. A running writer returns at its next turn.
func (c *conn) stopWriter() {
	c.mu.Lock()
	c.over = true
	c.pinger.Stop()
	c.mu.Unlock()
}

// handle processes one inbound frame; it returns false when the connection
// must stop reading.
func (c *conn) handle(mt int, data []byte) bool {
	s := c.s
	if !c.limiter.Allow() {
		c.strikes++
		if c.strikes > s.cfg.RateStrikes {
			s.countError("rate_disconnect")
			c.selfKick(websocket.ClosePolicyViolation, "rate limit exceeded")
			return false
		}
		c.sendError(protocol.CodeRateLimited, "too many frames: slow down", "", "")
		return true
	}
	if mt != websocket.TextMessage {
		c.sendError(protocol.CodeBinary, "binary frames are not supported; send JSON text frames", "", "")
		return true
	}
	if !utf8.Valid(data) {
		s.countError("invalid_utf8")
		c.selfKick(websocket.CloseInvalidFramePayloadData, "invalid UTF-8")
		return false
	}
	var in protocol.Inbound
	if err := protocol.DecodeInbound(data, &in); err != nil {
		c.sendError(protocol.CodeBadRequest, "frame is not a valid JSON object: "+err.Error(), "", "")
		return true
	}
	switch in.Type {
	case protocol.TypeJoin:
		c.join(&in)
	case protocol.TypeSend:
		c.sendMsg(&in)
	case protocol.TypeTyping:
		c.typing(&in)
	case protocol.TypeLeave:
		c.leave(&in)
	case protocol.TypeHistory:
		c.history(&in)
	case "":
		c.sendError(protocol.CodeUnknownType, `missing "type"`, in.CID, "")
	default:
		c.sendError(protocol.CodeUnknownType, "unknown type "+truncate(in.Type, 32), in.CID, "")
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func (c *conn) sendError(code, msg, cid, room string) {
	c.s.countError(code)
	data, err := json.Marshal(protocol.Error{Type: protocol.TypeError, Code: code, Message: msg, CID: cid, Room: room})
	if err != nil {
		return
	}
	c.enqueue(textFrame(data))
}

func (c *conn) sendJSON(v any) {
	data, err := json.Marshal(v)
	if err != nil {
		c.s.log.Error("server: encode frame", "err", err)
		return
	}
	c.enqueue(textFrame(data))
}

// member returns the membership for a frame's room, or sends the error.
func (c *conn) member(in *protocol.Inbound) *membership {
	if err := protocol.ValidRoom(in.Room); err != nil {
		c.sendError(protocol.CodeInvalidRoom, err.Error(), in.CID, "")
		return nil
	}
	m := c.rooms[in.Room]
	if m == nil {
		c.sendError(protocol.CodeNotJoined, "not in room "+in.Room+": join it first", in.CID, in.Room)
	}
	return m
}

func (c *conn) join(in *protocol.Inbound) {
	if err := protocol.ValidRoom(in.Room); err != nil {
		c.sendError(protocol.CodeInvalidRoom, err.Error(), "", "")
		return
	}
	if err := protocol.ValidName(in.Name); err != nil {
		c.sendError(protocol.CodeInvalidName, err.Error(), "", in.Room)
		return
	}
	if m := c.rooms[in.Room]; m != nil {
		// Idempotent re-join; a new name replaces the old one.
		c.s.rejoinRoom(c, m.room, m.name, in.Name)
		m.name = in.Name
		return
	}
	if len(c.rooms) >= c.s.cfg.MaxRoomsPerConn {
		c.sendError(protocol.CodeTooManyRooms, "too many rooms: leave one first", "", in.Room)
		return
	}
	r, err := c.s.joinRoom(c, in.Room, in.Name, in.Since)
	if err != nil {
		c.s.log.Warn("server: join", "room", in.Room, "err", err)
		c.sendError(protocol.CodeUnavailable, "cannot join now, retry: "+err.Error(), "", in.Room)
		return
	}
	c.rooms[in.Room] = &membership{room: r, name: in.Name}
}

func (c *conn) leave(in *protocol.Inbound) {
	m := c.member(in)
	if m == nil {
		return
	}
	delete(c.rooms, in.Room)
	c.s.leaveRoom(c, m.room, m.name)
	c.sendJSON(protocol.Left{Type: protocol.TypeLeft, Room: in.Room})
}

func (c *conn) sendMsg(in *protocol.Inbound) {
	m := c.member(in)
	if m == nil {
		return
	}
	if err := protocol.ValidCID(in.CID); err != nil {
		c.sendError(protocol.CodeInvalidCID, err.Error(), "", in.Room)
		return
	}
	if err := protocol.ValidText(in.Text); err != nil {
		c.sendError(protocol.CodeInvalidText, err.Error(), in.CID, in.Room)
		return
	}
	s := c.s
	msg := protocol.Message{
		Type:   protocol.TypeMessage,
		Room:   in.Room,
		ID:     s.nextID(),
		From:   m.name,
		Text:   in.Text,
		TS:     time.Now().UnixMilli(),
		Server: s.cfg.AppID,
		CID:    in.CID,
	}
	if s.hist != nil {
		c.sendStored(m, &msg)
		return
	}
	data := protocol.AppendMessage(make([]byte, 0, protocol.MessageSizeHint(&msg)), &msg)
	ctx, cancel := s.publishCtx()
	err := s.b.Publish(ctx, m.room.subject, data)
	cancel()
	if err != nil {
		s.log.Warn("server: publish", "room", in.Room, "err", err)
		c.sendError(protocol.CodeUnavailable, "message not sent, retry with the same cid", in.CID, in.Room)
		return
	}
	s.msgsIn.Add(1)
	c.enqueue(ackFrame(&protocol.Ack{Type: protocol.TypeAck, CID: in.CID, ID: msg.ID, Room: in.Room, TS: msg.TS}))
}

func (c *conn) typing(in *protocol.Inbound) {
	m := c.member(in)
	if m == nil {
		return
	}
	now := time.Now()
	if now.Sub(m.lastTyping) < typingEvery {
		return // at most one typing frame per second per room
	}
	m.lastTyping = now
	data, err := json.Marshal(protocol.Typing{Type: protocol.TypeTyping, Room: in.Room, Name: m.name, Server: c.s.cfg.AppID})
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	if err := c.s.b.Publish(ctx, m.room.subject, data); err != nil {
		c.s.log.Debug("server: publish typing", "room", in.Room, "err", err)
	}
}

// sendStored is the send path with history: persist first (the store
// assigns the seq and de-duplicates on the sender's cid), then acknowledge,
// then publish. A store error gets an "unavailable" error and no ack, and
// nothing is published. A retried cid whose append succeeded before is
// acknowledged with the original id, ts and seq and "dup":true, and
// published again, which receivers drop as a duplicate (it covers a crash
// between append and publish).
func (c *conn) sendStored(m *membership, msg *protocol.Message) {
	s := c.s
	key := ""
	if msg.CID != "" {
		key = m.name + "\x00" + msg.CID
	}
	cid, room := msg.CID, msg.Room
	ctx, cancel := s.historyCtx()
	seq, dup, err := s.hist.Append(ctx, msg, key)
	cancel()
	if errors.Is(err, history.ErrInvalid) {
		// The store refuses this message whatever the retry: say so.
		c.sendError(protocol.CodeBadRequest, "message refused by the history store: "+err.Error(), cid, room)
		return
	}
	if err != nil {
		s.historyError("append", room, err)
		c.sendError(protocol.CodeUnavailable, "message not stored, retry with the same cid", cid, room)
		return
	}
	msg.Type = protocol.TypeMessage
	data := protocol.AppendMessage(make([]byte, 0, protocol.MessageSizeHint(msg)), msg)
	if !dup {
		s.msgsIn.Add(1)
	}
	c.enqueue(ackFrame(&protocol.Ack{Type: protocol.TypeAck, CID: cid, ID: msg.ID, Room: room, TS: msg.TS, Seq: seq, Dup: dup}))
	ctx, cancel = s.publishCtx()
	err = s.b.Publish(ctx, m.room.subject, data)
	cancel()
	if err != nil {
		// Stored and acknowledged: the local members get it now, the other
		// servers fill the gap from the store with their next message.
		s.log.Warn("server: publish stored message", "room", room, "seq", seq, "err", err)
		m.room.receive(seq, hashID(msg.ID), data)
	}
}

// history answers a history request: up to Limit (default and cap
// protocol.MaxHistoryPage) messages below Before, never above what this
// server delivered live, so a page never duplicates a live message.
func (c *conn) history(in *protocol.Inbound) {
	m := c.member(in)
	if m == nil {
		return
	}
	s := c.s
	if s.hist == nil {
		c.sendError(protocol.CodeUnavailable, "this server keeps no history", "", in.Room)
		return
	}
	limit := in.Limit
	if limit <= 0 || limit > protocol.MaxHistoryPage {
		limit = protocol.MaxHistoryPage
	}
	top := m.room.lastSeen.Load() + 1
	before := in.Before
	if before == 0 || before > top {
		before = top
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.HistoryTimeout)
	msgs, err := s.hist.Before(ctx, in.Room, before, limit+1)
	cancel()
	if err != nil {
		s.historyError("history", in.Room, err)
		c.sendError(protocol.CodeUnavailable, "history unavailable, retry later", "", in.Room)
		return
	}
	more := len(msgs) > limit
	if more {
		msgs = msgs[1:]
	}
	for i := range msgs {
		msgs[i].Type = protocol.TypeMessage
	}
	if msgs == nil {
		msgs = []protocol.Message{}
	}
	c.sendJSON(protocol.History{Type: protocol.TypeHistory, Room: in.Room, Messages: msgs, More: more})
}
