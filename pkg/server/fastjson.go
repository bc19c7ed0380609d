package server

import (
	"bytes"
	"encoding/json"
	"hash/maphash"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/livechat/livechat/internal/engine"
	"github.com/livechat/livechat/pkg/protocol"
)

// This file holds the hand-written JSON of the hot path: decoding a client's
// frame, reading the header of a room message from the broker, and encoding
// acks and messages. encoding/json costs several microseconds per frame in
// reflection and allocations, which at tens of thousands of sends a second
// was a quarter of the server's CPU. The fast paths only accept the plain
// shapes our own encoders and clients produce (a flat object of known keys,
// strings without escapes where the value is needed) and hand everything
// else to encoding/json, so the result (or the error) is always what
// encoding/json would give.

// scanObject walks a flat JSON object: for each member it calls fn with the
// key (raw bytes between the quotes), the value's raw bytes (for a string:
// between the quotes, still escaped), whether the value is a string and
// whether that string contains escapes. It returns false when data is not a
// syntactically valid flat object (a nested object or array, an escaped key,
// bad syntax, trailing data) or when fn returns false; the caller then falls
// back to encoding/json.
func scanObject(data []byte, fn func(key, val []byte, str, esc bool) bool) bool {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return false
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return skipSpace(data, i+1) == len(data)
	}
	for {
		// Key.
		if i >= len(data) || data[i] != '"' {
			return false
		}
		ks := i + 1
		ke, esc, ok := scanString(data, ks)
		if !ok || esc {
			return false
		}
		i = skipSpace(data, ke+1)
		if i >= len(data) || data[i] != ':' {
			return false
		}
		i = skipSpace(data, i+1)
		if i >= len(data) {
			return false
		}
		// Value.
		var val []byte
		str := false
		esc = false
		switch c := data[i]; {
		case c == '"':
			ve, e, ok := scanString(data, i+1)
			if !ok {
				return false
			}
			val, str, esc = data[i+1:ve], true, e
			i = ve + 1
		case c == '-' || c >= '0' && c <= '9':
			ve, ok := scanNumber(data, i)
			if !ok {
				return false
			}
			val = data[i:ve]
			i = ve
		case bytes.HasPrefix(data[i:], litTrue):
			val = data[i : i+len(litTrue)]
			i += len(litTrue)
		case bytes.HasPrefix(data[i:], litFalse):
			val = data[i : i+len(litFalse)]
			i += len(litFalse)
		case bytes.HasPrefix(data[i:], litNull):
			val = data[i : i+len(litNull)]
			i += len(litNull)
		default:
			return false // nested object or array, or not JSON
		}
		if !fn(data[ks:ke], val, str, esc) {
			return false
		}
		i = skipSpace(data, i)
		if i >= len(data) {
			return false
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case '}':
			return skipSpace(data, i+1) == len(data)
		default:
			return false
		}
	}
}

var (
	litTrue  = []byte("true")
	litFalse = []byte("false")
	litNull  = []byte("null")
)

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// scanString finds the closing quote of a string whose content starts at
// i; it reports whether the content has escapes and whether the string is
// valid JSON (no control characters, valid escapes).
func scanString(data []byte, i int) (end int, esc, ok bool) {
	for i < len(data) {
		c := data[i]
		switch {
		case c == '"':
			return i, esc, true
		case c < 0x20:
			return 0, false, false
		case c == '\\':
			esc = true
			if i+1 >= len(data) {
				return 0, false, false
			}
			switch data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(data) {
					return 0, false, false
				}
				for _, h := range data[i+2 : i+6] {
					if !isHex(h) {
						return 0, false, false
					}
				}
				i += 6
			default:
				return 0, false, false
			}
		default:
			i++
		}
	}
	return 0, false, false
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// scanNumber checks a JSON number starting at i (RFC 8259 grammar) and
// returns where it ends.
func scanNumber(data []byte, i int) (int, bool) {
	digits := func(i int) int {
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
		return i
	}
	if data[i] == '-' {
		i++
	}
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case i < len(data) && data[i] >= '1' && data[i] <= '9':
		i = digits(i)
	default:
		return 0, false
	}
	if i < len(data) && data[i] == '.' {
		j := digits(i + 1)
		if j == i+1 {
			return 0, false
		}
		i = j
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		j := digits(i)
		if j == i {
			return 0, false
		}
		i = j
	}
	return i, true
}

// decodeInbound decodes a client frame into in. The fast path takes an
// object of the string members type, room, name, text and cid without
// escapes (what a join, send, typing or leave usually is); anything else
// (numbers such as since, escaped strings, other keys) is decoded by
// encoding/json, whose error is returned. data must be valid UTF-8 (handle
// refuses anything else first), so no replacement of invalid bytes is due.
func decodeInbound(data []byte, in *protocol.Inbound) error {
	// The fields are substrings of one copy of the frame: one allocation.
	// val is a subslice of data, so its offset is cap(data) - cap(val).
	var typ, room, name, text, cid [2]int
	at := func(val []byte) [2]int {
		off := cap(data) - cap(val)
		return [2]int{off, off + len(val)}
	}
	fast := scanObject(data, func(key, val []byte, str, esc bool) bool {
		if !str || esc {
			return false
		}
		switch string(key) {
		case "type":
			typ = at(val)
		case "room":
			room = at(val)
		case "name":
			name = at(val)
		case "text":
			text = at(val)
		case "cid":
			cid = at(val)
		default:
			return false // encoding/json matches keys case-insensitively
		}
		return true
	})
	if !fast {
		// Into its own variable, so that in does not escape (the fast
		// path is the usual one, and its caller's in stays on the stack).
		var slow protocol.Inbound
		err := json.Unmarshal(data, &slow)
		*in = slow
		return err
	}
	all := string(data)
	*in = protocol.Inbound{
		Type: internType(all[typ[0]:typ[1]]),
		Room: all[room[0]:room[1]],
		Name: all[name[0]:name[1]],
		Text: all[text[0]:text[1]],
		CID:  all[cid[0]:cid[1]],
	}
	return nil
}

// internType returns the frame type as one of the protocol's constants when
// it is one, so a long-lived value does not keep the frame's copy alive.
func internType(b string) string {
	switch b {
	case protocol.TypeSend:
		return protocol.TypeSend
	case protocol.TypeJoin:
		return protocol.TypeJoin
	case protocol.TypeTyping:
		return protocol.TypeTyping
	case protocol.TypeLeave:
		return protocol.TypeLeave
	case protocol.TypeHistory:
		return protocol.TypeHistory
	}
	return b
}

// decodeSeqHeader reads the type, ts, seq and id of a room frame from the
// broker. Our encoder (appendMessage) and `livechat publish` (encoding/json
// of protocol.Message) write flat objects whose id is plain ASCII, which
// the fast path reads without decoding the text; anything else goes through
// encoding/json. It reports whether the frame is a JSON object.
func decodeSeqHeader(data []byte, h *seqHeader) bool {
	*h = seqHeader{IDHash: noIDHash}
	fast := scanObject(data, func(key, val []byte, str, esc bool) bool {
		switch string(key) {
		case "type":
			if !str || esc {
				return false
			}
			h.Type = internFrameType(val)
		case "id":
			if !str || esc {
				return false
			}
			h.IDHash = maphash.Bytes(idSeed, val)
		case "seq":
			n, ok := parseUint(val)
			if str || !ok {
				return false
			}
			h.Seq = n
		case "ts":
			neg := len(val) > 0 && val[0] == '-'
			if neg {
				val = val[1:]
			}
			n, ok := parseUint(val)
			if str || !ok || n > math.MaxInt64 {
				return false // the slow path decides
			}
			h.TS = int64(n)
			if neg {
				h.TS = -h.TS
			}
		default:
			if headerKeyFold(key) {
				return false // a case variant encoding/json would match
			}
		}
		return true
	})
	if fast {
		return true
	}
	// Decoded into its own variable, so that h does not escape (the fast
	// path above is the usual one, and its caller's h stays on the stack).
	var slow seqHeader
	err := json.Unmarshal(data, &slow)
	slow.IDHash = hashID(slow.ID)
	*h = slow
	return err == nil
}

// noIDHash is the hash of a missing id.
var noIDHash = hashID("")

// parseUint parses b, decimal digits only, into a uint64; ok is false for
// anything else and on overflow.
func parseUint(b []byte) (n uint64, ok bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (math.MaxUint64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// internFrameType returns the type of a room frame without allocating for
// the usual ones.
func internFrameType(b []byte) string {
	switch string(b) {
	case protocol.TypeMessage:
		return protocol.TypeMessage
	case protocol.TypeTyping:
		return protocol.TypeTyping
	}
	return string(b)
}

// headerKeyFold reports whether key matches one of seqHeader's keys
// case-insensitively (the exact matches were handled by the caller).
func headerKeyFold(key []byte) bool {
	for _, k := range [...]string{"type", "id", "seq", "ts"} {
		if len(key) == len(k) && bytes.EqualFold(key, []byte(k)) {
			return true
		}
	}
	return false
}

// appendJSONString appends s as a JSON string. It escapes what JSON requires
// (quote, backslash, control characters) and, like encoding/json, <, >, &
// and U+2028/U+2029, so the output is safe to embed in HTML and JavaScript.
// s must be valid UTF-8 (the server validates every input).
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendAck appends the JSON of an ack, the same members in the same order
// as encoding/json of protocol.Ack.
func appendAck(b []byte, a *protocol.Ack) []byte {
	b = append(b, `{"type":`...)
	b = appendJSONString(b, a.Type)
	b = append(b, `,"cid":`...)
	b = appendJSONString(b, a.CID)
	b = append(b, `,"id":`...)
	b = appendJSONString(b, a.ID)
	b = append(b, `,"room":`...)
	b = appendJSONString(b, a.Room)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, a.TS, 10)
	if a.Seq != 0 {
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, a.Seq, 10)
	}
	if a.Dup {
		b = append(b, `,"dup":true`...)
	}
	return append(b, '}')
}

// appendMessage appends the JSON of a message, the same members in the same
// order as encoding/json of protocol.Message (decodeSeqHeader relies on
// neither, but tools reading the broker may).
func appendMessage(b []byte, m *protocol.Message) []byte {
	b = append(b, `{"type":`...)
	b = appendJSONString(b, m.Type)
	b = append(b, `,"room":`...)
	b = appendJSONString(b, m.Room)
	b = append(b, `,"id":`...)
	b = appendJSONString(b, m.ID)
	if m.Seq != 0 {
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, m.Seq, 10)
	}
	b = append(b, `,"from":`...)
	b = appendJSONString(b, m.From)
	b = append(b, `,"text":`...)
	b = appendJSONString(b, m.Text)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, m.TS, 10)
	b = append(b, `,"server":`...)
	b = appendJSONString(b, m.Server)
	if m.CID != "" {
		b = append(b, `,"cid":`...)
		b = appendJSONString(b, m.CID)
	}
	if m.System {
		b = append(b, `,"system":true`...)
	}
	return append(b, '}')
}

// ackFixedSize bounds an ack's JSON besides its strings' contents: keys,
// quotes, the type, two numbers of up to 20 digits and the dup flag.
const ackFixedSize = 112

// ackFrame encodes an ack directly as a WebSocket text frame: one
// allocation, no intermediate payload.
func ackFrame(a *protocol.Ack) *engine.Frame {
	return engine.BuildTextFrame(ackFixedSize+len(a.CID)+len(a.ID)+len(a.Room), func(b []byte) []byte { return appendAck(b, a) })
}

// msgSizeHint is the usual encoded size of m: its strings plus the keys and
// numbers, so appendMessage mostly fills one allocation.
func msgSizeHint(m *protocol.Message) int {
	return 128 + len(m.Room) + len(m.ID) + len(m.From) + len(m.Text)*11/10 + len(m.Server) + len(m.CID)
}
