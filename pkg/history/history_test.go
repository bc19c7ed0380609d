package history_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/livechat/livechat/pkg/broker"
	"github.com/livechat/livechat/pkg/broker/brokertest"
	"github.com/livechat/livechat/pkg/history"
	"github.com/livechat/livechat/pkg/history/historytest"
	"github.com/livechat/livechat/pkg/protocol"
)

func memoryBackend() historytest.Backend {
	return historytest.Backend{Bounded: true, New: func(_ testing.TB, o history.Options) func() history.Store {
		s := history.NewMemory(o)
		return func() history.Store { return s }
	}}
}

func redisBackend() historytest.Backend {
	return historytest.Backend{Bounded: true, Legacy: legacyRedis, New: func(t testing.TB, o history.Options) func() history.Store {
		u := brokertest.RedisURL(t)
		o.KeyPrefix = "livechat-test:" + brokertest.Prefix(t)
		return func() history.Store {
			s, err := history.Open(context.Background(), u, o)
			if err != nil {
				t.Fatalf("Open(%s): %v", u, err)
			}
			return s
		}
	}}
}

func postgresBackend() historytest.Backend {
	return historytest.Backend{Legacy: legacyPostgres, New: func(t testing.TB, o history.Options) func() history.Store {
		u := historytest.PostgresURL(t)
		return func() history.Store {
			s, err := history.Open(context.Background(), u, o)
			if err != nil {
				t.Fatalf("Open(%s): %v", u, err)
			}
			return s
		}
	}}
}

// sqliteBackend opens every instance on one file in t's temporary
// directory, as two stores of one node (or an operator command) would.
func sqliteBackend() historytest.Backend {
	return historytest.Backend{Bounded: true, Legacy: legacySQLite, New: func(t testing.TB, o history.Options) func() history.Store {
		u := "sqlite://" + filepath.Join(t.TempDir(), "history.db") // absolute: sqlite:///...
		return func() history.Store {
			s, err := history.Open(context.Background(), u, o)
			if err != nil {
				t.Fatalf("Open(%s): %v", u, err)
			}
			return s
		}
	}}
}

func TestMemory(t *testing.T)   { historytest.Run(t, memoryBackend()) }
func TestSQLite(t *testing.T)   { historytest.Run(t, sqliteBackend()) }
func TestRedis(t *testing.T)    { historytest.Run(t, redisBackend()) }
func TestPostgres(t *testing.T) { historytest.Run(t, postgresBackend()) }

// TestSQLiteKeepsHistoryAcrossReopen closes the store and opens the same
// file again, as a restarted node does: messages, the seq counter (also of
// a trimmed room) and dedup keys are still there.
func TestSQLiteKeepsHistoryAcrossReopen(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	u := "sqlite://" + filepath.Join(t.TempDir(), "h.db")
	opts := history.Options{MaxLen: 3}
	s, err := history.Open(ctx, u, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		m := &protocol.Message{Room: "r", Text: strconv.Itoa(i), ID: "id" + strconv.Itoa(i)}
		if seq, _, err := s.Append(ctx, m, "k"+strconv.Itoa(i)); err != nil || seq != uint64(i) {
			t.Fatalf("Append %d = %d, %v", i, seq, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = history.Open(ctx, u, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	if b, err := s.Bounds(ctx, "r"); err != nil || b != (history.Bounds{First: 3, Last: 5}) {
		t.Fatalf("Bounds after reopen = %+v, %v; want {3 5}", b, err)
	}
	ms, err := s.After(ctx, "r", 0, 10)
	if err != nil || len(ms) != 3 || ms[0].Text != "3" || ms[2].Text != "5" || ms[2].ID != "id5" {
		t.Fatalf("After(0) after reopen = %+v, %v", ms, err)
	}
	// A retry of a held message and of a trimmed one: both duplicates.
	retry := &protocol.Message{Room: "r", Text: "5", ID: "other"}
	if seq, dup, err := s.Append(ctx, retry, "k5"); err != nil || !dup || seq != 5 || retry.ID != "id5" {
		t.Fatalf("retry of 5 after reopen = %d, dup %v, %v, %+v", seq, dup, err, retry)
	}
	if seq, dup, err := s.Append(ctx, &protocol.Message{Room: "r", Text: "1"}, "k1"); err != nil || !dup || seq != 1 {
		t.Fatalf("retry of trimmed 1 after reopen = %d, dup %v, %v; want 1, dup", seq, dup, err)
	}
	if seq, dup, err := s.Append(ctx, &protocol.Message{Room: "r", Text: "6"}, "k6"); err != nil || dup || seq != 6 {
		t.Fatalf("Append after reopen = %d, dup %v, %v; want 6", seq, dup, err)
	}
}

// TestSQLiteURL: relative and absolute paths; a URL with anything else is
// refused; a directory that does not exist is an error naming the path.
func TestSQLiteURL(t *testing.T) {
	t.Chdir(t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, u := range []string{"sqlite://rel.db", "sqlite://" + filepath.Join(t.TempDir(), "abs.db")} {
		s, err := history.Open(ctx, u, history.Options{})
		if err != nil {
			t.Fatalf("Open(%q): %v", u, err)
		}
		if _, _, err := s.Append(ctx, &protocol.Message{Room: "r", Text: "x"}, ""); err != nil {
			t.Errorf("Append on %q: %v", u, err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	if _, err := os.Stat("rel.db"); err != nil {
		t.Errorf("sqlite://rel.db is not relative to the working directory: %v", err)
	}
	for _, u := range []string{"sqlite://", "sqlite:///x.db?mode=ro", "sqlite://u:p@x.db", "sqlite:///x.db#f"} {
		if _, err := history.Open(ctx, u, history.Options{}); !errors.Is(err, history.ErrUnsupportedURL) {
			t.Errorf("Open(%q) = %v, want ErrUnsupportedURL", u, err)
		}
	}
	missing := filepath.Join(t.TempDir(), "no", "such", "dir", "h.db")
	if _, err := history.Open(ctx, "sqlite://"+missing, history.Options{}); !errors.Is(err, history.ErrUnavailable) ||
		!strings.Contains(err.Error(), missing) {
		t.Errorf("Open in a missing directory = %v, want ErrUnavailable naming %s", err, missing)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, u := range []string{"nats://127.0.0.1:4222", "bogus", "", "http://x", "redis://u:p%zz@h"} {
		if _, err := history.Open(ctx, u, history.Options{}); !errors.Is(err, history.ErrUnsupportedURL) {
			t.Errorf("Open(%q) = %v, want ErrUnsupportedURL", u, err)
		}
	}
	// Unreachable backends: a clear error naming the URL, password redacted.
	for _, u := range []string{
		"redis://user:s3cret@127.0.0.1:1/0",
		"postgres://user:s3cret@127.0.0.1:1/test?sslmode=disable",
	} {
		_, err := history.Open(ctx, u, history.Options{})
		if !errors.Is(err, history.ErrUnavailable) {
			t.Errorf("Open(%q) = %v, want ErrUnavailable", u, err)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "127.0.0.1:1") {
			t.Errorf("Open error %q must name the address and hide the password", err)
		}
	}
}

func TestBoundsCovers(t *testing.T) {
	t.Parallel()
	cases := []struct {
		b     history.Bounds
		since uint64
		want  bool
	}{
		{history.Bounds{}, 0, true},  // empty room, fresh client
		{history.Bounds{}, 3, false}, // the store forgot the room
		{history.Bounds{First: 1, Last: 5}, 0, true},
		{history.Bounds{First: 1, Last: 5}, 5, true},
		{history.Bounds{First: 1, Last: 5}, 6, false},
		{history.Bounds{First: 4, Last: 9}, 2, false},
		{history.Bounds{First: 4, Last: 9}, 3, true},
		{history.Bounds{First: 0, Last: 9}, 8, false}, // everything trimmed
		{history.Bounds{First: 0, Last: 9}, 9, true},
	}
	for _, c := range cases {
		if got := c.b.Covers(c.since); got != c.want {
			t.Errorf("%+v.Covers(%d) = %v, want %v", c.b, c.since, got, c.want)
		}
	}
}

// TestRedisDown stops a store's own Redis: appends fail fast with
// ErrUnavailable and no seq, and succeed again after a restart.
func TestRedisDown(t *testing.T) {
	t.Parallel()
	u, stop, restart := brokertest.StartRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := history.Open(ctx, u, history.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	m := &protocol.Message{Room: "down", Text: "1"}
	if _, _, err := s.Append(ctx, m, "k1"); err != nil {
		t.Fatal(err)
	}
	stop()
	actx, acancel := context.WithTimeout(ctx, 3*time.Second)
	start := time.Now()
	seq, _, err := s.Append(actx, &protocol.Message{Room: "down", Text: "2"}, "k2")
	acancel()
	if !errors.Is(err, history.ErrUnavailable) || seq != 0 {
		t.Fatalf("Append with Redis down = %d, %v; want 0, ErrUnavailable", seq, err)
	}
	t.Logf("Append with Redis down failed after %v: %v", time.Since(start), err)
	if d := time.Since(start); d > 3500*time.Millisecond {
		t.Errorf("Append took %v with Redis down, want it bounded by the 3s context", d)
	}
	if _, err := s.After(ctx, "down", 0, 10); !errors.Is(err, history.ErrUnavailable) {
		t.Errorf("After with Redis down = %v, want ErrUnavailable", err)
	}
	restart()
	// This Redis has no persistence: the room starts again at seq 1, and
	// the script is loaded again (EVALSHA falls back to EVAL).
	seq, dup, err := s.Append(ctx, &protocol.Message{Room: "down", Text: "3"}, "k3")
	if err != nil || dup || seq != 1 {
		t.Fatalf("Append after restart = %d, %v, %v; want 1", seq, dup, err)
	}
}

// TestPostgresDown stops a store's own PostgreSQL: appends fail within
// their context with no seq; after a restart they succeed and the history,
// seq counter included, is still there.
func TestPostgresDown(t *testing.T) {
	t.Parallel()
	u, stop, restart := historytest.StartPostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := history.Open(ctx, u, history.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	if seq, _, err := s.Append(ctx, &protocol.Message{Room: "down", Text: "1"}, "k1"); err != nil || seq != 1 {
		t.Fatalf("Append = %d, %v", seq, err)
	}
	stop()
	actx, acancel := context.WithTimeout(ctx, 3*time.Second)
	start := time.Now()
	seq, _, err := s.Append(actx, &protocol.Message{Room: "down", Text: "2"}, "k2")
	acancel()
	if err == nil || seq != 0 {
		t.Fatalf("Append with PostgreSQL down = %d, %v; want an error and no seq", seq, err)
	}
	if !errors.Is(err, history.ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Append with PostgreSQL down = %v, want ErrUnavailable or a deadline error", err)
	}
	t.Logf("Append with PostgreSQL down failed after %v: %v", time.Since(start), err)
	if d := time.Since(start); d > 3500*time.Millisecond {
		t.Errorf("Append took %v with PostgreSQL down, want it bounded by the 3s context", d)
	}
	if _, err := s.Latest(ctx, "down", 10); !errors.Is(err, history.ErrUnavailable) {
		t.Errorf("Latest with PostgreSQL down = %v, want ErrUnavailable", err)
	}
	restart()
	// The retry of the failed send (same key) is stored once, as seq 2.
	seq, dup, err := s.Append(ctx, &protocol.Message{Room: "down", Text: "2"}, "k2")
	if err != nil || dup || seq != 2 {
		t.Fatalf("Append after restart = %d, %v, %v; want 2", seq, dup, err)
	}
	ms, err := s.After(ctx, "down", 0, 10)
	if err != nil || len(ms) != 2 || ms[0].Text != "1" || ms[1].Text != "2" {
		t.Fatalf("After(0) after restart = %+v, %v", ms, err)
	}
}

func TestURLForBroker(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"redis://:pw@10.0.0.1:6379/2": "redis://:pw@10.0.0.1:6379/2",
		"rediss://h:6380":             "rediss://h:6380",
		"memory://":                   "memory://",
		"nats://h:4222":               "memory://",
		"%zz":                         "memory://",
	} {
		if got := history.URLForBroker(in); got != want {
			t.Errorf("URLForBroker(%q) = %q, want %q", in, got, want)
		}
	}
}

// blockingStore is a store that does not declare NonBlocking.
type blockingStore struct{ history.Store }

// TestNeverBlocks: the in-process store declares that it never blocks; a
// store that does not say so (SQLite, Redis, PostgreSQL, a wrapper) may
// block.
func TestNeverBlocks(t *testing.T) {
	m := history.NewMemory(history.Options{})
	t.Cleanup(func() { _ = m.Close() })
	if !history.NeverBlocks(m) {
		t.Error("the memory store may block")
	}
	if history.NeverBlocks(blockingStore{m}) {
		t.Error("a store that declares nothing never blocks")
	}
	sq, err := history.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "h.db"), history.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sq.Close() })
	if history.NeverBlocks(sq) {
		t.Error("the SQLite store writes to disk, it must not declare NeverBlocks")
	}
}

// TestRedisAppendPublish: the Redis store's AppendPublish publishes a new
// message, with its seq, on the broker's channel in the append's round
// trip, as the bytes the server would publish; a duplicate is stored and
// published once.
func TestRedisAppendPublish(t *testing.T) {
	t.Parallel()
	u := brokertest.RedisURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := history.Open(ctx, u, history.Options{KeyPrefix: "livechat-test:" + brokertest.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	b, err := broker.Open(ctx, u, broker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close() }()
	subject := brokertest.Prefix(t) + ".room.r1"
	got := make(chan []byte, 10)
	sub, err := b.Subscribe(ctx, subject, func(m broker.Message) { got <- m.Data })
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	ap, ok := s.(history.AppendPublisher)
	if !ok {
		t.Fatalf("%T is no AppendPublisher", s)
	}
	for i, text := range []string{"one", `two "quoted" <b> ünï 😀`} {
		m := &protocol.Message{Type: protocol.TypeMessage, Room: "r1", ID: "id" + strconv.Itoa(i), From: "a", Text: text, Server: "s1", CID: "c" + strconv.Itoa(i)}
		seq, dup, err := ap.AppendPublish(ctx, m, "a\x00c"+strconv.Itoa(i), subject)
		if err != nil || dup || seq != uint64(i+1) || m.Seq != seq {
			t.Fatalf("AppendPublish = %d, %v, %v (m.Seq %d); want %d", seq, dup, err, m.Seq, i+1)
		}
		want := protocol.AppendMessage(nil, m)
		select {
		case data := <-got:
			if string(data) != string(want) {
				t.Errorf("published\n %s\nwant\n %s", data, want)
			}
		case <-ctx.Done():
			t.Fatalf("message %d not published", seq)
		}
	}
	// A retry: acknowledged as the original, not published again.
	m := &protocol.Message{Type: protocol.TypeMessage, Room: "r1", ID: "other", From: "a", Text: "one", Server: "s1", CID: "c0"}
	seq, dup, err := ap.AppendPublish(ctx, m, "a\x00c0", subject)
	if err != nil || !dup || seq != 1 || m.ID != "id0" {
		t.Fatalf("retried AppendPublish = %d, %v, %v, id %q; want 1, dup, id0", seq, dup, err, m.ID)
	}
	// A plain Append publishes nothing; the message after it shows that
	// nothing else came meanwhile (Pub/Sub keeps the order).
	if _, _, err := s.Append(ctx, &protocol.Message{Room: "r1", Text: "quiet"}, ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ap.AppendPublish(ctx, &protocol.Message{Room: "r1", ID: "last", Text: "last"}, "", subject); err != nil {
		t.Fatal(err)
	}
	select {
	case data := <-got:
		var h protocol.Header
		if !protocol.DecodeHeader(data, &h) || string(h.ID) != "last" || h.Seq != 4 {
			t.Errorf("after the duplicate and the plain append got %s, want the message \"last\" with seq 4", data)
		}
	case <-ctx.Done():
		t.Fatal("last message not published")
	}
	if _, _, err := ap.AppendPublish(ctx, &protocol.Message{Room: "r1", Text: "x"}, "", ""); !errors.Is(err, history.ErrInvalid) {
		t.Errorf("AppendPublish without a channel = %v, want ErrInvalid", err)
	}
}

// LastSeqs on Redis reads many rooms in pipelined chunks: more rooms than
// one chunk holds, some with messages, in the caller's order.
func TestRedisLastSeqsManyRooms(t *testing.T) {
	t.Parallel()
	s := redisBackend().New(t, history.Options{})()
	t.Cleanup(func() { _ = s.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rooms := make([]string, 1100)
	want := make([]uint64, len(rooms))
	for i := range rooms {
		rooms[i] = "many" + strconv.Itoa(i)
		if i%97 == 0 {
			for j := range i%3 + 1 {
				m := &protocol.Message{Room: rooms[i], From: "a", Text: strconv.Itoa(j)}
				if _, _, err := s.Append(ctx, m, ""); err != nil {
					t.Fatal(err)
				}
			}
			want[i] = uint64(i%3 + 1)
		}
	}
	got, err := history.LastSeqs(ctx, s, rooms)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("LastSeqs = %v, %v", got, err)
	}
}
