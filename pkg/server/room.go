package server

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livechat/livechat/internal/engine"
	"github.com/livechat/livechat/pkg/broker"
	"github.com/livechat/livechat/pkg/protocol"
)

// room is a room with local members. It holds the room's two broker
// subscriptions (messages and presence) while it has members, the fan-out
// list, and the cluster-wide member list.
type room struct {
	s        *Server
	name     string
	subject  string // protocol.RoomSubject
	psubject string // protocol.PresenceSubject

	// members is the fan-out list: the local members' connections,
	// replaced (copy on write) under mu and read without a lock by the
	// delivery goroutine. It may still hold connections that ended (the
	// engine drops their frames), as ended says.
	members atomic.Pointer[[]*engine.Conn]

	// refs counts the connections in or joining the room; guarded by s.mu.
	refs int

	// mu guards the fields below and serializes join, leave, presence
	// handling and presence publishing for the room.
	mu sync.Mutex
	// ended holds the connections in members that ended; leaveRoom drops
	// them all at once when they are a quarter of it (endedShare).
	ended  map[*engine.Conn]struct{}
	sub    broker.Subscription
	psub   broker.Subscription
	local  map[string]int          // display names of local members, counted
	remote map[string]remoteMember // other servers' snapshots, by AppID (and earlierList)
	union  []string                // member list last sent to local members
	dirty  bool                    // local change not yet in a published snapshot
	// lastPresence is when the last presence frame went to the local
	// members; in a big room they are at least bigPresenceEvery apart.
	lastPresence time.Time
	// presenceLater sends a big room's deferred presence change; armed
	// (presenceDue) while one waits.
	presenceLater *time.Timer
	presenceDue   bool
	// list caches the sorted member list (unionLocked); nil when it must be
	// rebuilt. Callers use it under mu and must not keep it, except as
	// union: while listShared (the list is union's), it is replaced,
	// not modified; otherwise addNameLocked and removeNameLocked edit it
	// in place (a burst of N joins would otherwise copy N²/2 names).
	list       []string
	listShared bool
	// Quiet arrivals (refreshLocked): names that were in the room before
	// this server learnt of them reach the local members' list without a
	// "joined" notice. discoverUntil ends the discovery period that
	// follows the subscription (presenceDiscovery); heard holds the
	// servers heard from since the subscription; quiet the names that the
	// next presence frame adds without a notice.
	discoverUntil time.Time
	heard         map[string]struct{}
	quiet         map[string]struct{}
	// sentFirst is set once the first snapshot since the subscription
	// (protocol.PresenceSync.First) was published.
	sentFirst bool
	// unsubs counts the room's unsubscriptions (changed under mu, read
	// without it): a snapshot that publishSnapshots built before one is
	// stale, as the room said its last word after it.
	unsubs atomic.Uint64
	// linger holds the local names whose last connection ended without a
	// leave frame, with when they drop off the list (one PresenceInterval
	// later): a client that reloads or reconnects meanwhile is not seen
	// to leave and come back. lingerTimer drops them (armed: lingerDue).
	linger      map[string]time.Time
	lingerTimer *time.Timer
	lingerDue   bool

	// lastSeen mirrors last for readers outside dmu (history requests).
	lastSeen atomic.Uint64

	// dmu is the delivery mutex (history only, see delivery.go): the broker
	// handler holds it per message, a join while it replays and adds its
	// connection to members. Lock order: mu, then dmu.
	dmu          sync.Mutex
	active       bool                  // subscribed: deliveries are accepted
	primed       bool                  // last was read from the store
	last         uint64                // last seq delivered to the local members
	pending      map[uint64]pendingMsg // live messages waiting behind a gap
	pendingSince time.Time             // when the oldest pending one arrived
	retry        *time.Timer           // gap fill retry while the store fails
	// recent is allocated on the first delivery (24 KiB a room otherwise).
	recent *[recentSeqs]recentEntry

	// inbox holds the broker's messages that receiveLive could not
	// deliver without waiting; draining: a goroutine hands them to
	// receive. Lock order: dmu, then inboxMu.
	inboxMu  sync.Mutex
	inbox    []pendingLive
	draining bool
}

// pendingLive is a live message waiting in a room's inbox.
type pendingLive struct {
	seq, idHash uint64
	data        []byte
}

type remoteMember struct {
	names   []string
	expires time.Time
}

func newRoom(s *Server, name string) *room {
	r := &room{
		s:        s,
		name:     name,
		subject:  protocol.RoomSubject(s.cfg.Prefix, name),
		psubject: protocol.PresenceSubject(s.cfg.Prefix, name),
		local:    make(map[string]int),
		remote:   make(map[string]remoteMember),
		heard:    make(map[string]struct{}),
		quiet:    make(map[string]struct{}),
		linger:   make(map[string]time.Time),
		ended:    make(map[*engine.Conn]struct{}),
	}
	r.members.Store(&[]*engine.Conn{})
	return r
}

// joinRoom adds c to room as name, subscribing the room on its first local
// member, and queues the joined frame to c, followed with history by the
// replay (the messages after since, or the latest ones). A failed
// subscription is rolled back; a failed replay is reported to c with an
// "unavailable" error after the joined frame, and c still gets the live
// messages.
func (s *Server) joinRoom(c *session, name, user string, since *uint64) (*room, error) {
	s.mu.Lock()
	r := s.rooms[name]
	if r == nil {
		r = newRoom(s, name)
		s.rooms[name] = r
	}
	r.refs++
	s.mu.Unlock()

	r.mu.Lock()
	defer r.mu.Unlock()
	if s.hist != nil {
		// The broker handler waits while the room is primed and the replay
		// read, so c gets the replay and then exactly the later messages.
		r.dmu.Lock()
		defer r.dmu.Unlock()
	}
	if r.sub == nil {
		if err := r.subscribeLocked(); err != nil {
			s.releaseRoom(r) // lock order r.mu -> s.mu is never reversed
			return nil, err
		}
		if s.hist != nil {
			r.activateLocked()
		}
	}
	if _, ok := r.linger[user]; ok {
		delete(r.linger, user) // back within its linger: it never left
	} else {
		r.addNameLocked(user)
	}
	now := time.Now()
	if now.Before(r.discoverUntil) {
		// Just subscribed: most likely a client failing over from another
		// server with others of its room, members all along.
		r.quiet[user] = struct{}{}
	}
	r.dirty = true // the presence loop tells the others (debounced)
	j := r.joinedLocked(user, now)
	var replay [][]byte
	var rerr error
	if s.hist != nil {
		replay, rerr = r.replayLocked(&j, since)
	}
	// c is a member before its joined frame can reach the client: a message
	// published once the client has seen "joined" is delivered to it (the
	// fan-out reads the member list without a lock). A message without a
	// seq published during the join may come just before the joined frame;
	// messages with a seq wait for r.dmu, held here, so the replay goes
	// first.
	// Appended in place while the array has room (amortized O(1), not a
	// copy per join: a burst of N joins would copy N²/2 pointers): a
	// reader of an earlier list never reads past its own length, and no
	// list over this array is longer than this one (leaveRoom makes a
	// new array).
	next := append(*r.members.Load(), c.c)
	r.members.Store(&next)
	c.sendJSON(j)
	if len(replay) > 0 {
		c.send(engine.TextFrames(replay))
		s.replayed.Add(uint64(len(replay)))
	}
	if rerr != nil {
		s.historyError("replay", name, rerr)
		c.sendError(protocol.CodeUnavailable, "history unavailable: missed messages could not be replayed; live messages follow", "", name)
	}
	s.kickPresence()
	return r, nil
}

// rejoinRoom answers a repeated join of m's room, renaming the member when
// the name changed (only without Config.Auth: an identity's name is fixed).
// It reports false, and does nothing, when m was taken out of the room
// meanwhile (takeOut marks it gone before it takes r.mu): the caller joins
// afresh.
func (s *Server) rejoinRoom(c *session, m *membership, newName string) bool {
	r := m.room
	r.mu.Lock()
	defer r.mu.Unlock()
	if m.gone.Load() {
		return false
	}
	if m.name != newName {
		r.removeNameLocked(m.name)
		r.addNameLocked(newName)
		m.name = newName
		r.dirty = true
		s.kickPresence()
	}
	c.sendJSON(r.joinedLocked(newName, time.Now()))
	return true
}

// joinedLocked is the joined frame for user: the member count and the
// sorted member list, cut to its first protocol.PresenceListMax names in a
// bigger room (a burst of N joins would otherwise write N² names; the
// client learns the others from presence deltas and shows the count).
func (r *room) joinedLocked(user string, now time.Time) protocol.Joined {
	list := r.unionLocked(now)
	j := protocol.Joined{Type: protocol.TypeJoined, Room: r.name, Name: user, Members: list, MemberCount: len(list)}
	if len(list) > protocol.PresenceListMax {
		j.Members, j.MembersTruncated = list[:protocol.PresenceListMax], true
	}
	return j
}

// leaveRoom removes c (joined as user) from r, unsubscribing and saying
// presence "bye" when it was the last local member. When c's connection
// ended (no leave frame) and it was the name's last one, the name lingers
// on the list for a PresenceInterval: a client that reloads or reconnects
// meanwhile, here or elsewhere, is not seen to leave and come back. While
// the server drains (Shutdown) every name stays in the room's snapshots,
// the last of which other servers keep for its lifetime (a handover).
func (s *Server) leaveRoom(c *session, r *room, user string) {
	r.mu.Lock()
	old := *r.members.Load()
	live := len(old) - len(r.ended) - 1
	if c.ended() && live > 0 && (len(r.ended)+1)*endedShare < len(old) {
		// The engine drops what is sent to an ended connection, so it may
		// stay in the fan-out list until a quarter of the list has ended:
		// a wave of N ended connections costs O(N) copying in all, not a
		// copy of the list each.
		r.ended[c.c] = struct{}{}
	} else {
		next := make([]*engine.Conn, 0, live)
		for _, m := range old {
			if _, gone := r.ended[m]; !gone && m != c.c {
				next = append(next, m)
			}
		}
		clear(r.ended)
		r.members.Store(&next)
	}
	switch {
	case s.draining.Load():
		// A handover: the name stays (unsubscribeLocked).
	case r.local[user] == 1 && c.ended():
		r.lingerLocked(user, time.Now())
	default:
		r.removeNameLocked(user)
	}
	if live == 0 {
		r.unsubscribeLocked()
		if s.hist != nil {
			r.dmu.Lock()
			r.deactivateLocked()
			r.dmu.Unlock()
		}
	} else {
		r.dirty = true
		s.kickPresence()
	}
	r.mu.Unlock()
	s.releaseRoom(r)
}

// addNameLocked counts a local member's name, keeping the cached member
// list: a join costs an insertion, not a rebuild and sort of the list (a
// burst of N joins into one room would cost N² log N).
func (r *room) addNameLocked(user string) {
	r.local[user]++
	if r.list == nil || r.local[user] > 1 {
		return
	}
	i, found := slices.BinarySearch(r.list, user)
	if found {
		return
	}
	if r.listShared {
		r.list, r.listShared = slices.Insert(slices.Clip(r.list), i, user), false // a new array
	} else {
		r.list = slices.Insert(r.list, i, user)
	}
}

func (r *room) removeNameLocked(user string) {
	if r.local[user] > 1 {
		r.local[user]--
		return
	}
	delete(r.local, user)
	if r.list == nil {
		return
	}
	for _, rm := range r.remote {
		if slices.Contains(rm.names, user) {
			return // still a member through another server
		}
	}
	if i, found := slices.BinarySearch(r.list, user); found {
		if r.listShared {
			r.list, r.listShared = slices.Delete(slices.Clone(r.list), i, i+1), false
		} else {
			r.list = slices.Delete(r.list, i, i+1)
		}
	}
}

// ended reports whether c's connection has ended: c leaves its rooms
// because of that, not with a leave frame.
func (c *session) ended() bool { return c.closed.Load() }

// lingerLocked keeps user, whose last local connection ended, on the list
// until one PresenceInterval from now.
func (r *room) lingerLocked(user string, now time.Time) {
	r.linger[user] = now.Add(r.s.cfg.PresenceInterval)
	// A timer already armed fires no later than this deadline.
	if !r.lingerDue {
		r.armLingerLocked(now)
	}
}

// armLingerLocked arms the linger timer for the earliest deadline, at
// least presenceDebounce ahead: a wave of ended connections costs a scan
// of the names per fire, not per name.
func (r *room) armLingerLocked(now time.Time) {
	if len(r.linger) == 0 {
		return
	}
	var next time.Time
	for _, until := range r.linger {
		if next.IsZero() || until.Before(next) {
			next = until
		}
	}
	d := max(next.Sub(now), presenceDebounce)
	r.lingerDue = true
	if r.lingerTimer == nil {
		r.lingerTimer = time.AfterFunc(d, r.endLinger)
	} else {
		r.lingerTimer.Reset(d)
	}
}

// endLinger drops the names whose linger ended.
func (r *room) endLinger() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lingerDue = false
	now := time.Now()
	gone := false
	for n, until := range r.linger {
		if !now.Before(until) {
			delete(r.linger, n)
			if r.local[n]--; r.local[n] <= 0 {
				delete(r.local, n)
			}
			gone = true
		}
	}
	if gone {
		r.list = nil // rebuilt once, not edited per name
		r.dirty = true
		r.s.kickPresence()
	}
	r.armLingerLocked(now)
}

// releaseRoom drops a reference and forgets the room at zero.
func (s *Server) releaseRoom(r *room) {
	s.mu.Lock()
	r.refs--
	if r.refs == 0 && s.rooms[r.name] == r {
		delete(s.rooms, r.name)
	}
	s.mu.Unlock()
}

func (r *room) subscribeLocked() error {
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	// Inline: with the in-process broker the sender's goroutine fans its
	// message out, no hand-off per message (onMessage never blocks; only a
	// gap in the seqs reads the store, under gapReadTimeout).
	sub, err := broker.SubscribeInline(ctx, r.s.b, r.subject, r.onMessage)
	if err != nil {
		return fmt.Errorf("server: subscribe %s: %w", r.subject, err)
	}
	psub, err := r.s.b.Subscribe(ctx, r.psubject, r.onPresence)
	if err != nil {
		_ = sub.Unsubscribe()
		return fmt.Errorf("server: subscribe %s: %w", r.psubject, err)
	}
	r.sub, r.psub = sub, psub
	r.discoverUntil = time.Now().Add(presenceDiscovery)
	// Ask the other servers for their snapshots now.
	r.publishLocked(ctx, protocol.PresenceSync{Op: "sync", Server: r.s.cfg.AppID, Room: r.name})
	return nil
}

func (r *room) unsubscribeLocked() {
	if r.sub == nil {
		return
	}
	if err := r.sub.Unsubscribe(); err != nil {
		r.s.log.Warn("server: unsubscribe", "subject", r.subject, "err", err)
	}
	if err := r.psub.Unsubscribe(); err != nil {
		r.s.log.Warn("server: unsubscribe", "subject", r.psubject, "err", err)
	}
	r.sub, r.psub = nil, nil
	r.unsubs.Add(1)
	if !r.s.silent.Load() {
		// After the snapshots of a batch in flight, which may hold this
		// room's: its last word must come last (publishSnapshots).
		r.s.presMu.Lock()
		defer r.s.presMu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
		switch {
		case r.s.draining.Load() && len(r.local) > 0:
			// Shutting down: a last snapshot of the members it had
			// (leaveRoom kept them) instead of "bye", a handover.
			r.snapshotLocked(ctx, presenceTTLPeriods*r.s.cfg.PresenceInterval)
		case len(r.linger) > 0:
			// The names of connections that ended lately, for the
			// rest of their linger.
			r.snapshotLocked(ctx, r.s.cfg.PresenceInterval)
		default:
			r.publishLocked(ctx, protocol.PresenceSync{Op: "bye", Server: r.s.cfg.AppID, Room: r.name})
		}
		cancel()
	}
	clear(r.local)
	clear(r.linger)
	if r.lingerTimer != nil {
		r.lingerTimer.Stop()
	}
	r.lingerDue = false
	clear(r.remote)
	clear(r.heard)
	clear(r.quiet)
	r.sentFirst = false
	if r.presenceLater != nil {
		r.presenceLater.Stop()
	}
	r.presenceDue = false
	r.union = nil
	r.list = nil
	r.dirty = false
}

// publishLocked publishes ps on the room's presence subject and reports
// whether the broker took it.
func (r *room) publishLocked(ctx context.Context, ps protocol.PresenceSync) bool {
	if r.s.silent.Load() {
		return false
	}
	data, err := json.Marshal(ps)
	if err != nil {
		return false
	}
	if err := r.s.b.Publish(ctx, r.psubject, data); err != nil {
		r.s.log.Debug("server: publish presence", "room", r.name, "op", ps.Op, "err", err)
		return false
	}
	return true
}

// snapshotLocked publishes this server's member names for the room, valid
// for ttl.
func (r *room) snapshotLocked(ctx context.Context, ttl time.Duration) {
	if r.publishLocked(ctx, r.snapshotOfLocked(ttl)) {
		r.sentFirst = true
	}
}

// snapshotOfLocked returns this server's snapshot of the room, valid for
// ttl, and marks the room clean (a change after it makes another).
func (r *room) snapshotOfLocked(ttl time.Duration) protocol.PresenceSync {
	names := make([]string, 0, len(r.local))
	for n := range r.local {
		names = append(names, n)
	}
	slices.Sort(names)
	r.dirty = false
	return protocol.PresenceSync{
		Op: "snapshot", Server: r.s.cfg.AppID, Room: r.name, Members: names,
		TTLMillis: ttl.Milliseconds(),
		First:     !r.sentFirst,
	}
}

// onMessage fans a room frame from the broker out to the local members: one
// encoded WebSocket frame, a non-blocking enqueue per member. With history,
// messages that carry a seq go through the ordered delivery (delivery.go);
// typing frames and seq-less announcements are fanned out as they come.
func (r *room) onMessage(m broker.Message) {
	s := r.s
	defer s.brokerIn.Add(1) // after the fan-out: tests rely on it
	var h protocol.Header
	ok := protocol.DecodeHeader(m.Data, &h) && h.Type == protocol.TypeMessage
	if ok && h.TS > 0 {
		if d := time.Now().UnixMilli() - h.TS; d >= 0 {
			s.metrics.latency.Observe(float64(d) / 1000)
		}
	}
	if ok && h.Seq > 0 && s.hist != nil {
		r.receiveLive(h.Seq, hashIDBytes(h.ID), m.Data)
		return
	}
	r.fanout(m.Data)
}

// onPresence applies another server's presence frame.
func (r *room) onPresence(m broker.Message) {
	var ps protocol.PresenceSync
	if err := json.Unmarshal(m.Data, &ps); err != nil || ps.Server == "" || ps.Server == r.s.cfg.AppID {
		return
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sub == nil {
		return // left meanwhile
	}
	switch ps.Op {
	case "snapshot":
		ttl := time.Duration(ps.TTLMillis) * time.Millisecond
		if ttl <= 0 {
			ttl = presenceTTLPeriods * r.s.cfg.PresenceInterval
		}
		if old, ok := r.remote[ps.Server]; ok && ps.First {
			// The server entered the room again without a "bye" (it
			// restarted, or handed its members over when it shut down):
			// its earlier list stays until it expires, so that members
			// still re-joining are not seen to leave and come back.
			r.remote[ps.Server+earlierList] = old
		}
		r.remote[ps.Server] = remoteMember{names: ps.Members, expires: now.Add(ttl)}
		r.list = nil
		_, known := r.heard[ps.Server]
		r.heard[ps.Server] = struct{}{}
		if (!known && !ps.First) || now.Before(r.discoverUntil) {
			// Names this server learns while it discovers the room, or
			// from a server it had not heard of that was in the room
			// before (not its first snapshot): members all along.
			for _, n := range ps.Members {
				if _, found := slices.BinarySearch(r.union, n); !found {
					r.quiet[n] = struct{}{}
				}
			}
		}
	case "sync":
		r.dirty = true
		r.s.kickPresence()
	case "bye":
		delete(r.remote, ps.Server)
		r.list = nil
	default:
		return
	}
	r.refreshLocked(now)
}

// refreshLocked recomputes the member list and, when it changed, sends a
// presence frame (encoded once) to the local members: the names that joined
// and left, and the whole list only in a room of at most
// protocol.PresenceListMax members (a full list to every member of a big room
// costs members² names per change). In a big room a change of more than
// protocol.PresenceDeltaMax names carries only the member count, and its
// frames are at least bigPresenceEvery apart: a change that comes sooner is
// sent when the room's timer (presenceLater) fires, with whatever else
// changed meanwhile. Local joins and leaves
// reach it through the debounced presence loop, so a burst of them costs each
// member one frame, not one per change.
//
// Names in r.quiet were in the room before this server learnt of them (it
// just entered the room, or first heard of their server): they are added
// without being named in joined, so a late joiner or a client that failed
// over is not told that everyone "joined". Such a frame carries members
// (in a big room the first protocol.PresenceListMax names, which replace
// the client's list: it cannot learn the added names from the deltas).
func (r *room) refreshLocked(now time.Time) {
	union := r.unionLocked(now)
	if slices.Equal(union, r.union) {
		clear(r.quiet)
		return
	}
	if wait := bigPresenceEvery - now.Sub(r.lastPresence); wait > 0 && max(len(union), len(r.union)) > protocol.PresenceListMax {
		// A big room: the change waits (and accumulates) until the timer.
		if !r.presenceDue {
			r.presenceDue = true
			if r.presenceLater == nil {
				r.presenceLater = time.AfterFunc(wait, r.refreshLater)
			} else {
				r.presenceLater.Reset(wait)
			}
		}
		return
	}
	r.lastPresence = now
	var joined, left []string
	quiet := 0
	for _, n := range union {
		if _, found := slices.BinarySearch(r.union, n); !found {
			if _, ok := r.quiet[n]; ok {
				quiet++
			} else {
				joined = append(joined, n)
			}
		}
	}
	clear(r.quiet)
	for _, n := range r.union {
		if _, found := slices.BinarySearch(union, n); !found {
			left = append(left, n)
		}
	}
	r.union, r.listShared = union, true
	p := protocol.Presence{Type: protocol.TypePresence, Room: r.name, Joined: joined, Left: left, MemberCount: len(union)}
	switch {
	case len(union) <= protocol.PresenceListMax:
		p.Members = union
	case len(joined)+len(left) > protocol.PresenceDeltaMax:
		// A burst in a big room: no names (N joins would otherwise send
		// every member the names of all who came after it). After leaves,
		// the first names of the list, which replace the client's: left
		// out, those who left would stay on its list.
		p.Joined, p.Left, p.NamesOmitted = nil, nil, true
		if len(left) > 0 || quiet > 0 {
			p.Members, p.MembersTruncated = union[:protocol.PresenceListMax], true
		}
	case quiet > 0:
		p.Members, p.MembersTruncated = union[:protocol.PresenceListMax], true
	}
	data, err := json.Marshal(p)
	if err != nil {
		return
	}
	f := engine.TextFrame(data)
	for _, c := range *r.members.Load() {
		c.Send(f)
	}
}

// refreshLater sends a big room's deferred presence change.
func (r *room) refreshLater() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.presenceDue {
		return // stopped or sent meanwhile
	}
	r.presenceDue = false
	if r.sub != nil {
		r.refreshLocked(time.Now())
	}
}

// unionLocked drops expired snapshots and returns the sorted member list:
// the local names and every live snapshot's. The list is cached (r.list)
// and must not be modified.
func (r *room) unionLocked(now time.Time) []string {
	for srv, rm := range r.remote {
		if now.After(rm.expires) {
			delete(r.remote, srv)
			r.list = nil
		}
	}
	if r.list != nil {
		return r.list
	}
	set := make(map[string]struct{}, len(r.local))
	for n := range r.local {
		set[n] = struct{}{}
	}
	for _, rm := range r.remote {
		for _, n := range rm.names {
			set[n] = struct{}{}
		}
	}
	union := make([]string, 0, len(set))
	for n := range set {
		union = append(union, n)
	}
	slices.Sort(union)
	r.list, r.listShared = union, false
	return union
}

// endedShare: the ended connections left in a room's fan-out list are
// dropped when they would make 1/endedShare of it.
const endedShare = 4

// earlierList suffixes a server's AppID in room.remote to keep the list it
// had before it entered the room again without a "bye".
const earlierList = "\x00earlier"

// presenceDiscovery is how long after subscribing to a room a server
// treats every name it learns as a member all along (no "joined" notice):
// the other servers answer its sync within presenceDebounce plus the
// broker's latency, and clients failing over from a dead server re-join
// within about a second (the web client's first retry waits under 0.5 s).
const presenceDiscovery = time.Second

// kickPresence asks the presence loop for an early snapshot; it never blocks.
func (s *Server) kickPresence() {
	select {
	case s.presenceKick <- struct{}{}:
	default:
	}
}

func (s *Server) roomList() []*room {
	s.mu.Lock()
	defer s.mu.Unlock()
	rs := make([]*room, 0, len(s.rooms))
	for _, r := range s.rooms {
		rs = append(rs, r)
	}
	return rs
}

// presenceLoop publishes every room's snapshot each PresenceInterval (and
// expires other servers' stale ones), and the changed rooms' snapshots
// shortly after a local change or a sync request.
func (s *Server) presenceLoop(ctx context.Context) {
	defer s.loopWG.Done()
	tick := time.NewTicker(s.cfg.PresenceInterval)
	defer tick.Stop()
	debounce := time.NewTimer(presenceDebounce)
	debounce.Stop()
	pending := false
	for {
		select {
		case <-ctx.Done():
			debounce.Stop()
			return
		case <-tick.C:
			s.publishSnapshots(ctx, false)
		case <-s.presenceKick:
			if !pending {
				pending = true
				debounce.Reset(presenceDebounce)
			}
		case <-debounce.C:
			pending = false
			s.publishSnapshots(ctx, true)
		}
	}
}

// publishSnapshots publishes the snapshot of every subscribed room (only
// the changed ones when onlyDirty), each built under its room's lock, all
// with one broker.PublishBatch made with no room locked: on Redis one round
// trip per 256 rooms, not one per room.
//
// A room that unsubscribes meanwhile publishes its last word ("bye", or a
// last snapshot) under presMu, which the batch holds: its snapshot in the
// batch goes out before that word, or not at all when the room
// unsubscribed before the batch took presMu (room.unsubs). A room's
// sentFirst is set once the batch that carried its first snapshot was
// published, unless it unsubscribed meanwhile (which cleared it).
func (s *Server) publishSnapshots(ctx context.Context, onlyDirty bool) {
	now := time.Now()
	ttl := presenceTTLPeriods * s.cfg.PresenceInterval
	var msgs []broker.Message
	var built []builtSnapshot
	for _, r := range s.roomList() {
		r.mu.Lock()
		if r.sub != nil && (!onlyDirty || r.dirty) {
			ps := r.snapshotOfLocked(ttl)
			if data, err := json.Marshal(ps); err == nil {
				msgs = append(msgs, broker.Message{Subject: r.psubject, Data: data})
				built = append(built, builtSnapshot{r: r, unsubs: r.unsubs.Load(), first: ps.First})
			}
			r.refreshLocked(now)
		}
		r.mu.Unlock()
	}
	if len(msgs) == 0 {
		return
	}
	s.presMu.Lock()
	n := 0
	for i, b := range built {
		if b.r.unsubs.Load() == b.unsubs {
			msgs[n], built[n] = msgs[i], b
			n++
		}
	}
	msgs, built = msgs[:n], built[:n]
	published := false
	if len(msgs) > 0 && !s.silent.Load() {
		if err := broker.PublishBatch(ctx, s.b, msgs); err != nil {
			s.log.Debug("server: publish presence snapshots", "rooms", len(msgs), "err", err)
		} else {
			published = true
		}
	}
	s.presMu.Unlock()
	if !published {
		return
	}
	for _, b := range built {
		if !b.first {
			continue
		}
		b.r.mu.Lock()
		if b.r.unsubs.Load() == b.unsubs {
			b.r.sentFirst = true
		}
		b.r.mu.Unlock()
	}
}

// builtSnapshot is a room's snapshot in publishSnapshots' batch: the room,
// its unsubscriptions then, and whether it is the first since the
// subscription.
type builtSnapshot struct {
	r      *room
	unsubs uint64
	first  bool
}
