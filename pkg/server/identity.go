package server

import (
	"context"
	"net/http"
	"time"

	"github.com/livechat/livechat/pkg/auth"
	"github.com/livechat/livechat/pkg/protocol"
)

// Authenticator establishes who a connection is (pkg/account implements it).
// Its methods are safe for concurrent use.
type Authenticator interface {
	// Authenticate identifies a WebSocket handshake before the upgrade:
	// from the session cookie, or from a token in the Authorization header
	// ("Bearer ...") or the "token" query parameter. It returns
	// auth.ErrNoCredentials when r carries none; any other error refuses
	// the handshake with 401.
	Authenticate(r *http.Request) (auth.Identity, error)
	// Token verifies a token sent in an auth frame (auth.ErrInvalidToken).
	Token(token string) (auth.Identity, error)
	// GuestName returns auth.ErrNameTaken when an account holds name.
	GuestName(ctx context.Context, name string) error
}

// FileAttacher attaches uploads to messages (pkg/files implements it). Its
// methods are safe for concurrent use.
type FileAttacher interface {
	// Attach marks the uploads ids of user in room as attached to the
	// message msgID (one already attached stays with its first message: a
	// retried send) and returns their descriptions in the order of ids.
	// It returns an error wrapping store.ErrNotFound when an id is not an
	// upload of user into room (one error for missing and another's), one
	// wrapping store.ErrInvalid for repeated ids, and another error when
	// it cannot tell now (the store is down).
	Attach(ctx context.Context, user, room, msgID string, ids []string) ([]protocol.File, error)
}

// Authorizer decides who may enter which room (pkg/rooms implements it).
// Its methods are safe for concurrent use.
type Authorizer interface {
	// Enter returns nil when id may enter room: join it, read its history,
	// send, type and see its presence. It returns auth.ErrNoRoom when the
	// room does not exist or id may not enter it (one error for both), and
	// another error when it cannot tell now (the store is down).
	Enter(ctx context.Context, id auth.Identity, room string) error
	// Active records that room had a message at t (the order of the
	// conversation lists). It does not block.
	Active(room string, t time.Time)
}
