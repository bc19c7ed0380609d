//go:build unix

package tests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// This file is the client model of the fault tests: a "resilient client"
// that behaves as docs/PROTOCOL.md ("Delivery guarantees", "What the client
// must do") asks of a client, as the web client does.
//
// Receiving: it joins its room with since = the last seq it holds, keeps
// every message by seq and checks each connection's stream: after a joined
// frame the messages must come as since+1, since+2, ... (no gap, no
// duplicate, no reordering). A hole (the server skipped seqs, or a
// truncated replay) is recorded and then filled with history requests, so
// the end state can still be compared. On a disconnect it reconnects
// through the load balancer with a backoff and re-joins with since.
//
// Sending: every message gets a unique cid; the client keeps it until it is
// acknowledged and resends it with the SAME cid after an "unavailable"
// error, after a reconnect, or when no answer came within ackTimeout. It
// records every ack (id, seq).

const (
	// ackTimeout is how long a send may stay unanswered on a live
	// connection before the client resends it (same cid).
	ackTimeout = 5 * time.Second
	// retryDelay is the wait before resending after an "unavailable" error.
	retryDelay = 200 * time.Millisecond
	// maxInFlight bounds the unacknowledged sends: the client's outbox.
	maxInFlight = 50
	// rejoinDelay is the wait before re-joining after a failed join or a
	// replay the server could not read.
	rejoinDelay = 300 * time.Millisecond
)

// rframe is the union of the server frames the resilient client reads.
type rframe struct {
	Type       string   `json:"type"`
	Room       string   `json:"room"`
	ID         string   `json:"id"`
	CID        string   `json:"cid"`
	Seq        uint64   `json:"seq"`
	Server     string   `json:"server"`
	Code       string   `json:"code"`
	Message    string   `json:"message"`
	LastSeq    uint64   `json:"last_seq"`
	FirstSeq   uint64   `json:"first_seq"`
	ReplayFrom uint64   `json:"replay_from"`
	Truncated  bool     `json:"truncated"`
	Reset      bool     `json:"reset"`
	More       bool     `json:"more"`
	Messages   []rframe `json:"messages"`
}

// ackRec is an acknowledged send.
type ackRec struct {
	id  string
	seq uint64
	at  time.Time
}

// outMsg is a send waiting for its ack.
type outMsg struct {
	cid, text string
	idx       int       // position in the client's sequence of sends
	sentAt    time.Time // last attempt on the current connection; zero: not sent on it
	retryAt   time.Time // not before (after an error)
}

// rclient is one resilient client. Its run goroutine owns the connection
// and all state; mu guards what the test reads while it runs.
type rclient struct {
	name, room, url string
	total           int           // messages to send
	interval        time.Duration // pace of sends: one per interval
	// urls, when set, are the servers the client dials directly instead of
	// url: urls[0] first, the next one after a failed dial or, with
	// failover, after a send refused as "unavailable" (a server cut off
	// from its broker and store refuses sends, and closes its clients once
	// the loss lasts --broker-grace).
	urls     []string
	failover bool

	done chan struct{} // closed when run returns

	mu          sync.Mutex
	held        map[uint64]string // seq -> id of every message held
	high        uint64            // every seq 1..high is held
	acked       map[string]ackRec // cid -> ack
	out         map[string]*outMsg
	next        int      // index of the next new send
	violations  []string // stream checks that failed
	holes       int      // seqs missing from a connection's stream (filled from history)
	attempts    int      // send frames written, resends included
	resends     int
	ackTimeouts int
	errors      map[string]int // error frames by code
	closes      map[int]int    // connection ends by close code (1006: abnormal)
	reconnects  int
	dialFails   int
	servers     []string    // APPID of each connection, in order
	cur         int         // index in urls of the server to dial
	failovers   []time.Time // when the client left a server that refused a send
	joinedAt    []time.Time // every joined frame
	lastMsgAt   time.Time   // when the last new message arrived
	maxPause    time.Duration
	lastErr     error
}

func newRClient(name, room, url string, total int, interval time.Duration) *rclient {
	return &rclient{
		name: name, room: room, url: url, total: total, interval: interval,
		done:  make(chan struct{}),
		held:  map[uint64]string{},
		acked: map[string]ackRec{}, out: map[string]*outMsg{},
		errors: map[string]int{}, closes: map[int]int{},
	}
}

// run connects, and reconnects with backoff, until ctx ends.
func (c *rclient) run(ctx context.Context) {
	defer close(c.done)
	backoff := 50 * time.Millisecond
	for first := true; ctx.Err() == nil; first = false {
		if !first {
			c.mu.Lock()
			c.reconnects++
			c.mu.Unlock()
		}
		ws, server, err := c.dial(ctx)
		if err != nil {
			c.mu.Lock()
			c.dialFails++
			c.lastErr = err
			c.nextLocked()
			c.mu.Unlock()
			// The client's reconnect backoff (with jitter), not a synchronisation.
			if !sleepCtx(ctx, backoff+time.Duration(rand.Int64N(int64(backoff)))) {
				return
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		c.session(ctx, ws, server)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// nextLocked makes the client dial the next of its urls. c.mu must be held.
func (c *rclient) nextLocked() {
	if len(c.urls) > 0 {
		c.cur = (c.cur + 1) % len(c.urls)
	}
}

func (c *rclient) dial(ctx context.Context) (*websocket.Conn, string, error) {
	url := c.url
	c.mu.Lock()
	if len(c.urls) > 0 {
		url = c.urls[c.cur]
	}
	c.mu.Unlock()
	d := websocket.Dialer{HandshakeTimeout: 3 * time.Second}
	ws, resp, err := d.DialContext(ctx, url, nil)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		return nil, "", fmt.Errorf("dial: %w", err)
	}
	if err := ws.SetReadDeadline(time.Now().Add(3 * time.Second)); err != nil {
		_ = ws.Close()
		return nil, "", fmt.Errorf("deadline: %w", err)
	}
	var w rframe
	if err := ws.ReadJSON(&w); err != nil || w.Type != "welcome" {
		_ = ws.Close()
		return nil, "", fmt.Errorf("welcome: %+v: %w", w, err)
	}
	if err := ws.SetReadDeadline(time.Time{}); err != nil {
		_ = ws.Close()
		return nil, "", fmt.Errorf("deadline: %w", err)
	}
	return ws, w.Server, nil
}

// inbound is what the reader goroutine hands to the session: a frame, or
// the end of the connection (err set).
type inbound struct {
	f   rframe
	err error
}

// session runs one connection until it ends or ctx does.
func (c *rclient) session(ctx context.Context, ws *websocket.Conn, server string) {
	c.mu.Lock()
	c.servers = append(c.servers, server)
	for _, m := range c.out {
		m.sentAt = time.Time{} // to be resent on this connection
	}
	c.mu.Unlock()

	// Large enough for a whole run, so the reader never pushes back on the
	// server (which would disconnect this client as slow).
	in := make(chan inbound, 16384)
	go func() {
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				in <- inbound{err: err}
				close(in)
				return
			}
			var f rframe
			if err := json.Unmarshal(data, &f); err != nil {
				f = rframe{Type: "unparsable", Message: string(data)}
			}
			in <- inbound{f: f}
		}
	}()
	s := &stream{c: c, ws: ws}
	defer func() {
		_ = ws.Close()
		for range in { // wait for the reader to end
		}
	}()
	s.join()
	tick := time.NewTicker(c.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
			return
		case ev := <-in:
			if ev.err != nil {
				code := websocket.CloseAbnormalClosure
				var ce *websocket.CloseError
				if errors.As(ev.err, &ce) {
					code = ce.Code
				}
				c.mu.Lock()
				c.closes[code]++
				c.mu.Unlock()
				return
			}
			if err := s.handle(ev.f); err != nil {
				return
			}
		case <-tick.C:
			if err := s.tick(); err != nil {
				return
			}
		}
	}
}

// stream is the state of one connection.
type stream struct {
	c      *rclient
	ws     *websocket.Conn
	state  int       // joining, in, leaving
	since  uint64    // since of the pending join
	expect uint64    // next seq this connection must deliver (state in)
	wait   time.Time // no join before (after a failed join)
	// degraded: the replay failed, the stream has a hole the client is
	// about to fix by leaving and re-joining; its messages are not checked.
	degraded bool
}

const (
	stJoining = iota
	stIn
	stLeaving
	stOut // must join again at s.wait
)

func (s *stream) write(v any) error {
	if err := s.ws.SetWriteDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return fmt.Errorf("deadline: %w", err)
	}
	if err := s.ws.WriteJSON(v); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

func (s *stream) join() {
	s.c.mu.Lock()
	s.since = s.c.high
	s.c.mu.Unlock()
	s.state = stJoining
	s.degraded = false
	_ = s.write(map[string]any{"type": "join", "room": s.c.room, "name": s.c.name, "since": s.since})
}

func (c *rclient) violate(format string, args ...any) {
	if len(c.violations) < 50 {
		c.violations = append(c.violations, fmt.Sprintf(format, args...))
	}
}

// holdLocked records a message and reports a second id for one seq as a
// violation. c.mu must be held.
func (c *rclient) holdLocked(seq uint64, id string) {
	if old, ok := c.held[seq]; ok {
		if old != id {
			c.violate("seq %d is %s and %s", seq, old, id)
		}
		return
	}
	c.held[seq] = id
	now := time.Now()
	if !c.lastMsgAt.IsZero() {
		c.maxPause = max(c.maxPause, now.Sub(c.lastMsgAt))
	}
	c.lastMsgAt = now
	for c.held[c.high+1] != "" {
		c.high++
	}
}

func (s *stream) handle(f rframe) error {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	switch f.Type {
	case "joined":
		if f.Room != c.room {
			return nil
		}
		c.joinedAt = append(c.joinedAt, time.Now())
		s.state = stIn
		s.expect = s.since + 1
		if f.Reset {
			c.violate("joined with since %d: reset (the store forgot the room; last_seq %d)", s.since, f.LastSeq)
		}
		if f.Truncated {
			// Held messages below replay_from: fetch them with history.
			c.holes += int(f.ReplayFrom - s.expect)
			s.expect = f.ReplayFrom
			c.mu.Unlock()
			err := s.write(map[string]any{"type": "history", "room": c.room, "before": f.ReplayFrom, "limit": 100})
			c.mu.Lock()
			return err
		}
	case "left":
		if f.Room == c.room && s.state == stLeaving {
			s.state = stOut
		}
	case "message":
		if f.Room != c.room || s.state != stIn {
			return nil
		}
		if f.Seq == 0 {
			c.violate("message %s without seq", f.ID)
			return nil
		}
		switch {
		case s.degraded:
		case f.Seq == s.expect:
		case f.Seq < s.expect:
			c.violate("connection %d (server %s): seq %d after %d (duplicate or reordered)", len(c.servers), c.servers[len(c.servers)-1], f.Seq, s.expect-1)
		default:
			c.violate("connection %d (server %s): seq %d after %d (hole of %d)", len(c.servers), c.servers[len(c.servers)-1], f.Seq, s.expect-1, f.Seq-s.expect)
			c.holes += int(f.Seq - s.expect)
			before, limit := f.Seq, int(min(f.Seq-s.expect, 100))
			c.mu.Unlock()
			err := s.write(map[string]any{"type": "history", "room": c.room, "before": before, "limit": limit})
			c.mu.Lock()
			if err != nil {
				return err
			}
		}
		if f.Seq >= s.expect {
			s.expect = f.Seq + 1
		}
		c.holdLocked(f.Seq, f.ID)
	case "history":
		if f.Room != c.room {
			return nil
		}
		for _, m := range f.Messages {
			c.holdLocked(m.Seq, m.ID)
		}
		// Held ones further down (a hole over 100 messages): the next page.
		if len(f.Messages) > 0 && f.More && f.Messages[0].Seq > c.high+1 {
			c.mu.Unlock()
			err := s.write(map[string]any{"type": "history", "room": c.room, "before": f.Messages[0].Seq, "limit": 100})
			c.mu.Lock()
			return err
		}
	case "ack":
		m := c.out[f.CID]
		if prev, ok := c.acked[f.CID]; ok {
			if prev.id != f.ID || prev.seq != f.Seq {
				c.violate("cid %s acknowledged as %s/%d and as %s/%d", f.CID, prev.id, prev.seq, f.ID, f.Seq)
			}
			return nil
		}
		if m == nil {
			c.violate("ack for unknown cid %q", f.CID)
			return nil
		}
		if f.Seq == 0 {
			c.violate("ack for %s without seq", f.CID)
		}
		c.acked[f.CID] = ackRec{id: f.ID, seq: f.Seq, at: time.Now()}
		delete(c.out, f.CID)
	case "error":
		c.errors[f.Code]++
		switch {
		case f.CID != "":
			if m := c.out[f.CID]; m != nil {
				m.sentAt, m.retryAt = time.Time{}, time.Now().Add(retryDelay)
			}
			if c.failover && f.Code == "unavailable" && len(c.urls) > 1 {
				// Resend on another server (the same cid): leave this one.
				c.failovers = append(c.failovers, time.Now())
				c.nextLocked()
				return errFailover
			}
		case f.Room == c.room && s.state == stJoining:
			// Could not join: try again shortly.
			s.state, s.wait = stOut, time.Now().Add(rejoinDelay)
		case f.Room == c.room && s.state == stIn && strings.Contains(f.Message, "replay"):
			// Joined, but the replay failed: live messages follow a
			// hole. Leave and re-join with since.
			s.degraded = true
			s.state, s.wait = stLeaving, time.Now().Add(rejoinDelay)
		}
	}
	return nil
}

// errFailover ends a session whose server refused a send (failover).
var errFailover = errors.New("server refused a send: failing over")

// tick sends one frame when one is due: a join, a resend, or a new message.
func (s *stream) tick() error {
	c := s.c
	now := time.Now()
	switch s.state {
	case stLeaving:
		if !s.wait.IsZero() && now.After(s.wait) {
			s.wait = time.Time{}
			return s.write(map[string]any{"type": "leave", "room": c.room})
		}
		return nil
	case stOut:
		if now.After(s.wait) {
			s.join()
		}
		return nil
	case stJoining:
		return nil
	}
	c.mu.Lock()
	var due *outMsg
	for _, m := range c.out {
		if (m.sentAt.IsZero() && now.After(m.retryAt)) || (!m.sentAt.IsZero() && now.Sub(m.sentAt) > ackTimeout) {
			if due == nil || m.idx < due.idx {
				due = m
			}
		}
	}
	if due != nil {
		c.resends++
		if !due.sentAt.IsZero() {
			c.ackTimeouts++
		}
	} else if c.next < c.total && len(c.out) < maxInFlight {
		due = &outMsg{cid: fmt.Sprintf("%s-%d", c.name, c.next), text: fmt.Sprintf("%s #%d", c.name, c.next), idx: c.next}
		c.out[due.cid] = due
		c.next++
	}
	if due == nil {
		c.mu.Unlock()
		return nil
	}
	due.sentAt = now
	c.attempts++
	cid, text := due.cid, due.text
	c.mu.Unlock()
	return s.write(map[string]any{"type": "send", "room": c.room, "text": text, "cid": cid})
}

// rstats is a snapshot of a client's figures.
type rstats struct {
	acked, sent, attempts, resends, ackTimeouts, holes, reconnects, dialFails, held int
	high                                                                            uint64
	maxPause                                                                        time.Duration
	errors                                                                          map[string]int
	closes                                                                          map[int]int
	violations                                                                      []string
}

func (c *rclient) stats() rstats {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := rstats{
		acked: len(c.acked), sent: c.next, attempts: c.attempts, resends: c.resends, ackTimeouts: c.ackTimeouts,
		holes: c.holes, reconnects: c.reconnects, dialFails: c.dialFails, held: len(c.held), high: c.high, maxPause: c.maxPause,
		errors: map[string]int{}, closes: map[int]int{}, violations: append([]string(nil), c.violations...),
	}
	for k, v := range c.errors {
		st.errors[k] = v
	}
	for k, v := range c.closes {
		st.closes[k] = v
	}
	return st
}

// fleet is the clients of one test.
type fleet struct {
	clients []*rclient
	cancel  context.CancelFunc
}

// startFleet starts rooms×perRoom clients through url, each sending total
// messages, one per interval, to its room (rooms r0, r1, ...).
func startFleet(url string, rooms, perRoom, total int, interval time.Duration) *fleet {
	ctx, cancel := context.WithCancel(context.Background())
	f := &fleet{cancel: cancel}
	for r := range rooms {
		for i := range perRoom {
			c := newRClient(fmt.Sprintf("u%d-%d", r, i), fmt.Sprintf("r%d", r), url, total, interval)
			f.clients = append(f.clients, c)
		}
	}
	for _, c := range f.clients {
		go c.run(ctx)
	}
	return f
}

// stop ends every client and waits for their goroutines.
func (f *fleet) stop() {
	f.cancel()
	for _, c := range f.clients {
		<-c.done
	}
}

// ackedCount is the number of acknowledged sends over all clients.
func (f *fleet) ackedCount() int {
	n := 0
	for _, c := range f.clients {
		c.mu.Lock()
		n += len(c.acked)
		c.mu.Unlock()
	}
	return n
}

// allJoined reports whether every client has joined at least once.
func (f *fleet) allJoined() bool {
	for _, c := range f.clients {
		c.mu.Lock()
		n := len(c.joinedAt)
		c.mu.Unlock()
		if n == 0 {
			return false
		}
	}
	return true
}

// roomAcks gathers the acks of each room: seq -> id, with conflicts.
func (f *fleet) roomAcks() (map[string]map[uint64]string, []string) {
	rooms := map[string]map[uint64]string{}
	var conflicts []string
	for _, c := range f.clients {
		c.mu.Lock()
		m := rooms[c.room]
		if m == nil {
			m = map[uint64]string{}
			rooms[c.room] = m
		}
		for cid, a := range c.acked {
			if old, ok := m[a.seq]; ok && old != a.id {
				conflicts = append(conflicts, fmt.Sprintf("room %s seq %d acknowledged as %s and as %s (cid %s)", c.room, a.seq, old, a.id, cid))
			}
			m[a.seq] = a.id
		}
		c.mu.Unlock()
	}
	return rooms, conflicts
}

// caughtUp reports whether every client holds every acknowledged message
// of its room.
func (f *fleet) caughtUp() bool {
	rooms, _ := f.roomAcks()
	for _, c := range f.clients {
		c.mu.Lock()
		ok := true
		for seq := range rooms[c.room] {
			if _, held := c.held[seq]; !held {
				ok = false
				break
			}
		}
		c.mu.Unlock()
		if !ok {
			return false
		}
	}
	return true
}

// verify compares every client's messages with the acks of its room: the
// same seqs, 1..N without a gap, the same ids, and a clean stream. It
// returns the problems, at most a few per client.
func (f *fleet) verify() []string {
	rooms, problems := f.roomAcks()
	for room, acks := range rooms {
		n := uint64(len(acks))
		for seq := uint64(1); seq <= n; seq++ {
			if _, ok := acks[seq]; !ok {
				problems = append(problems, fmt.Sprintf("room %s: %d messages acknowledged but seq %d is not among them", room, n, seq))
				break
			}
		}
	}
	for _, c := range f.clients {
		c.mu.Lock()
		acks := rooms[c.room]
		var bad []string
		for seq, id := range acks {
			if got, ok := c.held[seq]; !ok {
				bad = append(bad, fmt.Sprintf("missing seq %d (%s)", seq, id))
			} else if got != id {
				bad = append(bad, fmt.Sprintf("seq %d is %s, acknowledged as %s", seq, got, id))
			}
		}
		for seq, id := range c.held {
			if _, ok := acks[seq]; !ok {
				bad = append(bad, fmt.Sprintf("holds seq %d (%s) that nobody got an ack for", seq, id))
			}
		}
		sort.Strings(bad)
		if len(bad) > 5 {
			bad = append(bad[:5], fmt.Sprintf("... %d more", len(bad)-5))
		}
		for _, b := range bad {
			problems = append(problems, fmt.Sprintf("%s (room %s): %s", c.name, c.room, b))
		}
		for _, v := range c.violations {
			problems = append(problems, fmt.Sprintf("%s (room %s): %s", c.name, c.room, v))
		}
		c.mu.Unlock()
	}
	return problems
}

// totals sums the figures of every client.
func (f *fleet) totals() rstats {
	t := rstats{errors: map[string]int{}, closes: map[int]int{}}
	for _, c := range f.clients {
		s := c.stats()
		t.acked += s.acked
		t.sent += s.sent
		t.attempts += s.attempts
		t.resends += s.resends
		t.ackTimeouts += s.ackTimeouts
		t.holes += s.holes
		t.reconnects += s.reconnects
		t.dialFails += s.dialFails
		t.held += s.held
		t.maxPause = max(t.maxPause, s.maxPause)
		for k, v := range s.errors {
			t.errors[k] += v
		}
		for k, v := range s.closes {
			t.closes[k] += v
		}
		t.violations = append(t.violations, s.violations...)
	}
	return t
}

// ackPause returns the longest time after from in which no client got an
// ack, and when it began.
func (f *fleet) ackPause(from time.Time) (time.Duration, time.Time) {
	var ts []time.Time
	for _, c := range f.clients {
		c.mu.Lock()
		for _, a := range c.acked {
			ts = append(ts, a.at)
		}
		c.mu.Unlock()
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	var longest time.Duration
	var at time.Time
	prev := from
	for _, x := range ts {
		if x.Before(from) {
			continue
		}
		if d := x.Sub(prev); d > longest {
			longest, at = d, prev
		}
		prev = x
	}
	return longest, at
}

// firstAckAfter returns the first ack any client received at or after t
// (zero when none).
func (f *fleet) firstAckAfter(t time.Time) time.Time {
	var first time.Time
	for _, c := range f.clients {
		c.mu.Lock()
		for _, a := range c.acked {
			if !a.at.Before(t) && (first.IsZero() || a.at.Before(first)) {
				first = a.at
			}
		}
		c.mu.Unlock()
	}
	return first
}
