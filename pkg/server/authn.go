package server

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"time"

	"github.com/livechat/livechat/internal/engine"
	"github.com/livechat/livechat/pkg/auth"
	"github.com/livechat/livechat/pkg/protocol"
)

// Identities (Config.Auth). A connection is authenticated before the
// upgrade (Authenticator.Authenticate: a session cookie or a token); one
// without credentials is a guest or, with NoGuests, waits for an auth frame.
// Its identity then decides the name on everything it sends (membership
// user, name and guest), which rooms it may enter (enter) and, through
// the users' events (revoke.go), when it ends. The identity is the
// reader's: only Message, and before it serveWS, touch session.id.

// notFoundMessage is the one message of not_found errors: a room that does
// not exist and one the user may not enter get the same frame.
const notFoundMessage = "no such room"

// authenticate identifies a handshake before the upgrade (after the origin
// check, answered 403 as the engine does). It returns the identity, whether
// the connection waits for an auth frame (NoGuests and no credentials), and
// false when it refused the handshake, with 401 for refused credentials.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (id *auth.Identity, pending, ok bool) {
	if !s.checkOrigin(r) {
		http.Error(w, engine.ErrOrigin.Error(), http.StatusForbidden)
		return nil, false, false
	}
	got, err := s.cfg.Auth.Authenticate(r)
	switch {
	case err == nil:
		return normalized(got), false, true
	case errors.Is(err, auth.ErrNoCredentials) && s.cfg.NoGuests:
		return &auth.Identity{}, true, true
	case errors.Is(err, auth.ErrNoCredentials):
		return &auth.Identity{Kind: auth.KindGuest, UserID: newGuestID()}, false, true
	}
	// Never the error's text: it might quote what the client sent.
	s.metrics.rejected.WithLabelValues("auth").Inc()
	s.log.Debug("server: handshake credentials refused", "remote", r.RemoteAddr,
		"session_ended", errors.Is(err, auth.ErrSessionEnded), "account_closed", errors.Is(err, auth.ErrAccountClosed))
	http.Error(w, "server: your session or token was refused: sign in again", http.StatusUnauthorized)
	return nil, false, false
}

// normalized returns a copy of id with a name: an account or a token user
// always has one (the Authenticator gives it; "user" is the last resort).
func normalized(id auth.Identity) *auth.Identity {
	if !id.Guest() && id.Name == "" {
		id.Name = "user"
	}
	return &id
}

// newGuestID returns a guest's user id: auth.GuestIDPrefix and 26 random
// base32 characters.
func newGuestID() string { return auth.GuestIDPrefix + rand.Text() }

// userOf is id as clients see it.
func userOf(id *auth.Identity) *protocol.User {
	return &protocol.User{ID: id.UserID, Name: id.Name, Guest: id.Guest()}
}

// startIdentity sends the connection's welcome (with its user, or saying
// that it must authenticate) and arms its timers. serveWS calls it before
// Serve.
func (c *session) startIdentity() {
	s := c.s
	w := s.hello
	if c.pending {
		w.AuthRequired = true
		w.AuthTimeoutMillis = s.cfg.AuthTimeout.Milliseconds()
		c.authTimer = time.AfterFunc(s.cfg.AuthTimeout, func() {
			s.countError("auth_timeout")
			c.c.Close(protocol.CloseAuthFailed, "authentication timed out")
		})
	} else {
		w.User = userOf(c.id)
		c.armExpiry()
		if mint := s.cfg.GuestUploadToken; mint != nil && c.id.Guest() {
			tok, err := mint(c.id.UserID)
			if err != nil {
				s.log.Warn("server: a guest's upload token", "err", err)
			}
			w.UploadToken = tok
		}
	}
	c.sendJSON(w)
}

// armExpiry (re)arms the timer that closes the connection with
// CloseTokenExpired when its identity expires (a token's), or stops it.
func (c *session) armExpiry() {
	if c.id.Expires.IsZero() {
		if c.expiry != nil {
			c.expiry.Stop()
		}
		return
	}
	d := time.Until(c.id.Expires)
	if c.expiry == nil {
		c.expiry = time.AfterFunc(d, func() {
			c.s.countError("token_expired")
			c.c.Close(protocol.CloseTokenExpired, "token expired")
		})
		return
	}
	c.expiry.Reset(d)
}

// admit checks a frame against the connection's identity before it is
// handled: an auth frame is handled here; a pending connection may send
// nothing else; a frame naming someone else is dropped. It reports whether
// the frame goes on, else the close code (0: the connection stays).
func (c *session) admit(in *protocol.Inbound) (ok bool, code int, reason string) {
	switch {
	case in.Type == protocol.TypeAuth:
		code, reason = c.authFrame(in.Token)
		return false, code, reason
	case c.pending:
		c.sendError(protocol.CodeAuthRequired, "authenticate first: send an auth frame with your token", in.CID, in.Room)
		return false, 0, ""
	case in.Name != "" && c.id.Name != "" && in.Name != c.id.Name:
		c.sendError(protocol.CodeForbiddenName, "frames may carry no other name than the connection's", in.CID, in.Room)
		return false, 0, ""
	}
	return true, 0, ""
}

// authFrame handles an auth frame: the token of a pending connection (a
// refused one closes it with CloseAuthFailed) or of a guest that has not
// joined yet becomes the connection's identity; a token connection's fresh
// token of the same user moves its expiry (and its room restriction).
// Anything else gets invalid_token and changes nothing.
func (c *session) authFrame(token string) (int, string) {
	s := c.s
	mark := s.eventMark()
	nid, err := s.cfg.Auth.Token(token)
	switch {
	case c.pending && err != nil:
		s.countError(protocol.CodeInvalidToken)
		return protocol.CloseAuthFailed, "invalid token"
	case err == nil && (c.pending || c.id.Guest() && c.id.Name == "" && len(c.rooms) == 0):
		c.pending = false
		if c.authTimer != nil {
			c.authTimer.Stop()
		}
		c.id = normalized(nid)
		s.mu.Lock()
		revoked := s.registerLocked(c, mark)
		s.mu.Unlock()
		if revoked != 0 {
			return revoked, "session ended"
		}
	case err == nil && c.id.Kind == auth.KindToken && nid.UserID == c.id.UserID:
		// A refresh: the name stays the connection's.
		c.id.Expires, c.id.Rooms = nid.Expires, nid.Rooms
		for _, m := range c.rooms {
			if !c.id.AllowsRoom(m.room.name) {
				c.takeOut(m)
			}
		}
	default:
		c.sendError(protocol.CodeInvalidToken, "token refused", "", "")
		return 0, ""
	}
	c.armExpiry()
	a := protocol.Authed{Type: protocol.TypeAuthed, User: *userOf(c.id)}
	if !c.id.Expires.IsZero() {
		a.ExpiresMS = c.id.Expires.UnixMilli()
	}
	c.sendJSON(a)
	return 0, ""
}

// joinName is the name a join of an identified connection joins under,
// or false once it sent the error: the identity's name (a frame naming
// another was refused by admit), or for a guest's first join the name it
// asks for, if no account holds it (GuestName).
func (c *session) joinName(in *protocol.Inbound) (string, bool) {
	if c.id.Name != "" {
		return c.id.Name, true
	}
	if err := protocol.ValidName(in.Name); err != nil {
		c.sendError(protocol.CodeInvalidName, err.Error(), "", in.Room)
		return "", false
	}
	ctx, cancel := context.WithTimeout(context.Background(), accessTimeout)
	err := c.s.cfg.Auth.GuestName(ctx, in.Name)
	cancel()
	switch {
	case err == nil:
		return in.Name, true
	case errors.Is(err, auth.ErrNameTaken):
		c.sendError(protocol.CodeNameTaken, "an account holds this name: choose another, or sign in", "", in.Room)
	default:
		c.s.log.Warn("server: guest name", "err", err)
		c.sendError(protocol.CodeUnavailable, "cannot check the name now, retry", "", in.Room)
	}
	return "", false
}

// enter reports whether the connection may enter room (joining as name),
// or sends the error: not_found, the same frame for a room that does not
// exist and one it may not enter (denied), or unavailable when Access
// cannot tell. Without Access every public room is open and no reserved
// one exists.
func (c *session) enter(room, name string) (ok, denied bool) {
	s := c.s
	if c.id != nil && !c.id.AllowsRoom(room) {
		c.sendError(protocol.CodeNotFound, notFoundMessage, "", room)
		return false, true
	}
	if s.cfg.Access == nil {
		if !protocol.PublicRoom(room) {
			c.sendError(protocol.CodeNotFound, notFoundMessage, "", room)
			return false, true
		}
		return true, false
	}
	who := auth.Identity{Kind: auth.KindGuest, Name: name} // without Auth
	if c.id != nil {
		who = *c.id
		who.Name = name
	}
	ctx, cancel := context.WithTimeout(context.Background(), accessTimeout)
	err := s.cfg.Access.Enter(ctx, who, room)
	cancel()
	switch {
	case err == nil:
		return true, false
	case errors.Is(err, auth.ErrNoRoom):
		c.sendError(protocol.CodeNotFound, notFoundMessage, "", room)
		return false, true
	default:
		s.log.Warn("server: room access", "room", room, "err", err)
		c.sendError(protocol.CodeUnavailable, "cannot join now, retry", "", room)
	}
	return false, false
}

// takeOut takes the session out of m's room unless it is out already, and
// tells the client ({"type":"left","reason":"removed"}). Any goroutine may
// call it: m.gone decides who leaves the room, and the reader deletes m
// when it next meets it.
func (c *session) takeOut(m *membership) bool {
	if !m.gone.CompareAndSwap(false, true) {
		return false
	}
	c.s.leaveRoom(c, m.room, m.name)
	c.sendJSON(protocol.Left{Type: protocol.TypeLeft, Room: m.room.name, Reason: protocol.ReasonRemoved})
	return true
}
