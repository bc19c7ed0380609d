package account

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/livechat/livechat/pkg/auth"
	"github.com/livechat/livechat/pkg/protocol"
	"github.com/livechat/livechat/pkg/store"
)

// sessionBytes is the size of a session secret; its cookie value is
// sessionValueLen characters of unpadded base64url.
const (
	sessionBytes    = 32
	sessionValueLen = 43
)

// cookieEncoding encodes session secrets.
var cookieEncoding = base64.RawURLEncoding.Strict()

// newSession returns a fresh cookie value and its store session id.
func newSession() (value, id string) {
	b := make([]byte, sessionBytes)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	value = cookieEncoding.EncodeToString(b)
	return value, hashValue(value)
}

// hashValue is the store id of a cookie value: the hex SHA-256 of it.
func hashValue(value string) string {
	sum := sha256.Sum256([]byte(value))
	return hex.EncodeToString(sum[:])
}

// sessionID returns the store id of a cookie value, or false when value
// cannot be one of ours (then no store look-up is made).
func sessionID(value string) (string, bool) {
	if len(value) != sessionValueLen {
		return "", false
	}
	if b, err := cookieEncoding.DecodeString(value); err != nil || len(b) != sessionBytes {
		return "", false
	}
	return hashValue(value), true
}

// sessionCookie returns the value of r's session cookie.
func sessionCookie(r *http.Request) (string, bool) {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return "", false
	}
	return c.Value, true
}

// requestToken returns the token r carries: the Authorization header's
// Bearer credentials, else the "token" query parameter (present even if
// empty). Another Authorization scheme is not ours and is ignored.
func requestToken(r *http.Request) (string, bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, cred, _ := strings.Cut(h, " ")
		if strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(cred), true
		}
	}
	if q := r.URL.Query(); q.Has("token") {
		return q.Get("token"), true
	}
	return "", false
}

// Authenticate returns the identity of r: from a token (the Authorization
// header's Bearer credentials, else the "token" query parameter), else
// from the session cookie. Errors:
//
//   - auth.ErrNoCredentials: neither a token nor a session cookie;
//   - auth.ErrInvalidToken (wrapped): the token is refused (bad signature
//     or algorithm, expired, not yet valid, no exp, or tokens are not
//     enabled); never a fall back to the cookie;
//   - auth.ErrSessionEnded: the cookie names no live session (signed out,
//     expired, rotated, or never ours);
//   - auth.ErrAccountClosed: the session's or the token's user is banned
//     or deleted;
//   - another error (wrapped): the store did not answer.
//
// It blocks on the store for the duration of one or two look-ups, bounded
// by r's context. It is safe for concurrent use.
func (s *Service) Authenticate(r *http.Request) (auth.Identity, error) {
	if tok, ok := requestToken(r); ok {
		return s.token(r.Context(), tok)
	}
	value, ok := sessionCookie(r)
	if !ok {
		return auth.Identity{}, auth.ErrNoCredentials
	}
	id, _, err := s.session(r.Context(), value)
	return id, err
}

// Token returns the identity of a token sent in an auth frame, with the
// errors of Authenticate's token case. It blocks on one store look-up
// (is the user banned?) of at most a few seconds. It is safe for
// concurrent use.
func (s *Service) Token(token string) (auth.Identity, error) {
	ctx, cancel := context.WithTimeout(context.Background(), sideTimeout)
	defer cancel()
	return s.token(ctx, token)
}

// token verifies token and builds its identity: UserID is the subject,
// Name the name claim, else the subject when it is a valid name, else
// "user". A user row with the subject as id that is banned refuses the
// token (auth.ErrAccountClosed).
func (s *Service) token(ctx context.Context, token string) (auth.Identity, error) {
	if s.cfg.Secret == nil {
		return auth.Identity{}, fmt.Errorf("%w: tokens are not enabled on this server", auth.ErrInvalidToken)
	}
	c, err := auth.VerifyToken(s.cfg.Secret, token, s.now())
	if err != nil {
		return auth.Identity{}, fmt.Errorf("account: %w", err)
	}
	return s.tokenIdentity(ctx, c)
}

// tokenIdentity is the identity of a verified connection token's claims.
func (s *Service) tokenIdentity(ctx context.Context, c auth.Claims) (auth.Identity, error) {
	if c.Use != "" { // a guest's upload token opens nothing else
		return auth.Identity{}, fmt.Errorf("%w: not a connection token", auth.ErrInvalidToken)
	}
	name := c.Name
	if name == "" {
		name = "user"
		if protocol.ValidName(c.Subject) == nil {
			name = c.Subject
		}
	}
	u, err := s.cfg.Store.UserByID(ctx, c.Subject)
	switch {
	case err == nil && u.Banned:
		return auth.Identity{}, auth.ErrAccountClosed
	case err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrInvalid):
		return auth.Identity{}, fmt.Errorf("account: token user: %w", err)
	}
	id := auth.Identity{UserID: c.Subject, Name: name, Kind: auth.KindToken, Rooms: c.Rooms}
	if c.ExpiresAt != nil {
		id.Expires = c.ExpiresAt.Time
	}
	return id, nil
}

// session returns the identity and the user of a session cookie value.
func (s *Service) session(ctx context.Context, value string) (auth.Identity, store.User, error) {
	sid, ok := sessionID(value)
	if !ok {
		return auth.Identity{}, store.User{}, auth.ErrSessionEnded
	}
	ss, err := s.cfg.Store.Session(ctx, sid)
	if errors.Is(err, store.ErrNotFound) {
		return auth.Identity{}, store.User{}, auth.ErrSessionEnded
	}
	if err != nil {
		return auth.Identity{}, store.User{}, fmt.Errorf("account: session: %w", err)
	}
	if !s.now().Before(ss.Expires) {
		return auth.Identity{}, store.User{}, auth.ErrSessionEnded
	}
	u, err := s.cfg.Store.UserByID(ctx, ss.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return auth.Identity{}, store.User{}, auth.ErrAccountClosed
	}
	if err != nil {
		return auth.Identity{}, store.User{}, fmt.Errorf("account: session user: %w", err)
	}
	if u.Banned {
		return auth.Identity{}, store.User{}, auth.ErrAccountClosed
	}
	return auth.Identity{UserID: u.ID, Name: u.Name, Kind: auth.KindAccount, Session: sid}, u, nil
}

// GuestName returns auth.ErrNameTaken when an account holds name (by its
// auth.NameKey: "ALICE" is taken when "alice" is an account), nil when
// none does, auth.ErrInvalidUserName (wrapped) for a name no account may
// hold (protocol.ValidName, or invisible letters), and a wrapped store
// error when it cannot tell. It blocks on one store look-up and is safe
// for concurrent use.
func (s *Service) GuestName(ctx context.Context, name string) error {
	key, err := auth.NameKey(name)
	if err != nil {
		return fmt.Errorf("account: guest name: %w", err)
	}
	_, err = s.cfg.Store.UserByKey(ctx, key)
	switch {
	case err == nil:
		return auth.ErrNameTaken
	case errors.Is(err, store.ErrNotFound):
		return nil
	}
	return fmt.Errorf("account: guest name: %w", err)
}

// GuestUploadTTL is how long a guest's upload token is valid.
const GuestUploadTTL = 6 * time.Hour

// UploadToken mints the upload token of the guest guestID (an id the chat
// server made, auth.GuestIDPrefix...): it authenticates that guest's
// uploads (AuthenticateFiles) and nothing else, for GuestUploadTTL. It
// needs the token secret.
func (s *Service) UploadToken(guestID string) (string, error) {
	if s.cfg.Secret == nil {
		return "", errors.New("account: upload tokens need the token secret")
	}
	c := auth.Claims{Use: auth.UseUpload}
	c.Subject = guestID
	return auth.MintToken(s.cfg.Secret, c, GuestUploadTTL)
}

// AuthenticateFiles is Authenticate for the files API: a bearer token that
// is a guest's upload token (UploadToken) identifies that guest (kind
// guest, its id, no name); anything else is Authenticate's.
func (s *Service) AuthenticateFiles(r *http.Request) (auth.Identity, error) {
	tok, ok := requestToken(r)
	if !ok || s.cfg.Secret == nil {
		return s.Authenticate(r)
	}
	c, err := auth.VerifyToken(s.cfg.Secret, tok, s.now())
	switch {
	case err != nil:
		return auth.Identity{}, fmt.Errorf("account: %w", err)
	case c.Use == auth.UseUpload:
		id := auth.Identity{UserID: c.Subject, Kind: auth.KindGuest}
		if c.ExpiresAt != nil {
			id.Expires = c.ExpiresAt.Time
		}
		return id, nil
	}
	return s.tokenIdentity(r.Context(), c) // a connection token, verified once
}
