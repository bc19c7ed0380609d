package server

import (
	"context"
	"encoding/json"
	"time"

	"github.com/livechat/livechat/pkg/broker"
	"github.com/livechat/livechat/pkg/protocol"
)

// The users' events (protocol.UserEvent on protocol.UserSubject), published
// by whoever changes a user's access (pkg/account, pkg/rooms): with
// Config.Auth the server subscribes once to every user's subject and
// applies each event to its connections of that user, found in
// Server.users. A revoke closes them (only those of one store session for a
// sign-out) with CloseSignedOut or CloseAccountClosed; a removal takes them
// out of a room (takeOut).
//
// A connection being authenticated, or a join being checked, when an event
// comes is not in the index yet, or not in the room yet, and the event
// would miss it. So every applied event is remembered for eventMemory
// (Server.marks) with its number (Server.evSeq): a connection notes the
// number before it asks the Authenticator (or the Authorizer), and once
// registered (or in the room) it looks for a later event of its own. The
// event marks before it looks for its targets and the connection registers
// before it looks for marks, so one of the two always sees the other.

// eventMark is an applied user event, remembered in Server.marks.
type eventMark struct {
	seq  uint64    // Server.evSeq when it was applied
	at   time.Time // when, to forget it after eventMemory
	code int       // a revoke's close code
}

// Keys of Server.marks.
func revokeKey(user, session string) string { return "revoke\x00" + user + "\x00" + session }
func removedKey(user, room string) string   { return "removed\x00" + user + "\x00" + room }

// userEventsPattern matches every user's subject: protocol.UserSubject's
// "<prefix>.user.<id>" with a wildcard id. (UserSubject itself cannot make
// it: it would hash "*", which is no valid subject token.)
func userEventsPattern(prefix string) string { return prefix + ".user.*" }

// revokeCode is the close code of a revoke's reason.
func revokeCode(reason string) int {
	switch reason {
	case protocol.ReasonBanned, protocol.ReasonDeleted:
		return protocol.CloseAccountClosed
	}
	return protocol.CloseSignedOut // signed_out, password_changed, unknown
}

// userEventsLoop subscribes to the users' events, retrying every
// userEventsRetry while the broker refuses (as the heartbeat's peers watch
// does), and holds the subscription until ctx ends.
func (s *Server) userEventsLoop(ctx context.Context) {
	defer s.loopWG.Done()
	pattern := userEventsPattern(s.cfg.Prefix)
	var retry *time.Timer
	for {
		sub, err := s.b.Subscribe(ctx, pattern, s.onUserEvent)
		if err == nil {
			s.userEventsOn.Store(true)
			<-ctx.Done()
			_ = sub.Unsubscribe()
			return
		}
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("server: subscribe to user events, retrying", "pattern", pattern, "err", err)
		if retry == nil {
			retry = time.NewTimer(userEventsRetry)
		} else {
			retry.Reset(userEventsRetry)
		}
		select {
		case <-ctx.Done():
			retry.Stop()
			return
		case <-retry.C:
		}
	}
}

// onUserEvent applies one user event to this server's connections of the
// user. It runs on the subscription's goroutine and never blocks long
// (Close never blocks; takeOut takes a room's lock).
func (s *Server) onUserEvent(m broker.Message) {
	var ev protocol.UserEvent
	if json.Unmarshal(m.Data, &ev) != nil || ev.User == "" || m.Subject != protocol.UserSubject(s.cfg.Prefix, ev.User) {
		s.metrics.userEvents.WithLabelValues("ignored").Inc()
		return
	}
	switch ev.Type {
	case protocol.TypeRevoke:
		code := revokeCode(ev.Reason)
		reason := ev.Reason
		if code == protocol.CloseSignedOut && reason != protocol.ReasonSignedOut && reason != protocol.ReasonPasswordChanged {
			reason = "session ended"
		}
		s.mu.Lock()
		s.markLocked(revokeKey(ev.User, ev.Session), code)
		targets := s.userConnsLocked(ev.User, ev.Session)
		s.mu.Unlock()
		for _, c := range targets {
			// Counted once per connection: a connection still being
			// closed by an earlier event may be in the index.
			if c.revoked.CompareAndSwap(false, true) {
				s.metrics.userEvents.WithLabelValues(protocol.TypeRevoke).Inc()
			}
			c.c.Close(code, reason)
		}
	case protocol.TypeRemoved:
		if protocol.ValidRoom(ev.Room) != nil {
			s.metrics.userEvents.WithLabelValues("ignored").Inc()
			return
		}
		s.mu.Lock()
		s.markLocked(removedKey(ev.User, ev.Room), 0)
		targets := s.userConnsLocked(ev.User, "")
		s.mu.Unlock()
		for _, c := range targets {
			c.mu.Lock()
			mb := c.rooms[ev.Room]
			c.mu.Unlock()
			if mb != nil && c.takeOut(mb) {
				s.metrics.userEvents.WithLabelValues(protocol.TypeRemoved).Inc()
			}
		}
	default:
		s.metrics.userEvents.WithLabelValues("ignored").Inc()
	}
}

// userConnsLocked returns the connections of user (only those of its store
// session when sessionID is set). Call it with s.mu held.
func (s *Server) userConnsLocked(user, sessionID string) []*session {
	var out []*session
	for c := range s.users[user] {
		if sessionID == "" || c.sessionID == sessionID {
			out = append(out, c)
		}
	}
	return out
}

// markLocked remembers an applied event under key, forgetting those older
// than eventMemory. Call it with s.mu held.
func (s *Server) markLocked(key string, code int) {
	s.evSeq++
	now := time.Now()
	for k, mk := range s.marks {
		if now.Sub(mk.at) > eventMemory {
			delete(s.marks, k)
		}
	}
	s.marks[key] = eventMark{seq: s.evSeq, at: now, code: code}
}

// eventMark returns the number of the last applied event: a connection
// notes it before it asks the identity services, and later looks for the
// events after it (registerLocked, missedRemoval).
func (s *Server) eventMark() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.evSeq
}

// registerLocked indexes c under its identity's user (guests and pending
// connections are not indexed) and returns the close code of a revoke of
// that user, or of its store session, applied after mark (0: none). Call
// it with s.mu held.
func (s *Server) registerLocked(c *session, mark uint64) int {
	id := c.id
	if c.pending || id.Guest() || id.UserID == "" {
		return 0
	}
	s.unregisterLocked(c)
	c.userID, c.sessionID = id.UserID, id.Session
	set := s.users[c.userID]
	if set == nil {
		set = make(map[*session]struct{})
		s.users[c.userID] = set
	}
	set[c] = struct{}{}
	if mk, ok := s.marks[revokeKey(c.userID, "")]; ok && mk.seq > mark {
		return mk.code
	}
	if c.sessionID != "" {
		if mk, ok := s.marks[revokeKey(c.userID, c.sessionID)]; ok && mk.seq > mark {
			return mk.code
		}
	}
	return 0
}

// unregisterLocked takes c out of the index. Call it with s.mu held.
func (s *Server) unregisterLocked(c *session) {
	if c.userID == "" {
		return
	}
	if set := s.users[c.userID]; set != nil {
		delete(set, c)
		if len(set) == 0 {
			delete(s.users, c.userID)
		}
	}
	c.userID, c.sessionID = "", ""
}

// missedRemoval reports whether c's user was removed from room by an event
// applied after mark (while c joined it).
func (s *Server) missedRemoval(c *session, room string, mark uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.userID == "" {
		return false
	}
	mk, ok := s.marks[removedKey(c.userID, room)]
	return ok && mk.seq > mark
}
