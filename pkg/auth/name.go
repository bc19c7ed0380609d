package auth

import (
	"fmt"
	"strings"
	"unicode"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"

	"github.com/livechat/livechat/pkg/protocol"
)

// ErrInvalidUserName is returned by NameKey for a name that cannot be an
// account name. Its text is safe to show to the user.
var ErrInvalidUserName = fmt.Errorf("auth: user name must be 1-%d characters: letters, digits, spaces and - _ . ' (no leading or trailing space, no invisible characters)", protocol.MaxNameLen)

// fold applies Unicode's default (language-independent) full case folding.
// A cases.Caser is not safe for concurrent use, so each call builds one.
func fold(s string) string { return cases.Fold().String(s) }

// NameKey returns the key under which an account name is unique: two names
// with the same key are the same account. The key is the name's NFKC form,
// case-folded, normalised again (folding can produce unnormalised text) and
// with runs of spaces collapsed to one: "Alice", "alice", "ＡＬＩＣＥ"
// (fullwidth) and "ALICE" share a key, as do "ﬀ" and "ff".
//
// The name itself must be a valid display name for the chat
// (protocol.ValidName: 1..protocol.MaxNameLen letters, digits, spaces and
// - _ . ', no leading or trailing space), which already refuses control
// characters, format characters (zero-width space and joiners, bidi
// overrides) and combining marks; NameKey refuses in addition the letters
// Unicode marks default-ignorable (the Hangul fillers, which render as
// nothing). The caller trims what the user typed; NameKey does not.
//
// Folding is Unicode's default, not Turkish: "ALİCE" (dotted capital I)
// folds to "ali̇ce" (i + combining dot) and "alıce" (dotless i) stays as it
// is, so both are names distinct from "alice". Look-alikes across scripts
// (Cyrillic "а" for Latin "a") are distinct names too: NameKey does not
// implement the UTS #39 confusable skeleton.
func NameKey(name string) (string, error) {
	if protocol.ValidName(name) != nil {
		return "", ErrInvalidUserName
	}
	for _, r := range name {
		if unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r) {
			return "", ErrInvalidUserName
		}
	}
	return nameKey(name), nil
}

// nameKey is the key of a name already validated; it is idempotent.
func nameKey(name string) string {
	k := norm.NFKC.String(fold(norm.NFKC.String(name)))
	return strings.Join(strings.Fields(k), " ")
}
