package auth

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/livechat/livechat/pkg/protocol"
)

// Connection tokens: a site's backend mints a JWT for one of its users
// (MintToken, or `livechat token`) and the client presents it to livechat,
// which checks it with VerifyToken. The algorithm is pinned to HS256 and
// `exp` is required.
const (
	// MinSecretLen is the shortest HMAC secret accepted, in bytes (RFC 7518
	// asks for a key at least as long as the hash: 32 bytes for HS256).
	MinSecretLen = 32
	// MaxTokenLen bounds a token before it is decoded, in bytes.
	MaxTokenLen = 4096
	// MaxSubjectLen bounds the user id (sub), in bytes.
	MaxSubjectLen = 128
	// TokenLeeway is the clock skew tolerated between the minting site and
	// this server on exp, nbf and iat: a token is still accepted up to 10 s
	// after its exp, and from 10 s before its nbf or iat.
	TokenLeeway = 10 * time.Second
	// maxSecretFile bounds the secret file read by LoadSecret.
	maxSecretFile = 64 << 10
)

// ErrInvalidToken is the one error VerifyToken returns for a token it
// refuses, whatever the reason: callers answer the client with it alone.
// The reason (one of jwt's fixed error values, or a short text) is wrapped
// for logs; neither the token nor the secret ever is.
var ErrInvalidToken = errors.New("auth: invalid token")

// The secret errors (configuration, not a refused token).
var (
	ErrNoSecret    = errors.New("auth: no token secret: set it with the flag, the environment variable or a file")
	ErrShortSecret = fmt.Errorf("auth: token secret must be at least %d bytes: generate one with `openssl rand -base64 48`", MinSecretLen)
)

// Claims are the claims of a connection token.
type Claims struct {
	// Name is the display name shown for the user (protocol.ValidName); empty
	// leaves it to the server.
	Name string `json:"name,omitempty"`
	// Rooms restricts the rooms the token may join. Nil (no claim) means no
	// restriction by the token; a non-nil list means only those rooms, so an
	// empty list allows none. Each is a protocol.ValidRoom name.
	Rooms []string `json:"rooms,omitzero"`
	// Use limits what the token is for: empty for a connection token;
	// UseUpload for a guest's upload token (pkg/account's UploadToken),
	// which authenticates nothing but a guest's uploads.
	Use string `json:"use,omitempty"`
	// RegisteredClaims holds sub (the user id, required), exp (required),
	// iat and nbf.
	jwt.RegisteredClaims
}

// UseUpload is the Use of a guest's upload token: its subject is a guest
// id (GuestIDPrefix).
const UseUpload = "upload"

// AllowsRoom reports whether the token lets its holder into room. It is
// only the token's restriction: the room's own permissions still apply.
func (c Claims) AllowsRoom(room string) bool { return allows(c.Rooms, room) }

// allows is a room restriction: nil allows every room, a list only its own.
func allows(rooms []string, room string) bool {
	return rooms == nil || slices.Contains(rooms, room)
}

// check validates the claims of ours; jwt checks the registered ones.
func (c Claims) check() error {
	if c.Subject == "" || len(c.Subject) > MaxSubjectLen || !utf8.ValidString(c.Subject) ||
		strings.IndexFunc(c.Subject, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }) >= 0 {
		return errors.New("invalid subject")
	}
	if c.Name != "" && protocol.ValidName(c.Name) != nil {
		return errors.New("invalid name")
	}
	for _, r := range c.Rooms {
		if protocol.ValidRoom(r) != nil {
			return errors.New("invalid room")
		}
	}
	switch {
	case c.Use == UseUpload && !strings.HasPrefix(c.Subject, GuestIDPrefix):
		return errors.New("an upload token's subject must be a guest id")
	case c.Use != "" && c.Use != UseUpload:
		return errors.New("unknown use")
	}
	return nil
}

// MintToken signs c as an HS256 token valid from now for ttl: it sets iat
// to now and exp to now+ttl (whole seconds), keeping nbf and the other
// claims as given. It refuses a short secret, a ttl <= 0, claims
// VerifyToken would refuse, and a token longer than MaxTokenLen.
func MintToken(secret []byte, c Claims, ttl time.Duration) (string, error) {
	if len(secret) < MinSecretLen {
		return "", ErrShortSecret
	}
	if ttl <= 0 {
		return "", errors.New("auth: token ttl must be positive")
	}
	if err := c.check(); err != nil {
		return "", fmt.Errorf("auth: token claims: %w", err)
	}
	now := time.Now()
	c.IssuedAt = jwt.NewNumericDate(now)
	c.ExpiresAt = jwt.NewNumericDate(now.Add(ttl))
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("auth: sign token: %w", err)
	}
	if len(s) > MaxTokenLen {
		return "", fmt.Errorf("auth: token is longer than %d bytes (too many rooms?)", MaxTokenLen)
	}
	return s, nil
}

// jwtReasons are the jwt error values VerifyToken wraps as the reason of
// a refusal, most specific first; they are fixed texts.
var jwtReasons = []error{
	jwt.ErrTokenMalformed,
	jwt.ErrTokenSignatureInvalid,
	jwt.ErrTokenUnverifiable,
	jwt.ErrTokenExpired,
	jwt.ErrTokenNotValidYet,
	jwt.ErrTokenUsedBeforeIssued,
	jwt.ErrTokenRequiredClaimMissing,
	jwt.ErrTokenInvalidClaims,
}

// invalid wraps a refusal's reason under ErrInvalidToken, keeping only a
// fixed text (jwt's errors may quote decoded input).
func invalid(reason error) error {
	for _, r := range jwtReasons {
		if errors.Is(reason, r) {
			return fmt.Errorf("%w: %w", ErrInvalidToken, r)
		}
	}
	return ErrInvalidToken
}

// VerifyToken checks token against secret at time now and returns its
// claims. It accepts only HS256 tokens at most MaxTokenLen bytes long, with
// a valid signature, an exp, and exp, nbf and iat honoured with
// TokenLeeway, a subject, and valid name and rooms. Every refusal is
// ErrInvalidToken (errors.Is); a secret shorter than MinSecretLen is
// ErrShortSecret, a configuration error.
func VerifyToken(secret []byte, token string, now time.Time) (Claims, error) {
	if len(secret) < MinSecretLen {
		return Claims{}, ErrShortSecret
	}
	if len(token) > MaxTokenLen {
		return Claims{}, fmt.Errorf("%w: longer than %d bytes", ErrInvalidToken, MaxTokenLen)
	}
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(TokenLeeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithStrictDecoding(),
	)
	var c Claims
	_, err := p.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		// WithValidMethods already pins the algorithm; this keeps the key
		// from ever reaching another method if that option is lost.
		if t.Method != jwt.SigningMethodHS256 {
			return nil, jwt.ErrTokenUnverifiable
		}
		return secret, nil
	})
	if err != nil {
		return Claims{}, invalid(err)
	}
	if err := c.check(); err != nil {
		return Claims{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	return c, nil
}

// LoadSecret returns the token secret from the first source set, in the
// order flag > environment > file (flagValue, envValue, filePath; empty
// means unset), with surrounding white space trimmed. The secret is used
// as given (not decoded) and must be at least MinSecretLen bytes. Errors
// name the source, never the secret. Prefer the file or the environment:
// a flag is visible to every user of the machine in the process list.
func LoadSecret(flagValue, envValue, filePath string) ([]byte, error) {
	var s, from string
	switch {
	case flagValue != "":
		s, from = flagValue, "flag"
	case envValue != "":
		s, from = envValue, "environment"
	case filePath != "":
		f, err := os.Open(filePath)
		if err != nil {
			return nil, fmt.Errorf("auth: token secret file: %w", err)
		}
		defer func() { _ = f.Close() }()
		b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
		if err != nil {
			return nil, fmt.Errorf("auth: token secret file: %w", err)
		}
		if len(b) > maxSecretFile {
			return nil, fmt.Errorf("auth: token secret file %s: larger than %d bytes", filePath, maxSecretFile)
		}
		s, from = string(b), "file "+filePath
	default:
		return nil, ErrNoSecret
	}
	s = strings.TrimSpace(s)
	if len(s) < MinSecretLen {
		return nil, fmt.Errorf("%w (from the %s)", ErrShortSecret, from)
	}
	return []byte(s), nil
}
