package server

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

// clientFrame encodes a frame as a client sends it: masked.
func clientFrame(fin bool, op int, payload []byte) []byte {
	b0 := byte(op)
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0, 0}
	switch n := len(payload); {
	case n < 126:
		b[1] = byte(n)
	case n < 1<<16:
		b[1] = 126
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b[1] = 127
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	b[1] |= 0x80
	key := []byte{0x12, 0x34, 0x56, 0x78}
	b = append(b, key...)
	for i, c := range payload {
		b = append(b, c^key[i&3])
	}
	return b
}

// feed gives the reader stream in pieces of step bytes (as reads would)
// and returns every frame it parsed, or the first error.
func feed(t *testing.T, rd *wsReader, stream []byte, step int) ([]wsFrame, error) {
	t.Helper()
	var got []wsFrame
	for len(stream) > 0 {
		space := rd.space()
		n := copy(space, stream[:min(step, len(stream))])
		if n == 0 {
			t.Fatal("space returned no room")
		}
		rd.w += n
		stream = stream[n:]
		for {
			f, ok, err := rd.next()
			if err != nil {
				return got, err
			}
			if !ok {
				break
			}
			f.payload = bytes.Clone(f.payload) // valid until the next call only
			got = append(got, f)
		}
		rd.release()
	}
	return got, nil
}

// TestWSReaderFrames parses frames of every length encoding, fragmented
// messages with control frames between the fragments, fed whole and in
// pieces down to one byte, and leaves no buffer held after.
func TestWSReaderFrames(t *testing.T) {
	big := []byte(strings.Repeat("0123456789", 7000)) // 70,000 bytes: 64-bit length, grown buffer
	var stream []byte
	stream = append(stream, clientFrame(true, opText, []byte(`{"type":"send"}`))...)
	stream = append(stream, clientFrame(true, opText, nil)...)
	stream = append(stream, clientFrame(true, opBinary, bytes.Repeat([]byte{7}, 300))...) // 16-bit length
	stream = append(stream, clientFrame(false, opText, []byte("frag-"))...)
	stream = append(stream, clientFrame(true, opPing, []byte("p"))...)
	stream = append(stream, clientFrame(false, opContinuation, []byte("ment"))...)
	stream = append(stream, clientFrame(true, opPong, nil)...)
	stream = append(stream, clientFrame(true, opContinuation, []byte("ed"))...)
	stream = append(stream, clientFrame(true, opText, big)...)
	stream = append(stream, clientFrame(true, opClose, []byte{0x03, 0xe8})...)
	want := []struct {
		op      int
		payload string
	}{
		{opText, `{"type":"send"}`}, {opText, ""}, {opBinary, strings.Repeat("\x07", 300)},
		{opPing, "p"}, {opPong, ""}, {opText, "frag-mented"}, {opText, string(big)}, {opClose, "\x03\xe8"},
	}
	for _, step := range []int{1, 3, 7, 100, 5000, len(stream)} {
		rd := &wsReader{limit: 100000}
		got, err := feed(t, rd, stream, step)
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		if len(got) != len(want) {
			t.Fatalf("step %d: %d frames, want %d", step, len(got), len(want))
		}
		for i, w := range want {
			if got[i].op != w.op || string(got[i].payload) != w.payload || !got[i].fin {
				t.Fatalf("step %d frame %d: op %d %d bytes, want op %d %d bytes", step, i, got[i].op, len(got[i].payload), w.op, len(w.payload))
			}
		}
		if rd.bp != nil || rd.fragOp != 0 || rd.frag != nil {
			t.Fatalf("step %d: reader holds a buffer or a fragment after all was parsed", step)
		}
	}
}

// TestWSReaderErrors refuses every breach of the protocol with its close
// code, and a message over the limit from its header alone.
func TestWSReaderErrors(t *testing.T) {
	unmasked := []byte{0x81, 0x02, 'h', 'i'}
	huge := []byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4} // bit 63 set
	tooBigHeader := []byte{0x81, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4}
	cases := []struct {
		name   string
		stream []byte
		want   error
	}{
		{"unmasked", unmasked, errNotMasked},
		{"rsv", append([]byte{0xc1}, clientFrame(true, opText, []byte("x"))[1:]...), errRSV},
		{"opcode", clientFrame(true, 3, nil), errOpcode},
		{"long ping", clientFrame(true, opPing, make([]byte, 126)), errControl},
		{"fragmented close", clientFrame(false, opClose, nil), errControl},
		{"lone continuation", clientFrame(true, opContinuation, []byte("x")), errContinue},
		{"interleaved", append(clientFrame(false, opText, []byte("a")), clientFrame(true, opText, []byte("b"))...), errInterleaved},
		{"over limit", clientFrame(true, opText, make([]byte, 101)), errTooBig},
		{"over limit in fragments", append(clientFrame(false, opText, make([]byte, 60)), clientFrame(true, opContinuation, make([]byte, 41))...), errTooBig},
		{"over limit, header only", tooBigHeader, errTooBig},
		{"length bit 63", huge, errLength},
	}
	for _, tc := range cases {
		rd := &wsReader{limit: 100}
		_, err := feed(t, rd, tc.stream, 1)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
	}
	if errTooBig.code != websocket.CloseMessageTooBig || errNotMasked.code != websocket.CloseProtocolError {
		t.Fatal("close codes")
	}
}

// TestCloseFrame parses the peer's close code and refuses what a peer may
// not send.
func TestCloseFrame(t *testing.T) {
	code := func(c int, reason string) []byte {
		return append(binary.BigEndian.AppendUint16(nil, uint16(c)), reason...)
	}
	for _, tc := range []struct {
		p    []byte
		code int
		err  error
	}{
		{nil, websocket.CloseNoStatusReceived, nil},
		{[]byte{3}, 0, errCloseLen},
		{code(1000, "bye"), 1000, nil},
		{code(1001, ""), 1001, nil},
		{code(3000, ""), 3000, nil},
		{code(4999, ""), 4999, nil},
		{code(1005, ""), 0, errCloseCode},
		{code(1006, ""), 0, errCloseCode},
		{code(1015, ""), 0, errCloseCode},
		{code(999, ""), 0, errCloseCode},
		{code(2999, ""), 0, errCloseCode},
		{code(5000, ""), 0, errCloseCode},
		{code(1000, "\xff"), 0, errCloseUTF8},
	} {
		c, err := closeFrame(tc.p)
		if c != tc.code || !errors.Is(err, tc.err) {
			t.Errorf("closeFrame(%x) = %d, %v; want %d, %v", tc.p, c, err, tc.code, tc.err)
		}
	}
}

// TestMaskBytes matches the byte-wise mask at every length and offset.
func TestMaskBytes(t *testing.T) {
	key := []byte{1, 2, 3, 250}
	for n := range 40 {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i * 7)
		}
		want := bytes.Clone(b)
		for i := range want {
			want[i] ^= key[i&3]
		}
		maskBytes(key, b)
		if !bytes.Equal(b, want) {
			t.Fatalf("n=%d: %x, want %x", n, b, want)
		}
	}
}

func BenchmarkWSReader(b *testing.B) {
	frame := clientFrame(true, opText, []byte(`{"type":"send","room":"r42","text":"`+strings.Repeat("x", 60)+`","cid":"c1"}`))
	rd := &wsReader{limit: 16 << 10}
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		space := rd.space()
		rd.w += copy(space, frame)
		if _, ok, err := rd.next(); !ok || err != nil {
			b.Fatal(ok, err)
		}
		rd.release()
	}
}
