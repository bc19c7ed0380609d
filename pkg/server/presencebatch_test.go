package server

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livechat/livechat/pkg/broker"
	"github.com/livechat/livechat/pkg/protocol"
)

// batchCounter counts a broker's presence snapshots by the call that
// carried them: Publish, or PublishBatch (it implements
// broker.BatchPublisher itself, which embedding alone would hide). fail
// makes PublishBatch fail; while hold is set, PublishBatch signals entered
// and waits for hold to be closed.
type batchCounter struct {
	broker.Broker
	published atomic.Int64 // snapshots sent with Publish
	batches   atomic.Int64 // PublishBatch calls
	batched   atomic.Int64 // snapshots in PublishBatch calls
	failed    atomic.Int64 // snapshots in failed PublishBatch calls
	fail      atomic.Bool

	mu      sync.Mutex
	hold    chan struct{}
	entered chan struct{}
}

func isSnapshot(data []byte) bool {
	var ps protocol.PresenceSync
	return json.Unmarshal(data, &ps) == nil && ps.Op == "snapshot"
}

func (c *batchCounter) Publish(ctx context.Context, subject string, data []byte) error {
	if strings.Contains(subject, ".presence.") && isSnapshot(data) {
		c.published.Add(1)
	}
	return c.Broker.Publish(ctx, subject, data)
}

func (c *batchCounter) PublishBatch(ctx context.Context, msgs []broker.Message) error {
	n := int64(0)
	for _, m := range msgs {
		if isSnapshot(m.Data) {
			n++
		}
	}
	c.batches.Add(1)
	c.batched.Add(n)
	c.mu.Lock()
	hold, entered := c.hold, c.entered
	c.mu.Unlock()
	if hold != nil {
		close(entered)
		<-hold
	}
	if c.fail.Load() {
		c.failed.Add(n)
		return errors.New("batchCounter: refused")
	}
	return broker.PublishBatch(ctx, c.Broker, msgs)
}

var _ broker.BatchPublisher = (*batchCounter)(nil)

// presenceWatch records the presence frames of every room under prefix.
type presenceWatch struct {
	mu  sync.Mutex
	got []protocol.PresenceSync
}

func watchPresence(t *testing.T, b broker.Broker, prefix string) *presenceWatch {
	t.Helper()
	w := &presenceWatch{}
	_, err := b.Subscribe(context.Background(), protocol.PresenceSubject(prefix, "*"), func(m broker.Message) {
		var ps protocol.PresenceSync
		if json.Unmarshal(m.Data, &ps) == nil {
			w.mu.Lock()
			w.got = append(w.got, ps)
			w.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// snapshots returns the snapshots recorded after the first skip frames.
func (w *presenceWatch) snapshots(skip int) (out []protocol.PresenceSync, total int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ps := range w.got[min(skip, len(w.got)):] {
		if ps.Op == "snapshot" {
			out = append(out, ps)
		}
	}
	return out, len(w.got)
}

func (w *presenceWatch) frames() []protocol.PresenceSync {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]protocol.PresenceSync(nil), w.got...)
}

// roomsClean reports whether no subscribed room of s waits for a snapshot.
func roomsClean(s *testServer, n int) bool {
	rooms := s.roomList()
	if len(rooms) != n {
		return false
	}
	for _, r := range rooms {
		r.mu.Lock()
		dirty := r.dirty || r.sub == nil
		r.mu.Unlock()
		if dirty {
			return false
		}
	}
	return true
}

// TestPresenceSnapshotsInOneBatch: a presence tick of a server with N
// rooms publishes their N snapshots with one PublishBatch call, none with
// Publish; every snapshot reaches the broker's subscribers, the first of
// each room marked First, the later ones not.
func TestPresenceSnapshotsInOneBatch(t *testing.T) {
	t.Parallel()
	prefix := testPrefix(t)
	mem := memBroker(t)
	b := &batchCounter{Broker: mem}
	w := watchPresence(t, mem, prefix)
	const n = 20
	ts, _ := presenceServer(t, b, prefix, n)
	// The debounced snapshots of the joins: each room's first.
	waitFor(t, 10*time.Second, "every room's first snapshot", func() bool {
		snaps, _ := w.snapshots(0)
		return len(snaps) >= n && roomsClean(ts, n)
	})
	first, seen := w.snapshots(0)
	if len(first) != n {
		t.Fatalf("%d snapshots after the joins, want %d (one per room)", len(first), n)
	}
	for _, ps := range first {
		if !ps.First {
			t.Errorf("room %s: its first snapshot is not marked First", ps.Room)
		}
	}

	batches, batched, published := b.batches.Load(), b.batched.Load(), b.published.Load()
	ts.publishSnapshots(context.Background(), false) // a tick
	if got := b.published.Load() - published; got != 0 {
		t.Errorf("a tick published %d snapshots with Publish, want 0", got)
	}
	if got := b.batches.Load() - batches; got != 1 {
		t.Errorf("a tick of %d rooms made %d PublishBatch calls, want 1", n, got)
	}
	if got := b.batched.Load() - batched; got != n {
		t.Errorf("the tick's batch held %d snapshots, want %d", got, n)
	}
	waitFor(t, 10*time.Second, "the tick's snapshots", func() bool {
		snaps, _ := w.snapshots(seen)
		return len(snaps) >= n
	})
	snaps, _ := w.snapshots(seen)
	rooms := map[string]bool{}
	for _, ps := range snaps {
		rooms[ps.Room] = true
		if ps.First {
			t.Errorf("room %s: a later snapshot is marked First", ps.Room)
		}
		if len(ps.Members) != 1 || ps.Members[0] != "alice" {
			t.Errorf("room %s: snapshot members %v, want [alice]", ps.Room, ps.Members)
		}
	}
	if len(snaps) != n || len(rooms) != n {
		t.Errorf("the tick delivered %d snapshots of %d rooms, want %d of %d", len(snaps), len(rooms), n, n)
	}
}

// TestPresenceFirstSnapshotAfterFailedBatch: when the batch with a room's
// first snapshot fails, the next snapshot is marked First again (sentFirst
// is set only once the batch was published), and the one after is not.
func TestPresenceFirstSnapshotAfterFailedBatch(t *testing.T) {
	t.Parallel()
	prefix := testPrefix(t)
	mem := memBroker(t)
	b := &batchCounter{Broker: mem}
	b.fail.Store(true)
	w := watchPresence(t, mem, prefix)
	const n = 5
	ts, _ := presenceServer(t, b, prefix, n)
	waitFor(t, 10*time.Second, "the failed batches of the joins", func() bool {
		return b.failed.Load() >= n && roomsClean(ts, n)
	})
	b.fail.Store(false)
	for round, wantFirst := range []bool{true, false} {
		_, seen := w.snapshots(0)
		ts.publishSnapshots(context.Background(), false)
		waitFor(t, 10*time.Second, "the snapshots", func() bool {
			snaps, _ := w.snapshots(seen)
			return len(snaps) >= n
		})
		snaps, _ := w.snapshots(seen)
		for _, ps := range snaps {
			if ps.First != wantFirst {
				t.Errorf("round %d, room %s: First = %v, want %v", round, ps.Room, ps.First, wantFirst)
			}
		}
	}
}

// TestPresenceByeAfterBatchInFlight: a room whose last member leaves while
// a batch holding its snapshot is being published says "bye" after that
// snapshot, never before (a snapshot after the bye would bring its members
// back on the other servers' lists for three presence intervals).
func TestPresenceByeAfterBatchInFlight(t *testing.T) {
	t.Parallel()
	prefix := testPrefix(t)
	mem := memBroker(t)
	b := &batchCounter{Broker: mem}
	w := watchPresence(t, mem, prefix)
	ts, c, r := lobbyServer(t, b, w, prefix)

	hold, entered := make(chan struct{}), make(chan struct{})
	b.mu.Lock()
	b.hold, b.entered = hold, entered
	b.mu.Unlock()
	tick := make(chan struct{})
	go func() {
		defer close(tick)
		ts.publishSnapshots(context.Background(), false)
	}()
	<-entered // the batch with lobby's snapshot is in flight
	c.sendJSON(protocol.Inbound{Type: protocol.TypeLeave, Room: "lobby"})
	waitFor(t, 10*time.Second, "the room to unsubscribe", func() bool { return r.unsubs.Load() == 1 })
	close(hold)
	<-tick
	checkPresenceOps(t, mem, w, prefix, "sync,snapshot,snapshot,bye")
}

// TestPresenceStaleSnapshotDropped: a snapshot built by a tick before its
// room unsubscribed (its last member left, "bye") is not published after
// all, whichever of the two publishes first.
func TestPresenceStaleSnapshotDropped(t *testing.T) {
	t.Parallel()
	prefix := testPrefix(t)
	mem := memBroker(t)
	w := watchPresence(t, mem, prefix)
	ts, c, r := lobbyServer(t, mem, w, prefix)
	r.mu.Lock()
	r.dirty = true // cleared when the tick has built the room's snapshot
	r.mu.Unlock()

	ts.presMu.Lock() // the tick waits to publish
	tick := make(chan struct{})
	go func() {
		defer close(tick)
		ts.publishSnapshots(context.Background(), false)
	}()
	waitFor(t, 10*time.Second, "the tick to build the snapshot", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return !r.dirty
	})
	c.sendJSON(protocol.Inbound{Type: protocol.TypeLeave, Room: "lobby"})
	waitFor(t, 10*time.Second, "the room to unsubscribe", func() bool { return r.unsubs.Load() == 1 })
	ts.presMu.Unlock()
	<-tick
	checkPresenceOps(t, mem, w, prefix, "sync,snapshot,bye")
}

// checkPresenceOps waits for server 1000's "bye" in lobby, then for a fence
// published after it (anything published before the fence has been
// delivered once it is), and checks the ops server 1000 published.
func checkPresenceOps(t *testing.T, mem broker.Broker, w *presenceWatch, prefix, want string) {
	t.Helper()
	waitFor(t, 10*time.Second, "the bye", func() bool {
		for _, ps := range w.frames() {
			if ps.Op == "bye" {
				return true
			}
		}
		return false
	})
	if err := mem.Publish(context.Background(), protocol.PresenceSubject(prefix, "lobby"), []byte(`{"op":"fence"}`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the fence", func() bool {
		f := w.frames()
		return f[len(f)-1].Op == "fence"
	})
	var ops []string
	for _, ps := range w.frames() {
		if ps.Server == "1000" {
			ops = append(ops, ps.Op)
		}
	}
	if got := strings.Join(ops, ","); got != want {
		t.Errorf("server 1000's presence frames: %s, want %s", got, want)
	}
}

// presenceServer starts server 1000 on b, with no presence tick of its own,
// and joins alice to rooms r0..r<n-1> on one connection.
func presenceServer(t *testing.T, b broker.Broker, prefix string, n int) (*testServer, *client) {
	t.Helper()
	ts := startServer(t, b, Config{AppID: "1000", Prefix: prefix, PresenceInterval: time.Hour})
	c := dial(t, ts.url)
	for i := range n {
		c.join("r"+strconv.Itoa(i), "alice")
	}
	return ts, c
}

// lobbyServer starts server 1000 on b with alice in lobby, and waits for
// the room's first snapshot.
func lobbyServer(t *testing.T, b broker.Broker, w *presenceWatch, prefix string) (*testServer, *client, *room) {
	t.Helper()
	ts := startServer(t, b, Config{AppID: "1000", Prefix: prefix, PresenceInterval: time.Hour})
	c := dial(t, ts.url)
	c.join("lobby", "alice")
	waitFor(t, 10*time.Second, "the first snapshot", func() bool {
		snaps, _ := w.snapshots(0)
		return len(snaps) == 1 && roomsClean(ts, 1)
	})
	return ts, c, ts.roomList()[0]
}
