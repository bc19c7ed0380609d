package rooms

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/livechat/livechat/pkg/auth"
	"github.com/livechat/livechat/pkg/protocol"
	"github.com/livechat/livechat/pkg/store"
)

// Enter returns nil when id may enter room (join it, read its history,
// send, type and see its presence), auth.ErrNoRoom when the room does not
// exist or id may not enter it (one error for both), and another error,
// wrapping the store's, when it cannot tell now.
//
// A token's room restriction applies first. A public room admits everyone;
// the first time this process admits someone to it, the room is recorded
// in the store (kind public, so the directory lists it; a failure is logged
// and retried on a later Enter, and does not keep anyone out). A reserved
// room admits its owner and members only: never a guest, an invited user
// who has not accepted, or a stranger. It blocks on the store and is safe
// for concurrent use.
func (s *Service) Enter(ctx context.Context, id auth.Identity, room string) error {
	if !id.AllowsRoom(room) || protocol.ValidRoom(room) != nil {
		return auth.ErrNoRoom
	}
	if protocol.PublicRoom(room) {
		s.recordPublic(ctx, room)
		return nil
	}
	if id.Guest() || id.UserID == "" {
		return auth.ErrNoRoom
	}
	role, err := s.st.Member(ctx, room, id.UserID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return auth.ErrNoRoom
	case err != nil:
		return fmt.Errorf("rooms: enter %q: %w", room, err)
	case role == store.RoleOwner || role == store.RoleMember:
		return nil
	}
	return auth.ErrNoRoom
}

// recordPublic makes sure the public room is in the store, once per room
// per process.
func (s *Service) recordPublic(ctx context.Context, room string) {
	s.mu.Lock()
	_, known := s.public[room]
	s.mu.Unlock()
	if known {
		return
	}
	_, err := s.st.CreateRoom(ctx, store.Room{ID: room, Name: room, Kind: store.KindPublic, Created: s.cfg.Now()})
	if err != nil && !errors.Is(err, store.ErrExists) {
		if ctx.Err() == nil {
			s.log.Warn("rooms: recording a public room failed", "room", room, "err", err)
		}
		return
	}
	s.remember(room)
}

// remember notes that the public room is in the store.
func (s *Service) remember(room string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.public) >= maxTracked {
		clear(s.public)
	}
	s.public[room] = struct{}{}
}

// touch is one store.Touch waiting in the queue.
type touch struct {
	room string
	t    time.Time
}

// Active records that room had a message at t: at most once per room per
// Config.TouchEvery, store.Touch raises the room's LastActive (the order of
// the conversation lists). It never blocks: the write is queued for one
// background goroutine, and dropped when the queue is full or the Service
// is closed. Safe for concurrent use.
func (s *Service) Active(room string, t time.Time) {
	select {
	case <-s.ctx.Done():
		return
	default:
	}
	s.mu.Lock()
	last, ok := s.touched[room]
	if ok && t.Before(last.Add(s.cfg.TouchEvery)) {
		s.mu.Unlock()
		return
	}
	if len(s.touched) >= maxTracked {
		clear(s.touched)
	}
	s.touched[room] = t
	select {
	case s.touches <- touch{room, t}:
	default:
		// Full: forget this touch so that the room's next message tries again.
		if ok {
			s.touched[room] = last
		} else {
			delete(s.touched, room)
		}
	}
	s.mu.Unlock()
}

// touchLoop writes the queued touches until Close, at most one store write
// per touchSpacing: what has queued up meanwhile goes in one write (one
// transaction, one sync to disk for SQLite), so rooms becoming active cost
// one write a second, not one each.
func (s *Service) touchLoop() {
	defer s.wg.Done()
	for {
		var first touch
		select {
		case <-s.ctx.Done():
			return
		case first = <-s.touches:
		}
		batch := map[string]time.Time{first.room: first.t}
	drain:
		for len(batch) < maxTouchBatch {
			select {
			case tc := <-s.touches:
				if tc.t.After(batch[tc.room]) {
					batch[tc.room] = tc.t
				}
			default:
				break drain
			}
		}
		start := time.Now()
		ctx, cancel := context.WithTimeout(s.ctx, storeTimeout)
		err := s.st.TouchRooms(ctx, batch)
		cancel()
		if err != nil && s.ctx.Err() == nil {
			s.log.Warn("rooms: recording the rooms' activity failed", "rooms", len(batch), "err", err)
		}
		// The next write waits out touchSpacing: rooms becoming active one
		// by one (500 busy rooms touch 50 a second) share a write instead
		// of a commit and a sync to disk each.
		if wait := touchSpacing - time.Since(start); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-s.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
}

// touchSpacing is the shortest time from one store write of touchLoop to
// the next.
const touchSpacing = time.Second

// maxTouchBatch bounds the rooms of one store write of touchLoop.
const maxTouchBatch = 1000
