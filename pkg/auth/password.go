// Package auth holds livechat's identity primitives: password hashing
// (password.go), user-name keys (name.go) and connection tokens for other
// apps (token.go). It knows nothing of the chat: no store, no HTTP, no
// sockets; the server and the CLI call into it.
//
// Every function of the package is safe for concurrent use.
package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
	"golang.org/x/text/unicode/norm"
)

// The argon2id parameters of new hashes: OWASP's Password Storage floor
// (19 MiB, 2 passes, 1 lane), a 16-byte random salt and a 32-byte key.
// Raising them makes NeedsRehash report the hashes made before.
const (
	ArgonMemoryKiB = 19 * 1024
	ArgonTime      = 2
	ArgonThreads   = 1
	ArgonSaltLen   = 16
	ArgonKeyLen    = 32
)

// The bounds VerifyPassword accepts in a stored hash. They keep a tampered
// or foreign hash from making a verification allocate gigabytes or spin for
// minutes; a hash outside them is refused with ErrMalformedHash.
const (
	maxMemoryKiB = 256 * 1024
	maxTime      = 16
	maxThreads   = 8
	minSaltLen   = 8
	maxSaltLen   = 64
	minKeyLen    = 16
	maxKeyLen    = 64
	// maxHashLen bounds the PHC string before it is parsed.
	maxHashLen = 256
)

// The password length policy, counted in characters (runes) after NFKC
// normalisation, because that is what a user counts. MaxPasswordLen runes
// are at most 4*MaxPasswordLen bytes, which bounds the work of a hash.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 128
)

// The password errors. They are safe to show to the user: none contains the
// password.
var (
	ErrPasswordTooShort = fmt.Errorf("auth: password must be at least %d characters", MinPasswordLen)
	ErrPasswordTooLong  = fmt.Errorf("auth: password must be at most %d characters", MaxPasswordLen)
	ErrPasswordInvalid  = errors.New("auth: password must be valid UTF-8 without NUL characters")
	// ErrMalformedHash means a stored hash is not an argon2id PHC string
	// within the accepted bounds: a store problem, not a wrong password.
	ErrMalformedHash = errors.New("auth: malformed password hash")
)

// b64 is the PHC encoding of salt and hash: standard alphabet, no padding
// (as the reference implementation), strict so that a changed trailing
// character is not silently accepted.
var b64 = base64.RawStdEncoding.Strict()

// argon2Key derives the key; tests replace it to count the derivations.
var argon2Key = argon2.IDKey

// params are the argon2id parameters of one hash.
type params struct {
	memory  uint32 // KiB
	time    uint32
	threads uint8
}

var current = params{memory: ArgonMemoryKiB, time: ArgonTime, threads: ArgonThreads}

// CheckPassword applies the policy to a new password (sign-up, change):
// valid UTF-8, no NUL, MinPasswordLen..MaxPasswordLen characters after NFKC.
// It returns one of the ErrPassword* values or nil.
func CheckPassword(pw string) error {
	_, err := newPassword(pw)
	return err
}

// newPassword applies the whole policy and returns the NFKC form to hash.
func newPassword(pw string) (string, error) {
	n, err := normalizePassword(pw)
	if err != nil {
		return "", err
	}
	if utf8.RuneCountInString(n) < MinPasswordLen {
		return "", ErrPasswordTooShort
	}
	return n, nil
}

// normalizePassword checks the bounds every password must meet (UTF-8, no
// NUL, not too long) and returns its NFKC form, so that the same characters
// typed on two keyboards (composed or decomposed é, fullwidth digits) give
// the same hash, as NIST SP 800-63B recommends. The minimum length is not
// checked here: a policy raised later must not lock out existing users.
func normalizePassword(pw string) (string, error) {
	if len(pw) > 4*MaxPasswordLen {
		return "", ErrPasswordTooLong
	}
	if !utf8.ValidString(pw) || strings.IndexByte(pw, 0) >= 0 {
		return "", ErrPasswordInvalid
	}
	n := norm.NFKC.String(pw)
	if utf8.RuneCountInString(n) > MaxPasswordLen {
		return "", ErrPasswordTooLong
	}
	return n, nil
}

// HashPassword checks pw against the policy (CheckPassword) and returns its
// argon2id hash as a PHC string:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>
//
// with a fresh random salt. It takes tens of milliseconds and about 19 MiB
// of memory (see BenchmarkHashPassword).
func HashPassword(pw string) (string, error) {
	n, err := newPassword(pw)
	if err != nil {
		return "", err
	}
	salt := make([]byte, ArgonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("auth: salt: %w", err)
	}
	key := argon2Key([]byte(n), salt, current.time, current.memory, current.threads, ArgonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, current.memory, current.time, current.threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// VerifyPassword reports whether pw matches the stored hash, comparing in
// constant time. A wrong password is (false, nil); a password the policy
// could never have accepted (too long, NUL, invalid UTF-8) is (false,
// ErrPassword*) without hashing; a hash that is not a bounded argon2id PHC
// string is (false, ErrMalformedHash). The minimum length is not applied,
// so raising it does not lock anyone out.
func VerifyPassword(hash, pw string) (bool, error) {
	p, salt, want, err := parseHash(hash)
	if err != nil {
		return false, err
	}
	n, err := normalizePassword(pw)
	if err != nil {
		return false, err
	}
	got := argon2Key([]byte(n), salt, p.time, p.memory, p.threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// unknownSalt is the salt of VerifyUnknown's derivation; its value does not
// matter, only that the work is the same as for a real hash.
var unknownSalt = make([]byte, ArgonSaltLen)

// VerifyUnknown does the work of a VerifyPassword that fails: call it when
// the user does not exist, so that an unknown user and a wrong password
// cost the same time (one argon2id derivation at the current parameters)
// and get the same answer. It always returns false.
func VerifyUnknown(pw string) bool {
	n, err := normalizePassword(pw)
	if err != nil {
		return false // VerifyPassword refuses these without hashing too.
	}
	got := argon2Key([]byte(n), unknownSalt, current.time, current.memory, current.threads, ArgonKeyLen)
	want := make([]byte, ArgonKeyLen)
	_ = subtle.ConstantTimeCompare(got, want)
	return false
}

// NeedsRehash reports whether a stored hash was made with weaker parameters
// than HashPassword's current ones (or is malformed): after a successful
// VerifyPassword, the caller hashes the password again and stores it.
func NeedsRehash(hash string) bool {
	p, salt, key, err := parseHash(hash)
	if err != nil {
		return true
	}
	return p.memory < current.memory || p.time < current.time || p.threads < current.threads ||
		len(salt) < ArgonSaltLen || len(key) < ArgonKeyLen
}

// parseHash parses an argon2id PHC string and checks every parameter
// against the bounds above, before anything is allocated from them.
func parseHash(hash string) (params, []byte, []byte, error) {
	var p params
	if len(hash) > maxHashLen {
		return p, nil, nil, ErrMalformedHash
	}
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	f := strings.Split(hash, "$")
	if len(f) != 6 || f[0] != "" || f[1] != "argon2id" || f[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, ErrMalformedHash
	}
	kv := strings.Split(f[3], ",")
	if len(kv) != 3 {
		return p, nil, nil, ErrMalformedHash
	}
	m, okM := phcUint(kv[0], "m=", maxMemoryKiB)
	t, okT := phcUint(kv[1], "t=", maxTime)
	th, okP := phcUint(kv[2], "p=", maxThreads)
	// argon2 needs at least 8 KiB per lane.
	if !okM || !okT || !okP || t < 1 || th < 1 || m < 8*th {
		return p, nil, nil, ErrMalformedHash
	}
	salt, err := b64.DecodeString(f[4])
	if err != nil || len(salt) < minSaltLen || len(salt) > maxSaltLen {
		return p, nil, nil, ErrMalformedHash
	}
	key, err := b64.DecodeString(f[5])
	if err != nil || len(key) < minKeyLen || len(key) > maxKeyLen {
		return p, nil, nil, ErrMalformedHash
	}
	return params{memory: uint32(m), time: uint32(t), threads: uint8(th)}, salt, key, nil
}

// phcUint parses "<prefix><decimal>" with a value at most max; it refuses
// signs, leading zeros and anything else strconv would tolerate.
func phcUint(s, prefix string, max uint64) (uint64, bool) {
	v, ok := strings.CutPrefix(s, prefix)
	if !ok || v == "" || len(v) > 10 || (len(v) > 1 && v[0] == '0') {
		return 0, false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n > max {
		return 0, false
	}
	return n, true
}
