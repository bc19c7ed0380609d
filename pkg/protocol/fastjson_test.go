package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// The fast encoders and decoders must agree with encoding/json on every
// field of their types. The tests below set the fields by reflection, so a
// field added to Message, Ack, Inbound or Header but not to its encoder or
// decoder fails them.

// setField sets f, a field of one of the frame types, to a value that
// differs from the other fields' (n numbers the field). plain strings need
// no escape in JSON; the others need several.
func setField(t *testing.T, name string, f reflect.Value, n int, plain bool) {
	t.Helper()
	switch f.Kind() {
	case reflect.String:
		f.SetString(testString(name, n, plain))
	case reflect.Slice:
		switch f.Type().Elem().Kind() {
		case reflect.Uint8:
			f.SetBytes([]byte(testString(name, n, plain))) // Header's strings
		case reflect.String, reflect.Struct:
			// Inbound.Files, Message.Files: two elements, the second
			// with its fields numbered apart from the first's.
			s := reflect.MakeSlice(f.Type(), 2, 2)
			for e := range 2 {
				setField(t, name, s.Index(e), n+100*(e+1), plain)
			}
			f.Set(s)
		default:
			t.Fatalf("%s: a field of type %s: teach setField (and the fast path) its values", name, f.Type())
		}
	case reflect.Struct:
		for i := range f.NumField() {
			setField(t, name+"."+f.Type().Field(i).Name, f.Field(i), n+i, plain)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		f.SetInt(-int64(n+1) * 1_000_003)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		f.SetUint(uint64(n+1) * 1_000_033)
	case reflect.Bool:
		f.SetBool(true)
	case reflect.Pointer:
		p := reflect.New(f.Type().Elem())
		setField(t, name, p.Elem(), n, plain)
		f.Set(p)
	default:
		t.Fatalf("%s: a field of kind %s: teach setField (and the fast path) its values", name, f.Kind())
	}
}

// testString is a string for field name, numbered n.
func testString(name string, n int, plain bool) string {
	if plain {
		return fmt.Sprintf("v%d-%s é", n, name)
	}
	return fmt.Sprintf("v%d <%s> & \"q\" \\ \n\t\u2028 é \xff", n, name)
}

// variants calls fn with values of T: zero, every field set, each field
// alone and all fields but one, with plain and with escaped strings.
func variants[T any](t *testing.T, fn func(desc string, v *T)) {
	t.Helper()
	typ := reflect.TypeFor[T]()
	n := typ.NumField()
	for _, plain := range []bool{true, false} {
		build := func(set func(i int) bool) *T {
			v := new(T)
			rv := reflect.ValueOf(v).Elem()
			for i := range n {
				if set(i) {
					setField(t, typ.Field(i).Name, rv.Field(i), i, plain)
				}
			}
			return v
		}
		fn("zero", build(func(int) bool { return false }))
		fn(fmt.Sprintf("all (plain %v)", plain), build(func(int) bool { return true }))
		for j := range n {
			name := typ.Field(j).Name
			fn(fmt.Sprintf("only %s (plain %v)", name, plain), build(func(i int) bool { return i == j }))
			fn(fmt.Sprintf("all but %s (plain %v)", name, plain), build(func(i int) bool { return i != j }))
		}
	}
}

func TestEncodersCoverEveryField(t *testing.T) {
	checkEncoder(t, func(b []byte, m *Message) []byte { return AppendMessage(b, m) })
	checkEncoder(t, func(b []byte, a *Ack) []byte { return AppendAck(b, a) })
}

// checkEncoder checks that enc writes what json.Marshal writes for every
// variant of T, appending to what b holds.
func checkEncoder[T any](t *testing.T, enc func([]byte, *T) []byte) {
	t.Helper()
	failed := 0
	variants(t, func(desc string, v *T) {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if got := enc([]byte("x"), v); !bytes.Equal(got[1:], want) || got[0] != 'x' {
			if failed++; failed == 1 {
				t.Errorf("%T, %s:\n got %s\nwant x%s", *v, desc, got, want)
			}
		}
	})
	if failed > 1 {
		t.Errorf("%T: %d more variants differ", *new(T), failed-1)
	}
}

// inboundSlowKeys are the keys of Inbound that DecodeInbound leaves to
// encoding/json by design: numbers and a send's files, rare beside sends.
var inboundSlowKeys = map[string]bool{"since": true, "before": true, "limit": true, "files": true}

func TestDecodeInboundCoversEveryField(t *testing.T) {
	failed := 0
	variants(t, func(desc string, v *Inbound) {
		frame, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var want Inbound
		if err := json.Unmarshal(frame, &want); err != nil {
			t.Fatal(err)
		}
		got := Inbound{Name: "stale"}
		if err := DecodeInbound(frame, &got); err != nil || !reflect.DeepEqual(got, want) {
			if failed++; failed == 1 {
				t.Errorf("%s: %s: got %+v (%v), want %+v", desc, frame, got, err, want)
			}
		}
	})
	if failed > 1 {
		t.Errorf("%d more variants differ", failed-1)
	}
	// Each field but the slow ones alone, unescaped: the fast path.
	typ := reflect.TypeFor[Inbound]()
	for i := range typ.NumField() {
		key, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		if inboundSlowKeys[key] {
			continue
		}
		var v Inbound
		setField(t, typ.Field(i).Name, reflect.ValueOf(&v).Elem().Field(i), i, true)
		frame, err := json.Marshal(&v)
		if err != nil {
			t.Fatal(err)
		}
		var got Inbound
		if !decodeInboundFast(frame, &got) || !reflect.DeepEqual(got, v) {
			t.Errorf("fast path on %s: got %+v, want %+v: add %q to decodeInboundFast (or to inboundSlowKeys)", frame, got, v, key)
		}
	}
}

// headerMirror is the type encoding/json decodes a header into: Header with
// strings for []byte.
func headerMirror() reflect.Type {
	typ := reflect.TypeFor[Header]()
	fields := make([]reflect.StructField, typ.NumField())
	for i := range fields {
		f := typ.Field(i)
		if f.Type == reflect.TypeFor[[]byte]() {
			f.Type = reflect.TypeFor[string]()
		}
		fields[i] = f
	}
	return reflect.StructOf(fields)
}

func TestHeaderJSONMirrorsHeader(t *testing.T) {
	if got, want := reflect.TypeFor[headerJSON](), headerMirror(); !want.ConvertibleTo(got) {
		t.Errorf("headerJSON is not Header with strings for []byte:\n got %v\nwant %v", got, want)
	}
	typ := reflect.TypeFor[Header]()
	for i := range typ.NumField() {
		if key := typ.Field(i).Tag.Get("json"); !isHeaderKey([]byte(key)) {
			t.Errorf("Header.%s: key %q is not in headerKeys", typ.Field(i).Name, key)
		}
	}
	if typ.NumField() != len(headerKeys) {
		t.Errorf("Header has %d fields, headerKeys %d keys", typ.NumField(), len(headerKeys))
	}
}

// headerValues returns h's fields by name as encoding/json would decode
// them: []byte as strings, Text unquoted.
func headerValues(t *testing.T, h *Header) map[string]any {
	t.Helper()
	vals := map[string]any{}
	hv := reflect.ValueOf(h).Elem()
	for i := range hv.NumField() {
		name := hv.Type().Field(i).Name
		v := hv.Field(i).Interface()
		if b, ok := v.([]byte); ok {
			v = string(b)
			if name == "Text" {
				var s string
				if err := json.Unmarshal(append(append([]byte{'"'}, b...), '"'), &s); err != nil {
					t.Errorf("Text %q is not a JSON string's content: %v", b, err)
				}
				v = s
			}
		}
		vals[name] = v
	}
	return vals
}

// checkHeader compares h with want, a struct value: the fields of h with
// those of want of the same names, where want has them.
func checkHeader(t *testing.T, desc string, frame []byte, h *Header, want reflect.Value) {
	t.Helper()
	for name, g := range headerValues(t, h) {
		w := want.FieldByName(name)
		if !w.IsValid() {
			continue
		}
		if g != w.Interface() {
			t.Errorf("%s: %s: %s is %#v, want %#v", desc, frame, name, g, w.Interface())
		}
	}
}

func TestDecodeHeaderCoversEveryField(t *testing.T) {
	mirror := headerMirror()
	variants(t, func(desc string, v *Header) {
		if t.Failed() {
			return // one variant tells
		}
		// v's strings as the mirror's.
		m := reflect.New(mirror).Elem()
		for i := range m.NumField() {
			f := reflect.ValueOf(v).Elem().Field(i)
			if b, ok := f.Interface().([]byte); ok {
				m.Field(i).SetString(string(b))
			} else {
				m.Field(i).Set(f)
			}
		}
		frame, err := json.Marshal(m.Interface())
		if err != nil {
			t.Fatal(err)
		}
		want := reflect.New(mirror)
		if err := json.Unmarshal(frame, want.Interface()); err != nil {
			t.Fatal(err)
		}
		h := Header{Code: "stale"}
		if !DecodeHeader(frame, &h) {
			t.Fatalf("%s: %s: not decoded", desc, frame)
		}
		checkHeader(t, desc, frame, &h, want.Elem())
		if strings.Contains(desc, "plain true") && !decodeHeaderFast(frame, &h) {
			t.Errorf("%s: %s: the fast path refused it: teach decodeHeaderFast every field of Header", desc, frame)
		}
	})
}

// TestHeaderOfServerFrames: DecodeHeader reads of a message, an ack and an
// error what encoding/json decodes into their fields of the same names.
func TestHeaderOfServerFrames(t *testing.T) {
	check := func(desc string, v any) {
		frame, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		want := reflect.New(reflect.TypeOf(v).Elem())
		if err := json.Unmarshal(frame, want.Interface()); err != nil {
			t.Fatal(err)
		}
		var h Header
		if !DecodeHeader(frame, &h) {
			t.Fatalf("%s: %s: not decoded", desc, frame)
		}
		checkHeader(t, desc, frame, &h, want.Elem())
	}
	variants(t, func(desc string, m *Message) { check(desc, m) })
	variants(t, func(desc string, a *Ack) { check(desc, a) })
	variants(t, func(desc string, e *Error) { check(desc, e) })
}

// inboundCases are client frames, plain and unusual: each must decode
// exactly as encoding/json decodes it (same value, or an error for both).
var inboundCases = []string{
	`{"type":"send","room":"general","text":"hi","cid":"c1"}`,
	` { "type" : "join" , "room" : "r1", "name":"alice" } `,
	`{"type":"typing","room":"general"}`,
	`{"type":"leave","room":"general"}`,
	`{}`,
	`{"type":"send","text":"a \"quoted\" line\nand more \u00e9 \ud83d\ude00"}`,
	`{"type":"join","room":"r","name":"bob","since":12}`,
	`{"type":"history","room":"r","before":10,"limit":5}`,
	`{"Type":"send","ROOM":"r","text":"case"}`,
	`{"type":"send","type":"join"}`,
	`{"type":"send","extra":{"a":1}}`,
	`{"type":"send","room":null}`,
	`{"type":"send","room":5}`,
	`{"type":"send","text":"tab	raw"}`,
	`{"type":"send","text":"bad \x escape"}`,
	`{"type":"send"} trailing`,
	`{"type":"send",}`,
	`{"type":"send"`,
	`{"type" "send"}`,
	`["send"]`,
	`"send"`,
	``,
	`null`,
	`{"type":"sénd","room":"ü","text":"€ <b>&</b>"}`,
	"{\"type\":\"send\",\"text\":\"bad \xff utf-8\"}",
	"{\"type\":\"send\",\"te\xffxt\":\"x\"}",
	`{"type":"send","ſince":3}`,
	`{"type":"send","room":{"a":[1,{"b":null}]}}`,
	`{"type":"send","room":"r","text":"","files":["u1","u2"],"cid":"c"}`,
	`{"type":"send","room":"r","files":[]}`,
	`{"type":"send","room":"r","files":null}`,
	`{"type":"send","room":"r","files":["a\u0041","é"]}`,
	`{"type":"send","room":"r","files":"u1"}`,
	`{"type":"send","room":"r","files":[1]}`,
	`{"type":"send","room":"r","files":[null,"x"]}`,
	`{"type":"send","room":"r","files":{"id":"u1"}}`,
	`{"type":"send","room":"r","files":[["u1"]]}`,
	`{"type":"send","room":"r","Files":["u1"]}`,
	`{"type":"send","room":"r","files":["u1",]}`,
}

func TestDecodeInboundMatchesEncodingJSON(t *testing.T) {
	for _, c := range inboundCases {
		var want, got Inbound
		werr := json.Unmarshal([]byte(c), &want)
		gerr := DecodeInbound([]byte(c), &got)
		if (werr == nil) != (gerr == nil) {
			t.Errorf("%q: error %v, encoding/json says %v", c, gerr, werr)
			continue
		}
		if werr == nil && !reflect.DeepEqual(got, want) {
			t.Errorf("%q: got %+v, want %+v", c, got, want)
		}
	}
}

// headerCases are frames as they may arrive from the broker or a server;
// the ones marked fast must take the fast path.
var headerCases = []struct {
	frame string
	fast  bool
}{
	{`{"type":"message","room":"r","id":"s1-abc-1","seq":42,"from":"alice","text":"hi \"x\" \\ \u2028","ts":1700000000000,"server":"s1","cid":"c1"}`, true},
	{`{"type":"message","room":"r","id":"cli-1","from":"ops","text":"maintenance","ts":17,"server":"cli","system":true}`, true},
	{`{"type":"typing","room":"r","name":"bob","server":"s1"}`, true},
	{`{"type":"ack","cid":"c","id":"i","room":"r","ts":5,"seq":12,"dup":true}`, true},
	{`{"type":"ack","cid":"c","id":"i","room":"r","ts":5,"dup":false}`, true},
	{`{"type":"error","code":"rate_limited","message":"slow down","cid":"c"}`, true},
	{`{"type":"error","code":"something_new","message":"m"}`, true},
	{`{"type":"joined","room":"r","name":"a","members":["a","b"],"member_count":2,"last_seq":9}`, true},
	{`{"type":"presence","room":"r","joined":["type"],"members":[],"member_count":1}`, true},
	{`{"type":"history","room":"r","messages":[{"type":"message","seq":1,"id":"x","text":"a"}],"more":false}`, true},
	{`{"type":"message","seq":null,"id":null,"ts":null,"dup":null,"other":null}`, true},
	{`{"type":"message","text":"bad ` + "\xff" + ` utf-8","id":"x"}`, true},
	{`{"type":"message","seq":-1,"id":"x"}`, false},
	{`{"type":"message","seq":1.5,"id":"x"}`, false},
	{`{"type":"message","seq":"7","id":"x"}`, false},
	{`{"type":"message","Seq":7,"ID":"y"}`, false},
	{`{"type":"message","ſeq":7,"tſ":8}`, false},
	{`{"type":"message","seq":7,"seq":8,"id":"a","id":"b"}`, true},
	{`{"type":"message","seq":18446744073709551616}`, false},
	{`{"type":"message","seq":7,"id":"a\u0041"}`, false},
	{`{"type":"message","seq":7,"id":"a` + "\xff" + `"}`, false},
	{`{"type":"message","seq":7,"meta":{"k":[1,2,{"x":"\u0041"}]}}`, true},
	{`{"type":"message","seq":7,"meta":[1,2,]}`, false},
	{`{"type":"message","seq":7,"meta":{"k" 1}}`, false},
	{`{"type":"message","seq":7,"meta":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, false},
	{`{"type":"message","seq":7,"ts":1e3}`, false},
	{`{"type":"message","seq":07}`, false},
	{`{"type":"message","seq":7} x`, false},
	{`not json`, false},
	{`{"type":null,"seq":3}`, true},
	{`{"type":"message","seq":7,"ts":-1700000000000}`, true},
	{`{"type":"message","seq":7,"ts":-9223372036854775808}`, false},
	{`{"type":"message","seq":7,"ts":9223372036854775808}`, false},
	{`{"type":"message","seq":18446744073709551615,"ts":0}`, true},
	{`{"type":"message","seq":-0}`, false},
	{`{"type":"message","dup":1}`, false},
	{`{"type":"error","code":"a\"b"}`, false},
	{`{"type":"m\u0065ssage","seq":1}`, false},
	{`{"text":5}`, false},
}

func TestDecodeHeaderMatchesEncodingJSON(t *testing.T) {
	mirror := headerMirror()
	for _, c := range headerCases {
		want := reflect.New(mirror)
		wok := json.Unmarshal([]byte(c.frame), want.Interface()) == nil
		h := Header{Type: "stale", Text: []byte("stale")}
		gok := DecodeHeader([]byte(c.frame), &h)
		if wok != gok {
			t.Errorf("%q: ok %v, encoding/json says %v", c.frame, gok, wok)
			continue
		}
		if wok {
			checkHeader(t, "case", []byte(c.frame), &h, want.Elem())
		} else if !reflect.DeepEqual(h, Header{}) {
			t.Errorf("%q: not ok, but h is %+v", c.frame, h)
		}
		var fh Header
		if fast := decodeHeaderFast([]byte(c.frame), &fh); fast != c.fast {
			t.Errorf("%q: fast path %v, want %v", c.frame, fast, c.fast)
		}
	}
}

// TestScanStringEveryOffset: scanString reads eight bytes at a time; a
// byte that needs a look is found at every offset, first or after another.
func TestScanStringEveryOffset(t *testing.T) {
	mirror := headerMirror()
	for _, special := range []string{`\"`, `\u0041`, "\x01", "\x1f", "é", "\xff", "\xe2\x80\xa8", `"`, "\x7f ~"} {
		for n := range 20 {
			for _, tail := range []string{"", "abc", "0123456789abcdef"} {
				for _, key := range []string{"text", "id"} {
					frame := `{"type":"message","` + key + `":"` + strings.Repeat("a", n) + special + tail + `","seq":1}`
					want := reflect.New(mirror)
					wok := json.Unmarshal([]byte(frame), want.Interface()) == nil
					var h Header
					if gok := DecodeHeader([]byte(frame), &h); gok != wok {
						t.Errorf("%q: ok %v, encoding/json says %v", frame, gok, wok)
					} else if wok {
						checkHeader(t, "offset", []byte(frame), &h, want.Elem())
					}
				}
			}
		}
	}
}

// texts exercise every escape of appendJSONString.
var texts = []string{
	"hi", "", `a "quote" and a \ backslash`, "line\nbreak\r\ttab\b\f\x01\x1f\x7f",
	"<script>&amp;</script>", "é ü € 😀", "line\u2028sep\u2029para", strings.Repeat("x", 4000),
	"bad \xff\xfe utf-8 \xe2\x80 cut \xed\xa0\x80 surrogate", "\xc3",
}

// testFiles are attachments whose names exercise the escapes.
func testFiles(name string) []File {
	return []File{
		{ID: "u1", Type: "image/png", Size: 12345, Name: name, Width: 640, Height: 480},
		{ID: "u-2_x", Type: "application/pdf", Size: 0, Name: "a \"quoted\" <name>.pdf"},
		{ID: "u3", Type: "image/gif", Size: math.MaxInt64, Name: "ünïcødé 😀\u2028\x01.gif", Width: 1},
		{ID: "u4", Type: "text/plain", Size: -1, Name: "", Height: 7},
	}
}

func TestAppendMessageAndAckAreEncodingJSON(t *testing.T) {
	for _, text := range texts {
		for _, m := range []Message{
			{Type: TypeMessage, Room: "general", ID: "s1-x-1", From: "alice", Text: text, TS: 1700000000000, Server: "s1"},
			{Type: TypeMessage, Room: "r", ID: "i", Seq: 99, From: "b o", Text: text, TS: 1, Server: "cli", CID: text, System: true},
			{Type: TypeMessage, Room: "r", ID: "i", Seq: 7, From: "a", User: "u", Text: text, TS: 1, Server: "s", Files: testFiles(text)},
			{Type: TypeMessage, Room: "r", ID: "i", From: "a", Text: text, Server: "s", Files: []File{}},
		} {
			want, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if got := AppendMessage(nil, &m); !bytes.Equal(got, want) {
				t.Errorf("message:\n got %s\nwant %s", got, want)
			}
			// The seq inserted at AppendMessageSeqAt's offset gives the same bytes.
			noSeq := m
			noSeq.Seq = 0
			b, at := AppendMessageSeqAt([]byte("xx"), &noSeq)
			if m.Seq != 0 {
				b = append(b[:at:at], append([]byte(`,"seq":`+strconv.FormatUint(m.Seq, 10)), b[at:]...)...)
			}
			if got := b[2:]; !bytes.Equal(got, want) {
				t.Errorf("message with the seq inserted:\n got %s\nwant %s", got, want)
			}
			var h Header
			if !DecodeHeader(want, &h) || h.Seq != m.Seq || string(h.ID) != m.ID || h.TS != m.TS || h.Type != m.Type {
				t.Errorf("header of %s: %+v", want, h)
			}
		}
		for _, a := range []Ack{
			{Type: TypeAck, CID: text, ID: "s1-x-1", Room: "general", TS: 5},
			{Type: TypeAck, CID: "c", ID: "i", Room: "r", TS: 5, Seq: 12},
			{Type: TypeAck, CID: text, ID: "i", Room: "r", TS: -1, Seq: 12, Dup: true},
		} {
			want, err := json.Marshal(a)
			if err != nil {
				t.Fatal(err)
			}
			if got := AppendAck(nil, &a); !bytes.Equal(got, want) {
				t.Errorf("ack:\n got %s\nwant %s", got, want)
			}
		}
	}
}

// TestAckSizeHint: an ack of unescaped strings and the longest numbers
// fits the hint.
func TestAckSizeHint(t *testing.T) {
	a := Ack{Type: TypeAck, CID: "c-123456", ID: "s1000-lx3k2-1a2b3c", Room: "room-42", TS: math.MinInt64, Seq: math.MaxUint64, Dup: true}
	if n, hint := len(AppendAck(nil, &a)), AckSizeHint(&a); n > hint {
		t.Errorf("ack of %d bytes, hint %d", n, hint)
	}
}

// TestFastPathAllocs: the usual frames decode and encode without an
// allocation of their own (DecodeInbound: its one copy of the frame).
func TestFastPathAllocs(t *testing.T) {
	m := benchMessage
	msg := AppendMessage(nil, &m)
	buf := make([]byte, 0, MessageSizeHint(&m))
	in := []byte(`{"type":"send","room":"r123","text":"some text","cid":"c42"}`)
	joined := []byte(`{"type":"joined","room":"r","name":"a","members":["a","b"],"member_count":2}`)
	for name, tc := range map[string]struct {
		fn   func()
		want float64
	}{
		"AppendMessage":         {func() { _ = AppendMessage(buf[:0], &m) }, 0},
		"DecodeHeader(message)": {func() { var h Header; _ = DecodeHeader(msg, &h) }, 0},
		"DecodeHeader(joined)":  {func() { var h Header; _ = DecodeHeader(joined, &h) }, 0},
		"DecodeInbound(send)":   {func() { var in2 Inbound; _ = DecodeInbound(in, &in2) }, 1},
		"AppendAck(sized)": {func() {
			a := Ack{Type: TypeAck, CID: "c", ID: "i", Room: "r"}
			_ = AppendAck(make([]byte, 0, AckSizeHint(&a)), &a)
		}, 1},
	} {
		if n := testing.AllocsPerRun(100, tc.fn); n != tc.want {
			t.Errorf("%s: %v allocations, want %v", name, n, tc.want)
		}
	}
}

// FuzzDecodeInbound checks that the fast decoder agrees with encoding/json
// on any input (`go test -fuzz FuzzDecodeInbound ./pkg/protocol`).
func FuzzDecodeInbound(f *testing.F) {
	for _, c := range inboundCases {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, c string) {
		var want, got Inbound
		werr := json.Unmarshal([]byte(c), &want)
		gerr := DecodeInbound([]byte(c), &got)
		if (werr == nil) != (gerr == nil) || werr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: got %+v (%v), encoding/json %+v (%v)", c, got, gerr, want, werr)
		}
	})
}

// FuzzDecodeHeader checks that DecodeHeader agrees with encoding/json on
// any input (`go test -fuzz FuzzDecodeHeader ./pkg/protocol`).
func FuzzDecodeHeader(f *testing.F) {
	for _, c := range headerCases {
		f.Add(c.frame)
	}
	mirror := headerMirror()
	f.Fuzz(func(t *testing.T, c string) {
		want := reflect.New(mirror)
		wok := json.Unmarshal([]byte(c), want.Interface()) == nil
		var h Header
		if gok := DecodeHeader([]byte(c), &h); gok != wok {
			t.Fatalf("%q: ok %v, encoding/json says %v", c, gok, wok)
		}
		if wok {
			checkHeader(t, "fuzz", []byte(c), &h, want.Elem())
		}
	})
}

// FuzzAppendMessage checks AppendMessage against json.Marshal on any text
// (`go test -fuzz FuzzAppendMessage ./pkg/protocol`).
func FuzzAppendMessage(f *testing.F) {
	for _, s := range texts {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m := Message{Type: TypeMessage, Room: s, ID: "i", From: s, Text: s, Server: s, CID: s}
		if len(s)%2 == 1 {
			m.Files = []File{{ID: s, Type: s, Size: int64(len(s)), Name: s, Width: len(s) % 3}, {Name: s, Height: 1}}
		}
		want, err := json.Marshal(&m)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendMessage(nil, &m); !bytes.Equal(got, want) {
			t.Fatalf("%q:\n got %s\nwant %s", s, got, want)
		}
	})
}

// benchMessage is a chat message of the usual size, with a few escapes.
var benchMessage = Message{Type: TypeMessage, Room: "r123", ID: "s1000-lx3k2-1a2b3c", Seq: 42, From: "alice",
	Text: "bench text of about forty bytes here <b>", TS: 1764233880764, Server: "1000", CID: "c42"}

func BenchmarkDecodeInbound(b *testing.B) {
	data := []byte(`{"type":"send","room":"r123","text":"bench text of about forty bytes here","cid":"c42"}`)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var in Inbound
			if err := DecodeInbound(data, &in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var in Inbound
			if err := json.Unmarshal(data, &in); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDecodeHeader is a server's (or the load generator's) reading of
// a room message, of the usual size and with a 1 KB text.
func BenchmarkDecodeHeader(b *testing.B) {
	long := benchMessage
	long.Text = strings.Repeat("a longer chat message, ", 44)
	for _, bm := range []struct {
		name string
		m    *Message
	}{{"message", &benchMessage}, {"text_1k", &long}} {
		data := AppendMessage(nil, bm.m)
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var h Header
				if !DecodeHeader(data, &h) {
					b.Fatal("not decoded")
				}
			}
		})
	}
}

// BenchmarkAppendMessage is the once-per-message encoding of a send.
func BenchmarkAppendMessage(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = AppendMessage(make([]byte, 0, MessageSizeHint(&benchMessage)), &benchMessage)
	}
}

// TestMessageSizeHintFiles: a message with ten files of plain names fits
// its hint, so the accepting server encodes it in one allocation.
func TestMessageSizeHintFiles(t *testing.T) {
	m := benchMessage
	for i := range MaxFiles {
		m.Files = append(m.Files, File{ID: strings.Repeat("u", 40) + strconv.Itoa(i), Type: "application/octet-stream",
			Size: math.MaxInt64, Name: strings.Repeat("n", 200), Width: 65535, Height: 65535})
	}
	if n, hint := len(AppendMessage(nil, &m)), MessageSizeHint(&m); n > hint {
		t.Errorf("message of %d bytes, hint %d", n, hint)
	}
}
