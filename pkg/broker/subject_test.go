package broker

import (
	"errors"
	"strings"
	"testing"
)

// The grammar, one case per line: does pattern match subject?
var matchCases = []struct {
	pattern, subject string
	want             bool
}{
	{"a", "a", true},
	{"a", "b", false},
	{"a", "a.b", false},
	{"a.b", "a", false},
	{"a.b", "a.b", true},
	{"a.b", "a.bb", false},
	{"a.b", "a.b.c", false},
	{"*", "a", true},
	{"*", "a.b", false},
	{"a.*", "a.b", true},
	{"a.*", "a", false},
	{"a.*", "a.b.c", false}, // a Redis glob "a.*" would match this one
	{"a.*", "b.c", false},
	{"*.b", "a.b", true},
	{"*.b", "a.c", false},
	{"a.*.c", "a.b.c", true},
	{"a.*.c", "a.b.b.c", false},
	{"*.*", "a.b", true},
	{"*.*", "a.b.c", false},
	{">", "a", true},
	{">", "a.b.c", true},
	{"a.>", "a", false},
	{"a.>", "a.b", true},
	{"a.>", "a.b.c", true},
	{"a.>", "b.c", false},
	{"a.*.>", "a.b", false},
	{"a.*.>", "a.b.c", true},
	{"*.>", "a", false},
	{"*.>", "a.b", true},
	{"a.b.>", "a.b.c.d.e", true},
	{"livechat.room.*", "livechat.room.general", true},
	{"livechat.room.*", "livechat.presence.general", false},
	{"a.[b]", "a.[b]", true},
	{"a.[b]", "a.b", false},
	{"a?", "a?", true},
	{"a?", "ab", false},
	{"é.*", "é.ü", true},
	{"a.*", "a.*", false}, // a subject with a wildcard is invalid
	{"a..b", "a..b", false},
	{"a.>.b", "a.x.b", false},
}

func TestMatch(t *testing.T) {
	for _, c := range matchCases {
		if got := Match(c.pattern, c.subject); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.pattern, c.subject, got, c.want)
		}
	}
}

// Validity, one case per line: as a published subject, as a pattern.
var validCases = []struct {
	s              string
	subject, patrn bool
}{
	{"a", true, true},
	{"a.b.c", true, true},
	{"livechat.room.general", true, true},
	{"a-b_c:d/e", true, true},
	{"é.日本", true, true},
	{"a[b]?\\", true, true},
	{"*", false, true},
	{">", false, true},
	{"a.*", false, true},
	{"a.>", false, true},
	{"*.*.>", false, true},
	{"", false, false},
	{".", false, false},
	{"a.", false, false},
	{".a", false, false},
	{"a..b", false, false},
	{"a b", false, false},
	{"a\tb", false, false},
	{"a\nb", false, false},
	{"a\x00b", false, false},
	{"a\x7fb", false, false},
	{"a\xffb", false, false}, // invalid UTF-8
	{"a.b*", false, false},
	{"a.*b", false, false},
	{"a.b>", false, false},
	{"a.>.b", false, false},
	{">.a", false, false},
	{"a.>>", false, false},
	{"a.**", false, false},
	{strings.Repeat("a", MaxSubjectLen), true, true},
	{strings.Repeat("a", MaxSubjectLen+1), false, false},
	{strings.Repeat("a.", maxTokens-1) + "a", true, true},
	{strings.Repeat("a.", maxTokens) + "a", false, false},
}

func TestValidate(t *testing.T) {
	for _, c := range validCases {
		err := ValidateSubject(c.s)
		if (err == nil) != c.subject {
			t.Errorf("ValidateSubject(%q) = %v, want valid=%v", c.s, err, c.subject)
		}
		if err != nil && !errors.Is(err, ErrInvalidSubject) {
			t.Errorf("ValidateSubject(%q) = %v, not ErrInvalidSubject", c.s, err)
		}
		if got := isLiteral(c.s); got != c.subject {
			t.Errorf("isLiteral(%q) = %v, want %v", c.s, got, c.subject)
		}
		err = ValidatePattern(c.s)
		if (err == nil) != c.patrn {
			t.Errorf("ValidatePattern(%q) = %v, want valid=%v", c.s, err, c.patrn)
		}
		if err != nil && !errors.Is(err, ErrInvalidSubject) {
			t.Errorf("ValidatePattern(%q) = %v, not ErrInvalidSubject", c.s, err)
		}
	}
}

func TestRedisGlob(t *testing.T) {
	for _, c := range []struct{ pattern, glob string }{
		{"a.*", "a.*"},
		{"a.>", "a.*"},
		{">", "*"},
		{"*.b.>", "*.b.*"},
		{"a?.*", `a\?.*`},
		{"[x].*", `\[x\].*`},
		{`a\b.*`, `a\\b.*`},
	} {
		p, err := parse(c.pattern)
		if err != nil {
			t.Fatal(err)
		}
		if got := redisGlob(p); got != c.glob {
			t.Errorf("redisGlob(%q) = %q, want %q", c.pattern, got, c.glob)
		}
	}
}

// globMatch is Redis's stringmatch for the globs redisGlob produces: "*" and
// backslash escapes.
func globMatch(glob, s string) bool {
	for len(glob) > 0 {
		switch glob[0] {
		case '*':
			for i := len(s); i >= 0; i-- {
				if globMatch(glob[1:], s[i:]) {
					return true
				}
			}
			return false
		case '\\':
			if len(glob) > 1 {
				glob = glob[1:]
			}
		}
		if s == "" || s[0] != glob[0] {
			return false
		}
		glob, s = glob[1:], s[1:]
	}
	return s == ""
}

func FuzzMatch(f *testing.F) {
	for _, c := range matchCases {
		f.Add(c.pattern, c.subject)
	}
	for _, c := range validCases {
		f.Add(c.s, c.s)
	}
	f.Fuzz(func(t *testing.T, pat, subject string) {
		got := Match(pat, subject)
		litErr := ValidateSubject(subject)
		if isLiteral(subject) != (litErr == nil) {
			t.Fatalf("isLiteral(%q) = %v but ValidateSubject = %v", subject, isLiteral(subject), litErr)
		}
		p, perr := parse(pat)
		if perr != nil || litErr != nil {
			if got {
				t.Fatalf("Match(%q, %q) = true with an invalid argument", pat, subject)
			}
			return
		}
		s, _ := parse(subject)
		if ms := p.matchString(subject); ms != got || p.match(s.tokens) != got {
			t.Fatalf("Match(%q, %q) = %v, matchString = %v, match = %v", pat, subject, got, ms, p.match(s.tokens))
		}
		if p.literal && got != (pat == subject) {
			t.Fatalf("literal pattern %q vs %q: Match = %v", pat, subject, got)
		}
		if Match(subject, subject) != true {
			t.Fatalf("a valid subject %q does not match itself", subject)
		}
		if !Match(">", subject) {
			t.Fatalf("> does not match %q", subject)
		}
		n := len(s.tokens)
		if got && !p.trailing && len(p.tokens) != n {
			t.Fatalf("%q matches %q with a different number of tokens", pat, subject)
		}
		if got && p.trailing && len(p.tokens) > n {
			t.Fatalf("%q matches %q, which has too few tokens", pat, subject)
		}
		// The Redis glob is a superset: it never hides a match.
		if got && !globMatch(redisGlob(p), subject) {
			t.Fatalf("Redis glob %q of %q does not match %q", redisGlob(p), pat, subject)
		}
	})
}
