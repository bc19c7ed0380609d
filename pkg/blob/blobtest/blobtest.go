// Package blobtest is the conformance suite every blob.Store backend
// passes: Run(t, newStore).
package blobtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livechat/livechat/pkg/blob"
)

// Run checks the guarantees of the blob package against the backend made by
// newStore, which returns a new, empty, open store on each call (the suite
// closes it). Subtests run in parallel, each on a store of its own. A
// backend's test can register t.Cleanup checks in newStore (they run after
// the store is closed), e.g. that no temporary file is left.
func Run(t *testing.T, newStore func(t *testing.T) blob.Store) {
	tests := []struct {
		name string
		f    func(t *testing.T, s blob.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"Max", testMax},
		{"ConcurrentPuts", testConcurrentPuts},
		{"Exists", testExists},
		{"ExistsConcurrent", testExistsConcurrent},
		{"SeekAndRanges", testSeek},
		{"Delete", testDelete},
		{"InvalidIDs", testInvalidIDs},
		{"FailingReader", testFailingReader},
		{"ContextCanceled", testContextCanceled},
		{"List", testList},
		{"Closed", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			t.Cleanup(func() { _ = s.Close() })
			tc.f(t, s)
		})
	}
}

var ctx = context.Background()

// is fails the test unless err matches want (nil for success).
func is(t *testing.T, what string, err, want error) {
	t.Helper()
	if want == nil && err != nil || want != nil && !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
	if err != nil && !strings.HasPrefix(err.Error(), "blob: ") {
		t.Fatalf("%s: error %q lacks the blob: prefix", what, err)
	}
}

// Data returns n deterministic pseudo-random bytes for seed.
func Data(seed uint64, n int) []byte {
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)})
	b := make([]byte, n)
	_, _ = r.Read(b)
	return b
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func put(t *testing.T, s blob.Store, id string, data []byte) blob.Info {
	t.Helper()
	info, err := s.Put(ctx, id, bytes.NewReader(data), int64(len(data)))
	is(t, "Put "+id, err, nil)
	return info
}

// readAll opens id and checks it holds want.
func readAll(t *testing.T, s blob.Store, id string, want []byte) {
	t.Helper()
	r, info, err := s.Open(ctx, id)
	is(t, "Open "+id, err, nil)
	defer func() { _ = r.Close() }()
	if info.Size != int64(len(want)) || info.SHA256 != sum(want) {
		t.Fatalf("Open %s: info %+v, want size %d sha %s", id, info, len(want), sum(want))
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %s: %v", id, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %s: %d bytes differ from the %d put", id, len(got), len(want))
	}
}

// gone checks that no blob id exists.
func gone(t *testing.T, s blob.Store, id string) {
	t.Helper()
	_, err := s.Stat(ctx, id)
	is(t, "Stat "+id, err, blob.ErrNotFound)
	_, _, err = s.Open(ctx, id)
	is(t, "Open "+id, err, blob.ErrNotFound)
}

func testRoundTrip(t *testing.T, s blob.Store) {
	for i, n := range []int{0, 1, blob.ChunkSize - 1, blob.ChunkSize, blob.ChunkSize + 1, 3 << 20} {
		id := fmt.Sprintf("rt-%d", n)
		data := Data(uint64(i), n)
		before := time.Now().Add(-time.Second)
		info := put(t, s, id, data)
		if info.ID != id || info.Size != int64(n) || info.SHA256 != sum(data) {
			t.Fatalf("Put %s: info %+v, want size %d sha %s", id, info, n, sum(data))
		}
		if info.Created.Before(before) || info.Created.After(time.Now().Add(time.Second)) || info.Created.Location() != time.UTC {
			t.Fatalf("Put %s: Created %v, want about now in UTC", id, info.Created)
		}
		st, err := s.Stat(ctx, id)
		is(t, "Stat", err, nil)
		if !st.Created.Equal(info.Created) || st.Size != info.Size || st.SHA256 != info.SHA256 || st.ID != id {
			t.Fatalf("Stat %s = %+v, Put gave %+v", id, st, info)
		}
		readAll(t, s, id, data)
	}
	// A well-known digest, so a backend cannot agree with the suite on a wrong hash.
	info := put(t, s, "abc", []byte("abc"))
	if want := "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; info.SHA256 != want {
		t.Fatalf("SHA256 of abc = %s, want %s", info.SHA256, want)
	}
}

func testMax(t *testing.T, s blob.Store) {
	for i, n := range []int{0, 1, 1000, blob.ChunkSize, blob.ChunkSize + 1, 2*blob.ChunkSize + 7} {
		data := Data(uint64(i)+100, n)
		over := fmt.Sprintf("over-%d", n)
		if n > 0 {
			_, err := s.Put(ctx, over, bytes.NewReader(data), int64(n-1))
			is(t, fmt.Sprintf("Put %d bytes with max %d", n, n-1), err, blob.ErrTooLarge)
			gone(t, s, over)
		}
		exact := fmt.Sprintf("exact-%d", n)
		info, err := s.Put(ctx, exact, bytes.NewReader(data), int64(n))
		is(t, fmt.Sprintf("Put %d bytes with max %d", n, n), err, nil)
		if info.Size != int64(n) {
			t.Fatalf("Put exact: size %d, want %d", info.Size, n)
		}
		readAll(t, s, exact, data)
	}
	// No limit: max+1 must not overflow into a limit of nothing.
	info, err := s.Put(ctx, "nolimit", strings.NewReader("abc"), math.MaxInt64)
	is(t, "Put with max MaxInt64", err, nil)
	if info.Size != 3 {
		t.Fatalf("Put with max MaxInt64 stored %d bytes, want 3", info.Size)
	}
	// An endless body stops at max+1 bytes.
	_, err = s.Put(ctx, "endless", endless{}, 1<<20)
	is(t, "Put endless", err, blob.ErrTooLarge)
	gone(t, s, "endless")
	_, err = s.Put(ctx, "negative", bytes.NewReader(nil), -1)
	is(t, "Put max -1", err, blob.ErrInvalid)
}

type endless struct{}

func (endless) Read(p []byte) (int, error) { return len(p), nil }

func testConcurrentPuts(t *testing.T, s blob.Store) {
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			data := Data(uint64(i)+200, blob.ChunkSize+i*1000)
			_, errs[i] = s.Put(ctx, fmt.Sprint("c", i), bytes.NewReader(data), int64(len(data)))
		})
	}
	wg.Wait()
	for i := range n {
		is(t, fmt.Sprint("Put c", i), errs[i], nil)
		readAll(t, s, fmt.Sprint("c", i), Data(uint64(i)+200, blob.ChunkSize+i*1000))
	}
}

func testExists(t *testing.T, s blob.Store) {
	first := Data(1, 5000)
	put(t, s, "x", first)
	_, err := s.Put(ctx, "x", bytes.NewReader([]byte("other")), 100)
	is(t, "second Put", err, blob.ErrExists)
	readAll(t, s, "x", first)
}

func testExistsConcurrent(t *testing.T, s blob.Store) {
	const n = 6
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			data := Data(uint64(i)+300, blob.ChunkSize+10)
			_, errs[i] = s.Put(ctx, "same", bytes.NewReader(data), int64(len(data)))
		})
	}
	wg.Wait()
	won := -1
	for i, err := range errs {
		if err == nil {
			if won >= 0 {
				t.Fatalf("Puts %d and %d of one id both succeeded", won, i)
			}
			won = i
			continue
		}
		is(t, fmt.Sprint("racing Put ", i), err, blob.ErrExists)
	}
	if won < 0 {
		t.Fatal("no racing Put succeeded")
	}
	readAll(t, s, "same", Data(uint64(won)+300, blob.ChunkSize+10))
}

func testSeek(t *testing.T, s blob.Store) {
	data := Data(7, 2*blob.ChunkSize+100)
	put(t, s, "seek", data)
	r, _, err := s.Open(ctx, "seek")
	is(t, "Open", err, nil)
	defer func() { _ = r.Close() }()
	size := int64(len(data))
	read := func(whence int, off int64, n int, wantPos int64) {
		t.Helper()
		pos, err := r.Seek(off, whence)
		if err != nil || pos != wantPos {
			t.Fatalf("Seek(%d, %d) = %d, %v; want %d", off, whence, pos, err, wantPos)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			t.Fatalf("read %d bytes at %d: %v", n, pos, err)
		}
		if !bytes.Equal(b, data[pos:pos+int64(n)]) {
			t.Fatalf("bytes %d..%d differ", pos, pos+int64(n))
		}
	}
	read(io.SeekStart, blob.ChunkSize-10, 20, blob.ChunkSize-10) // across a chunk boundary
	read(io.SeekStart, 0, 1, 0)
	read(io.SeekEnd, -5, 5, size-5)
	read(io.SeekCurrent, -blob.ChunkSize-5, blob.ChunkSize+5, size-blob.ChunkSize-5)
	read(io.SeekStart, 2*blob.ChunkSize, 100, 2*blob.ChunkSize)
	read(io.SeekStart, 3, blob.ChunkSize*2, 3)
	// At and past the end: io.EOF, no bytes.
	for _, off := range []int64{size, size + 10} {
		if _, err := r.Seek(off, io.SeekStart); err != nil {
			t.Fatalf("Seek to %d: %v", off, err)
		}
		if n, err := r.Read(make([]byte, 10)); n != 0 || !errors.Is(err, io.EOF) {
			t.Fatalf("Read at %d = %d, %v; want 0, io.EOF", off, n, err)
		}
	}
	if _, err := r.Seek(-1, io.SeekStart); err == nil {
		t.Fatal("Seek to -1 succeeded")
	}
	// A suffix range through io.SectionReader, as http.ServeContent reads one.
	tail, err := io.ReadAll(io.NewSectionReader(readerAt{r}, size-1000, 1000))
	if err != nil || !bytes.Equal(tail, data[size-1000:]) {
		t.Fatalf("last 1000 bytes: %v", err)
	}
}

// readerAt reads at an offset by seeking (not for concurrent use).
type readerAt struct{ r io.ReadSeeker }

func (a readerAt) ReadAt(p []byte, off int64) (int, error) {
	if _, err := a.r.Seek(off, io.SeekStart); err != nil {
		return 0, err
	}
	return io.ReadFull(a.r, p)
}

func testDelete(t *testing.T, s blob.Store) {
	put(t, s, "d", Data(2, blob.ChunkSize*2))
	put(t, s, "keep", []byte("keep"))
	is(t, "Delete", s.Delete(ctx, "d"), nil)
	gone(t, s, "d")
	is(t, "Delete again", s.Delete(ctx, "d"), blob.ErrNotFound)
	is(t, "Delete missing", s.Delete(ctx, "never"), blob.ErrNotFound)
	readAll(t, s, "keep", []byte("keep"))
	// The id may be used again.
	put(t, s, "d", []byte("new"))
	readAll(t, s, "d", []byte("new"))
}

func testInvalidIDs(t *testing.T, s blob.Store) {
	for _, id := range []string{
		"", "../x", "..", ".", "a/b", "/abs", `a\b`, "a\x00b", "\x00", strings.Repeat("a", 200),
		strings.Repeat("a", blob.MaxIDLen+1), "é", "ａ", "a b", "a.b", "tmp/x", "a\n", "%2e%2e",
	} {
		_, err := s.Put(ctx, id, strings.NewReader("x"), 10)
		is(t, fmt.Sprintf("Put %q", id), err, blob.ErrInvalid)
		_, _, err = s.Open(ctx, id)
		is(t, fmt.Sprintf("Open %q", id), err, blob.ErrInvalid)
		_, err = s.Stat(ctx, id)
		is(t, fmt.Sprintf("Stat %q", id), err, blob.ErrInvalid)
		is(t, fmt.Sprintf("Delete %q", id), s.Delete(ctx, id), blob.ErrInvalid)
	}
	// The longest valid id and every allowed byte work.
	put(t, s, strings.Repeat("z", blob.MaxIDLen), []byte("long"))
	put(t, s, "AZaz09_-", []byte("chars"))
	list, err := s.List(ctx, "", 0)
	is(t, "List", err, nil)
	if len(list) != 2 {
		t.Fatalf("List after invalid Puts = %+v, want the 2 valid blobs", list)
	}
}

// failing gives n bytes, then err.
type failing struct {
	n   int
	err error
}

func (f *failing) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, f.err
	}
	k := min(len(p), f.n)
	clear(p[:k])
	f.n -= k
	return k, nil
}

func testFailingReader(t *testing.T, s blob.Store) {
	boom := errors.New("connection reset by client")
	for _, n := range []int{0, 10, blob.ChunkSize, blob.ChunkSize + 10} {
		id := fmt.Sprint("f", n)
		_, err := s.Put(ctx, id, &failing{n: n, err: boom}, 1<<30)
		if !errors.Is(err, boom) {
			t.Fatalf("Put from a reader failing after %d bytes: %v, want %v", n, err, boom)
		}
		is(t, "Put failing", err, boom)
		gone(t, s, id)
	}
}

// cancelling gives n bytes, then cancels the Put's context and keeps giving.
type cancelling struct {
	n      int
	cancel context.CancelFunc
}

func (c *cancelling) Read(p []byte) (int, error) {
	if c.n <= 0 {
		c.cancel()
	}
	k := min(len(p), 4096)
	c.n -= k
	return k, nil
}

func testContextCanceled(t *testing.T, s blob.Store) {
	for _, n := range []int{0, blob.ChunkSize + 4096} {
		c, cancel := context.WithCancel(ctx)
		id := fmt.Sprint("cancel", n)
		_, err := s.Put(c, id, &cancelling{n: n, cancel: cancel}, 1<<30)
		cancel()
		is(t, "Put cancelled mid-stream", err, context.Canceled)
		gone(t, s, id)
	}
	c, cancel := context.WithCancel(ctx)
	cancel()
	_, err := s.Put(c, "pre", strings.NewReader("x"), 10)
	is(t, "Put on a cancelled context", err, context.Canceled)
	gone(t, s, "pre")
	_, err = s.Stat(c, "pre")
	is(t, "Stat on a cancelled context", err, context.Canceled)
}

func testList(t *testing.T, s blob.Store) {
	list, err := s.List(ctx, "", 10)
	is(t, "List empty", err, nil)
	if len(list) != 0 {
		t.Fatalf("List of an empty store = %+v", list)
	}
	ids := []string{"B", "a", "a-", "a_", "b", "z9"} // bytewise order
	for i := len(ids) - 1; i >= 0; i-- {
		put(t, s, ids[i], []byte(ids[i]))
	}
	var got []string
	after := ""
	for {
		page, err := s.List(ctx, after, 4)
		is(t, "List", err, nil)
		if len(page) > 4 {
			t.Fatalf("List limit 4 gave %d", len(page))
		}
		for _, i := range page {
			if i.Size != int64(len(i.ID)) || i.SHA256 != sum([]byte(i.ID)) || i.Created.IsZero() {
				t.Fatalf("List info %+v", i)
			}
			got = append(got, i.ID)
		}
		if len(page) < 4 {
			break
		}
		after = page[len(page)-1].ID
	}
	if fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Fatalf("List pages = %v, want %v", got, ids)
	}
}

func testClosed(t *testing.T, s blob.Store) {
	put(t, s, "c", []byte("c"))
	is(t, "Close", s.Close(), nil)
	is(t, "Close again", s.Close(), nil)
	_, err := s.Put(ctx, "d", strings.NewReader("d"), 1)
	is(t, "Put", err, blob.ErrClosed)
	_, _, err = s.Open(ctx, "c")
	is(t, "Open", err, blob.ErrClosed)
	_, err = s.Stat(ctx, "c")
	is(t, "Stat", err, blob.ErrClosed)
	is(t, "Delete", s.Delete(ctx, "c"), blob.ErrClosed)
	_, err = s.List(ctx, "", 0)
	is(t, "List", err, blob.ErrClosed)
}
