package auth

import (
	"errors"
	"strings"
	"testing"
)

// TestNameKeySame lists names that are one account, one pair per line.
func TestNameKeySame(t *testing.T) {
	for _, tc := range []struct{ a, b string }{
		{"Alice", "alice"},
		{"ALICE", "alice"},
		{"ＡＬＩＣＥ", "alice"},     // fullwidth
		{"ａｌｉｃｅ", "Alice"},     // fullwidth lower case
		{"ﬀ", "ff"},            // ligature (NFKC)
		{"Straße", "STRASSE"},  // ß folds to ss
		{"ǅemal", "DŽEMAL"},    // titlecase digraph
		{"caf\u00e9", "CAFÉ"},  // precomposed é
		{"ΣΊΣΥΦΟΣ", "σίσυφος"}, // final sigma folds to σ
		{"Ｂｏｂ２", "bob2"},       // fullwidth digit
		{"al  ice", "al ice"},  // runs of spaces collapse
		{"ℌello", "hello"},     // letterlike symbol (NFKC)
		{"𝐚𝐥𝐢𝐜𝐞", "alice"},     // mathematical bold
		{"Ǆ", "dž"},            // digraph, upper and lower
		{"ＡＬＩＣＥ", "ａｌｉｃｅ"},     // fullwidth both sides
	} {
		ka, err := NameKey(tc.a)
		if err != nil {
			t.Errorf("NameKey(%q): %v", tc.a, err)
			continue
		}
		kb, err := NameKey(tc.b)
		if err != nil {
			t.Errorf("NameKey(%q): %v", tc.b, err)
			continue
		}
		if ka != kb {
			t.Errorf("NameKey(%q) = %q, NameKey(%q) = %q; want equal", tc.a, ka, tc.b, kb)
		}
	}
}

// TestNameKeyDistinct lists names that are different accounts.
func TestNameKeyDistinct(t *testing.T) {
	for _, tc := range []struct{ a, b string }{
		{"ALİCE", "alice"},  // Turkish dotted capital I: default folding gives i + U+0307
		{"alıce", "alice"},  // Turkish dotless i is its own letter
		{"аlice", "alice"},  // Cyrillic а: confusables are not merged (no UTS #39)
		{"alice", "alice2"}, // different text
		{"al ice", "alice"}, // a space is significant
		{"bob-x", "bob_x"},  // punctuation is significant
	} {
		ka, err := NameKey(tc.a)
		if err != nil {
			t.Errorf("NameKey(%q): %v", tc.a, err)
			continue
		}
		kb, err := NameKey(tc.b)
		if err != nil {
			t.Errorf("NameKey(%q): %v", tc.b, err)
			continue
		}
		if ka == kb {
			t.Errorf("NameKey(%q) == NameKey(%q) = %q; want distinct", tc.a, tc.b, ka)
		}
	}
}

// TestNameKeyRefused lists names that cannot be account names.
func TestNameKeyRefused(t *testing.T) {
	for _, name := range []string{
		"",
		" ",
		" alice",                // leading space (the caller trims)
		"alice ",                // trailing space
		"al\u200bice",           // zero-width space (Cf)
		"al\u200cice",           // zero-width non-joiner
		"al\u200dice",           // zero-width joiner
		"\u2060alice",           // word joiner
		"\ufeffalice",           // byte order mark
		"alice\u202e",           // right-to-left override
		"\u202ealice",           // right-to-left override, leading
		"al\u2066ice\u2069",     // bidi isolate
		"al\u00adice",           // soft hyphen
		"ali\u034fce",           // combining grapheme joiner
		"alice\ufe0f",           // variation selector
		"e\u0301",               // combining acute (use the precomposed é)
		"\u3164",                // Hangul filler: a letter that renders as nothing
		"a\u3164b",              // Hangul filler inside
		"\u115falice",           // Hangul choseong filler
		"a\uffa0b",              // halfwidth Hangul filler
		"al\tice",               // control
		"al\x00ice",             // NUL
		"al\nice",               // newline
		"\xff",                  // invalid UTF-8
		"al<ice>",               // not a name character
		"alice@example.com",     // not a name character
		"\u2800",                // braille blank
		"a\u00a0b",              // no-break space
		"a\u3000b",              // ideographic space
		strings.Repeat("a", 33), // too long (protocol.MaxNameLen runes)
		strings.Repeat("é", 33), // too long in runes
	} {
		if k, err := NameKey(name); !errors.Is(err, ErrInvalidUserName) {
			t.Errorf("NameKey(%q) = %q, %v; want ErrInvalidUserName", name, k, err)
		}
	}
}

// TestNameKeyAccepted: names at the edges of the rules, with their keys.
func TestNameKeyAccepted(t *testing.T) {
	for _, tc := range []struct{ name, key string }{
		{"Zoë O'Neil", "zoë o'neil"},
		{"bob_2-x.y", "bob_2-x.y"},
		{strings.Repeat("é", 32), strings.Repeat("é", 32)},
		{"李小龍", "李小龍"},
		{"ＡＬＩＣＥ", "alice"},
		{"ﬃ", "ffi"},
		{"ALİCE", "ali\u0307ce"},
	} {
		k, err := NameKey(tc.name)
		if err != nil || k != tc.key {
			t.Errorf("NameKey(%q) = %q, %v; want %q", tc.name, k, err, tc.key)
		}
		if nameKey(k) != k {
			t.Errorf("nameKey(%q) = %q: not idempotent", k, nameKey(k))
		}
	}
}
