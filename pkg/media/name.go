package media

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// cleanName is CleanName.
func cleanName(name string) (string, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return "", fmt.Errorf("%w: the name is empty", ErrBadName)
	case len(name) > MaxNameLen:
		return "", fmt.Errorf("%w: the name is longer than %d bytes", ErrBadName, MaxNameLen)
	case !utf8.ValidString(name):
		return "", fmt.Errorf("%w: the name is not valid UTF-8", ErrBadName)
	case name == "." || name == "..":
		return "", fmt.Errorf("%w: the name %q is not a file name", ErrBadName, name)
	case strings.ContainsAny(name, `/\`):
		return "", fmt.Errorf("%w: the name has a path separator (/ or \\)", ErrBadName)
	}
	for _, r := range name {
		if unicode.IsControl(r) || isBidiControl(r) || r == '\u2028' || r == '\u2029' {
			return "", fmt.Errorf("%w: the name has the control character %U", ErrBadName, r)
		}
	}
	return name, nil
}

// isBidiControl reports the characters that reorder the text around them
// (embeddings, overrides, isolates): "photo\u202Egnp.exe" shows as
// "photoexe.png".
func isBidiControl(r rune) bool {
	return r >= '\u202A' && r <= '\u202E' || r >= '\u2066' && r <= '\u2069'
}
