package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"hash"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var (
	testSecret  = []byte("0123456789abcdef0123456789abcdef-test-secret")
	otherSecret = []byte("fedcba9876543210fedcba9876543210-other-secret")
)

var b64url = base64.RawURLEncoding

// handToken builds a token by hand: header and claims as JSON, signed with
// HMAC (newHash) under key, or unsigned when newHash is nil.
func handToken(t *testing.T, header, claims map[string]any, newHash func() hash.Hash, key []byte) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	signing := b64url.EncodeToString(h) + "." + b64url.EncodeToString(c)
	if newHash == nil {
		return signing + "."
	}
	m := hmac.New(newHash, key)
	m.Write([]byte(signing))
	return signing + "." + b64url.EncodeToString(m.Sum(nil))
}

// validClaims are claims VerifyToken accepts at now.
func validClaims(now time.Time) map[string]any {
	return map[string]any{
		"sub":  "u-42",
		"name": "Alice",
		"iat":  now.Unix(),
		"exp":  now.Add(time.Hour).Unix(),
	}
}

var hs256 = map[string]any{"alg": "HS256", "typ": "JWT"}

// refused checks that VerifyToken refuses token with ErrInvalidToken and
// that the error quotes neither the token nor the secret.
func refused(t *testing.T, what string, secret []byte, token string, now time.Time) {
	t.Helper()
	c, err := VerifyToken(secret, token, now)
	if !errors.Is(err, ErrInvalidToken) {
		t.Errorf("%s: VerifyToken = %+v, %v; want ErrInvalidToken", what, c, err)
		return
	}
	msg := err.Error()
	if (token != "" && strings.Contains(msg, token)) || strings.Contains(msg, string(secret)) {
		t.Errorf("%s: error %q quotes the token or the secret", what, msg)
	}
	for _, part := range strings.Split(token, ".") {
		if len(part) > 8 && strings.Contains(msg, part) {
			t.Errorf("%s: error %q quotes part of the token", what, msg)
		}
	}
}

func TestTokenRoundTrip(t *testing.T) {
	in := Claims{Name: "Alice", Rooms: []string{"lobby", "dev"}}
	in.Subject = "u-42"
	tok, err := MintToken(testSecret, in, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := VerifyToken(testSecret, tok, time.Now())
	if err != nil {
		t.Fatalf("VerifyToken: %v", err)
	}
	if c.Subject != "u-42" || c.Name != "Alice" || !slices.Equal(c.Rooms, []string{"lobby", "dev"}) {
		t.Fatalf("claims = %+v", c)
	}
	if c.ExpiresAt == nil || c.IssuedAt == nil || c.ExpiresAt.Sub(c.IssuedAt.Time) != time.Hour {
		t.Fatalf("exp/iat = %v/%v, want one hour apart", c.ExpiresAt, c.IssuedAt)
	}
	// Accepted up to TokenLeeway after exp, refused after.
	if _, err := VerifyToken(testSecret, tok, c.ExpiresAt.Add(TokenLeeway-time.Second)); err != nil {
		t.Fatalf("within the leeway after exp: %v", err)
	}
	refused(t, "after exp + leeway", testSecret, tok, c.ExpiresAt.Add(TokenLeeway+time.Second))
}

// TestTokenRoomsNilVersusEmpty: no rooms claim means no restriction; an
// empty list survives the round trip and allows no room.
func TestTokenRoomsNilVersusEmpty(t *testing.T) {
	for _, tc := range []struct {
		rooms  []string
		lobby  bool
		claim  bool // "rooms" present in the payload
		reason string
	}{
		{nil, true, false, "nil: no restriction"},
		{[]string{}, false, true, "empty: no room"},
		{[]string{"lobby"}, true, true, "listed"},
		{[]string{"dev"}, false, true, "not listed"},
	} {
		in := Claims{Rooms: tc.rooms}
		in.Subject = "u-1"
		tok, err := MintToken(testSecret, in, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		payload, _ := b64url.DecodeString(strings.Split(tok, ".")[1])
		if got := strings.Contains(string(payload), `"rooms"`); got != tc.claim {
			t.Errorf("%s: rooms claim present = %v in %s", tc.reason, got, payload)
		}
		c, err := VerifyToken(testSecret, tok, time.Now())
		if err != nil {
			t.Fatalf("%s: %v", tc.reason, err)
		}
		if c.AllowsRoom("lobby") != tc.lobby {
			t.Errorf("%s: AllowsRoom(lobby) = %v", tc.reason, !tc.lobby)
		}
	}
}

// TestTokenRoomAUsedForRoomB: a token for room A does not open room B.
func TestTokenRoomAUsedForRoomB(t *testing.T) {
	in := Claims{Rooms: []string{"a"}}
	in.Subject = "u-1"
	tok, err := MintToken(testSecret, in, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	c, err := VerifyToken(testSecret, tok, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !c.AllowsRoom("a") {
		t.Error("AllowsRoom(a) = false")
	}
	for _, room := range []string{"b", "A", "a ", "", "a.b", "*", ">"} {
		if c.AllowsRoom(room) {
			t.Errorf("AllowsRoom(%q) = true for a token of room a", room)
		}
	}
}

func TestVerifyTokenForgedSignature(t *testing.T) {
	now := time.Now()
	tok := handToken(t, hs256, validClaims(now), sha256.New, testSecret)
	if _, err := VerifyToken(testSecret, tok, now); err != nil {
		t.Fatalf("the untouched token: %v", err)
	}
	parts := strings.Split(tok, ".")
	forged := validClaims(now)
	forged["sub"] = "admin"
	fp, _ := json.Marshal(forged)
	refused(t, "payload changed, signature kept", testSecret, parts[0]+"."+b64url.EncodeToString(fp)+"."+parts[2], now)
	sig, _ := b64url.DecodeString(parts[2])
	sig[0] ^= 1
	refused(t, "signature bit flipped", testSecret, parts[0]+"."+parts[1]+"."+b64url.EncodeToString(sig), now)
	refused(t, "signature removed", testSecret, parts[0]+"."+parts[1]+".", now)
}

func TestVerifyTokenWrongKey(t *testing.T) {
	in := Claims{}
	in.Subject = "u-1"
	tok, err := MintToken(otherSecret, in, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	refused(t, "other secret", testSecret, tok, time.Now())
}

// TestVerifyTokenAlgNone: unsigned tokens, built by hand.
func TestVerifyTokenAlgNone(t *testing.T) {
	now := time.Now()
	for _, alg := range []string{"none", "None", "NONE", "nOnE", ""} {
		h := map[string]any{"alg": alg, "typ": "JWT"}
		refused(t, "alg "+alg+" unsigned", testSecret, handToken(t, h, validClaims(now), nil, nil), now)
		refused(t, "alg "+alg+" HMAC-signed", testSecret, handToken(t, h, validClaims(now), sha256.New, testSecret), now)
	}
	refused(t, "no alg", testSecret, handToken(t, map[string]any{"typ": "JWT"}, validClaims(now), sha256.New, testSecret), now)
}

// TestVerifyTokenOtherHMAC: HS384 and HS512 with the right secret are
// refused too: the algorithm is pinned, not just the family.
func TestVerifyTokenOtherHMAC(t *testing.T) {
	now := time.Now()
	refused(t, "HS384", testSecret, handToken(t, map[string]any{"alg": "HS384"}, validClaims(now), sha512.New384, testSecret), now)
	refused(t, "HS512", testSecret, handToken(t, map[string]any{"alg": "HS512"}, validClaims(now), sha512.New, testSecret), now)
}

// TestVerifyTokenRSHSConfusion: a token signed RS256, and one claiming
// RS256 but HMAC-signed with the public key's bytes (the classic confusion,
// against a verifier whose secret is those bytes).
func TestVerifyTokenRSHSConfusion(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	now := time.Now()

	rs := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims(validClaims(now)))
	rsTok, err := rs.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	refused(t, "RS256-signed", testSecret, rsTok, now)
	refused(t, "RS256-signed, public key as secret", pubPEM, rsTok, now)

	rsHMAC := handToken(t, map[string]any{"alg": "RS256", "typ": "JWT"}, validClaims(now), sha256.New, pubPEM)
	refused(t, "claims RS256, HMAC with the public key", pubPEM, rsHMAC, now)
	rsHMAC = handToken(t, map[string]any{"alg": "RS256", "typ": "JWT"}, validClaims(now), sha256.New, testSecret)
	refused(t, "claims RS256, HMAC with the secret", testSecret, rsHMAC, now)
}

func TestVerifyTokenTimes(t *testing.T) {
	now := time.Now()
	with := func(k string, v any) map[string]any {
		c := validClaims(now)
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	for _, tc := range []struct {
		what   string
		claims map[string]any
	}{
		{"expired", with("exp", now.Add(-time.Minute).Unix())},
		{"expired long ago", with("exp", now.Add(-24*time.Hour).Unix())},
		{"missing exp", with("exp", nil)},
		{"exp not a number", with("exp", "tomorrow")},
		{"exp null", map[string]any{"sub": "u-1", "exp": json.RawMessage("null")}},
		{"not yet valid (nbf in a minute)", with("nbf", now.Add(time.Minute).Unix())},
		{"issued in a minute (iat)", with("iat", now.Add(time.Minute).Unix())},
	} {
		refused(t, tc.what, testSecret, handToken(t, hs256, tc.claims, sha256.New, testSecret), now)
	}
	// Within the leeway: accepted.
	for _, tc := range []struct {
		what   string
		claims map[string]any
	}{
		{"exp a few seconds ago", with("exp", now.Add(-TokenLeeway/2).Unix())},
		{"nbf a few seconds ahead", with("nbf", now.Add(TokenLeeway/2).Unix())},
		{"no iat", with("iat", nil)},
	} {
		if _, err := VerifyToken(testSecret, handToken(t, hs256, tc.claims, sha256.New, testSecret), now); err != nil {
			t.Errorf("%s: %v", tc.what, err)
		}
	}
}

// TestVerifyTokenClaims: claims of ours that are refused.
func TestVerifyTokenClaims(t *testing.T) {
	now := time.Now()
	with := func(k string, v any) map[string]any {
		c := validClaims(now)
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	for _, tc := range []struct {
		what   string
		claims map[string]any
	}{
		{"no sub", with("sub", nil)},
		{"empty sub", with("sub", "")},
		{"sub too long", with("sub", strings.Repeat("x", MaxSubjectLen+1))},
		{"sub with a control character", with("sub", "u\n1")},
		{"sub with a bidi override", with("sub", "u\u202e1")},
		{"invalid name", with("name", "<script>")},
		{"name with zero-width space", with("name", "Ali\u200bce")},
		{"invalid room", with("rooms", []string{"lobby", "a.b"})},
		{"rooms not a list", with("rooms", "lobby")},
		{"name not a string", with("name", 42)},
	} {
		refused(t, tc.what, testSecret, handToken(t, hs256, tc.claims, sha256.New, testSecret), now)
	}
}

func TestVerifyTokenMalformed(t *testing.T) {
	now := time.Now()
	good := handToken(t, hs256, validClaims(now), sha256.New, testSecret)
	p := strings.Split(good, ".")
	// A valid, correctly signed token longer than MaxTokenLen.
	many := validClaims(now)
	rooms := make([]string, 300)
	for i := range rooms {
		rooms[i] = "room-" + strings.Repeat("x", 10)
	}
	many["rooms"] = rooms
	huge := handToken(t, hs256, many, sha256.New, testSecret)
	if len(huge) <= MaxTokenLen {
		t.Fatalf("huge token is only %d bytes", len(huge))
	}
	// The same signature bytes with non-zero trailing bits in its last
	// base64 character: a second spelling of one token (strict decoding).
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, p[2][len(p[2])-1])
	tail := p[2][:len(p[2])-1] + string(alphabet[last|1])
	for _, tc := range []struct{ what, token string }{
		{"empty", ""},
		{"signature with non-canonical base64 tail", p[0] + "." + p[1] + "." + tail},
		{"one part", "abc"},
		{"two parts", p[0] + "." + p[1]},
		{"four parts", good + ".x"},
		{"header bad base64", "!!!." + p[1] + "." + p[2]},
		{"payload bad base64", p[0] + ".%%%." + p[2]},
		{"signature bad base64", p[0] + "." + p[1] + ".***"},
		{"padded base64", p[0] + "=." + p[1] + "." + p[2]},
		{"header not JSON", b64url.EncodeToString([]byte("not json")) + "." + p[1] + "." + p[2]},
		{"payload not JSON", p[0] + "." + b64url.EncodeToString([]byte("[1,2")) + "." + p[2]},
		{"payload null", handToken(t, hs256, nil, sha256.New, testSecret)},
		{"spaces", " " + good},
		{"huge (valid signature)", huge},
		{"huge garbage", strings.Repeat("a", 1<<20)},
	} {
		refused(t, tc.what, testSecret, tc.token, now)
	}
}

func TestTokenSecretTooShort(t *testing.T) {
	in := Claims{}
	in.Subject = "u-1"
	if _, err := MintToken(testSecret[:MinSecretLen-1], in, time.Minute); !errors.Is(err, ErrShortSecret) {
		t.Errorf("MintToken(short secret) = %v", err)
	}
	if _, err := MintToken(nil, in, time.Minute); !errors.Is(err, ErrShortSecret) {
		t.Errorf("MintToken(no secret) = %v", err)
	}
	tok, err := MintToken(testSecret, in, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyToken(nil, tok, time.Now()); !errors.Is(err, ErrShortSecret) {
		t.Errorf("VerifyToken(no secret) = %v", err)
	}
}

func TestMintTokenRefuses(t *testing.T) {
	ok := Claims{}
	ok.Subject = "u-1"
	noSub := Claims{Name: "Alice"}
	badName := Claims{Name: "<b>"}
	badName.Subject = "u-1"
	many := Claims{Rooms: make([]string, 400)}
	many.Subject = "u-1"
	for i := range many.Rooms {
		many.Rooms[i] = "room-xxxxxxxxxx"
	}
	for _, tc := range []struct {
		what string
		c    Claims
		ttl  time.Duration
	}{
		{"zero ttl", ok, 0},
		{"negative ttl", ok, -time.Minute},
		{"no subject", noSub, time.Minute},
		{"invalid name", badName, time.Minute},
		{"too long", many, time.Minute},
	} {
		if tok, err := MintToken(testSecret, tc.c, tc.ttl); err == nil {
			t.Errorf("%s: MintToken = %.20q, nil; want an error", tc.what, tok)
		}
	}
}

func TestLoadSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	long := "an-operator-secret-of-more-than-32-bytes"
	other := "another-secret-also-longer-than-32-bytes"
	good := write("good", "\n  "+long+"\n\n")
	short := write("short", "hunter2hunter2\n")
	blank := write("blank", " \n\t\n")
	big := write("big", strings.Repeat("x", maxSecretFile+1))
	for _, tc := range []struct {
		what             string
		flag, env, file  string
		want             string
		err              error
		mustNotMentionIn string
	}{
		{"flag", long, "", "", long, nil, ""},
		{"flag trimmed", "  " + long + "\n", "", "", long, nil, ""},
		{"flag wins over env and file", long, other, short, long, nil, ""},
		{"env", "", long, "", long, nil, ""},
		{"env wins over file", "", long, short, long, nil, ""},
		{"file trimmed", "", "", good, long, nil, ""},
		{"nothing", "", "", "", "", ErrNoSecret, ""},
		{"short flag", "hunter2", "", "", "", ErrShortSecret, "hunter2"},
		{"short env", "", "hunter2", "", "", ErrShortSecret, "hunter2"},
		{"short file", "", "", short, "", ErrShortSecret, "hunter2"},
		{"blank file", "", "", blank, "", ErrShortSecret, ""},
		{"blank flag", "   ", "", "", "", ErrShortSecret, ""},
		{"31 bytes", strings.Repeat("s", MinSecretLen-1), "", "", "", ErrShortSecret, strings.Repeat("s", MinSecretLen-1)},
		{"32 bytes", strings.Repeat("s", MinSecretLen), "", "", strings.Repeat("s", MinSecretLen), nil, ""},
		{"missing file", "", "", filepath.Join(dir, "nope"), "", os.ErrNotExist, ""},
		{"huge file", "", "", big, "", nil, "xxxxxxxx"},
	} {
		got, err := LoadSecret(tc.flag, tc.env, tc.file)
		switch {
		case tc.want != "":
			if err != nil || string(got) != tc.want {
				t.Errorf("%s: LoadSecret = %q, %v; want %q", tc.what, got, err, tc.want)
			}
		case err == nil:
			t.Errorf("%s: LoadSecret = %q, nil; want an error", tc.what, got)
		case tc.err != nil && !errors.Is(err, tc.err):
			t.Errorf("%s: LoadSecret error %v, want %v", tc.what, err, tc.err)
		}
		if err != nil && tc.mustNotMentionIn != "" && strings.Contains(err.Error(), tc.mustNotMentionIn) {
			t.Errorf("%s: error %q quotes the secret", tc.what, err)
		}
	}
}

func BenchmarkVerifyToken(b *testing.B) {
	in := Claims{Name: "Alice", Rooms: []string{"lobby"}}
	in.Subject = "u-42"
	tok, err := MintToken(testSecret, in, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for b.Loop() {
		if _, err := VerifyToken(testSecret, tok, now); err != nil {
			b.Fatal(err)
		}
	}
}

// TestTokenUse: an upload token's subject must be a guest id, and no other
// use is known; both are refused when minted and when verified.
func TestTokenUse(t *testing.T) {
	ok := Claims{Use: UseUpload}
	ok.Subject = GuestIDPrefix + "abc"
	tok, err := MintToken(testSecret, ok, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := VerifyToken(testSecret, tok, time.Now()); err != nil || c.Use != UseUpload {
		t.Fatalf("upload token: %+v, %v", c, err)
	}
	for name, c := range map[string]Claims{"an account's id": {Use: UseUpload}, "an unknown use": {Use: "admin"}} {
		if name == "an account's id" {
			c.Subject = "u-42"
		} else {
			c.Subject = GuestIDPrefix + "abc"
		}
		if _, err := MintToken(testSecret, c, time.Hour); err == nil {
			t.Errorf("%s: minted", name)
		}
		c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(time.Hour))
		forged, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(testSecret)
		if err != nil {
			t.Fatal(err)
		}
		refused(t, name, testSecret, forged, time.Now())
	}
}
