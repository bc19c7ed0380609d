package history

import (
	"context"
	"fmt"
	"hash/maphash"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/livechat/livechat/pkg/protocol"
)

// Memory is the in-process Store (memory://): a bounded history per room,
// trimmed to Options.MaxLen messages and Options.MaxAge on append. It
// remembers a dedup key as long as its message is held. It starts no
// goroutine.
//
// A held message is one pointer-free record and one string holding all its
// text fields and its dedup key back to back (the index maps a key's hash
// to its seq), so that a server holding millions of messages gives the
// garbage collector one object to mark per message (four when it held a
// protocol.Message and the key apart: BenchmarkMemoryHeld).
type Memory struct {
	opts Options
	seed maphash.Seed

	mu     sync.Mutex
	closed bool
	rooms  map[string]*memRoom
}

var _ Store = (*Memory)(nil)

type memRoom struct {
	last  uint64
	recs  []memRec          // ascending, consecutive seqs
	dedup map[uint64]uint64 // dedup key hash -> seq
}

// memRec is a held message. text holds its Type, ID, From, Text, Server,
// CID and dedup key back to back, ends[i] where field i ends.
type memRec struct {
	seq    uint64
	ts     int64
	key    uint64 // hash of the dedup key, 0 for none
	text   string
	ends   [memFields]uint32
	system bool
}

const memFields = 7 // Type, ID, From, Text, Server, CID, dedup key

// field returns text field i of r.
func (r *memRec) field(i int) string {
	lo := uint32(0)
	if i > 0 {
		lo = r.ends[i-1]
	}
	return r.text[lo:r.ends[i]]
}

// dedupKey returns the dedup key r was appended with.
func (r *memRec) dedupKey() string { return r.field(memFields - 1) }

// message returns r as a message of room.
func (r *memRec) message(room string) protocol.Message {
	return protocol.Message{
		Type: r.field(0), Room: room, ID: r.field(1), Seq: r.seq, From: r.field(2), Text: r.field(3),
		TS: r.ts, Server: r.field(4), CID: r.field(5), System: r.system,
	}
}

// newMemRec packs m (its Room aside) and its dedup key.
func newMemRec(m *protocol.Message, dedupKey string, keyHash uint64) memRec {
	fields := [memFields]string{m.Type, m.ID, m.From, m.Text, m.Server, m.CID, dedupKey}
	n := 0
	for _, f := range fields {
		n += len(f)
	}
	rec := memRec{seq: m.Seq, ts: m.TS, key: keyHash, system: m.System}
	var b strings.Builder
	b.Grow(n)
	for i, f := range fields {
		b.WriteString(f)
		rec.ends[i] = uint32(b.Len())
	}
	rec.text = b.String()
	return rec
}

// NewMemory returns an empty in-process store.
func NewMemory(opts Options) *Memory {
	opts.fill()
	return &Memory{opts: opts, seed: maphash.MakeSeed(), rooms: make(map[string]*memRoom)}
}

// hashKey returns the index hash of a dedup key, never 0.
func (s *Memory) hashKey(key string) uint64 {
	return max(maphash.String(s.seed, key), 1)
}

// Append implements Store.
func (s *Memory) Append(ctx context.Context, m *protocol.Message, dedupKey string) (uint64, bool, error) {
	if err := ctx.Err(); err != nil {
		return 0, false, err
	}
	now := time.Now()
	if err := prepare(m, dedupKey, now); err != nil {
		return 0, false, err
	}
	if uint64(len(m.Type))+uint64(len(m.ID))+uint64(len(m.From))+uint64(len(m.Text))+uint64(len(m.Server))+
		uint64(len(m.CID))+uint64(len(dedupKey)) > math.MaxUint32 {
		return 0, false, fmt.Errorf("%w: message larger than 4 GiB", ErrInvalid)
	}
	var h uint64
	if dedupKey != "" {
		h = s.hashKey(dedupKey)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, false, ErrClosed
	}
	r := s.rooms[m.Room]
	if r == nil {
		r = &memRoom{dedup: make(map[uint64]uint64)}
		s.rooms[m.Room] = r
	}
	indexed := false // h names another key's message (a hash collision)
	if h != 0 {
		if seq, ok := r.dedup[h]; ok {
			if orig := r.get(seq); orig != nil && orig.dedupKey() == dedupKey {
				*m = orig.message(m.Room)
				return seq, true, nil
			}
			indexed = true
		}
	}
	r.last++
	m.Seq = r.last
	r.recs = append(r.recs, newMemRec(m, dedupKey, h))
	if h != 0 && !indexed {
		r.dedup[h] = m.Seq
	}
	r.trim(s.opts.MaxLen, now.Add(-s.opts.MaxAge).UnixMilli())
	return m.Seq, false, nil
}

// get returns the held record with seq, or nil.
func (r *memRoom) get(seq uint64) *memRec {
	if len(r.recs) == 0 || seq < r.recs[0].seq || seq > r.last {
		return nil
	}
	return &r.recs[seq-r.recs[0].seq]
}

// trim drops the oldest messages beyond maxLen or older than cutoff (Unix
// ms), always keeping the newest.
func (r *memRoom) trim(maxLen int, cutoff int64) {
	drop := max(len(r.recs)-maxLen, 0)
	for drop < len(r.recs)-1 && r.recs[drop].ts < cutoff {
		drop++
	}
	if drop == 0 {
		return
	}
	for i := range r.recs[:drop] {
		if k := r.recs[i].key; k != 0 && r.dedup[k] == r.recs[i].seq {
			delete(r.dedup, k)
		}
	}
	// Reslice (amortised O(1)); the next growth of the slice copies only
	// the live part. Zero the dropped records so their text can go.
	clear(r.recs[:drop])
	r.recs = r.recs[drop:]
}

// read returns a copy of the held messages of room with lo <= seq <= hi,
// at most n of them, the lowest ones unless fromTop.
func (s *Memory) read(ctx context.Context, room string, lo, hi uint64, n int, fromTop bool) ([]protocol.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n, ok, err := checkRead(room, n)
	if err != nil || !ok {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	r := s.rooms[room]
	if r == nil || len(r.recs) == 0 || lo > hi {
		return nil, nil
	}
	i := sort.Search(len(r.recs), func(i int) bool { return r.recs[i].seq >= lo })
	j := sort.Search(len(r.recs), func(i int) bool { return r.recs[i].seq > hi })
	if j-i > n {
		if fromTop {
			i = j - n
		} else {
			j = i + n
		}
	}
	if i >= j {
		return nil, nil
	}
	msgs := make([]protocol.Message, j-i)
	for k := range msgs {
		msgs[k] = r.recs[i+k].message(room)
	}
	return msgs, nil
}

// After implements Store.
func (s *Memory) After(ctx context.Context, room string, since uint64, limit int) ([]protocol.Message, error) {
	if since == ^uint64(0) {
		return nil, nil
	}
	return s.read(ctx, room, since+1, ^uint64(0), limit, false)
}

// Latest implements Store.
func (s *Memory) Latest(ctx context.Context, room string, n int) ([]protocol.Message, error) {
	return s.read(ctx, room, 0, ^uint64(0), n, true)
}

// Before implements Store.
func (s *Memory) Before(ctx context.Context, room string, before uint64, n int) ([]protocol.Message, error) {
	if before == 0 {
		return s.read(ctx, room, 1, 0, n, true) // nothing, but errors checked
	}
	return s.read(ctx, room, 0, before-1, n, true)
}

// Bounds implements Store.
func (s *Memory) Bounds(ctx context.Context, room string) (Bounds, error) {
	if err := ctx.Err(); err != nil {
		return Bounds{}, err
	}
	if _, _, err := checkRead(room, 1); err != nil {
		return Bounds{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Bounds{}, ErrClosed
	}
	r := s.rooms[room]
	if r == nil {
		return Bounds{}, nil
	}
	b := Bounds{Last: r.last}
	if len(r.recs) > 0 {
		b.First = r.recs[0].seq
	}
	return b, nil
}

// Close implements Store: it drops the history.
func (s *Memory) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.rooms = nil
	return nil
}
