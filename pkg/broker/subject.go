package broker

import (
	"fmt"
	"strings"
	"unicode"
)

// The subject grammar (NATS semantics).
const (
	tokenSep  = "."
	singleWC  = "*" // matches exactly one token
	fullWC    = ">" // matches one or more trailing tokens; last token only
	maxTokens = 64
	// MaxSubjectLen bounds a subject or pattern in bytes.
	MaxSubjectLen = 512
)

// pattern is a validated subject or subscription pattern split into tokens.
type pattern struct {
	tokens   []string
	literal  bool // no wildcards
	trailing bool // ends in ">"
}

// ValidateSubject reports whether s is a valid literal subject, one that can
// be published to: non-empty dot-separated tokens, no wildcards, no white space
// or control characters.
func ValidateSubject(s string) error {
	p, err := parse(s)
	if err != nil {
		return err
	}
	if !p.literal {
		return fmt.Errorf("%w %q: wildcards are not allowed in a published subject", ErrInvalidSubject, s)
	}
	return nil
}

// ValidatePattern reports whether s is a valid subscription pattern: a subject
// whose tokens may also be "*" (one token) or, as the last token, ">" (one or
// more tokens).
func ValidatePattern(s string) error {
	_, err := parse(s)
	return err
}

// Match reports whether the literal subject matches pattern. Either being
// invalid means no match.
func Match(pat, subject string) bool {
	p, err := parse(pat)
	if err != nil {
		return false
	}
	s, err := parse(subject)
	if err != nil || !s.literal {
		return false
	}
	return p.match(s.tokens)
}

func parse(s string) (*pattern, error) {
	if s == "" {
		return nil, fmt.Errorf("%w: empty", ErrInvalidSubject)
	}
	if len(s) > MaxSubjectLen {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrInvalidSubject, MaxSubjectLen)
	}
	toks := strings.Split(s, tokenSep)
	if len(toks) > maxTokens {
		return nil, fmt.Errorf("%w %q: more than %d tokens", ErrInvalidSubject, s, maxTokens)
	}
	p := &pattern{tokens: toks, literal: true}
	for i, t := range toks {
		switch t {
		case "":
			return nil, fmt.Errorf("%w %q: empty token", ErrInvalidSubject, s)
		case singleWC:
			p.literal = false
		case fullWC:
			if i != len(toks)-1 {
				return nil, fmt.Errorf("%w %q: %q must be the last token", ErrInvalidSubject, s, fullWC)
			}
			p.literal = false
			p.trailing = true
		default:
			for _, r := range t {
				if unicode.IsSpace(r) || unicode.IsControl(r) || r == '*' || r == '>' || r == unicode.ReplacementChar {
					return nil, fmt.Errorf("%w %q: token %q has a character that is not allowed (%q)", ErrInvalidSubject, s, t, r)
				}
			}
		}
	}
	return p, nil
}

// match reports whether the literal subject tokens match p.
func (p *pattern) match(subject []string) bool {
	if p.trailing {
		if len(subject) < len(p.tokens) {
			return false
		}
	} else if len(subject) != len(p.tokens) {
		return false
	}
	for i, t := range p.tokens {
		switch t {
		case fullWC:
			return true
		case singleWC:
		default:
			if subject[i] != t {
				return false
			}
		}
	}
	return true
}

// matchString is match for an unsplit literal subject, without allocating.
func (p *pattern) matchString(subject string) bool {
	for i, t := range p.tokens {
		if subject == "" {
			return false
		}
		if t == fullWC {
			return true
		}
		tok, rest, found := strings.Cut(subject, tokenSep)
		if t != singleWC && tok != t {
			return false
		}
		if !found {
			return i == len(p.tokens)-1
		}
		subject = rest
	}
	return false
}

// isLiteral reports, without allocating, whether s is a valid literal subject:
// the same rules as ValidateSubject. Backends use it on subjects that come
// from outside (a Redis channel published by another client).
func isLiteral(s string) bool {
	if s == "" || len(s) > MaxSubjectLen {
		return false
	}
	tokens, tokenLen := 1, 0
	for _, r := range s {
		switch {
		case r == '.':
			if tokenLen == 0 {
				return false
			}
			tokens++
			tokenLen = 0
			continue
		case unicode.IsSpace(r) || unicode.IsControl(r) || r == '*' || r == '>' || r == unicode.ReplacementChar:
			return false
		}
		tokenLen++
	}
	return tokenLen > 0 && tokens <= maxTokens
}
