package engine

import (
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/livechat/livechat/pkg/uring"
)

// needURing fails the test where io_uring is missing under CI (its
// machines allow it) and skips it elsewhere (a sandbox may refuse it).
func needURing(t testing.TB) {
	t.Helper()
	r, err := uring.New(2)
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	_ = r.Close()
}

// TestFanoutBatched: shared frames sent to many connections reach each in
// order, with the flushers' writes batched (io_uring) and without; the
// batched engine sends most of them in batches.
func TestFanoutBatched(t *testing.T) {
	for _, batched := range []bool{true, false} {
		t.Run("batched="+strconv.FormatBool(batched), func(t *testing.T) {
			t.Parallel()
			if batched {
				needURing(t)
			}
			te := startEngine(t, Options{NoBatchedWrites: !batched}, echo())
			const members, n = 30, 40
			wss := make([]*websocket.Conn, members)
			cs := make([]*Conn, members)
			for i := range wss {
				wss[i], cs[i] = te.dialed(t)
			}
			for i := range n {
				f := SharedTextFrame([]byte("m" + strconv.Itoa(i) + strings.Repeat(".", i)))
				for _, c := range cs {
					c.Send(f)
				}
			}
			for j, ws := range wss {
				for i := range n {
					if s, want := readText(t, ws), "m"+strconv.Itoa(i)+strings.Repeat(".", i); s != want {
						t.Fatalf("member %d, frame %d: %q, want %q", j, i, s, want)
					}
				}
			}
			st := te.Stats()
			if batched && st.BatchedWrites == 0 {
				t.Fatalf("no write was batched (%d single writes)", st.SingleWrites)
			}
			if !batched && st.BatchedWrites != 0 {
				t.Fatalf("%d batched writes with NoBatchedWrites", st.BatchedWrites)
			}
		})
	}
}

// BenchmarkSocketWrites is the flushers' write of 250 bytes to each of 64
// loopback sockets: one writev(2) each, or all in one io_uring_enter(2)
// (uring.Batch). Readers on other goroutines drain the sockets. One op is
// one socket written; the kernel's network work is in both.
func BenchmarkSocketWrites(b *testing.B) {
	const conns = maxBatch
	var raws []rawConn
	for range conns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		s, err := ln.Accept()
		_ = ln.Close()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = c.Close(); _ = s.Close() })
		go func() { _, _ = io.Copy(io.Discard, c) }()
		raws = append(raws, newRawConn(s))
	}
	frame := benchMessage()
	bufs := [][]byte{frame}
	b.Run("writev", func(b *testing.B) {
		w := newRawWriter()
		b.SetBytes(int64(len(frame)))
		for i := 0; b.Loop(); i++ {
			if _, err := w.writev(raws[i%conns], bufs); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("batched", func(b *testing.B) {
		needURing(b)
		bw, err := uring.NewBatch(conns)
		if err != nil {
			b.Fatal(err)
		}
		defer bw.Close()
		b.SetBytes(int64(len(frame)))
		b.ResetTimer()
		for i := 0; i < b.N; {
			n := min(conns, b.N-i)
			for k := range n {
				bw.Add(raws[k].syscallConn(), bufs)
			}
			bw.Run()
			for k := range n {
				if _, err := bw.Result(k); err != nil {
					b.Fatal(err)
				}
			}
			bw.Reset()
			i += n
		}
	})
}
