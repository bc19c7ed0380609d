package server

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/livechat/livechat/pkg/protocol"
)

// testBatchWriter returns a batch writer; io_uring is required under CI
// (its machines allow it), elsewhere a sandbox may refuse it.
func testBatchWriter(t *testing.T) *batchWriter {
	t.Helper()
	bw, err := newBatchWriter()
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	t.Cleanup(bw.close)
	return bw
}

// tcpPair returns a connected loopback TCP pair: the side the batch writes
// and the side that reads.
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(); _ = s.Close() })
	return s, c
}

// TestBatchWriter: one batch writes several sockets; a closed socket fails
// alone, a full one takes part without an error, and the writer is reused.
func TestBatchWriter(t *testing.T) {
	bw := testBatchWriter(t)
	var peers []net.Conn
	var slots []int
	for i := range 3 {
		s, c := tcpPair(t)
		peers = append(peers, c)
		slots = append(slots, bw.add(newRawConn(s), [][]byte{[]byte("frame "), []byte(strconv.Itoa(i))}))
	}
	closed, _ := tcpPair(t)
	_ = closed.Close()
	closedSlot := bw.add(newRawConn(closed), [][]byte{[]byte("lost")})
	// A socket with small buffers whose reader reads nothing: 1 MiB does
	// not fit.
	full, fullPeer := tcpPair(t)
	_ = full.(*net.TCPConn).SetWriteBuffer(4096)
	_ = fullPeer.(*net.TCPConn).SetReadBuffer(4096)
	big := bytes.Repeat([]byte("y"), 1<<20)
	fullSlot := bw.add(newRawConn(full), [][]byte{big})
	bw.run()

	for i, c := range peers {
		n, err := bw.result(slots[i])
		if err != nil || n != 7 {
			t.Fatalf("socket %d: %d bytes, %v; want 7, nil", i, n, err)
		}
		got := make([]byte, 7)
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatal(err)
		}
		if want := "frame " + strconv.Itoa(i); string(got) != want {
			t.Fatalf("socket %d read %q, want %q", i, got, want)
		}
	}
	if _, err := bw.result(closedSlot); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("closed socket: %v, want net.ErrClosed", err)
	}
	n, err := bw.result(fullSlot)
	if err != nil || n <= 0 || n >= len(big) {
		t.Fatalf("full socket: %d bytes, %v; want part of %d and no error", n, err, len(big))
	}
	bw.reset()
	for i := range bw.slots {
		if bw.slots[i].bufs != nil || bw.slots[i].rc != nil {
			t.Fatalf("slot %d keeps its buffers after reset", i)
		}
	}

	// Reused, as many connections as the ring takes.
	peers = peers[:0]
	for i := range maxBatch {
		s, c := tcpPair(t)
		peers = append(peers, c)
		bw.add(newRawConn(s), [][]byte{{byte('a' + i%26)}})
	}
	bw.run()
	for i, c := range peers {
		if n, err := bw.result(i); n != 1 || err != nil {
			t.Fatalf("send %d: %d bytes, %v", i, n, err)
		}
		got := make([]byte, 1)
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatal(err)
		}
		if got[0] != byte('a'+i%26) {
			t.Fatalf("socket %d read %q, want %q", i, got, byte('a'+i%26))
		}
	}
	bw.reset()
}

// TestFanoutBatched: a room's messages reach every member in order, with
// the flushers' writes batched (io_uring) and without; the batched server
// sends most of them in batches.
func TestFanoutBatched(t *testing.T) {
	for _, batched := range []bool{true, false} {
		t.Run("batched="+strconv.FormatBool(batched), func(t *testing.T) {
			t.Parallel()
			if batched {
				testBatchWriter(t) // io_uring is there (or the test skips outside CI)
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
// (batchWriter). Readers on other goroutines drain the sockets. One op is
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
		bw, err := newBatchWriter()
		if err != nil {
			if os.Getenv("CI") == "" {
				b.Skip(err)
			}
			b.Fatal(err)
		}
		defer bw.close()
		b.SetBytes(int64(len(frame)))
		b.ResetTimer()
		for i := 0; i < b.N; {
			n := min(conns, b.N-i)
			for k := range n {
				bw.add(raws[k], bufs)
			}
			bw.run()
			for k := range n {
				if _, err := bw.result(k); err != nil {
					b.Fatal(err)
				}
			}
			bw.reset()
			i += n
		}
	})
}
