package server

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/livechat/livechat/internal/engine"
	"github.com/livechat/livechat/pkg/auth"
	"github.com/livechat/livechat/pkg/history"
	"github.com/livechat/livechat/pkg/protocol"
	"github.com/livechat/livechat/pkg/store"
	"golang.org/x/time/rate"
)

// session is one client of the chat: its rooms, its rate limit and the
// handling of its frames (join, send, typing, leave, history). It writes
// through its engine connection and never touches the socket. The engine
// calls Message on the connection's reader, one frame at a time, and
// Closed once at the end: the fields below closed are theirs only, except
// where a field says otherwise.
type session struct {
	s  *Server
	c  *engine.Conn // the connection it writes through
	ip string       // the client address the per-IP limit counts
	// closed is set once the connection has ended, before the session
	// leaves its rooms: it leaves them because it ended, not with a leave
	// frame.
	closed atomic.Bool
	// revoked is set by the first users' event that closes the connection
	// (revoke.go), which alone counts it.
	revoked atomic.Bool

	limiter *rate.Limiter // inbound frames
	strikes int           // rate_limited errors so far
	// rooms holds the rooms it is in, by name. Only the reader writes it,
	// holding mu; the reader reads it without mu, anyone else with mu. A
	// membership taken out of its room from outside (a user event) is
	// marked gone and deleted by the reader when it next meets it.
	rooms map[string]*membership
	mu    sync.Mutex // guards rooms as stated on it

	// The identity (Config.Auth; authn.go).
	//
	// id is who the connection is; nil without Config.Auth (every
	// connection a guest named by its joins).
	id *auth.Identity
	// pending is set while a connection without credentials (NoGuests)
	// has not sent a valid auth frame: it may send nothing else.
	pending bool
	// authTimer closes a pending connection at Config.AuthTimeout;
	// expiry closes a token connection when its token expires. Both are
	// stopped by Closed.
	authTimer *time.Timer
	expiry    *time.Timer
	// userID and sessionID are the identity's user and store session as
	// indexed in Server.users; guarded by Server.mu.
	userID, sessionID string
}

// membership is a session's presence in one room.
type membership struct {
	room *room
	// name is the name the session is in the room under; user and guest
	// say who it is on its messages (the identity's user id and kind;
	// empty and false without Config.Auth).
	name       string
	user       string
	guest      bool
	lastTyping time.Time
	// gone is set by whoever takes the session out of the room first, and
	// only that one calls leaveRoom: the reader (leave, the end of the
	// connection) or a user event from another goroutine (takeOut).
	gone atomic.Bool
}

func newSession(s *Server, c *engine.Conn, ip string) *session {
	return &session{
		s:       s,
		c:       c,
		ip:      ip,
		limiter: rate.NewLimiter(rate.Limit(s.cfg.RatePerSec), s.cfg.RateBurst),
		rooms:   make(map[string]*membership),
	}
}

// send queues f to the client without blocking (engine.Conn.Send: a client
// too slow to take its frames is disconnected).
func (c *session) send(f *engine.Frame) { c.c.Send(f) }

// Message handles one client frame (engine.Handler); a non-zero code ends
// the connection.
func (c *session) Message(_ *engine.Conn, op int, data []byte) (int, string) {
	s := c.s
	if !c.limiter.Allow() {
		c.strikes++
		if c.strikes > s.cfg.RateStrikes {
			s.countError("rate_disconnect")
			return engine.ClosePolicyViolation, "rate limit exceeded"
		}
		c.sendError(protocol.CodeRateLimited, "too many frames: slow down", "", "")
		return 0, ""
	}
	if op != engine.OpText {
		c.sendError(protocol.CodeBinary, "binary frames are not supported; send JSON text frames", "", "")
		return 0, ""
	}
	var in protocol.Inbound
	if err := protocol.DecodeInbound(data, &in); err != nil {
		c.sendError(protocol.CodeBadRequest, "frame is not a valid JSON object: "+err.Error(), "", "")
		return 0, ""
	}
	if c.id != nil {
		if ok, code, reason := c.admit(&in); !ok {
			return code, reason
		}
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
	return 0, ""
}

// Closed runs once the connection has ended (engine.Handler): it counts
// how, leaves every room and unregisters the session.
func (c *session) Closed(_ *engine.Conn, e engine.End) {
	s := c.s
	switch e.Reason {
	case engine.ReasonSlow:
		s.slowDrops.Add(1)
		if e.Err != nil {
			s.log.Info("server: slow client disconnected", "remote", c.c.RemoteAddr().String(), "reason", "write timeout")
		} else {
			s.log.Info("server: slow client disconnected", "remote", c.c.RemoteAddr().String())
		}
	case engine.ReasonProtocol:
		s.countError("protocol_error")
	case engine.ReasonInvalidUTF8:
		s.countError("invalid_utf8")
	}
	c.closed.Store(true)
	if c.authTimer != nil {
		c.authTimer.Stop()
	}
	if c.expiry != nil {
		c.expiry.Stop()
	}
	for _, m := range c.rooms {
		if m.gone.CompareAndSwap(false, true) {
			s.leaveRoom(c, m.room, m.name)
		}
	}
	c.mu.Lock()
	clear(c.rooms)
	c.mu.Unlock()
	s.removeConn(c)
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

func (c *session) sendError(code, msg, cid, room string) {
	c.s.countError(code)
	data, err := json.Marshal(protocol.Error{Type: protocol.TypeError, Code: code, Message: msg, CID: cid, Room: room})
	if err != nil {
		return
	}
	c.send(engine.TextFrame(data))
}

func (c *session) sendJSON(v any) {
	data, err := json.Marshal(v)
	if err != nil {
		c.s.log.Error("server: encode frame", "err", err)
		return
	}
	c.send(engine.TextFrame(data))
}

// member returns the membership for a frame's room, or sends the error.
func (c *session) member(in *protocol.Inbound) *membership {
	if err := protocol.ValidRoom(in.Room); err != nil {
		c.sendError(protocol.CodeInvalidRoom, err.Error(), in.CID, "")
		return nil
	}
	m := c.rooms[in.Room]
	if m != nil && m.gone.Load() {
		c.forget(in.Room) // taken out from outside (takeOut)
		m = nil
	}
	if m == nil {
		c.sendError(protocol.CodeNotJoined, "not in room "+in.Room+": join it first", in.CID, in.Room)
	}
	return m
}

// join answers a join: the name (the identity's with Config.Auth, see
// joinName), the access (enter), then the room.
func (c *session) join(in *protocol.Inbound) {
	s := c.s
	if err := protocol.ValidRoom(in.Room); err != nil {
		c.sendError(protocol.CodeInvalidRoom, err.Error(), "", "")
		return
	}
	name := in.Name
	if c.id != nil {
		var ok bool
		if name, ok = c.joinName(in); !ok {
			return
		}
	} else if err := protocol.ValidName(in.Name); err != nil {
		c.sendError(protocol.CodeInvalidName, err.Error(), "", in.Room)
		return
	}
	var mark uint64
	if c.id != nil {
		mark = s.eventMark()
	}
	if ok, denied := c.enter(in.Room, name); !ok {
		if m := c.rooms[in.Room]; denied && m != nil {
			// A re-join of a room it may no longer enter (its removal's
			// event was lost): out of it too.
			c.takeOut(m)
		}
		return
	}
	if m := c.rooms[in.Room]; m != nil {
		// Idempotent re-join; without Config.Auth a new name replaces the
		// old one.
		if s.rejoinRoom(c, m, name) {
			return
		}
		c.forget(in.Room) // taken out meanwhile: join again
	}
	if c.id != nil {
		c.forgetGone()
	}
	if len(c.rooms) >= s.cfg.MaxRoomsPerConn {
		c.sendError(protocol.CodeTooManyRooms, "too many rooms: leave one first", "", in.Room)
		return
	}
	r, err := s.joinRoom(c, in.Room, name, in.Since)
	if err != nil {
		s.log.Warn("server: join", "room", in.Room, "err", err)
		c.sendError(protocol.CodeUnavailable, "cannot join now, retry: "+err.Error(), "", in.Room)
		return
	}
	m := &membership{room: r, name: name}
	if c.id != nil {
		m.user, m.guest = c.id.UserID, c.id.Guest()
		if c.id.Guest() && c.id.Name == "" {
			c.id.Name = name // a guest's first join names it for good
		}
	}
	c.mu.Lock()
	c.rooms[in.Room] = m
	c.mu.Unlock()
	if c.id != nil && s.missedRemoval(c, in.Room, mark) {
		c.takeOut(m) // removed while it joined
	}
}

// forget deletes room's membership (the reader only).
func (c *session) forget(room string) {
	c.mu.Lock()
	delete(c.rooms, room)
	c.mu.Unlock()
}

// forgetGone deletes the memberships taken out from outside, so that they
// do not count against MaxRoomsPerConn (the reader only).
func (c *session) forgetGone() {
	c.mu.Lock()
	for name, m := range c.rooms {
		if m.gone.Load() {
			delete(c.rooms, name)
		}
	}
	c.mu.Unlock()
}

func (c *session) leave(in *protocol.Inbound) {
	m := c.member(in)
	if m == nil {
		return
	}
	c.forget(in.Room)
	if !m.gone.CompareAndSwap(false, true) {
		return // taken out meanwhile: the client was told (takeOut)
	}
	c.s.leaveRoom(c, m.room, m.name)
	c.sendJSON(protocol.Left{Type: protocol.TypeLeft, Room: in.Room})
}

func (c *session) sendMsg(in *protocol.Inbound) {
	m := c.member(in)
	if m == nil {
		return
	}
	if err := protocol.ValidCID(in.CID); err != nil {
		c.sendError(protocol.CodeInvalidCID, err.Error(), "", in.Room)
		return
	}
	if len(in.Files) == 0 {
		if err := protocol.ValidText(in.Text); err != nil {
			c.sendError(protocol.CodeInvalidText, err.Error(), in.CID, in.Room)
			return
		}
	} else if !c.checkFiles(m, in) {
		return
	}
	s := c.s
	now := time.Now()
	msg := protocol.Message{
		Type:   protocol.TypeMessage,
		Room:   in.Room,
		ID:     s.nextID(),
		From:   m.name,
		User:   m.user,
		Guest:  m.guest,
		Text:   in.Text,
		TS:     now.UnixMilli(),
		Server: s.cfg.AppID,
		CID:    in.CID,
	}
	if len(in.Files) > 0 && !c.attachFiles(m, in, &msg) {
		return
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
	c.send(ackFrame(&protocol.Ack{Type: protocol.TypeAck, CID: in.CID, ID: msg.ID, Room: in.Room, TS: msg.TS}))
	if a := s.cfg.Access; a != nil {
		a.Active(in.Room, now)
	}
}

// errFileNotAvailable is the one answer to a send whose files the attacher
// refused: missing, another user's, another room's, repeated.
const errFileNotAvailable = "a file is not available: upload it again"

// checkFiles checks a send that attaches files, before anything is done
// with it: its text (which may be blank), the server taking files, the ids
// and the sender (a guest only when the server gives guests upload tokens:
// Config.GuestUploadToken).
// It answers a refused send and reports whether to go on.
func (c *session) checkFiles(m *membership, in *protocol.Inbound) bool {
	if err := protocol.ValidSendText(in.Text, len(in.Files)); err != nil {
		c.sendError(protocol.CodeInvalidText, err.Error(), in.CID, in.Room)
		return false
	}
	if c.s.cfg.Files == nil {
		c.sendError(protocol.CodeInvalidFiles, "this server takes no files", in.CID, in.Room)
		return false
	}
	if err := protocol.ValidFiles(in.Files); err != nil {
		c.sendError(protocol.CodeInvalidFiles, err.Error(), in.CID, in.Room)
		return false
	}
	if m.user == "" || m.guest && c.s.cfg.GuestUploadToken == nil {
		c.sendError(protocol.CodeInvalidFiles, "guests cannot send files: sign in", in.CID, in.Room)
		return false
	}
	return true
}

// attachFiles attaches in's files to msg (Config.Files) and describes them
// in msg.Files. A refused file gets invalid_files, an attacher that cannot
// tell now unavailable (the retry with the same cid attaches again: an
// attach is idempotent); either way nothing is stored or delivered. It
// reports whether to go on.
func (c *session) attachFiles(m *membership, in *protocol.Inbound, msg *protocol.Message) bool {
	ctx, cancel := context.WithTimeout(context.Background(), accessTimeout)
	files, err := c.s.cfg.Files.Attach(ctx, m.user, msg.Room, msg.ID, in.Files)
	cancel()
	switch {
	case errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid):
		c.sendError(protocol.CodeInvalidFiles, errFileNotAvailable, in.CID, in.Room)
		return false
	case err != nil:
		c.s.log.Warn("server: attach files", "room", in.Room, "err", err)
		c.sendError(protocol.CodeUnavailable, "message not sent, retry with the same cid", in.CID, in.Room)
		return false
	}
	msg.Files = files
	return true
}

func (c *session) typing(in *protocol.Inbound) {
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

// dedupSender is who the history de-duplicates a cid for: a user by its
// id (the same from every connection and server); a guest, whose id is new
// on every connection, by its name, so that its retry after a reconnect is
// still a retry; without Config.Auth, the name. The prefixes keep a guest
// named like someone's user id from passing for that user.
func dedupSender(m *membership) string {
	switch {
	case m.user == "":
		return m.name
	case m.guest:
		return "g:" + m.name
	}
	return "u:" + m.user
}

// sendStored is the send path with history: persist first (the store
// assigns the seq and de-duplicates on the sender's cid), then acknowledge,
// then publish. A store error gets an "unavailable" error and no ack, and
// nothing is published. A retried cid whose append succeeded before is
// acknowledged with the original id, ts and seq and "dup":true, and
// published again, which receivers drop as a duplicate (it covers a crash
// between append and publish). A store that publishes what it appends
// (Config.HistoryPublishes) publishes a new message in its append, before
// the ack: the server publishes only the duplicates.
func (c *session) sendStored(m *membership, msg *protocol.Message) {
	s := c.s
	key := ""
	if msg.CID != "" {
		key = dedupSender(m) + "\x00" + msg.CID
	}
	cid, room := msg.CID, msg.Room
	ctx, cancel := s.historyCtx()
	var (
		seq       uint64
		dup       bool
		err       error
		appendPub = s.appendPub
	)
	if appendPub != nil {
		seq, dup, err = appendPub.AppendPublish(ctx, msg, key, m.room.subject)
	} else {
		seq, dup, err = s.hist.Append(ctx, msg, key)
	}
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
	if !dup {
		s.msgsIn.Add(1)
		if a := s.cfg.Access; a != nil {
			a.Active(room, time.UnixMilli(msg.TS))
		}
	}
	c.send(ackFrame(&protocol.Ack{Type: protocol.TypeAck, CID: cid, ID: msg.ID, Room: room, TS: msg.TS, Seq: seq, Dup: dup}))
	if appendPub != nil && !dup {
		return // published by the append
	}
	data := protocol.AppendMessage(make([]byte, 0, protocol.MessageSizeHint(msg)), msg)
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
func (c *session) history(in *protocol.Inbound) {
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
