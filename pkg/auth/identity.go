package auth

import (
	"errors"
	"time"
)

// Kind says how an Identity was established.
type Kind string

// The identity kinds.
const (
	// KindAccount is a user signed in with a livechat account (a session
	// cookie or, for the HTTP API, the same cookie).
	KindAccount Kind = "account"
	// KindToken is a user asserted by a connection token minted by a
	// site's backend (VerifyToken).
	KindToken Kind = "token"
	// KindGuest is an unauthenticated visitor, when the operator allows
	// guests: it may only enter public rooms, under a name that no account
	// holds, marked as a guest on everything it sends.
	KindGuest Kind = "guest"
)

// GuestIDPrefix starts the server-made user id of every guest, so that a
// guest's id can never be an account's or a token's subject.
const GuestIDPrefix = "g_"

// Identity is who a connection or an HTTP request is. It is established by
// the server (a session looked up in the store, a verified token, or a
// guest id it made) and never taken from a field of a client's frame.
type Identity struct {
	// UserID is the account id, the token's subject, or GuestIDPrefix and
	// random characters for a guest.
	UserID string
	// Name is the display name shown on everything the user sends. Empty
	// for a guest until its first join names it.
	Name string
	// Kind says how the identity was established.
	Kind Kind
	// Session is the store session id (the hex SHA-256 of the cookie) of a
	// cookie sign-in, so that signing out ends exactly that session's
	// connections; empty otherwise.
	Session string
	// Rooms is a token's room restriction (Claims.Rooms): nil allows every
	// room the user may enter, a non-nil list only those.
	Rooms []string
	// Expires is when a token identity stops being valid (its exp); zero
	// for accounts and guests.
	Expires time.Time
}

// Guest reports whether id is a guest.
func (id Identity) Guest() bool { return id.Kind == KindGuest }

// AllowsRoom reports whether id's token restriction lets it into room (true
// without a restriction). The room's own permissions still apply.
func (id Identity) AllowsRoom(room string) bool { return allows(id.Rooms, room) }

// Errors shared by the services that establish identities (pkg/account),
// decide room access (pkg/rooms) and the chat server that asks them.
var (
	// ErrNoCredentials: the request carries no session cookie and no token.
	ErrNoCredentials = errors.New("auth: no credentials")
	// ErrSessionEnded: the session cookie names no live session (signed
	// out, expired, revoked, or never existed).
	ErrSessionEnded = errors.New("auth: session ended")
	// ErrAccountClosed: the account is banned or deleted.
	ErrAccountClosed = errors.New("auth: account closed")
	// ErrNameTaken: a guest asked for a name an account holds.
	ErrNameTaken = errors.New("auth: name taken by an account")
	// ErrNoRoom: the room does not exist or the identity may not enter it;
	// one error for both, so that nobody learns a room exists by asking.
	ErrNoRoom = errors.New("auth: no such room")
)
