package protocol

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/bits"
	"strconv"
	"unicode/utf8"
)

// This file holds the hand-written JSON of the hot paths: encoding messages
// and acks, decoding a client's frame, and reading the header of a frame a
// server sends. encoding/json costs several microseconds per frame in
// reflection and allocations, which at tens of thousands of frames a second
// is a large share of a server's or a load generator's CPU. The encoders
// write exactly what encoding/json writes; the decoders take only the plain
// shapes our own encoders and clients produce and hand everything else to
// encoding/json, so the result (or the error) is always what encoding/json
// would give. fastjson_test.go holds both promises to every field of the
// types, by reflection. The functions keep no state: any goroutines may
// call them at once.

// AppendMessage appends the JSON of m to b and returns the extended buffer.
// The bytes are exactly those of json.Marshal(m): the same members in the
// same order, the same escapes (also <, >, & and U+2028/U+2029, so the
// output is safe to embed in HTML) and invalid UTF-8 replaced by \ufffd.
// It allocates only to grow b; MessageSizeHint sizes b for one allocation.
func AppendMessage(b []byte, m *Message) []byte {
	b = appendMessageHead(b, m)
	if m.Seq != 0 {
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, m.Seq, 10)
	}
	return appendMessageTail(b, m)
}

// AppendMessageSeqAt appends the JSON of m without its seq, as
// AppendMessage would write it with Seq 0, and returns the extended buffer
// and the offset in it where `,"seq":N` belongs: whoever learns the seq
// later (a store that assigns it) makes AppendMessage's bytes by inserting
// it there.
func AppendMessageSeqAt(b []byte, m *Message) ([]byte, int) {
	b = appendMessageHead(b, m)
	at := len(b)
	return appendMessageTail(b, m), at
}

// appendMessageHead appends m's members before its seq.
func appendMessageHead(b []byte, m *Message) []byte {
	b = append(b, `{"type":`...)
	b = appendJSONString(b, m.Type)
	b = append(b, `,"room":`...)
	b = appendJSONString(b, m.Room)
	b = append(b, `,"id":`...)
	return appendJSONString(b, m.ID)
}

// appendMessageTail appends m's members after its seq and the closing brace.
func appendMessageTail(b []byte, m *Message) []byte {
	b = append(b, `,"from":`...)
	b = appendJSONString(b, m.From)
	if m.User != "" {
		b = append(b, `,"user":`...)
		b = appendJSONString(b, m.User)
	}
	if m.Guest {
		b = append(b, `,"guest":true`...)
	}
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
	if len(m.Files) > 0 {
		b = appendFiles(b, m.Files)
	}
	return append(b, '}')
}

// appendFiles appends a message's "files" member, as encoding/json writes
// it; a separate function keeps AppendMessage small for the usual message
// without files.
func appendFiles(b []byte, files []File) []byte {
	b = append(b, `,"files":[`...)
	for i := range files {
		f := &files[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":`...)
		b = appendJSONString(b, f.ID)
		b = append(b, `,"type":`...)
		b = appendJSONString(b, f.Type)
		b = append(b, `,"size":`...)
		b = strconv.AppendInt(b, f.Size, 10)
		b = append(b, `,"name":`...)
		b = appendJSONString(b, f.Name)
		if f.Width != 0 {
			b = append(b, `,"width":`...)
			b = strconv.AppendInt(b, int64(f.Width), 10)
		}
		if f.Height != 0 {
			b = append(b, `,"height":`...)
			b = strconv.AppendInt(b, int64(f.Height), 10)
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

// fileSizeHint is the usual JSON length of one File besides its strings:
// keys, quotes and numbers.
const fileSizeHint = 96

// MessageSizeHint is the usual length of AppendMessage's output for m: its
// strings plus the keys, the type and the numbers, with room for a few
// escapes in the text. It is a capacity hint, not a bound.
func MessageSizeHint(m *Message) int {
	n := 128 + len(m.Room) + len(m.ID) + len(m.From) + len(m.User) + len(m.Text)*11/10 + len(m.Server) + len(m.CID)
	for i := range m.Files {
		f := &m.Files[i]
		n += fileSizeHint + len(f.ID) + len(f.Type) + len(f.Name)*11/10
	}
	return n
}

// AppendAck appends the JSON of a to b and returns the extended buffer. The
// bytes are exactly those of json.Marshal(a), as for AppendMessage.
func AppendAck(b []byte, a *Ack) []byte {
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

// ackFixedSize bounds an ack's JSON besides its strings' contents: keys,
// quotes, two numbers of up to 20 digits and the dup flag.
const ackFixedSize = 109

// AckSizeHint bounds the length of AppendAck's output for an ack whose
// strings need no escapes (the server's own ids, a validated room and cid):
// sized by it, AppendAck fills one allocation.
func AckSizeHint(a *Ack) int {
	return ackFixedSize + len(a.Type) + len(a.CID) + len(a.ID) + len(a.Room)
}

// appendJSONString appends s as a JSON string, as encoding/json does: it
// escapes what JSON requires (quote, backslash, control characters), and <,
// >, & and U+2028/U+2029 for HTML and JavaScript, and replaces each byte of
// invalid UTF-8 by \ufffd.
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
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// DecodeInbound decodes a client frame into in, which it overwrites: the
// result is that of json.Unmarshal into a zero Inbound, the same value and
// an error exactly when encoding/json gives one (then encoding/json's). The
// fast path takes an object of the string members type, room, name, text,
// cid and token written without escapes, in one allocation (what a join, send,
// typing or leave usually is); anything else (since, before, limit, a send's
// files, escaped strings, other keys) is decoded by encoding/json, so a
// "files" that is not an array of strings is its type error.
func DecodeInbound(data []byte, in *Inbound) error {
	if decodeInboundFast(data, in) {
		return nil
	}
	// Into its own variable, so that in does not escape (the fast path is
	// the usual one, and its caller's in stays on the stack).
	var slow Inbound
	err := json.Unmarshal(data, &slow)
	*in = slow
	return err
}

// decodeInboundFast is DecodeInbound's fast path; it reports whether it
// could decode data (else in is unchanged).
func decodeInboundFast(data []byte, in *Inbound) bool {
	// The fields are substrings of one copy of the frame: one allocation.
	// val is a subslice of data, so its offset is cap(data) - cap(val).
	var typ, room, name, text, cid, token [2]int
	at := func(val []byte) [2]int {
		off := cap(data) - cap(val)
		return [2]int{off, off + len(val)}
	}
	fast := scanObject(data, func(key, val []byte, k kind) bool {
		if k != kindString {
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
		case "token":
			token = at(val)
		default:
			return false // encoding/json matches keys case-insensitively
		}
		return true
	})
	if !fast {
		return false
	}
	all := string(data)
	*in = Inbound{
		Type:  internType(data[typ[0]:typ[1]], all[typ[0]:typ[1]]),
		Room:  all[room[0]:room[1]],
		Name:  all[name[0]:name[1]],
		Text:  all[text[0]:text[1]],
		CID:   all[cid[0]:cid[1]],
		Token: all[token[0]:token[1]],
	}
	return true
}

// Header is what DecodeHeader reads of a frame a server sends, to a client
// or on a room's subject: enough to order, time and count a message, an
// ack or an error without decoding the rest. A frame without a key leaves
// its field zero. The tags name the keys the fields are read from: decode a
// Header with DecodeHeader, not with encoding/json (which would take ID and
// Text for base64).
type Header struct {
	// Type is the frame's type, one of the Type constants (not a copy)
	// when it is one.
	Type string `json:"type"`
	// Seq, TS and Dup are a message's or an ack's.
	Seq uint64 `json:"seq"`
	TS  int64  `json:"ts"`
	Dup bool   `json:"dup"`
	// Code is an error frame's code.
	Code string `json:"code"`
	// ID is a message's or an ack's id. It points into the decoded frame
	// when the frame holds it as is (no escapes), so it is valid as long as
	// the frame's bytes are.
	ID []byte `json:"id"`
	// Text is a message's text as the frame writes it: the JSON string
	// between its quotes, escapes not decoded (json.Unmarshal of it quoted
	// gives encoding/json's value). Like ID, it points into the frame.
	Text []byte `json:"text"`
}

// headerJSON is Header for encoding/json: ID and Text as strings.
type headerJSON struct {
	Type string `json:"type"`
	Seq  uint64 `json:"seq"`
	TS   int64  `json:"ts"`
	Dup  bool   `json:"dup"`
	Code string `json:"code"`
	ID   string `json:"id"`
	Text string `json:"text"`
}

// DecodeHeader reads the header of data, a frame a server sent, into h,
// which it overwrites. It reports whether json.Unmarshal of data into a
// zero Header (with ID and Text as strings) succeeds, and then h holds that
// value (Text still escaped, see Header); else h is the zero Header. The
// fast path reads the flat object our encoders write, nested members it
// does not read (a joined frame's members) included, without decoding the
// text or allocating; an escaped type, id or code, a key in another case
// and invalid JSON go through encoding/json.
func DecodeHeader(data []byte, h *Header) bool {
	if decodeHeaderFast(data, h) {
		return true
	}
	// Into its own variable, so that h does not escape (the fast path is
	// the usual one, and its caller's h stays on the stack).
	var slow headerJSON
	if json.Unmarshal(data, &slow) != nil {
		*h = Header{}
		return false
	}
	*h = Header{Type: internType([]byte(slow.Type), slow.Type), Seq: slow.Seq, TS: slow.TS, Dup: slow.Dup, Code: slow.Code}
	if slow.ID != "" {
		h.ID = []byte(slow.ID)
	}
	if slow.Text != "" {
		q := appendJSONString(nil, slow.Text)
		h.Text = q[1 : len(q)-1]
	}
	return true
}

// decodeHeaderFast is DecodeHeader's fast path; it reports whether it
// could decode data (else h is to be ignored).
func decodeHeaderFast(data []byte, h *Header) bool {
	*h = Header{}
	return scanObject(data, func(key, val []byte, k kind) bool {
		if k == kindNull {
			// encoding/json leaves a field as it is for null; an
			// unknown key is ignored whatever its value.
			return !foldsToHeaderKey(key) || isHeaderKey(key)
		}
		switch string(key) {
		case "type":
			if k != kindString {
				return false
			}
			h.Type = internType(val, "")
		case "id":
			if k != kindString {
				return false
			}
			h.ID = val
		case "text":
			if k != kindString && k != kindEscaped {
				return false
			}
			h.Text = val
		case "code":
			if k != kindString {
				return false
			}
			h.Code = internCode(val)
		case "seq":
			n, ok := parseUint(val)
			if k != kindNumber || !ok {
				return false // the slow path decides
			}
			h.Seq = n
		case "ts":
			if k != kindNumber {
				return false
			}
			neg := len(val) > 0 && val[0] == '-'
			if neg {
				val = val[1:]
			}
			n, ok := parseUint(val)
			if !ok || n > math.MaxInt64 {
				return false // the slow path decides
			}
			h.TS = int64(n)
			if neg {
				h.TS = -h.TS
			}
		case "dup":
			if k != kindTrue && k != kindFalse {
				return false
			}
			h.Dup = k == kindTrue
		default:
			return !foldsToHeaderKey(key) // a variant encoding/json would match
		}
		return true
	})
}

// headerKeys are the keys of Header's fields.
var headerKeys = [...]string{"type", "seq", "ts", "dup", "code", "id", "text"}

// isHeaderKey reports whether key is exactly one of headerKeys.
func isHeaderKey(key []byte) bool {
	for _, k := range headerKeys {
		if string(key) == k {
			return true
		}
	}
	return false
}

// foldsToHeaderKey reports whether encoding/json might match key to one of
// headerKeys: equal to one but for ASCII case, or holding a non-ASCII
// character, which might fold to an ASCII one (U+017F ſ folds to s, U+212A
// Kelvin sign to k). Such a character takes at most 3 bytes, so a key of
// more than 12 bytes matches none of the four-letter keys.
func foldsToHeaderKey(key []byte) bool {
	if len(key) > 12 {
		return false
	}
	for _, c := range key {
		if c >= utf8.RuneSelf {
			return true
		}
	}
	if len(key) < 2 || len(key) > 4 {
		return false
	}
	for _, k := range headerKeys {
		if len(key) == len(k) && lowerEqual(key, k) {
			return true
		}
	}
	return false
}

// lowerEqual reports whether b, in ASCII, is k, a key of lower-case
// letters, but for case.
func lowerEqual(b []byte, k string) bool {
	for i := range b {
		if b[i]|0x20 != k[i] {
			return false
		}
	}
	return true
}

// internType returns the frame type b as one of the Type constants when it
// is one, so that no copy is made and a long-lived value does not keep a
// frame's copy alive; else s, or a copy of b when s is empty.
func internType(b []byte, s string) string {
	switch string(b) {
	case TypeMessage:
		return TypeMessage
	case TypeAck:
		return TypeAck
	case TypeSend:
		return TypeSend
	case TypeTyping:
		return TypeTyping
	case TypeJoin:
		return TypeJoin
	case TypeLeave:
		return TypeLeave
	case TypeHistory:
		return TypeHistory
	case TypePresence:
		return TypePresence
	case TypeJoined:
		return TypeJoined
	case TypeLeft:
		return TypeLeft
	case TypeError:
		return TypeError
	case TypeHeartbeat:
		return TypeHeartbeat
	case TypeWelcome:
		return TypeWelcome
	}
	if s != "" || len(b) == 0 {
		return s
	}
	return string(b)
}

// internCode returns an error code as one of the Code constants when it is
// one (no allocation), else a copy of b.
func internCode(b []byte) string {
	switch string(b) {
	case CodeRateLimited:
		return CodeRateLimited
	case CodeUnavailable:
		return CodeUnavailable
	case CodeBadRequest:
		return CodeBadRequest
	case CodeNotJoined:
		return CodeNotJoined
	}
	return string(b)
}

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
		if len(b) == 20 && n > (math.MaxUint64-d)/10 {
			return 0, false // 19 digits never overflow
		}
		n = n*10 + d
	}
	return n, true
}

// kind is the kind of a JSON value scanObject found.
type kind uint8

const (
	kindString  kind = iota // a string whose bytes are its value: no escapes, valid UTF-8
	kindEscaped             // a string to decode: it has escapes or invalid UTF-8
	kindNumber
	kindTrue
	kindFalse
	kindNull
	kindNested // an object or an array
)

// maxNesting is the deepest nesting of a value scanObject skips; deeper
// values are left to encoding/json.
const maxNesting = 32

// scanObject walks a JSON object: for each member it calls fn with the key
// (the raw bytes between the quotes), the value's raw bytes (for a string:
// between the quotes, still escaped) and the value's kind. Nested objects
// and arrays are checked and passed whole. It returns false when data is
// not a syntactically valid object (or nests deeper than maxNesting), when a
// key has escapes or invalid UTF-8, or when fn returns false; the caller
// then falls back to encoding/json.
func scanObject(data []byte, fn func(key, val []byte, k kind) bool) bool {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return false
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return skipSpace(data, i+1) == len(data)
	}
	for {
		if i >= len(data) || data[i] != '"' {
			return false
		}
		ks := i + 1
		ke, plain, ok := scanString(data, ks)
		if !ok || !plain {
			return false
		}
		i = skipSpace(data, ke+1)
		if i >= len(data) || data[i] != ':' {
			return false
		}
		vs := skipSpace(data, i+1)
		ve, k, ok := scanValue(data, vs, 0)
		if !ok {
			return false
		}
		val := data[vs:ve]
		if k == kindString || k == kindEscaped {
			val = data[vs+1 : ve-1]
		}
		if !fn(data[ks:ke], val, k) {
			return false
		}
		i = skipSpace(data, ve)
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

// scanValue checks the JSON value that starts at i (after any space) and
// returns where it ends and its kind; depth is how deep it is nested.
func scanValue(data []byte, i, depth int) (end int, k kind, ok bool) {
	if i >= len(data) {
		return 0, 0, false
	}
	switch c := data[i]; {
	case c == '"':
		e, plain, ok := scanString(data, i+1)
		if !ok {
			return 0, 0, false
		}
		if !plain {
			return e + 1, kindEscaped, true
		}
		return e + 1, kindString, true
	case c == '-' || c >= '0' && c <= '9':
		e, ok := scanNumber(data, i)
		return e, kindNumber, ok
	case bytes.HasPrefix(data[i:], litTrue):
		return i + len(litTrue), kindTrue, true
	case bytes.HasPrefix(data[i:], litFalse):
		return i + len(litFalse), kindFalse, true
	case bytes.HasPrefix(data[i:], litNull):
		return i + len(litNull), kindNull, true
	case c == '{' || c == '[':
		if depth >= maxNesting {
			return 0, 0, false
		}
		e, ok := scanNested(data, i, depth+1)
		return e, kindNested, ok
	}
	return 0, 0, false
}

// scanNested checks the object or array that starts at i and returns where
// it ends; depth is how deep its members are nested.
func scanNested(data []byte, i, depth int) (int, bool) {
	obj := data[i] == '{'
	closing := byte(']')
	if obj {
		closing = '}'
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == closing {
		return i + 1, true
	}
	for {
		if obj {
			if i >= len(data) || data[i] != '"' {
				return 0, false
			}
			e, _, ok := scanString(data, i+1)
			if !ok {
				return 0, false
			}
			i = skipSpace(data, e+1)
			if i >= len(data) || data[i] != ':' {
				return 0, false
			}
			i = skipSpace(data, i+1)
		}
		e, _, ok := scanValue(data, i, depth)
		if !ok {
			return 0, false
		}
		i = skipSpace(data, e)
		if i >= len(data) {
			return 0, false
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case closing:
			return i + 1, true
		default:
			return 0, false
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

// plainASCII marks the bytes that stand for themselves in a JSON string:
// printable ASCII but the quote and the backslash.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// scanString finds the closing quote of a string whose content starts at
// i. ok says whether the string is valid JSON (no control characters,
// valid escapes); plain whether its bytes are its value: no escapes and
// valid UTF-8 (encoding/json replaces invalid bytes by U+FFFD).
func scanString(data []byte, i int) (end int, plain, ok bool) {
	plain = true
	for i < len(data) {
		// Eight bytes at a time up to the first that needs a look: a
		// quote, a backslash, a control character or a non-ASCII byte.
		// Each test sets the high bit of such a byte, and of none before
		// the first (a borrow only spoils the bytes above one).
		for i+8 <= len(data) {
			x := binary.LittleEndian.Uint64(data[i:])
			q, bs := x^(ones*'"'), x^(ones*'\\')
			if m := (x | (q-ones)&^q | (bs-ones)&^bs | (x-ones*0x20)&^x) & (ones * 0x80); m != 0 {
				i += bits.TrailingZeros64(m) / 8
				break
			}
			i += 8
		}
		if i >= len(data) {
			break
		}
		c := data[i]
		switch {
		case plainASCII[c]:
			i++
		case c == '"':
			return i, plain, true
		case c == '\\':
			plain = false
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
		case c < 0x20:
			return 0, false, false
		default:
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size == 1 {
				plain = false
			}
			i += size
		}
	}
	return 0, false, false
}

// ones has a 1 in each byte.
const ones = 0x0101010101010101

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
