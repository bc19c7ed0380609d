package history

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/livechat/livechat/pkg/protocol"
)

// Memory is the in-process Store (memory://): a bounded history per room,
// trimmed to Options.MaxLen messages and Options.MaxAge on append. It
// remembers a dedup key as long as its message is held. It starts no
// goroutine.
type Memory struct {
	opts Options

	mu     sync.Mutex
	closed bool
	rooms  map[string]*memRoom
}

var _ Store = (*Memory)(nil)

type memRoom struct {
	last  uint64
	msgs  []protocol.Message // ascending, consecutive seqs
	keys  []string           // dedup key of msgs[i], "" for none
	dedup map[string]uint64
}

// NewMemory returns an empty in-process store.
func NewMemory(opts Options) *Memory {
	opts.fill()
	return &Memory{opts: opts, rooms: make(map[string]*memRoom)}
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
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, false, ErrClosed
	}
	r := s.rooms[m.Room]
	if r == nil {
		r = &memRoom{dedup: make(map[string]uint64)}
		s.rooms[m.Room] = r
	}
	if dedupKey != "" {
		if seq, ok := r.dedup[dedupKey]; ok {
			if orig, ok := r.get(seq); ok {
				*m = orig
			} else {
				m.Seq = seq
			}
			return seq, true, nil
		}
	}
	r.last++
	m.Seq = r.last
	r.msgs = append(r.msgs, *m)
	r.keys = append(r.keys, dedupKey)
	if dedupKey != "" {
		r.dedup[dedupKey] = m.Seq
	}
	r.trim(s.opts.MaxLen, now.Add(-s.opts.MaxAge).UnixMilli())
	return m.Seq, false, nil
}

// get returns the held message with seq.
func (r *memRoom) get(seq uint64) (protocol.Message, bool) {
	if len(r.msgs) == 0 || seq < r.msgs[0].Seq || seq > r.last {
		return protocol.Message{}, false
	}
	return r.msgs[seq-r.msgs[0].Seq], true
}

// trim drops the oldest messages beyond maxLen or older than cutoff (Unix
// ms), always keeping the newest.
func (r *memRoom) trim(maxLen int, cutoff int64) {
	drop := max(len(r.msgs)-maxLen, 0)
	for drop < len(r.msgs)-1 && r.msgs[drop].TS < cutoff {
		drop++
	}
	if drop == 0 {
		return
	}
	for _, k := range r.keys[:drop] {
		if k != "" {
			delete(r.dedup, k)
		}
	}
	// Reslice (amortised O(1)); the next growth of the slice copies only
	// the live part. Zero the dropped entries so their strings can go.
	clear(r.msgs[:drop])
	clear(r.keys[:drop])
	r.msgs = r.msgs[drop:]
	r.keys = r.keys[drop:]
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
	if r == nil || len(r.msgs) == 0 || lo > hi {
		return nil, nil
	}
	i := sort.Search(len(r.msgs), func(i int) bool { return r.msgs[i].Seq >= lo })
	j := sort.Search(len(r.msgs), func(i int) bool { return r.msgs[i].Seq > hi })
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
	return append([]protocol.Message(nil), r.msgs[i:j]...), nil
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
	if len(r.msgs) > 0 {
		b.First = r.msgs[0].Seq
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
