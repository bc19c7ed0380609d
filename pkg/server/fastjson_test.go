package server

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/livechat/livechat/internal/engine"
	"github.com/livechat/livechat/pkg/protocol"
)

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
}

func TestDecodeInboundMatchesEncodingJSON(t *testing.T) {
	for _, c := range inboundCases {
		var want, got protocol.Inbound
		werr := json.Unmarshal([]byte(c), &want)
		gerr := decodeInbound([]byte(c), &got)
		if (werr == nil) != (gerr == nil) {
			t.Errorf("%q: error %v, encoding/json says %v", c, gerr, werr)
			continue
		}
		if werr == nil && !reflect.DeepEqual(got, want) {
			t.Errorf("%q: got %+v, want %+v", c, got, want)
		}
	}
}

// headerCases are room frames as they may arrive from the broker.
var headerCases = []string{
	`{"type":"message","room":"r","id":"s1-abc-1","seq":42,"from":"alice","text":"hi \"x\" \\ \u2028","ts":1700000000000,"server":"s1","cid":"c1"}`,
	`{"type":"message","room":"r","id":"cli-1","from":"ops","text":"maintenance","ts":17,"server":"cli","system":true}`,
	`{"type":"typing","room":"r","name":"bob","server":"s1"}`,
	`{"type":"message","seq":-1,"id":"x"}`,
	`{"type":"message","seq":1.5,"id":"x"}`,
	`{"type":"message","seq":"7","id":"x"}`,
	`{"type":"message","Seq":7,"ID":"y"}`,
	`{"type":"message","seq":7,"seq":8,"id":"a","id":"b"}`,
	`{"type":"message","seq":18446744073709551616}`,
	`{"type":"message","seq":7,"id":"a\u0041"}`,
	`{"type":"message","seq":7,"meta":{"k":[1,2]}}`,
	`{"type":"message","seq":7,"ts":1e3}`,
	`{"type":"message","seq":07}`,
	`{"type":"message","seq":7} x`,
	`not json`,
	`{"type":null,"seq":3}`,
	`{"type":"message","seq":7,"ts":-1700000000000}`,
	`{"type":"message","seq":7,"ts":-9223372036854775808}`,
	`{"type":"message","seq":7,"ts":9223372036854775808}`,
	`{"type":"message","seq":18446744073709551615,"ts":0}`,
	`{"type":"message","seq":-0}`,
}

func TestDecodeSeqHeaderMatchesEncodingJSON(t *testing.T) {
	for _, c := range headerCases {
		var want, got seqHeader
		wok := json.Unmarshal([]byte(c), &want) == nil
		gok := decodeSeqHeader([]byte(c), &got)
		if wok != gok {
			t.Errorf("%q: ok %v, encoding/json says %v", c, gok, wok)
			continue
		}
		if wok && got.IDHash != hashID(want.ID) {
			t.Errorf("%q: id hash %x, want that of %q", c, got.IDHash, want.ID)
		}
		got.ID, got.IDHash, want.IDHash = want.ID, 0, 0 // the fast path keeps the hash only
		if wok && got != want {
			t.Errorf("%q: got %+v, want %+v", c, got, want)
		}
	}
}

// texts exercise every escape of appendJSONString.
var texts = []string{
	"hi", "", `a "quote" and a \ backslash`, "line\nbreak\r\ttab\b\f\x01\x1f",
	"<script>&amp;</script>", "é ü € 😀", "line\u2028sep\u2029para", strings.Repeat("x", 4000),
}

func TestAppendMessageAndAckAreEncodingJSON(t *testing.T) {
	for _, text := range texts {
		for _, m := range []protocol.Message{
			{Type: protocol.TypeMessage, Room: "general", ID: "s1-x-1", From: "alice", Text: text, TS: 1700000000000, Server: "s1"},
			{Type: protocol.TypeMessage, Room: "r", ID: "i", Seq: 99, From: "b o", Text: text, TS: 1, Server: "cli", CID: text, System: true},
		} {
			want, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if got := appendMessage(nil, &m); !bytes.Equal(got, want) {
				t.Errorf("message:\n got %s\nwant %s", got, want)
			}
			var h seqHeader
			if !decodeSeqHeader(want, &h) || h.Seq != m.Seq || h.IDHash != hashID(m.ID) || h.TS != m.TS || h.Type != m.Type {
				t.Errorf("header of %s: %+v", want, h)
			}
		}
		for _, a := range []protocol.Ack{
			{Type: protocol.TypeAck, CID: text, ID: "s1-x-1", Room: "general", TS: 5},
			{Type: protocol.TypeAck, CID: "c", ID: "i", Room: "r", TS: 5, Seq: 12},
			{Type: protocol.TypeAck, CID: text, ID: "i", Room: "r", TS: -1, Seq: 12, Dup: true},
		} {
			want, err := json.Marshal(a)
			if err != nil {
				t.Fatal(err)
			}
			if got := appendAck(nil, &a); !bytes.Equal(got, want) {
				t.Errorf("ack:\n got %s\nwant %s", got, want)
			}
			if f := ackFrame(&a); !bytes.Equal(f.AppendTo(nil), engine.TextFrame(want).AppendTo(nil)) {
				t.Errorf("ack frame differs from the text frame of %s", want)
			}
		}
	}
}

// FuzzDecodeInbound checks that the fast decoder agrees with encoding/json
// on any valid UTF-8 input (`go test -fuzz FuzzDecodeInbound`).
func FuzzDecodeInbound(f *testing.F) {
	for _, c := range inboundCases {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, c string) {
		if !utf8.ValidString(c) {
			return // the server refuses invalid UTF-8 before decoding
		}
		var want, got protocol.Inbound
		werr := json.Unmarshal([]byte(c), &want)
		gerr := decodeInbound([]byte(c), &got)
		if (werr == nil) != (gerr == nil) || werr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: got %+v (%v), encoding/json %+v (%v)", c, got, gerr, want, werr)
		}
	})
}

func BenchmarkDecodeInbound(b *testing.B) {
	data := []byte(`{"type":"send","room":"r123","text":"bench text of about forty bytes here","cid":"c42"}`)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var in protocol.Inbound
			if err := decodeInbound(data, &in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var in protocol.Inbound
			if err := json.Unmarshal(data, &in); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestFrameAllocs: an ack's frame is one allocation, the frame and its
// bytes together.
func TestFrameAllocs(t *testing.T) {
	a := protocol.Ack{Type: protocol.TypeAck, CID: "c-123456", ID: "s1000-lx3k2-1a2b3c", Room: "room-42", TS: math.MinInt64, Seq: math.MaxUint64, Dup: true}
	if n := testing.AllocsPerRun(100, func() { _ = ackFrame(&a) }); n != 1 {
		t.Errorf("ackFrame: %v allocations, want 1", n)
	}
}
