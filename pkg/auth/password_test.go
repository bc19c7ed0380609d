package auth

import (
	"errors"
	"strings"
	"testing"
)

// countArgon2 replaces the derivation by a counting wrapper for one test
// (tests using it must not run in parallel). With fake, the derivation is
// not run (a zero key is returned), so that a test of refused parameters
// fails quickly instead of allocating them.
func countArgon2(t *testing.T, fake bool) *int {
	t.Helper()
	n := new(int)
	orig := argon2Key
	argon2Key = func(pw, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte {
		*n++
		if fake {
			return make([]byte, keyLen)
		}
		return orig(pw, salt, time, memory, threads, keyLen)
	}
	t.Cleanup(func() { argon2Key = orig })
	return n
}

func TestHashPasswordRoundTrip(t *testing.T) {
	h, err := HashPassword("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q: not the expected PHC prefix", h)
	}
	f := strings.Split(h, "$")
	if len(f[4]) != 22 || len(f[5]) != 43 || strings.Count(h, "=") != 4 {
		t.Fatalf("hash %q: want 16-byte salt and 32-byte key in unpadded base64", h)
	}
	ok, err := VerifyPassword(h, "correct horse battery staple")
	if err != nil || !ok {
		t.Fatalf("VerifyPassword(right) = %v, %v; want true, nil", ok, err)
	}
	h2, _ := HashPassword("correct horse battery staple")
	if h2 == h {
		t.Fatal("two hashes of one password are equal: the salt is not random")
	}
	if NeedsRehash(h) {
		t.Fatal("NeedsRehash of a fresh hash = true")
	}
}

func TestVerifyPasswordWrong(t *testing.T) {
	h, err := HashPassword("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	for _, pw := range []string{
		"correct horse battery stapl",
		"Correct horse battery staple",
		"correct horse battery staple ",
		"",
	} {
		if ok, err := VerifyPassword(h, pw); ok || err != nil {
			t.Errorf("VerifyPassword(%q) = %v, %v; want false, nil", pw, ok, err)
		}
	}
}

// TestPasswordNormalised: the same characters typed composed or decomposed
// (NFKC) verify.
func TestPasswordNormalised(t *testing.T) {
	h, err := HashPassword("caf\u00e9 au lait")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := VerifyPassword(h, "cafe\u0301 au lait"); !ok || err != nil {
		t.Fatalf("decomposed é = %v, %v; want true, nil", ok, err)
	}
}

func TestVerifyPasswordTampered(t *testing.T) {
	h, err := HashPassword("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Split(h, "$")
	flip := func(s string) string { // change the first character, keep it valid base64
		if s[0] == 'A' {
			return "B" + s[1:]
		}
		return "A" + s[1:]
	}
	for name, tampered := range map[string]string{
		"salt": strings.Join([]string{"", f[1], f[2], f[3], flip(f[4]), f[5]}, "$"),
		"key":  strings.Join([]string{"", f[1], f[2], f[3], f[4], flip(f[5])}, "$"),
		"t=3":  strings.Replace(h, "t=2", "t=3", 1),
		"m":    strings.Replace(h, "m=19456", "m=19457", 1),
	} {
		if ok, err := VerifyPassword(tampered, "correct horse battery staple"); ok || err != nil {
			t.Errorf("%s tampered: VerifyPassword = %v, %v; want false, nil", name, ok, err)
		}
	}
}

func TestVerifyPasswordMalformed(t *testing.T) {
	const salt = "c29tZXNhbHRzb21lc2FsdA"                     // 16 bytes
	const key = "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE" // 32 bytes
	for _, h := range []string{
		"",
		"$",
		"not a hash",
		"$argon2id$v=19$m=19456,t=2,p=1$" + salt,
		"$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + key + "$",
		"argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + key + "$",
		"$argon2i$v=19$m=19456,t=2,p=1$" + salt + "$" + key,
		"$argon2d$v=19$m=19456,t=2,p=1$" + salt + "$" + key,
		"$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
		"$argon2id$v=16$m=19456,t=2,p=1$" + salt + "$" + key,
		"$argon2id$m=19456,t=2,p=1$" + salt + "$" + key,
		"$argon2id$v=19$t=2,m=19456,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=19456,t=2$" + salt + "$" + key,
		"$argon2id$v=19$m=19456,t=2,p=1,k=1$" + salt + "$" + key,
		"$argon2id$v=19$m=,t=2,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=-1,t=2,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=+19456,t=2,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=019456,t=2,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=19456,t=0,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=19456,t=2,p=0$" + salt + "$" + key,
		"$argon2id$v=19$m=7,t=2,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=0x4c00,t=2,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=19456,t=2,p=1$" + salt + "==$" + key,
		"$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + key + "=",
		"$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + key[:42] + "B", // non-zero padding bits
		"$argon2id$v=19$m=19456,t=2,p=1$" + "c2FsdA" + "$" + key,        // 4-byte salt
		"$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + "a2V5",         // 3-byte key
		"$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + key + strings.Repeat("A", 300),
		"$argon2id$v=19$m=19456,t=2,p=1$" + "c29t!XNhbHRzb21lc2FsdA" + "$" + key,
	} {
		ok, err := VerifyPassword(h, "correct horse battery staple")
		if ok || !errors.Is(err, ErrMalformedHash) {
			t.Errorf("VerifyPassword(%q) = %v, %v; want false, ErrMalformedHash", h, ok, err)
		}
	}
}

// TestVerifyPasswordOversizedParams: a stored hash cannot make a
// verification allocate gigabytes or run for minutes; the derivation is
// never called.
func TestVerifyPasswordOversizedParams(t *testing.T) {
	calls := countArgon2(t, true)
	const salt = "c29tZXNhbHRzb21lc2FsdA"
	const key = "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE"
	for _, h := range []string{
		"$argon2id$v=19$m=4194304,t=2,p=1$" + salt + "$" + key,    // 4 GiB
		"$argon2id$v=19$m=4294967295,t=2,p=1$" + salt + "$" + key, // uint32 max
		"$argon2id$v=19$m=99999999999,t=2,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=19456,t=1000000,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=19456,t=2,p=255$" + salt + "$" + key,
		"$argon2id$v=19$m=19456,t=2,p=256$" + salt + "$" + key,                      // wraps uint8 to 0
		"$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + strings.Repeat("YWFh", 40), // 120-byte key
	} {
		ok, err := VerifyPassword(h, "correct horse battery staple")
		if ok || !errors.Is(err, ErrMalformedHash) {
			t.Errorf("VerifyPassword(%q) = %v, %v; want false, ErrMalformedHash", h, ok, err)
		}
	}
	if *calls != 0 {
		t.Fatalf("argon2 ran %d times on refused hashes", *calls)
	}
}

func TestPasswordPolicy(t *testing.T) {
	for _, tc := range []struct {
		pw   string
		want error
	}{
		{"12345678", nil},
		{"1234567", ErrPasswordTooShort},
		{"", ErrPasswordTooShort},
		{"ééééééé", ErrPasswordTooShort}, // 7 characters, 14 bytes
		{"éééééééé", nil},                // 8 characters
		{"ﬀﬀﬀﬀ", nil},                    // NFKC: "ffffffff", 8 characters
		{strings.Repeat("a", MaxPasswordLen), nil},
		{strings.Repeat("a", MaxPasswordLen+1), ErrPasswordTooLong},
		{strings.Repeat("é", MaxPasswordLen), nil}, // counted in characters, not bytes
		{strings.Repeat("é", MaxPasswordLen+1), ErrPasswordTooLong},
		{strings.Repeat("a", 10000), ErrPasswordTooLong},
		{"password\x00suffix", ErrPasswordInvalid},
		{"password\xffsuffix", ErrPasswordInvalid},
		{"\xc3\x28abcdefgh", ErrPasswordInvalid},
	} {
		if err := CheckPassword(tc.pw); !errors.Is(err, tc.want) {
			t.Errorf("CheckPassword(%.20q) = %v, want %v", tc.pw, err, tc.want)
		}
	}
}

// TestVerifyPasswordRefusesWithoutHashing: an input the policy could never
// have accepted is refused before argon2 runs; the minimum length is not
// applied by VerifyPassword.
func TestVerifyPasswordRefusesWithoutHashing(t *testing.T) {
	h, err := HashPassword("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	calls := countArgon2(t, false)
	for _, tc := range []struct {
		pw   string
		want error
	}{
		{strings.Repeat("a", 100000), ErrPasswordTooLong},
		{"a\x00b", ErrPasswordInvalid},
		{"\xff", ErrPasswordInvalid},
	} {
		if ok, err := VerifyPassword(h, tc.pw); ok || !errors.Is(err, tc.want) {
			t.Errorf("VerifyPassword(%.20q) = %v, %v; want false, %v", tc.pw, ok, err, tc.want)
		}
	}
	if *calls != 0 {
		t.Fatalf("argon2 ran %d times on refused passwords", *calls)
	}
	if ok, err := VerifyPassword(h, "short"); ok || err != nil {
		t.Errorf("VerifyPassword(short) = %v, %v; want false, nil", ok, err)
	}
	if *calls != 1 {
		t.Fatalf("a short password ran argon2 %d times, want 1", *calls)
	}
}

// TestVerifyUnknownSameWork: an unknown user and a wrong password both run
// exactly one argon2id derivation with the current parameters.
func TestVerifyUnknownSameWork(t *testing.T) {
	h, err := HashPassword("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	type call struct {
		time, memory uint32
		threads      uint8
		keyLen       int
	}
	var calls []call
	orig := argon2Key
	argon2Key = func(pw, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte {
		calls = append(calls, call{time, memory, threads, int(keyLen)})
		return orig(pw, salt, time, memory, threads, keyLen)
	}
	t.Cleanup(func() { argon2Key = orig })

	if ok, err := VerifyPassword(h, "wrong password"); ok || err != nil {
		t.Fatalf("VerifyPassword(wrong) = %v, %v", ok, err)
	}
	if VerifyUnknown("wrong password") {
		t.Fatal("VerifyUnknown returned true")
	}
	want := call{ArgonTime, ArgonMemoryKiB, ArgonThreads, ArgonKeyLen}
	if len(calls) != 2 || calls[0] != want || calls[1] != want {
		t.Fatalf("derivations = %+v, want two of %+v (wrong password, unknown user)", calls, want)
	}
}

func TestNeedsRehash(t *testing.T) {
	const salt = "c29tZXNhbHRzb21lc2FsdA"
	const key = "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE"
	for _, tc := range []struct {
		hash string
		want bool
	}{
		{"$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + key, false},
		{"$argon2id$v=19$m=65536,t=3,p=4$" + salt + "$" + key, false},
		{"$argon2id$v=19$m=4096,t=2,p=1$" + salt + "$" + key, true},
		{"$argon2id$v=19$m=19456,t=1,p=1$" + salt + "$" + key, true},
		{"$argon2id$v=19$m=19456,t=2,p=1$" + "c29tZXNhbHQ" + "$" + key, true}, // 8-byte salt
		{"garbage", true},
	} {
		if got := NeedsRehash(tc.hash); got != tc.want {
			t.Errorf("NeedsRehash(%q) = %v, want %v", tc.hash, got, tc.want)
		}
	}
}

// TestVerifyPasswordOldParams: a hash made with other (bounded) parameters
// still verifies.
func TestVerifyPasswordOldParams(t *testing.T) {
	salt := []byte("0123456789abcdef")
	key := argon2Key([]byte("correct horse battery staple"), salt, 1, 4096, 1, 32)
	h := "$argon2id$v=19$m=4096,t=1,p=1$" + b64.EncodeToString(salt) + "$" + b64.EncodeToString(key)
	if ok, err := VerifyPassword(h, "correct horse battery staple"); !ok || err != nil {
		t.Fatalf("VerifyPassword(old params) = %v, %v; want true, nil", ok, err)
	}
	if !NeedsRehash(h) {
		t.Fatal("NeedsRehash(old params) = false")
	}
}

func BenchmarkHashPassword(b *testing.B) {
	for b.Loop() {
		if _, err := HashPassword("correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyPassword(b *testing.B) {
	h, err := HashPassword("correct horse battery staple")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if ok, _ := VerifyPassword(h, "correct horse battery staple"); !ok {
			b.Fatal("no match")
		}
	}
}
