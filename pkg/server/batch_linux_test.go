package server

import (
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/livechat/livechat/pkg/protocol"
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

// TestFanoutBatched: a room's messages reach every member in order, with
// the flushers' writes batched (io_uring) and without; the batched server
// sends most of them in batches.
func TestFanoutBatched(t *testing.T) {
	for _, batched := range []bool{true, false} {
		t.Run("batched="+strconv.FormatBool(batched), func(t *testing.T) {
			t.Parallel()
			if batched {
				needURing(t)
			}
			ts := startServer(t, memBroker(t), Config{AppID: "1000", Prefix: testPrefix(t), RatePerSec: 1000, RateBurst: 1000, NoBatchedWrites: !batched})
			const members, n = 30, 40
			var cs []*client
			var names []string
			for i := range members {
				c := dial(t, ts.url)
				names = append(names, "m"+strconv.Itoa(i))
				c.join("r", names[i])
				cs = append(cs, c)
			}
			cs[0].waitUntil("everyone in the room", hasMembers("r", slices.Sorted(slices.Values(names))...))
			for i := range n {
				cs[0].sendJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "r", Text: "m" + strconv.Itoa(i) + strings.Repeat(".", i), CID: strconv.Itoa(i)})
			}
			for j, c := range cs {
				c.waitUntil("every message", func(fs []rx) bool { return countType(fs, protocol.TypeMessage) >= n })
				for i, m := range c.frameList(protocol.TypeMessage) {
					if want := "m" + strconv.Itoa(i) + strings.Repeat(".", i); m.Text != want {
						t.Fatalf("member %d, message %d: %q, want %q", j, i, m.Text, want)
					}
				}
			}
			b, s := ts.batchedWrites.Load(), ts.singleWrites.Load()
			if batched && b == 0 {
				t.Fatalf("no write was batched (%d single writes)", s)
			}
			if !batched && b != 0 {
				t.Fatalf("%d batched writes with NoBatchedWrites", b)
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
