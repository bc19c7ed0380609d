package history

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livechat/livechat/internal/sqlitedb"
	"github.com/livechat/livechat/pkg/protocol"
)

// SQLite is the Store of a single node in one data file (sqlite://, pure Go
// SQLite, no cgo), bounded like Redis: every append trims its room to
// Options.MaxLen messages and drops those older than Options.MaxAge (the
// newest is always kept); the room's seq counter is never trimmed, so a
// room goes on from its last seq, also across restarts. A dedup key is
// remembered for Options.DedupWindow, even after its message was trimmed.
//
// The tables history_rooms (room, last_seq), history_messages (primary key
// room+seq) and history_dedup (room, key, seq, time) are created by
// OpenSQLite, which also adds the columns a file of an older release
// lacks. The file is in WAL mode: reads use a small pool of read-only
// connections and go on while a write commits. Every Append is one BEGIN
// IMMEDIATE transaction on the single writer connection (it looks up the
// dedup key, raises last_seq, inserts, trims), so appends of this process
// queue in turn and a second process on the same file waits for the lock
// (busy_timeout) instead of failing. Each Append waits for its own commit
// on disk: SQLite does not declare NonBlocking.
type SQLite struct {
	opts Options
	path string
	w, r *sql.DB

	closed atomic.Bool
	once   sync.Once
}

var _ Store = (*SQLite)(nil)

// sqliteSchema creates the tables; it is idempotent.
const sqliteSchema = `
CREATE TABLE IF NOT EXISTS history_rooms (
	room     TEXT PRIMARY KEY,
	last_seq INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history_messages (
	room    TEXT    NOT NULL,
	seq     INTEGER NOT NULL,
	type    TEXT    NOT NULL,
	id      TEXT    NOT NULL,
	sender  TEXT    NOT NULL,
	user_id TEXT    NOT NULL DEFAULT '',
	guest   INTEGER NOT NULL DEFAULT 0,
	body    TEXT    NOT NULL,
	ts      INTEGER NOT NULL,
	server  TEXT    NOT NULL,
	cid     TEXT    NOT NULL,
	system  INTEGER NOT NULL,
	files   TEXT, -- JSON of Message.Files, NULL for none
	PRIMARY KEY (room, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history_dedup (
	room TEXT    NOT NULL,
	key  BLOB    NOT NULL,
	seq  INTEGER NOT NULL,
	at   INTEGER NOT NULL, -- when it was stored, Unix ms
	PRIMARY KEY (room, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS history_dedup_at ON history_dedup (room, at);`

// OpenSQLite opens (creating it if needed) the data file at path and
// creates the tables, bounded by ctx (or 5 s when ctx has no deadline). Its
// directory must exist. Two stores may open the same file (in one process
// or two): they share the rooms' seqs and dedup keys.
func OpenSQLite(ctx context.Context, path string, opts Options) (*SQLite, error) {
	opts.fill()
	if path == "" {
		return nil, fmt.Errorf("%w: empty sqlite path", ErrUnsupportedURL)
	}
	w, r, err := sqlitedb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("history: sqlite %s: %w: %w", path, ErrUnavailable, err)
	}
	s := &SQLite{opts: opts, path: path, w: w, r: r}
	octx, cancel := withTimeout(ctx, openTimeout)
	defer cancel()
	// Through the writer, before any reader connects: the first connection
	// sets WAL mode alone.
	err = sqlitedb.Connect(octx, w)
	if err == nil {
		err = s.migrate(octx)
	}
	if err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("history: sqlite %s: %w: %w", path, ErrUnavailable, err)
	}
	return s, nil
}

// sqliteAdded are the columns of history_messages added since its first
// release, in order, with their definitions: a file written by an older
// livechat gets them at open, its rows the defaults.
var sqliteAdded = []struct{ name, def string }{
	// The sender's identity (Message.User, Message.Guest).
	{"user_id", "TEXT NOT NULL DEFAULT ''"},
	{"guest", "INTEGER NOT NULL DEFAULT 0"},
	// Message.Files as JSON, NULL for none.
	{"files", "TEXT"},
}

// migrate creates the tables and adds the columns a file from an older
// release lacks. It is idempotent, and its transaction is IMMEDIATE (the
// writer's), so two processes opening one file migrate in turn.
func (s *SQLite) migrate(ctx context.Context) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, sqliteSchema); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	have := make(map[string]bool)
	rows, err := tx.QueryContext(ctx, `SELECT name FROM pragma_table_info('history_messages')`)
	if err != nil {
		return fmt.Errorf("migrate: read columns: %w", err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			_ = rows.Close()
			return fmt.Errorf("migrate: read columns: %w", err)
		}
		have[name] = true
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fmt.Errorf("migrate: read columns: %w", err)
	}
	for _, c := range sqliteAdded {
		if have[c.name] {
			continue
		}
		if _, err := tx.ExecContext(ctx, `ALTER TABLE history_messages ADD COLUMN `+c.name+` `+c.def); err != nil {
			return fmt.Errorf("migrate: add column %s: %w", c.name, err)
		}
		s.opts.Logger.Info("history: migrated sqlite file", "path", s.path, "added_column", c.name)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

// Append implements Store: one IMMEDIATE transaction per call.
func (s *SQLite) Append(ctx context.Context, m *protocol.Message, dedupKey string) (uint64, bool, error) {
	if s.closed.Load() {
		return 0, false, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return 0, false, fmt.Errorf("history: append: %w", err)
	}
	now := time.Now()
	if err := prepare(m, dedupKey, now); err != nil {
		return 0, false, err
	}
	out, dup, err := s.append(ctx, *m, dedupKey, now)
	if err != nil {
		return 0, false, s.fail("append to", m.Room, err)
	}
	*m = out
	return m.Seq, dup, nil
}

// append runs the transaction of one Append and returns the stored message
// (the original one for a duplicate, or only its Seq if it was trimmed).
func (s *SQLite) append(ctx context.Context, m protocol.Message, key string, now time.Time) (protocol.Message, bool, error) {
	files := filesJSON(m.Files)
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return m, false, err
	}
	defer func() { _ = tx.Rollback() }()
	nowMS := now.UnixMilli()
	dedupCutoff := now.Add(-s.opts.DedupWindow).UnixMilli()
	if key != "" {
		var seq int64
		err := tx.QueryRowContext(ctx, `SELECT seq FROM history_dedup WHERE room = ? AND key = ? AND at >= ?`,
			m.Room, []byte(key), dedupCutoff).Scan(&seq)
		switch {
		case err == nil:
			orig, found, err := s.get(ctx, tx, m.Room, seq)
			if err != nil {
				return m, false, err
			}
			if !found {
				m.Seq = uint64(seq)
				return m, true, nil
			}
			return orig, true, nil
		case !errors.Is(err, sql.ErrNoRows):
			return m, false, err
		}
	}
	var last int64
	err = tx.QueryRowContext(ctx, `SELECT last_seq FROM history_rooms WHERE room = ?`, m.Room).Scan(&last)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return m, false, err
	}
	seq := last + 1
	m.Seq = uint64(seq)
	stmts := []struct {
		q    string
		args []any
	}{
		{`INSERT INTO history_rooms (room, last_seq) VALUES (?, ?)
			ON CONFLICT (room) DO UPDATE SET last_seq = excluded.last_seq`, []any{m.Room, seq}},
		{`INSERT INTO history_messages (room, seq, type, id, sender, user_id, guest, body, ts, server, cid, system, files)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			[]any{m.Room, seq, m.Type, m.ID, m.From, m.User, m.Guest, m.Text, m.TS, m.Server, m.CID, m.System, files}},
		// Trim: beyond MaxLen, and older than MaxAge except the newest.
		{`DELETE FROM history_messages WHERE room = ? AND (seq <= ? OR (seq < ? AND ts < ?))`,
			[]any{m.Room, seq - int64(s.opts.MaxLen), seq, now.Add(-s.opts.MaxAge).UnixMilli()}},
		{`DELETE FROM history_dedup WHERE room = ? AND at < ?`, []any{m.Room, dedupCutoff}},
	}
	if key != "" {
		stmts = append(stmts, struct {
			q    string
			args []any
		}{`INSERT OR REPLACE INTO history_dedup (room, key, seq, at) VALUES (?, ?, ?, ?)`,
			[]any{m.Room, []byte(key), seq, nowMS}})
	}
	for _, st := range stmts {
		if _, err := tx.ExecContext(ctx, st.q, st.args...); err != nil {
			return m, false, err
		}
	}
	if err := tx.Commit(); err != nil {
		return m, false, err
	}
	return m, false, nil
}

const sqliteColumns = `room, seq, type, id, sender, user_id, guest, body, ts, server, cid, system, files`

// rowScanner is what *sql.Row and *sql.Rows have in common.
type rowScanner interface{ Scan(dest ...any) error }

func scanSQLite(r rowScanner) (protocol.Message, error) {
	var m protocol.Message
	var seq int64
	var files *string
	if err := r.Scan(&m.Room, &seq, &m.Type, &m.ID, &m.From, &m.User, &m.Guest, &m.Text, &m.TS, &m.Server, &m.CID, &m.System, &files); err != nil {
		return m, err
	}
	m.Seq = uint64(seq)
	return m, scanFiles(files, &m)
}

// get reads one message inside tx; found is false when it was trimmed.
func (s *SQLite) get(ctx context.Context, tx *sql.Tx, room string, seq int64) (protocol.Message, bool, error) {
	m, err := scanSQLite(tx.QueryRowContext(ctx, `SELECT `+sqliteColumns+` FROM history_messages
		WHERE room = ? AND seq = ?`, room, seq))
	if errors.Is(err, sql.ErrNoRows) {
		return m, false, nil
	}
	return m, err == nil, err
}

// query runs a read returning messages in the order given by the query.
func (s *SQLite) query(ctx context.Context, room, q string, args ...any) ([]protocol.Message, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, s.fail("read", room, err)
	}
	defer func() { _ = rows.Close() }()
	var out []protocol.Message
	for rows.Next() {
		m, err := scanSQLite(rows)
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

func (s *SQLite) fail(op, room string, err error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return fmt.Errorf("history: %s %q on sqlite %s: %w: %w", op, room, s.path, ErrUnavailable, err)
}

// After implements Store.
func (s *SQLite) After(ctx context.Context, room string, since uint64, limit int) ([]protocol.Message, error) {
	n, ok, err := checkRead(room, limit)
	if err != nil || !ok {
		return nil, err
	}
	return s.query(ctx, room, `SELECT `+sqliteColumns+` FROM history_messages
		WHERE room = ? AND seq > ? ORDER BY seq LIMIT ?`, room, toInt64(since), n)
}

// Latest implements Store.
func (s *SQLite) Latest(ctx context.Context, room string, n int) ([]protocol.Message, error) {
	n, ok, err := checkRead(room, n)
	if err != nil || !ok {
		return nil, err
	}
	return s.query(ctx, room, `SELECT * FROM (SELECT `+sqliteColumns+` FROM history_messages
		WHERE room = ? ORDER BY seq DESC LIMIT ?) ORDER BY seq`, room, n)
}

// Before implements Store.
func (s *SQLite) Before(ctx context.Context, room string, before uint64, n int) ([]protocol.Message, error) {
	n, ok, err := checkRead(room, n)
	if err != nil || !ok || before <= 1 {
		return nil, err
	}
	return s.query(ctx, room, `SELECT * FROM (SELECT `+sqliteColumns+` FROM history_messages
		WHERE room = ? AND seq < ? ORDER BY seq DESC LIMIT ?) ORDER BY seq`, room, toInt64(before), n)
}

// Bounds implements Store: one statement, so one snapshot.
func (s *SQLite) Bounds(ctx context.Context, room string) (Bounds, error) {
	if s.closed.Load() {
		return Bounds{}, ErrClosed
	}
	if _, _, err := checkRead(room, 1); err != nil {
		return Bounds{}, err
	}
	var first, last int64
	err := s.r.QueryRowContext(ctx, `SELECT
		coalesce((SELECT min(seq) FROM history_messages WHERE room = ?1), 0),
		coalesce((SELECT last_seq FROM history_rooms WHERE room = ?1), 0)`, room).Scan(&first, &last)
	if err != nil {
		return Bounds{}, s.fail("bounds of", room, err)
	}
	return Bounds{First: uint64(first), Last: uint64(last)}, nil
}

// Close implements Store: later calls fail with ErrClosed; an append in
// flight commits or fails, then both connection pools close.
func (s *SQLite) Close() error {
	var err error
	s.once.Do(func() {
		s.closed.Store(true)
		err = errors.Join(s.w.Close(), s.r.Close())
		if err != nil {
			err = fmt.Errorf("history: close sqlite %s: %w", s.path, err)
		}
	})
	return err
}
