// Package history gives every chat room a sequence of numbered messages: an
// append assigns the room's next sequence number (seq) and stores the
// message, and reads return a room's messages after a seq, the latest N or
// the N before a seq. A server persists a send here first, then acknowledges
// it to the sender with its seq, then publishes it; a client that reconnects
// anywhere asks for the messages after the last seq it saw.
//
// Four backends implement Store, chosen by URL in Open:
//
//   - memory:// keeps a bounded history in this process (one node, tests).
//   - sqlite:///abs/file.db (sqlite://rel/file.db) keeps a bounded history
//     of one node in a data file that survives restarts, trimmed like
//     memory on every append; one IMMEDIATE transaction per append.
//   - redis:// (rediss://), or redis+cluster:// (rediss+cluster://) on a
//     Redis Cluster, keeps a shared, bounded history: per room a seq
//     counter and a sorted set scored by seq, trimmed to Options.MaxLen
//     messages and Options.MaxAge on every append, written by one Lua
//     script so appends from many servers are atomic. Appends arriving
//     while a pipeline is in flight are sent together in the next one.
//   - postgres:// (postgresql://) keeps a durable, unbounded history. Appends
//     arriving while a transaction is in flight are written together in the
//     next one (group commit): one fsync per batch, not per message.
//
// Guarantees shared by every backend, checked by the conformance suite in
// historytest:
//
//   - Seqs of a room start at 1 and increase by exactly one per stored
//     message, also with many goroutines and many servers appending to the
//     same room. Rooms are independent.
//   - An append that returned a seq is stored; an append that returned an
//     error may or may not be stored (a timeout during commit is ambiguous),
//     so a caller retries with the same dedup key and gets the original seq.
//   - Once a seq is visible to a read, every lower seq of the room that is
//     still held is visible too: reads never see holes, only a trimmed head.
//   - Reads return messages in ascending seq order with Seq set, every
//     other field as appended (the sender's User and Guest included;
//     messages stored before those existed read back without them).
//
// All methods of a Store are safe for concurrent use.
package history

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/livechat/livechat/internal/redisurl"
	"github.com/livechat/livechat/pkg/protocol"
)

// Errors returned by stores. Compare with errors.Is.
var (
	// ErrClosed is returned by every call on a closed Store.
	ErrClosed = errors.New("history: closed")
	// ErrUnsupportedURL is returned by Open for an unknown scheme or a
	// malformed URL.
	ErrUnsupportedURL = errors.New("history: unsupported URL")
	// ErrUnavailable wraps every error caused by a backend that cannot be
	// reached or failed (Redis or PostgreSQL down, a timeout). The outcome
	// of an Append that returns it is unknown: retry with the same dedup key.
	ErrUnavailable = errors.New("history: store unavailable")
	// ErrInvalid wraps errors about arguments: an invalid room name, a dedup
	// key that is too long, a nil message, a field that is not valid UTF-8
	// or holds a NUL byte (PostgreSQL cannot store it).
	ErrInvalid = errors.New("history: invalid argument")
)

// MaxPage caps the number of messages one read returns; larger limits are
// lowered to it.
const MaxPage = 1000

// MaxDedupKeyLen bounds the dedup key given to Append, in bytes.
const MaxDedupKeyLen = 256

// NonBlocking is the capability of a store whose calls never wait on a
// network or a disk (the in-process one): a caller may then call it
// without a deadline, and from a goroutine that must not wait long.
type NonBlocking interface {
	// NeverBlocks reports whether the store's calls never wait.
	NeverBlocks() bool
}

// NeverBlocks reports whether s declares that its calls never wait
// (NonBlocking); a store that does not say so may block.
func NeverBlocks(s Store) bool {
	nb, ok := s.(NonBlocking)
	return ok && nb.NeverBlocks()
}

// AppendPublisher is the capability of a store that can publish a message
// in the round trip that appends it: the Redis store, whose append script
// then also PUBLISHes the message's frame, with its seq, on a channel of
// the same Redis. A server whose broker is that Redis (its Pub/Sub
// channels are the broker's subjects) uses it instead of Append followed
// by a Publish: one round trip and one command per message instead of two,
// and no window in which a message is stored but not yet published.
type AppendPublisher interface {
	// AppendPublish is Append, and when the message is new (not dup) the
	// store publishes on channel, atomically with the append, the frame
	// protocol.AppendMessage makes of the stored message (its seq
	// included). A duplicate is not published: the caller publishes the
	// original if it wants to. channel must be a valid broker subject.
	AppendPublish(ctx context.Context, m *protocol.Message, dedupKey, channel string) (seq uint64, dup bool, err error)
}

// lastSeqsReader is implemented by stores that read the last seq of many
// rooms in one round trip (LastSeqs).
type lastSeqsReader interface {
	lastSeqs(ctx context.Context, rooms []string) ([]uint64, error)
}

// LastSeqs returns the last seq assigned in each of rooms (Bounds.Last; 0
// for a room with none), in the order of rooms: in one round trip per few
// hundred rooms where s can (Redis), one Bounds call per room otherwise.
// It fails as a whole: with the first room's error, or ErrInvalid for an
// invalid room name.
func LastSeqs(ctx context.Context, s Store, rooms []string) ([]uint64, error) {
	for _, room := range rooms {
		if _, _, err := checkRead(room, 1); err != nil {
			return nil, err
		}
	}
	if lr, ok := s.(lastSeqsReader); ok {
		return lr.lastSeqs(ctx, rooms)
	}
	out := make([]uint64, len(rooms))
	for i, room := range rooms {
		b, err := s.Bounds(ctx, room)
		if err != nil {
			return nil, err
		}
		out[i] = b.Last
	}
	return out, nil
}

// Store is a per-room message history. All methods are safe for concurrent
// use and return ErrClosed after Close.
type Store interface {
	// Append assigns the next seq of m.Room to m, stores it and returns the
	// seq. m.Seq is ignored on input and set on success; an empty m.Type is
	// set to "message" and a zero m.TS to the current time (Unix ms). m.Room
	// must be a valid room name (protocol.ValidRoom).
	//
	// dedupKey, when not empty, identifies the message for retries (the
	// server passes something like sender+"\x00"+cid). If a message with
	// the same key was appended to the same room before, Append stores
	// nothing, replaces *m with the stored original (its ID, TS and Seq) and
	// returns its seq with dup=true; if the original was trimmed since, only
	// m.Seq is set. How long keys are remembered depends on the backend (see
	// Options.DedupWindow).
	//
	// Append blocks until the message is stored or ctx is done. On error no
	// seq is returned; the outcome is unknown when the error wraps
	// ErrUnavailable or is a context error.
	Append(ctx context.Context, m *protocol.Message, dedupKey string) (seq uint64, dup bool, err error)
	// After returns up to limit (capped at MaxPage) messages of room with
	// seq > since, ascending. If the first one's seq is above since+1, the
	// messages in between were trimmed.
	After(ctx context.Context, room string, since uint64, limit int) ([]protocol.Message, error)
	// Latest returns the last n (capped at MaxPage) messages of room,
	// ascending.
	Latest(ctx context.Context, room string, n int) ([]protocol.Message, error)
	// Before returns up to n (capped at MaxPage) messages of room with
	// seq < before, the closest to before, ascending.
	Before(ctx context.Context, room string, before uint64, n int) ([]protocol.Message, error)
	// Bounds reports the oldest seq of room still held and the last seq
	// assigned. Use Bounds.Covers to tell a client that its since is too
	// old (or from a history that was lost).
	Bounds(ctx context.Context, room string) (Bounds, error)
	// Close stops the store's goroutines and releases its connections.
	// Appends in flight finish or fail first. It is idempotent.
	Close() error
}

// Bounds is what a store holds of a room.
type Bounds struct {
	// First is the oldest seq still held, 0 when no message is held.
	First uint64
	// Last is the last seq assigned, 0 when the room has none (never used,
	// or a bounded store forgot the room: it expired or its data was lost).
	Last uint64
}

// Covers reports whether After(since) returns every message after since,
// with nothing trimmed in between. It is false when messages after since
// are gone and when since is above Last: a bounded store that forgot the
// room restarts at seq 1, and the client's since belongs to the history
// that was lost. In both cases a server should tell the client explicitly
// and send the latest messages instead.
func (b Bounds) Covers(since uint64) bool {
	if since > b.Last {
		return false
	}
	if since == b.Last {
		return true
	}
	return b.First != 0 && since+1 >= b.First
}

// Options tune a store. The zero value is ready to use; fields that do not
// apply to a backend are ignored by it.
type Options struct {
	// MaxLen bounds the messages held per room (memory, sqlite, redis);
	// the oldest are trimmed on append. PostgreSQL keeps everything.
	// Default: 10000.
	MaxLen int
	// MaxAge trims messages older than this (by their TS) on append
	// (memory, sqlite, redis), keeping the newest. A Redis room idle for
	// MaxAge expires entirely, counter included, and then restarts at seq
	// 1; SQLite keeps a room's counter. Default: 7 days.
	MaxAge time.Duration
	// DedupWindow is how long Redis and SQLite remember a dedup key, also
	// after its message was trimmed. Memory remembers a key as long as its
	// message is held, PostgreSQL forever.
	// Default: 24h.
	DedupWindow time.Duration
	// KeyPrefix prefixes every Redis key. A room's keys are
	// "<prefix>:{<room>}:seq", "<prefix>:{<room>}:msgs" and
	// "<prefix>:{<room>}:cid:<dedup key>" (one hash slot per room).
	// Default: "livechat:history".
	KeyPrefix string
	// MaxBatch bounds the appends PostgreSQL writes in one transaction and
	// Redis sends in one pipeline.
	// Default: 512.
	MaxBatch int
	// WriteTimeout bounds one PostgreSQL batch transaction or one Redis
	// pipeline, whatever the callers' contexts. Default: 10s.
	WriteTimeout time.Duration
	// Logger receives backend events (migrations). Default: slog.Default().
	Logger *slog.Logger
}

// Defaults of Options.
const (
	DefaultMaxLen       = 10000
	DefaultMaxAge       = 7 * 24 * time.Hour
	DefaultDedupWindow  = 24 * time.Hour
	DefaultKeyPrefix    = "livechat:history"
	DefaultMaxBatch     = 512
	DefaultWriteTimeout = 10 * time.Second
)

// openTimeout bounds the connection check of Open when ctx has no deadline.
const openTimeout = 5 * time.Second

func (o *Options) fill() {
	if o.MaxLen <= 0 {
		o.MaxLen = DefaultMaxLen
	}
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.DedupWindow <= 0 {
		o.DedupWindow = DefaultDedupWindow
	}
	if o.KeyPrefix == "" {
		o.KeyPrefix = DefaultKeyPrefix
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Open returns a Store for rawURL: "memory://", "sqlite:///abs/file.db"
// ("sqlite://rel/file.db" relative to the working directory), "redis://[user:password@]host:port[/db]"
// ("rediss://" for TLS), "redis+cluster://[user:password@]host:port[,host:port...]"
// ("rediss+cluster://", a Redis Cluster), or "postgres://user[:password]@host:port/db?sslmode=disable"
// ("postgresql://"; pgx parameters such as pool_max_conns and server
// runtime parameters such as search_path are honoured). For SQLite it
// opens or creates the file and its tables; for Redis and PostgreSQL it
// connects (PostgreSQL also creates or migrates the schema)
// and returns an error naming the URL, with any password redacted, when the
// backend cannot be reached. The check is bounded by ctx, or by 5 s when ctx
// has no deadline.
func Open(ctx context.Context, rawURL string, opts Options) (Store, error) {
	if redisurl.IsCluster(rawURL) {
		return OpenRedis(ctx, rawURL, opts)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrUnsupportedURL, Redact(rawURL), cause(err))
	}
	switch u.Scheme {
	case "memory":
		return NewMemory(opts), nil
	case "redis", "rediss":
		return OpenRedis(ctx, rawURL, opts)
	case "postgres", "postgresql":
		return OpenPostgres(ctx, rawURL, opts)
	case "sqlite":
		p := u.Host + u.Path
		if p == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return nil, fmt.Errorf("%w %q: want sqlite:///abs/file.db or sqlite://rel/file.db", ErrUnsupportedURL, Redact(rawURL))
		}
		return OpenSQLite(ctx, p, opts)
	}
	return nil, fmt.Errorf("%w %q: scheme must be memory://, sqlite://, redis:// (rediss://), redis+cluster:// (rediss+cluster://) or postgres:// (postgresql://)",
		ErrUnsupportedURL, Redact(rawURL))
}

// Redact returns rawURL with any password replaced by "xxxxx", for logs and
// error messages. A URL that does not parse is returned as "<invalid URL>".
func Redact(rawURL string) string {
	if redisurl.IsCluster(rawURL) {
		return redisurl.Redact(rawURL)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return "<invalid URL>"
	}
	return u.Redacted()
}

// cause strips a *url.Error, which repeats the raw URL, password included.
func cause(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err
	}
	return err
}

// withTimeout bounds ctx by d when it has no deadline.
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}

// prepare checks and completes a message before it is appended.
func prepare(m *protocol.Message, dedupKey string, now time.Time) error {
	if m == nil {
		return fmt.Errorf("%w: nil message", ErrInvalid)
	}
	if err := protocol.ValidRoom(m.Room); err != nil {
		return fmt.Errorf("%w: room %q: %w", ErrInvalid, m.Room, err)
	}
	if len(dedupKey) > MaxDedupKeyLen {
		return fmt.Errorf("%w: dedup key longer than %d bytes", ErrInvalid, MaxDedupKeyLen)
	}
	for _, f := range [...]string{m.Type, m.ID, m.From, m.User, m.Text, m.Server, m.CID} {
		if !utf8.ValidString(f) || strings.IndexByte(f, 0) >= 0 {
			return fmt.Errorf("%w: message fields must be valid UTF-8 without NUL", ErrInvalid)
		}
	}
	if m.Type == "" {
		m.Type = protocol.TypeMessage
	}
	if m.TS == 0 {
		m.TS = now.UnixMilli()
	}
	m.Seq = 0
	return nil
}

// checkRead validates a read's room and clamps its limit; ok is false when
// nothing is to be read.
func checkRead(room string, n int) (int, bool, error) {
	if err := protocol.ValidRoom(room); err != nil {
		return 0, false, fmt.Errorf("%w: room %q: %w", ErrInvalid, room, err)
	}
	if n <= 0 {
		return 0, false, nil
	}
	return min(n, MaxPage), true, nil
}

// URLForBroker returns the history URL to use when none is configured: the
// broker's own Redis ("redis://", "rediss://", the same server and
// database, so a plain Redis deployment already recovers from a dead
// server; "redis+cluster://", "rediss+cluster://", the same cluster), or
// "memory://" for any other broker URL.
func URLForBroker(brokerURL string) string {
	if redisurl.IsCluster(brokerURL) {
		return brokerURL
	}
	u, err := url.Parse(brokerURL)
	if err == nil && (u.Scheme == "redis" || u.Scheme == "rediss") {
		return brokerURL
	}
	return "memory://"
}
