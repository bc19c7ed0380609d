package wsframe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

var key = []byte{0x12, 0x34, 0x56, 0x78}

// client encodes a frame as a client sends it: masked.
func client(fin bool, op int, payload []byte) []byte {
	return AppendFrame(nil, fin, op, payload, key)
}

// feed gives the reader stream in pieces of step bytes (as reads would)
// and returns every frame it parsed, or the first error.
func feed(t *testing.T, rd *Reader, stream []byte, step int) ([]Frame, error) {
	t.Helper()
	var got []Frame
	for len(stream) > 0 {
		n := copy(rd.Space(), stream[:min(step, len(stream))])
		if n == 0 {
			t.Fatal("Space returned no room")
		}
		rd.Commit(n)
		stream = stream[n:]
		for {
			f, ok, err := rd.Next()
			if err != nil {
				return got, err
			}
			if !ok {
				break
			}
			f.Payload = bytes.Clone(f.Payload) // valid until the next call only
			got = append(got, f)
		}
		rd.Release()
	}
	return got, nil
}

// TestFrames parses frames of every length encoding, fragmented messages
// with control frames between the fragments, fed whole and in pieces down
// to one byte, masked from a client and unmasked from a server, and leaves
// no buffer held after.
func TestFrames(t *testing.T) {
	big := []byte(strings.Repeat("0123456789", 7000)) // 70,000 bytes: 64-bit length, grown buffer
	type part struct {
		fin     bool
		op      int
		payload []byte
	}
	parts := []part{
		{true, OpText, []byte(`{"type":"send"}`)},
		{true, OpText, nil},
		{true, OpBinary, bytes.Repeat([]byte{7}, 300)}, // 16-bit length
		{false, OpText, []byte("frag-")},
		{true, OpPing, []byte("p")},
		{false, OpContinuation, []byte("ment")},
		{true, OpPong, nil},
		{true, OpContinuation, []byte("ed")},
		{true, OpText, big},
		{true, OpClose, []byte{0x03, 0xe8}},
	}
	want := []struct {
		op      int
		payload string
	}{
		{OpText, `{"type":"send"}`}, {OpText, ""}, {OpBinary, strings.Repeat("\x07", 300)},
		{OpPing, "p"}, {OpPong, ""}, {OpText, "frag-mented"}, {OpText, string(big)}, {OpClose, "\x03\xe8"},
	}
	for _, fromClient := range []bool{true, false} {
		var stream []byte
		for _, p := range parts {
			k := key
			if !fromClient {
				k = nil
			}
			stream = AppendFrame(stream, p.fin, p.op, p.payload, k)
		}
		for _, step := range []int{1, 3, 7, 100, 5000, len(stream)} {
			rd := &Reader{Limit: 100000, FromClient: fromClient}
			got, err := feed(t, rd, stream, step)
			if err != nil {
				t.Fatalf("client %v step %d: %v", fromClient, step, err)
			}
			if len(got) != len(want) {
				t.Fatalf("client %v step %d: %d frames, want %d", fromClient, step, len(got), len(want))
			}
			for i, w := range want {
				if got[i].Op != w.op || string(got[i].Payload) != w.payload {
					t.Fatalf("client %v step %d frame %d: op %d %d bytes, want op %d %d bytes", fromClient, step, i, got[i].Op, len(got[i].Payload), w.op, len(w.payload))
				}
			}
			if rd.bp != nil || rd.fragOp != 0 || rd.frag != nil || rd.w > rd.r {
				t.Fatalf("client %v step %d: reader holds a buffer or a fragment after all was parsed", fromClient, step)
			}
		}
	}
}

// TestErrors refuses every breach of the protocol with its close code, and
// a message over the limit from its header alone.
func TestErrors(t *testing.T) {
	cases := []struct {
		name       string
		fromClient bool
		stream     []byte
		want       *Error
	}{
		{"unmasked from a client", true, AppendFrame(nil, true, OpText, []byte("hi"), nil), ErrNotMasked},
		{"masked from a server", false, client(true, OpText, []byte("hi")), ErrMasked},
		{"rsv", true, append([]byte{0xc1}, client(true, OpText, []byte("x"))[1:]...), ErrRSV},
		{"opcode", true, client(true, 3, nil), ErrOpcode},
		{"long ping", true, client(true, OpPing, make([]byte, 126)), ErrControl},
		{"fragmented close", true, client(false, OpClose, nil), ErrControl},
		{"lone continuation", true, client(true, OpContinuation, []byte("x")), ErrContinue},
		{"interleaved", true, append(client(false, OpText, []byte("a")), client(true, OpText, []byte("b"))...), ErrInterleaved},
		{"over limit", true, client(true, OpText, make([]byte, 101)), ErrTooBig},
		{"over limit in fragments", true, append(client(false, OpText, make([]byte, 60)), client(true, OpContinuation, make([]byte, 41))...), ErrTooBig},
		{"over limit, header only", true, []byte{0x81, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4}, ErrTooBig},
		{"length bit 63", true, []byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, ErrLength},
	}
	for _, tc := range cases {
		rd := &Reader{Limit: 100, FromClient: tc.fromClient}
		_, err := feed(t, rd, tc.stream, 1)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
	}
	if ErrTooBig.Code != CloseMessageTooBig || ErrNotMasked.Code != CloseProtocolError || ErrCloseUTF8.Code != CloseInvalidPayload {
		t.Fatal("close codes")
	}
}

// TestCloseCode parses the peer's close code and refuses what a peer may
// not send.
func TestCloseCode(t *testing.T) {
	code := func(c int, reason string) []byte {
		return append(binary.BigEndian.AppendUint16(nil, uint16(c)), reason...)
	}
	for _, tc := range []struct {
		p    []byte
		code int
		err  error
	}{
		{nil, CloseNoStatus, nil},
		{[]byte{3}, 0, ErrCloseLen},
		{code(1000, "bye"), 1000, nil},
		{code(1001, ""), 1001, nil},
		{code(3000, ""), 3000, nil},
		{code(4999, ""), 4999, nil},
		{code(1005, ""), 0, ErrCloseCode},
		{code(1006, ""), 0, ErrCloseCode},
		{code(1015, ""), 0, ErrCloseCode},
		{code(999, ""), 0, ErrCloseCode},
		{code(2999, ""), 0, ErrCloseCode},
		{code(5000, ""), 0, ErrCloseCode},
		{code(1000, "\xff"), 0, ErrCloseUTF8},
	} {
		c, err := CloseCode(tc.p)
		if c != tc.code || !errors.Is(err, tc.err) {
			t.Errorf("CloseCode(%x) = %d, %v; want %d, %v", tc.p, c, err, tc.code, tc.err)
		}
	}
}

// TestMask matches the byte-wise mask at every length.
func TestMask(t *testing.T) {
	k := []byte{1, 2, 3, 250}
	for n := range 40 {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i * 7)
		}
		want := bytes.Clone(b)
		for i := range want {
			want[i] ^= k[i&3]
		}
		maskBytes(k, b)
		if !bytes.Equal(b, want) {
			t.Fatalf("n=%d: %x, want %x", n, b, want)
		}
	}
}

func BenchmarkReader(b *testing.B) {
	frame := client(true, OpText, []byte(`{"type":"send","room":"r42","text":"`+strings.Repeat("x", 60)+`","cid":"c1"}`))
	rd := &Reader{Limit: 16 << 10, FromClient: true}
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		rd.Commit(copy(rd.Space(), frame))
		if _, ok, err := rd.Next(); !ok || err != nil {
			b.Fatal(ok, err)
		}
		rd.Release()
	}
}
