package server

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"time"

	"github.com/livechat/livechat/internal/engine"
	"github.com/livechat/livechat/pkg/broker"
	"github.com/livechat/livechat/pkg/history"
	"github.com/livechat/livechat/pkg/protocol"
)

// This file is the ordered delivery of a room when the server has a history
// store (Config.History). Every stored message carries the room's seq; each
// server delivers a room's messages to its local members in seq order, with
// no gap and no duplicate:
//
//   - seq <= last delivered: a duplicate (a retried send republished, a
//     message already filled from the store), dropped;
//   - seq == last+1: delivered at once;
//   - seq > last+1: a gap (publishes of two servers crossed, or Redis
//     Pub/Sub lost one): the missing seqs are read from the store and
//     delivered first. If the store cannot be read the message waits in a
//     bounded pending set, retried every gapRetry, and after GapTimeout the
//     gap is skipped and counted as lost: never out of order, never stuck.
//
// All of it runs under the room's delivery mutex (room.dmu), which the
// broker handler takes per message and a join takes while it replays, so a
// joining client gets the replay and then exactly the live messages after
// it. The mutex is per room and uncontended except during joins and gap
// fills.

// recentEntry is one delivered message in the ring of recent seqs: its id
// is held as a hash, so that the rings (a thousand entries in every busy
// room) hold no pointer for the garbage collector to follow.
type recentEntry struct {
	seq    uint64
	idHash uint64
}

// idSeed seeds the hashes of message ids in the recent rings.
var idSeed = maphash.MakeSeed()

// hashID is the hash a message id is known by in the delivery.
func hashID(id string) uint64 { return maphash.String(idSeed, id) }

// hashIDBytes is hashID of an id given as bytes (a room frame's header).
func hashIDBytes(id []byte) uint64 { return maphash.Bytes(idSeed, id) }

// pendingMsg is a live message held back behind a gap.
type pendingMsg struct {
	idHash uint64
	data   []byte
}

// fanout frames data once and queues that frame to every local member of
// r: one non-blocking queue push per member, nothing else.
func (r *room) fanout(data []byte) {
	f := engine.SharedTextFrame(data) // the broker's data is never modified
	for _, c := range *r.members.Load() {
		c.Send(f)
	}
}

// activateLocked starts the delivery state of a freshly subscribed room and
// reads the room's last seq from the store. Messages that arrive between
// the subscription and this read with a seq at or below it are in the
// store already and reach joiners through the replay. r.dmu must be held.
func (r *room) activateLocked() {
	r.active = true
	r.primed = false
	r.pending = make(map[uint64]pendingMsg)
	r.recent = nil
	r.primeLocked()
}

// deactivateLocked ends the delivery state when the room is unsubscribed;
// a late handler call is then ignored. r.dmu must be held.
func (r *room) deactivateLocked() {
	r.active = false
	r.primed = false
	r.pending = nil
	if r.retry != nil {
		r.retry.Stop()
		r.retry = nil
	}
}

// primeLocked sets the last delivered seq to the store's last seq; it
// reports whether it could. r.dmu must be held.
func (r *room) primeLocked() bool {
	if r.primed {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), gapReadTimeout)
	defer cancel()
	b, err := r.s.hist.Bounds(ctx, r.name)
	if err != nil {
		r.s.historyError("bounds", r.name, err)
		return false
	}
	r.setLastLocked(b.Last)
	r.primed = true
	return true
}

func (r *room) setLastLocked(seq uint64) {
	r.last = seq
	r.lastSeen.Store(seq)
}

// receive delivers a live message with a seq in order. It is called by the
// room's broker handler, and by a sender's connection when the publish
// failed (the message is stored, so the local members get it anyway).
func (r *room) receive(seq, idHash uint64, data []byte) {
	r.dmu.Lock()
	defer r.dmu.Unlock()
	r.receiveLocked(seq, idHash, data)
}

// receiveLive is receive for the room's broker handler, which may run on
// the goroutine that reads the broker for every room (SubscribeInline), so
// it never waits: it delivers the next message in seq order at once, and
// leaves anything else (a gap, a seq already seen, a room whose last seq
// is not read yet, or the delivery state held by a join, a sweep or a gap
// fill, which read the store) to a goroutine that calls receive, in order.
func (r *room) receiveLive(seq, idHash uint64, data []byte) {
	r.inboxMu.Lock()
	if len(r.inbox) == 0 && r.dmu.TryLock() {
		r.inboxMu.Unlock()
		done := !r.active // dropped, as receive does
		if r.active && r.primed && seq == r.last+1 && len(r.pending) == 0 {
			r.deliverLocked(seq, idHash, data)
			done = true
		}
		r.dmu.Unlock()
		if done {
			return
		}
		r.inboxMu.Lock()
	}
	r.inbox = append(r.inbox, pendingLive{seq: seq, idHash: idHash, data: data})
	start := !r.draining
	r.draining = true
	r.inboxMu.Unlock()
	if start {
		go r.drainInbox()
	}
}

// drainInbox hands the inbox to receive until it is empty.
func (r *room) drainInbox() {
	for {
		r.dmu.Lock()
		r.inboxMu.Lock()
		batch := r.inbox
		r.inbox = nil
		if len(batch) == 0 {
			r.draining = false
		}
		r.inboxMu.Unlock()
		for _, m := range batch {
			r.receiveLocked(m.seq, m.idHash, m.data)
		}
		r.dmu.Unlock()
		if len(batch) == 0 {
			return
		}
	}
}

// receiveLocked is receive with r.dmu held.
func (r *room) receiveLocked(seq, idHash uint64, data []byte) {
	if !r.active {
		return
	}
	if !r.primed && !r.primeLocked() {
		// The store is down: take this message as the starting point.
		r.setLastLocked(seq - 1)
		r.primed = true
	}
	if seq <= r.last {
		if r.isDuplicateLocked(seq, idHash) {
			r.s.dupsDropped.Add(1)
			return
		}
		r.resetLocked()
	}
	if seq == r.last+1 && len(r.pending) == 0 {
		r.deliverLocked(seq, idHash, data)
		return
	}
	if len(r.pending) == 0 {
		r.pendingSince = time.Now()
	}
	r.pending[seq] = pendingMsg{idHash: idHash, data: data}
	r.fillLocked()
}

// isDuplicateLocked tells a duplicate from a message of a history that
// restarted (a Redis store that lost or expired the room counts from 1
// again): a seq delivered recently with the same id is a duplicate; for
// anything else the store decides.
func (r *room) isDuplicateLocked(seq, idHash uint64) bool {
	var e recentEntry
	if r.recent != nil {
		e = r.recent[seq%recentSeqs]
	}
	if e.seq == seq {
		if e.idHash == idHash {
			return true
		}
	} else if r.last-seq >= recentSeqs {
		return true // too old to be a restarted history's
	}
	ctx, cancel := context.WithTimeout(context.Background(), gapReadTimeout)
	defer cancel()
	b, err := r.s.hist.Bounds(ctx, r.name)
	if err != nil {
		r.s.historyError("bounds", r.name, err)
		return true
	}
	return b.Last >= r.last
}

// resetLocked restarts the room's delivery at seq 0 after the store's seqs
// restarted.
func (r *room) resetLocked() {
	r.s.log.Warn("server: history of room restarted, delivery follows the new seqs", "room", r.name, "last", r.last)
	r.s.resets.Add(1)
	r.setLastLocked(0)
	r.recent = nil
	clear(r.pending)
}

func (r *room) deliverLocked(seq, idHash uint64, data []byte) {
	r.fanout(data)
	r.setLastLocked(seq)
	if r.recent == nil {
		// 16 KiB: not held by the many rooms that see no traffic.
		r.recent = new([recentSeqs]recentEntry)
	}
	r.recent[seq%recentSeqs] = recentEntry{seq: seq, idHash: idHash}
}

// deliverStoredLocked encodes a message read from the store (once) and
// delivers it.
func (r *room) deliverStoredLocked(m *protocol.Message) {
	m.Type = protocol.TypeMessage
	data, err := json.Marshal(m)
	if err != nil {
		r.s.log.Error("server: encode stored message", "room", r.name, "err", err)
		return
	}
	r.deliverLocked(m.Seq, hashID(m.ID), data)
}

// skipLocked gives up the seqs up to seq-1 (not in the store, or the store
// stayed down past GapTimeout).
func (r *room) skipLocked(seq uint64, why string) {
	if seq <= r.last+1 {
		return
	}
	lost := seq - r.last - 1
	r.s.gapLost.Add(lost)
	r.s.log.Warn("server: messages missing from the live stream could not be recovered",
		"room", r.name, "from", r.last+1, "to", seq-1, "reason", why)
	r.setLastLocked(seq - 1)
}

// fillLocked delivers the pending messages in seq order, reading the gaps
// before them from the store. When the store fails it schedules a retry,
// and skips the gap once the oldest pending message waited GapTimeout.
func (r *room) fillLocked() {
	for len(r.pending) > 0 {
		lo := uint64(0)
		for seq := range r.pending {
			if seq <= r.last {
				delete(r.pending, seq) // filled from the store meanwhile
				continue
			}
			if lo == 0 || seq < lo {
				lo = seq
			}
		}
		if lo == 0 {
			break
		}
		if lo == r.last+1 {
			p := r.pending[lo]
			delete(r.pending, lo)
			r.deliverLocked(lo, p.idHash, p.data)
			continue
		}
		if wait := gapWait - time.Since(r.pendingSince); wait > 0 {
			r.scheduleRetryLocked(wait) // the missing one may be just behind
			return
		}
		want := int(min(lo-r.last-1, uint64(maxPending)))
		ctx, cancel := context.WithTimeout(context.Background(), gapReadTimeout)
		msgs, err := r.s.hist.After(ctx, r.name, r.last, want)
		cancel()
		if err != nil {
			r.s.historyError("gap_fill", r.name, err)
			if time.Since(r.pendingSince) >= r.s.cfg.GapTimeout || len(r.pending) > maxPending {
				r.skipLocked(lo, "store unavailable")
				continue
			}
			r.scheduleRetryLocked(gapRetry)
			return
		}
		filled := false
		for i := range msgs {
			m := &msgs[i]
			if m.Seq >= lo {
				break
			}
			if m.Seq <= r.last {
				continue
			}
			r.skipLocked(m.Seq, "trimmed from the store")
			r.deliverStoredLocked(m)
			filled = true
		}
		if filled {
			r.s.gapsFilled.Add(1)
		}
		if r.last+1 < lo && (!filled || len(msgs) != want) {
			r.skipLocked(lo, "not in the store")
		}
	}
	if len(r.pending) == 0 && r.retry != nil {
		r.retry.Stop()
		r.retry = nil
	}
}

// scheduleRetryLocked runs fillLocked again after d.
func (r *room) scheduleRetryLocked(d time.Duration) {
	if r.retry != nil {
		r.retry.Reset(d)
		return
	}
	r.retry = time.AfterFunc(d, func() {
		r.dmu.Lock()
		defer r.dmu.Unlock()
		r.retry = nil
		if r.active {
			r.fillLocked()
		}
	})
}

// sweep compares the room with the store and delivers what was stored but
// never arrived live (its publish was lost). A room whose delivery has not
// started or that left meanwhile is skipped.
func (r *room) sweep() {
	r.dmu.Lock()
	defer r.dmu.Unlock()
	if !r.active || !r.primed {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), gapReadTimeout)
	defer cancel()
	b, err := r.s.hist.Bounds(ctx, r.name)
	if err != nil {
		r.s.historyError("sweep", r.name, err)
		return
	}
	if b.Last <= r.last {
		return
	}
	before := r.last
	if err := r.catchUpLocked(ctx, b.Last); err != nil {
		r.s.historyError("sweep", r.name, err)
		return
	}
	if r.last > before {
		r.s.gapsFilled.Add(1)
		r.s.log.Info("server: caught up a room from the store", "room", r.name, "from", before+1, "to", r.last)
	}
}

// recoveryLoop sweeps every room each SweepInterval, and at once when the
// broker comes back after an outage (what was published meanwhile is lost
// to Pub/Sub but not to the store).
func (s *Server) recoveryLoop(ctx context.Context) {
	defer s.loopWG.Done()
	sweep := time.NewTicker(s.cfg.SweepInterval)
	defer sweep.Stop()
	poll := time.NewTicker(brokerPoll)
	defer poll.Stop()
	wasUp := s.b.State() == broker.StateConnected
	for {
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
			up := s.b.State() == broker.StateConnected
			reconnected := up && !wasUp
			wasUp = up
			if !reconnected {
				continue
			}
		case <-sweep.C:
		}
		s.sweepRooms(ctx)
	}
}

// sweepRooms sweeps the rooms whose store holds seqs past what they
// delivered, found with one history.LastSeqs read for all of them (one
// round trip per few hundred rooms on Redis) instead of a Bounds read each.
// When that read fails, every room is swept on its own.
func (s *Server) sweepRooms(ctx context.Context) {
	rooms := s.roomList()
	names := make([]string, len(rooms))
	for i, r := range rooms {
		names[i] = r.name
	}
	rctx, cancel := context.WithTimeout(ctx, gapReadTimeout)
	lasts, err := history.LastSeqs(rctx, s.hist, names)
	cancel()
	for i, r := range rooms {
		if ctx.Err() != nil {
			return
		}
		if err == nil && lasts[i] <= r.lastSeen.Load() {
			continue // nothing stored past what it delivered
		}
		r.sweep()
	}
}

// catchUpLocked delivers the stored messages up to seq to the room's
// members (a joining client has seen more than this server delivered yet).
func (r *room) catchUpLocked(ctx context.Context, seq uint64) error {
	for r.last < seq {
		msgs, err := r.s.hist.After(ctx, r.name, r.last, int(min(seq-r.last, uint64(maxPending))))
		if err != nil {
			return err
		}
		progressed := false
		for i := range msgs {
			if m := &msgs[i]; m.Seq > r.last && m.Seq <= seq {
				r.skipLocked(m.Seq, "trimmed from the store")
				r.deliverStoredLocked(m)
				progressed = true
			}
		}
		if !progressed {
			break
		}
	}
	r.fillLocked()
	return nil
}

// replayLocked prepares a join's replay: it fills in the joined frame's
// history fields and returns the encoded message frames to queue before
// the client is added to the fan-out. r.dmu must be held.
func (r *room) replayLocked(j *protocol.Joined, since *uint64) ([][]byte, error) {
	s := r.s
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.HistoryTimeout)
	defer cancel()
	if !r.primeLocked() {
		return nil, fmt.Errorf("server: history of room %s unavailable", r.name)
	}
	b, err := s.hist.Bounds(ctx, r.name)
	if err != nil {
		return nil, fmt.Errorf("server: history bounds: %w", err)
	}
	if since != nil && *since > r.last {
		if *since <= b.Last {
			// This server lags behind what the client saw elsewhere.
			if err := r.catchUpLocked(ctx, *since); err != nil {
				return nil, fmt.Errorf("server: history catch-up: %w", err)
			}
		} else {
			j.Reset = true
			since = nil
		}
	}
	j.LastSeq, j.FirstSeq = r.last, b.First
	if r.last == 0 {
		return nil, nil
	}
	var msgs []protocol.Message
	if since == nil {
		msgs, err = s.hist.Before(ctx, r.name, r.last+1, s.cfg.JoinHistory)
	} else if *since < r.last {
		start := *since
		if r.last-start > uint64(s.cfg.ReplayLimit) {
			start = r.last - uint64(s.cfg.ReplayLimit)
		}
		msgs, err = s.hist.After(ctx, r.name, start, int(r.last-start))
		if err == nil && (len(msgs) == 0 || msgs[0].Seq > *since+1) {
			j.Truncated = true
		}
	}
	if err != nil {
		return nil, fmt.Errorf("server: history replay: %w", err)
	}
	out := make([][]byte, 0, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		if m.Seq > r.last {
			break
		}
		m.Type = protocol.TypeMessage
		data, err := json.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("server: encode replay: %w", err)
		}
		if len(out) == 0 {
			j.ReplayFrom = m.Seq
		}
		out = append(out, data)
	}
	return out, nil
}
