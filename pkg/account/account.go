// Package account is livechat's accounts and sign-in sessions: the JSON API
// under /api/account/ (sign-up, sign-in, sign-out, me, password change,
// account deletion), the identity of a request for the chat server
// (Authenticate, Token, GuestName: it implements pkg/server's
// Authenticator without importing it), the revocation events that end the
// connections of a signed-out, banned or deleted user, and the operator
// calls of `livechat users`.
//
// A session is 32 random bytes in the CookieName cookie (base64url); the
// store keeps only their SHA-256, so a leaked store does not leak live
// cookies. Passwords are argon2id (pkg/auth); at most a few hashes run at
// once, and sign-in attempts are throttled per account and per client
// address, so a flood of sign-ins can neither exhaust memory nor guess
// passwords quickly. Secrets (passwords, cookies, tokens, the token
// secret) are never logged nor put in errors.
//
// Files: account.go (Config, Service), identity.go (Authenticate, Token,
// GuestName), http.go (the handlers), throttle.go (the token buckets),
// operator.go (the operator calls, revocation publishing).
package account

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/livechat/livechat/internal/httpapi"
	"github.com/livechat/livechat/pkg/auth"
	"github.com/livechat/livechat/pkg/protocol"
	"github.com/livechat/livechat/pkg/store"
)

// CookieName is the name of the session cookie.
const CookieName = "livechat_session"

// DefaultSessionTTL is the lifetime of a session (and its cookie's Max-Age)
// when Config.SessionTTL is zero.
const DefaultSessionTTL = 30 * 24 * time.Hour

// The throttles, the hashing bound and the timeouts. A bucket that has not
// been used for burst/rate is full again and is dropped; when a map holds
// maxBuckets buckets, the least recently used one is dropped for a new
// key.
const (
	// accountBurst sign-in (or password) attempts per account, then one
	// per accountEvery.
	accountBurst = 5
	accountEvery = 10 * time.Second
	// addressBurst requests that hash a password per client address
	// (sign-up, sign-in, password change, deletion), then one per
	// addressEvery.
	addressBurst = 20
	addressEvery = time.Second
	// maxBuckets bounds each throttle map (about 200 bytes a bucket).
	maxBuckets = 1 << 16
	// maxHashing is how many argon2id hashes may run at once (each takes
	// about 19 MiB and 25 ms); hashWait is how long a request waits for a
	// slot before it is answered 503.
	maxHashing = 4
	hashWait   = 3 * time.Second
	// sideTimeout bounds the work a request does after its answer is
	// decided (revocation publishing, store writes) when the client has
	// gone away, and the store look-up of Token (which has no context).
	sideTimeout = 5 * time.Second
)

// Config configures a Service.
type Config struct {
	// Store keeps users and sessions. Required.
	Store store.Store
	// Secret is the HMAC secret of connection tokens (auth.VerifyToken), at
	// least auth.MinSecretLen bytes. Default: nil, every token is refused
	// with auth.ErrInvalidToken.
	Secret []byte
	// Publish sends a revocation event (protocol.UserEvent JSON on
	// protocol.UserSubject) to every server: the broker's Publish.
	// Default: nil, nothing is published (a single server that is told
	// another way, or none).
	Publish func(ctx context.Context, subject string, data []byte) error
	// Prefix is the subject namespace. Default: protocol.DefaultPrefix.
	Prefix string
	// Guests is reported by GET /api/account/me ("guests"): whether the
	// chat lets visitors in without an account. Default: false.
	Guests bool
	// AllowedOrigins are the other origins (host[:port] path.Match
	// patterns, "*" for any) whose pages may change state here; the
	// request's own host always may. Default: none.
	AllowedOrigins []string
	// TrustProxy takes the client address from the last X-Forwarded-For
	// hop (for the per-address throttle) and the scheme from
	// X-Forwarded-Proto (for the cookie's Secure flag). Set it only behind
	// a proxy that sets both. Default: false, the connection's own address
	// and TLS state.
	TrustProxy bool
	// SessionTTL is how long a session lasts after sign-in. Default:
	// DefaultSessionTTL (30 days).
	SessionTTL time.Duration
	// Logger receives store and publishing failures and throttling, never
	// a secret. Default: slog.Default().
	Logger *slog.Logger
	// Now is the clock (tests). Default: time.Now.
	Now func() time.Time
}

// defaults fills the zero fields of c.
func (c *Config) defaults() {
	if c.Prefix == "" {
		c.Prefix = protocol.DefaultPrefix
	}
	if c.SessionTTL <= 0 {
		c.SessionTTL = DefaultSessionTTL
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// passwords are the password functions of pkg/auth, held in a value so
// that tests can count the hashes.
type passwords struct {
	hash          func(pw string) (string, error)
	verify        func(hash, pw string) (bool, error)
	verifyUnknown func(pw string) bool
	needsRehash   func(hash string) bool
}

var argon2id = passwords{
	hash:          auth.HashPassword,
	verify:        auth.VerifyPassword,
	verifyUnknown: auth.VerifyUnknown,
	needsRehash:   auth.NeedsRehash,
}

// Service is the account service. Its methods are safe for concurrent use.
type Service struct {
	cfg Config
	log *slog.Logger
	pw  passwords
	// hashing holds one token per argon2id hash running (maxHashing).
	hashing  chan struct{}
	hashWait time.Duration
	// byAccount throttles attempts on one account (by its name key),
	// byAddress the password work asked by one client address.
	byAccount *limiters
	byAddress *limiters
}

// New returns a Service for cfg. It fails when cfg.Store is nil or
// cfg.Secret is set but shorter than auth.MinSecretLen.
func New(cfg Config) (*Service, error) {
	cfg.defaults()
	if cfg.Store == nil {
		return nil, errors.New("account: Config.Store is required")
	}
	if cfg.Secret != nil && len(cfg.Secret) < auth.MinSecretLen {
		return nil, fmt.Errorf("account: %w", auth.ErrShortSecret)
	}
	return &Service{
		cfg:       cfg,
		log:       cfg.Logger,
		pw:        argon2id,
		hashing:   make(chan struct{}, maxHashing),
		hashWait:  hashWait,
		byAccount: newLimiters(accountEvery, accountBurst, maxBuckets),
		byAddress: newLimiters(addressEvery, addressBurst, maxBuckets),
	}, nil
}

func (s *Service) now() time.Time { return s.cfg.Now() }

// errBusy answers a request that found every hashing slot taken.
var errBusy = &httpapi.Error{Status: http.StatusServiceUnavailable, Code: "unavailable",
	Message: "the server is busy; try again in a moment", RetryAfter: time.Second}

// acquireHash takes a hashing slot, waiting up to hashWait or until ctx
// ends; the caller calls the returned release. It blocks.
func (s *Service) acquireHash(ctx context.Context) (release func(), err error) {
	select {
	case s.hashing <- struct{}{}:
		return func() { <-s.hashing }, nil
	default:
	}
	t := time.NewTimer(s.hashWait)
	defer t.Stop()
	select {
	case s.hashing <- struct{}{}:
		return func() { <-s.hashing }, nil
	case <-t.C:
		s.log.Warn("account: every password hashing slot busy", "slots", cap(s.hashing), "waited", s.hashWait)
		return nil, errBusy
	case <-ctx.Done():
		return nil, errBusy
	}
}

// idAlphabet is the alphabet of user ids: lower-case letters and digits,
// valid in subjects, room-name characters and URLs.
const idAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// newUserID returns "u" and 20 random characters of idAlphabet (103 bits).
func newUserID() string {
	const n = 20
	b := make([]byte, 0, n+1)
	b = append(b, 'u')
	var buf [32]byte
	for len(b) < n+1 {
		_, _ = rand.Read(buf[:]) // never fails (crypto/rand)
		for _, c := range buf {
			// 252 = 7*36: rejecting the rest keeps every character
			// equally likely.
			if c < 252 && len(b) < n+1 {
				b = append(b, idAlphabet[c%36])
			}
		}
	}
	return string(b)
}
