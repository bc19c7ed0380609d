package history

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/livechat/livechat/pkg/protocol"
)

// Postgres is the durable, unbounded Store (postgres://, postgresql://),
// on tables history_rooms (room, last_seq) and history_messages (primary
// key room+seq, a unique index on room+dedup key), created or migrated by
// Open in the connection's current schema (set search_path in the URL to
// choose another). The schema's version is in history_schema_version;
// each migration is applied once, in one transaction.
//
// Appends go through one writer goroutine (groupCommit): it takes every
// Append that is waiting (up to Options.MaxBatch) and writes them in one
// transaction, so under load a commit, and its fsync, carries many
// messages, while a lone Append is written at once. The transaction locks
// the rows of its rooms (sorted, FOR UPDATE), looks up dedup keys, inserts
// the messages with consecutive seqs and raises last_seq, so servers sharing
// the database assign distinct gapless seqs and de-duplicate across each
// other; within a room, seq order is commit order. Reads go straight to the
// pool.
type Postgres struct {
	opts Options
	url  string // redacted
	pool *pgxpool.Pool

	gc     *groupCommit[pgReq]
	closed atomic.Bool
	once   sync.Once
}

var _ Store = (*Postgres)(nil)

// pgReq is one Append waiting for the writer.
type pgReq struct {
	ctx context.Context
	m   protocol.Message
	key string
	res chan pgRes // buffered: the writer never blocks on it
}

type pgRes struct {
	m   protocol.Message
	dup bool
	err error
}

// OpenPostgres connects to PostgreSQL at rawURL, creates or migrates the
// schema and starts the writer goroutine. It returns an error naming the
// URL, with its password redacted, when the database cannot be reached or
// migrated, bounded by ctx, or by 5 s when ctx has no deadline.
func OpenPostgres(ctx context.Context, rawURL string, opts Options) (*Postgres, error) {
	opts.fill()
	redacted := Redact(rawURL)
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		// pgx redacts the password in its parse errors.
		return nil, fmt.Errorf("%w %q: %w", ErrUnsupportedURL, redacted, err)
	}
	octx, cancel := withTimeout(ctx, openTimeout)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(octx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: postgres %s: %w", ErrUnavailable, redacted, err)
	}
	if err := pool.Ping(octx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("%w: cannot reach postgres at %s: %w", ErrUnavailable, redacted, err)
	}
	if err := migrate(octx, pool, opts.Logger); err != nil {
		pool.Close()
		return nil, fmt.Errorf("%w: postgres %s: %w", ErrUnavailable, redacted, err)
	}
	s := &Postgres{opts: opts, url: redacted, pool: pool}
	s.gc = newGroupCommit(opts.MaxBatch, groupHooks[pgReq]{
		write: s.flush,
		fail:  func(r *pgReq, err error) { r.res <- pgRes{err: appendFailed(r.m.Room, err)} },
		ctx:   func(r *pgReq) context.Context { return r.ctx },
	})
	return s, nil
}

// migrations are applied in order; migration i brings the schema to
// version i+1. Later changes are appended, never edited.
var migrations = []string{
	`CREATE TABLE history_rooms (
		room     text PRIMARY KEY,
		last_seq bigint NOT NULL
	);
	CREATE TABLE history_messages (
		room      text    NOT NULL,
		seq       bigint  NOT NULL,
		type      text    NOT NULL,
		id        text    NOT NULL,
		sender    text    NOT NULL,
		body      text    NOT NULL,
		ts        bigint  NOT NULL,
		server    text    NOT NULL,
		cid       text    NOT NULL,
		system    boolean NOT NULL,
		dedup_key bytea,
		PRIMARY KEY (room, seq)
	);
	CREATE UNIQUE INDEX history_messages_dedup ON history_messages (room, dedup_key)
		WHERE dedup_key IS NOT NULL;`,
	// Version 2: the sender's identity (Message.User, Message.Guest). Rows
	// written before read back without one. A constant default makes
	// ADD COLUMN a catalogue change (PostgreSQL 11+): no table rewrite,
	// and servers still on version 1 go on inserting without the columns.
	`ALTER TABLE history_messages
		ADD COLUMN IF NOT EXISTS user_id text    NOT NULL DEFAULT '',
		ADD COLUMN IF NOT EXISTS guest   boolean NOT NULL DEFAULT false;`,
	// Version 3: Message.Files as JSON, NULL for none (and for the rows
	// written before). Nullable without a default: a catalogue change, and
	// servers still on version 2 go on inserting without it.
	`ALTER TABLE history_messages ADD COLUMN IF NOT EXISTS files text;`,
}

// migrate brings the schema to the latest version in one transaction,
// serialised between servers starting together by an advisory lock.
func migrate(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('livechat.history.' || coalesce(current_schema(), '')))`); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS history_schema_version (
		version    integer PRIMARY KEY,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return fmt.Errorf("migrate: create history_schema_version: %w", err)
	}
	var v int
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM history_schema_version`).Scan(&v); err != nil {
		return fmt.Errorf("migrate: read version: %w", err)
	}
	for i := v; i < len(migrations); i++ {
		if _, err := tx.Exec(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migrate to version %d: %w", i+1, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO history_schema_version (version) VALUES ($1)`, i+1); err != nil {
			return fmt.Errorf("migrate to version %d: %w", i+1, err)
		}
		log.Info("history: migrated postgres schema", "version", i+1)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

// Append implements Store: it queues m for the writer and waits for the
// batch that carries it to commit.
func (s *Postgres) Append(ctx context.Context, m *protocol.Message, dedupKey string) (uint64, bool, error) {
	if s.closed.Load() {
		return 0, false, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return 0, false, fmt.Errorf("history: append: %w", err)
	}
	if err := prepare(m, dedupKey, time.Now()); err != nil {
		return 0, false, err
	}
	r := &pgReq{ctx: ctx, m: *m, key: dedupKey, res: make(chan pgRes, 1)}
	res, err := call(ctx, s.gc, m.Room, r, r.res)
	if err != nil {
		return 0, false, err
	}
	if res.err != nil {
		return 0, false, res.err
	}
	*m = res.m
	return m.Seq, res.dup, nil
}

// flush writes one batch and answers every request in it.
func (s *Postgres) flush(live []*pgReq) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.WriteTimeout)
	defer cancel()
	var res []pgRes
	var err error
	for attempt := 0; ; attempt++ {
		res, err = s.write(ctx, live)
		if err == nil || attempt >= 4 || ctx.Err() != nil || !retryable(err) {
			break
		}
	}
	for i, r := range live {
		if err != nil {
			r.res <- pgRes{err: fmt.Errorf("history: append to %q on postgres %s: %w: %w", r.m.Room, s.url, ErrUnavailable, err)}
			continue
		}
		r.res <- res[i]
	}
}

// retryable reports whether a failed batch transaction can simply run
// again: a deadlock or serialization failure rolled it back, or it failed
// before anything was sent (a pooled connection that died while idle, as
// after a database restart).
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "40P01" || pgErr.Code == "40001"
	}
	return pgconn.SafeToRetry(err)
}

type roomKey struct{ room, key string }

// write runs the batch's transaction and returns one result per request.
func (s *Postgres) write(ctx context.Context, reqs []*pgReq) ([]pgRes, error) {
	rooms := make([]string, 0, len(reqs))
	var kRooms []string
	var kKeys [][]byte
	for _, r := range reqs {
		rooms = append(rooms, r.m.Room)
		if r.key != "" {
			kRooms = append(kRooms, r.m.Room)
			kKeys = append(kKeys, []byte(r.key))
		}
	}
	slices.Sort(rooms)
	rooms = slices.Compact(rooms)

	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	// One round trip: make sure the rooms exist, lock them in a fixed order
	// (no deadlock between servers), then look up the dedup keys, which
	// now sees every message committed by whoever held the locks before.
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO history_rooms (room, last_seq) SELECT r, 0 FROM unnest($1::text[]) AS r ORDER BY r
		ON CONFLICT (room) DO NOTHING`, rooms)
	b.Queue(`SELECT room, last_seq FROM history_rooms WHERE room = ANY($1) ORDER BY room FOR UPDATE`, rooms)
	if len(kKeys) > 0 {
		b.Queue(`SELECT `+msgColumns+`, m.dedup_key FROM history_messages m
			JOIN unnest($1::text[], $2::bytea[]) AS k(room, key) ON m.room = k.room AND m.dedup_key = k.key`, kRooms, kKeys)
	}
	br := tx.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		_ = br.Close()
		return nil, err
	}
	last := make(map[string]int64, len(rooms))
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		return nil, err
	}
	for rows.Next() {
		var room string
		var seq int64
		if err := rows.Scan(&room, &seq); err != nil {
			rows.Close()
			_ = br.Close()
			return nil, err
		}
		last[room] = seq
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		_ = br.Close()
		return nil, err
	}
	stored := make(map[roomKey]protocol.Message)
	if len(kKeys) > 0 {
		rows, err := br.Query()
		if err != nil {
			_ = br.Close()
			return nil, err
		}
		for rows.Next() {
			var key []byte
			m, err := scanMessage(rows, &key)
			if err != nil {
				rows.Close()
				_ = br.Close()
				return nil, err
			}
			stored[roomKey{m.Room, string(key)}] = m
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			_ = br.Close()
			return nil, err
		}
	}
	if err := br.Close(); err != nil {
		return nil, err
	}

	// Assign seqs in arrival order.
	res := make([]pgRes, len(reqs))
	var ins insertArrays
	for i, r := range reqs {
		rk := roomKey{r.m.Room, r.key}
		if r.key != "" {
			if m, ok := stored[rk]; ok {
				res[i] = pgRes{m: m, dup: true}
				continue
			}
		}
		last[r.m.Room]++
		m := r.m
		m.Seq = uint64(last[r.m.Room])
		res[i] = pgRes{m: m}
		if r.key != "" {
			stored[rk] = m // a retry within the same batch
		}
		ins.add(&m, r.key)
	}
	if len(ins.room) > 0 {
		var lRooms []string
		var lSeqs []int64
		for room, seq := range last {
			lRooms = append(lRooms, room)
			lSeqs = append(lSeqs, seq)
		}
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO history_messages (room, seq, type, id, sender, user_id, guest, body, ts, server, cid, system, dedup_key, files)
			SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::boolean[],
				$8::text[], $9::bigint[], $10::text[], $11::text[], $12::boolean[], $13::bytea[], $14::text[])`,
			ins.room, ins.seq, ins.typ, ins.id, ins.from, ins.user, ins.guest, ins.text, ins.ts, ins.server, ins.cid, ins.system, ins.key, ins.files)
		b.Queue(`UPDATE history_rooms SET last_seq = v.last FROM unnest($1::text[], $2::bigint[]) AS v(room, last)
			WHERE history_rooms.room = v.room AND history_rooms.last_seq < v.last`, lRooms, lSeqs)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	return res, nil
}

// insertArrays holds the columns of a batch insert.
type insertArrays struct {
	room, typ, id, from, user, text, server, cid []string
	seq, ts                                      []int64
	guest, system                                []bool
	key                                          [][]byte // nil for none
	files                                        []*string
}

func (a *insertArrays) add(m *protocol.Message, key string) {
	a.room = append(a.room, m.Room)
	a.seq = append(a.seq, int64(m.Seq))
	a.typ = append(a.typ, m.Type)
	a.id = append(a.id, m.ID)
	a.from = append(a.from, m.From)
	a.user = append(a.user, m.User)
	a.guest = append(a.guest, m.Guest)
	a.text = append(a.text, m.Text)
	a.ts = append(a.ts, m.TS)
	a.server = append(a.server, m.Server)
	a.cid = append(a.cid, m.CID)
	a.system = append(a.system, m.System)
	a.files = append(a.files, filesJSON(m.Files))
	if key == "" {
		a.key = append(a.key, nil)
	} else {
		a.key = append(a.key, []byte(key))
	}
}

const msgColumns = `m.room, m.seq, m.type, m.id, m.sender, m.user_id, m.guest, m.body, m.ts, m.server, m.cid, m.system, m.files`

// scanMessage scans msgColumns, then extra.
func scanMessage(rows pgx.Rows, extra ...any) (protocol.Message, error) {
	var m protocol.Message
	var seq int64
	var files *string
	dest := append([]any{&m.Room, &seq, &m.Type, &m.ID, &m.From, &m.User, &m.Guest, &m.Text, &m.TS, &m.Server, &m.CID, &m.System, &files},
		extra...)
	if err := rows.Scan(dest...); err != nil {
		return m, err
	}
	m.Seq = uint64(seq)
	return m, scanFiles(files, &m)
}

// query runs a read returning messages in the order given by the query.
func (s *Postgres) query(ctx context.Context, room, sql string, args ...any) ([]protocol.Message, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, s.fail("read", room, err)
	}
	defer rows.Close()
	var out []protocol.Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, s.fail("read", room, err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("read", room, err)
	}
	return out, nil
}

func (s *Postgres) fail(op, room string, err error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return fmt.Errorf("history: %s %q on postgres %s: %w: %w", op, room, s.url, ErrUnavailable, err)
}

// toInt64 clamps a seq into PostgreSQL's bigint.
func toInt64(v uint64) int64 {
	if v > 1<<63-1 {
		return 1<<63 - 1
	}
	return int64(v)
}

// After implements Store.
func (s *Postgres) After(ctx context.Context, room string, since uint64, limit int) ([]protocol.Message, error) {
	n, ok, err := checkRead(room, limit)
	if err != nil || !ok {
		return nil, err
	}
	return s.query(ctx, room, `SELECT `+msgColumns+` FROM history_messages m
		WHERE m.room = $1 AND m.seq > $2 ORDER BY m.seq LIMIT $3`, room, toInt64(since), n)
}

// Latest implements Store.
func (s *Postgres) Latest(ctx context.Context, room string, n int) ([]protocol.Message, error) {
	n, ok, err := checkRead(room, n)
	if err != nil || !ok {
		return nil, err
	}
	return s.query(ctx, room, `SELECT * FROM (SELECT `+msgColumns+` FROM history_messages m
		WHERE m.room = $1 ORDER BY m.seq DESC LIMIT $2) m ORDER BY m.seq`, room, n)
}

// Before implements Store.
func (s *Postgres) Before(ctx context.Context, room string, before uint64, n int) ([]protocol.Message, error) {
	n, ok, err := checkRead(room, n)
	if err != nil || !ok || before <= 1 {
		return nil, err
	}
	return s.query(ctx, room, `SELECT * FROM (SELECT `+msgColumns+` FROM history_messages m
		WHERE m.room = $1 AND m.seq < $2 ORDER BY m.seq DESC LIMIT $3) m ORDER BY m.seq`, room, toInt64(before), n)
}

// Bounds implements Store.
func (s *Postgres) Bounds(ctx context.Context, room string) (Bounds, error) {
	if s.closed.Load() {
		return Bounds{}, ErrClosed
	}
	if _, _, err := checkRead(room, 1); err != nil {
		return Bounds{}, err
	}
	var first, last int64
	err := s.pool.QueryRow(ctx, `SELECT
		coalesce((SELECT seq FROM history_messages WHERE room = $1 ORDER BY seq LIMIT 1), 0),
		coalesce((SELECT last_seq FROM history_rooms WHERE room = $1), 0)`, room).Scan(&first, &last)
	if err != nil {
		return Bounds{}, s.fail("bounds of", room, err)
	}
	return Bounds{First: uint64(first), Last: uint64(last)}, nil
}

// Close implements Store: queued appends fail with ErrClosed, the batch
// being written finishes (within Options.WriteTimeout), then the pool
// closes.
func (s *Postgres) Close() error {
	s.once.Do(func() {
		s.closed.Store(true)
		s.gc.close()
		s.pool.Close()
	})
	return nil
}
