package history

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/livechat/livechat/pkg/protocol"
)

// Memory is the in-process Store (memory://): a bounded history per room,
// trimmed to Options.MaxLen messages and Options.MaxAge on append. It
// remembers a dedup key as long as its message is held. It starts no
// goroutine.
//
// A held message is one pointer-free record, its text fields and dedup key
// written back to back into the room's current chunk of bytes (the index
// maps a key's hash to its seq): the garbage collector has nothing to mark
// per message, only a few chunks per room, and a server holding millions of
// messages costs it no more per cycle than an empty one
// (BenchmarkMemoryHeld). A chunk is freed once trimming dropped all its
// messages.
type Memory struct {
	opts Options
	seed maphash.Seed

	mu     sync.Mutex
	closed bool
	rooms  map[string]*memRoom
}

var (
	_ Store       = (*Memory)(nil)
	_ NonBlocking = (*Memory)(nil)
)

// NeverBlocks is true: the in-process store's calls never wait on a
// network or a disk.
func (s *Memory) NeverBlocks() bool { return true }

type memRoom struct {
	last  uint64
	recs  []memRec          // ascending, consecutive seqs
	dedup map[uint64]uint64 // dedup key hash -> seq
	// chunks hold the records' text; chunks[i] is chunk number first+i,
	// the last one is being filled.
	chunks [][]byte
	first  uint32
}

// memRec is a held message. Its Type, ID, From, User, Text, Server, CID,
// files (their JSON, empty for none) and dedup key lie back to back from off in chunk number chunk; ends[i] is
// where field i ends, from off.
type memRec struct {
	seq    uint64
	ts     int64
	key    uint64 // hash of the dedup key, 0 for none
	chunk  uint32
	off    uint32
	ends   [memFields]uint32
	system bool
	guest  bool
}

const memFields = 9 // Type, ID, From, User, Text, Server, CID, files, dedup key

// Chunk sizes: a room's first chunk holds minChunk bytes, each next one
// twice the last up to maxChunk (a bigger message gets a chunk its size),
// so a quiet room holds little and a busy one few chunks.
const (
	minChunk = 256
	maxChunk = 32 << 10
)

// text returns rec's fields and key, back to back.
func (r *memRoom) text(rec *memRec) []byte {
	c := r.chunks[rec.chunk-r.first]
	return c[rec.off : rec.off+rec.ends[memFields-1]]
}

// dedupKey returns the dedup key rec was appended with.
func (r *memRoom) dedupKey(rec *memRec) []byte {
	return r.text(rec)[rec.ends[memFields-2]:]
}

// message returns rec as a message of room, its strings cut from one copy.
func (r *memRoom) message(rec *memRec, room string) protocol.Message {
	text := string(r.text(rec)[:rec.ends[memFields-2]])
	f := func(i int) string {
		lo := uint32(0)
		if i > 0 {
			lo = rec.ends[i-1]
		}
		return text[lo:rec.ends[i]]
	}
	m := protocol.Message{
		Type: f(0), Room: room, ID: f(1), Seq: rec.seq, From: f(2), User: f(3), Guest: rec.guest,
		Text: f(4), TS: rec.ts, Server: f(5), CID: f(6), System: rec.system,
	}
	if files := f(7); files != "" {
		// Our own JSON of a []protocol.File: it decodes. Each read makes
		// new Files, so no caller shares another's.
		_ = json.Unmarshal([]byte(files), &m.Files)
	}
	return m
}

// add writes m (its Room aside) and its dedup key into the room's chunks
// and appends its record.
func (r *memRoom) add(m *protocol.Message, dedupKey string, keyHash uint64) {
	var files string
	if len(m.Files) > 0 {
		b, _ := json.Marshal(m.Files) // plain fields: it cannot fail
		files = string(b)
	}
	fields := [memFields]string{m.Type, m.ID, m.From, m.User, m.Text, m.Server, m.CID, files, dedupKey}
	n := 0
	for _, f := range fields {
		n += len(f)
	}
	if len(r.chunks) == 0 || cap(r.chunks[len(r.chunks)-1])-len(r.chunks[len(r.chunks)-1]) < n {
		size := minChunk
		if len(r.chunks) > 0 {
			size = min(2*cap(r.chunks[len(r.chunks)-1]), maxChunk)
		}
		r.chunks = append(r.chunks, make([]byte, 0, max(size, n)))
	}
	ci := len(r.chunks) - 1
	c := r.chunks[ci]
	rec := memRec{seq: m.Seq, ts: m.TS, key: keyHash, chunk: r.first + uint32(ci), off: uint32(len(c)),
		system: m.System, guest: m.Guest}
	for i, f := range fields {
		c = append(c, f...)
		rec.ends[i] = uint32(len(c)) - rec.off
	}
	r.chunks[ci] = c
	r.recs = append(r.recs, rec)
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
	if uint64(len(m.Type))+uint64(len(m.ID))+uint64(len(m.From))+uint64(len(m.User))+uint64(len(m.Text))+
		uint64(len(m.Server))+uint64(len(m.CID))+uint64(len(dedupKey)) > math.MaxUint32 {
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
			if orig := r.get(seq); orig != nil && string(r.dedupKey(orig)) == dedupKey {
				*m = r.message(orig, m.Room)
				return seq, true, nil
			}
			indexed = true
		}
	}
	r.last++
	m.Seq = r.last
	r.add(m, dedupKey, h)
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
	// the live part. The chunks before the oldest kept record's go.
	r.recs = r.recs[drop:]
	if k := r.recs[0].chunk - r.first; k > 0 {
		clear(r.chunks[:k])
		r.chunks = r.chunks[k:]
		r.first += k
	}
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
		msgs[k] = r.message(&r.recs[i+k], room)
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
