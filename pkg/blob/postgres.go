package blob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ChunkSize is the size of the rows the Postgres store cuts blobs into; the
// last row of a blob may be shorter. Each blob records the chunk size it was
// written with, so changing it later keeps older blobs readable.
const ChunkSize = 256 << 10

// Postgres is a Store shared by the servers of a cluster, on the tables
// blob_objects (one row per blob) and blob_chunks (its content in
// ChunkSize rows) in the connection's current schema (set search_path in the
// URL to choose another), created by OpenPostgres under an advisory lock.
//
// Put runs in one transaction: it inserts the blob's row first (so a
// concurrent Put of the same id waits, then gets ErrExists), then one row
// per chunk, holding one chunk in memory; nothing is visible before the
// commit and nothing is left after a rollback. A Reader fetches one chunk
// per query, on the context given to Open, and Seek is arithmetic; a blob
// deleted while a Reader is open makes its next fetch fail.
//
// A Put holds a pooled connection and an open transaction for as long as
// its reader takes: the caller bounds slow uploads with ctx (and the
// server's idle_in_transaction_session_timeout must exceed the time
// between two chunks). The pool has pgx's default size unless the URL sets
// pool_max_conns.
type Postgres struct {
	pool   *pgxpool.Pool
	url    string // redacted
	closed atomic.Bool
}

var _ Store = (*Postgres)(nil)

// pgOpenTimeout bounds OpenPostgres when ctx has no deadline.
const pgOpenTimeout = 5 * time.Second

// OpenPostgres connects to PostgreSQL at rawURL and creates the tables when
// missing. The error names the URL with its password redacted; it is
// bounded by ctx, or by 5 s when ctx has no deadline.
func OpenPostgres(ctx context.Context, rawURL string) (*Postgres, error) {
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		// pgx redacts the password in its parse errors.
		return nil, fmt.Errorf("%w: %w", ErrUnsupportedURL, err)
	}
	c := cfg.ConnConfig
	redacted := fmt.Sprintf("postgres://%s@%s:%d/%s", c.User, c.Host, c.Port, c.Database)
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, pgOpenTimeout)
		defer cancel()
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("blob: postgres %s: %w", redacted, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("blob: cannot reach postgres at %s: %w", redacted, err)
	}
	if err := pgMigrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("blob: postgres %s: %w", redacted, err)
	}
	return &Postgres{pool: pool, url: redacted}, nil
}

// pgSchema creates the tables. Ids are compared bytewise (COLLATE "C") so
// List pages in the same order as the other backends. Chunks are stored
// uncompressed (STORAGE EXTERNAL): pictures and archives rarely compress.
const pgSchema = `
CREATE TABLE IF NOT EXISTS blob_objects (
	id      text COLLATE "C" PRIMARY KEY,
	size    bigint      NOT NULL,
	sha256  text        NOT NULL,
	created timestamptz NOT NULL,
	chunk   integer     NOT NULL
);
CREATE TABLE IF NOT EXISTS blob_chunks (
	id   text COLLATE "C" NOT NULL REFERENCES blob_objects (id) ON DELETE CASCADE,
	n    integer NOT NULL,
	data bytea   NOT NULL,
	PRIMARY KEY (id, n)
);
ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL;`

func pgMigrate(ctx context.Context, pool *pgxpool.Pool) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('livechat.blob.' || coalesce(current_schema(), '')))`); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	if _, err := tx.Exec(ctx, pgSchema); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

func (p *Postgres) begin(ctx context.Context) error {
	if p.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	return nil
}

// Put implements Store.
func (p *Postgres) Put(ctx context.Context, id string, r io.Reader, max int64) (Info, error) {
	if err := checkPut(id, max); err != nil {
		return Info{}, err
	}
	if err := p.begin(ctx); err != nil {
		return Info{}, err
	}
	info := Info{ID: id, Created: now()}
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return Info{}, fmt.Errorf("blob: put %s: %w", id, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	_, err = tx.Exec(ctx, `INSERT INTO blob_objects (id, size, sha256, created, chunk) VALUES ($1, 0, '', $2, $3)`,
		id, info.Created, ChunkSize)
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" { // unique_violation
			return Info{}, fmt.Errorf("%w: %s", ErrExists, id)
		}
		return Info{}, fmt.Errorf("blob: put %s: %w", id, err)
	}
	h := sha256.New()
	lr := limited(ctx, r, max)
	buf := make([]byte, ChunkSize)
	for n := 0; ; n++ {
		k, rerr := io.ReadFull(lr, buf)
		if k > 0 {
			info.Size += int64(k)
			if info.Size > max {
				return Info{}, fmt.Errorf("%w: %s: more than %d bytes", ErrTooLarge, id, max)
			}
			h.Write(buf[:k])
			if _, err := tx.Exec(ctx, `INSERT INTO blob_chunks (id, n, data) VALUES ($1, $2, $3)`, id, n, buf[:k]); err != nil {
				return Info{}, fmt.Errorf("blob: put %s: %w", id, err)
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return Info{}, fmt.Errorf("blob: put %s: %w", id, rerr)
		}
	}
	info.SHA256 = hex.EncodeToString(h.Sum(nil))
	if _, err := tx.Exec(ctx, `UPDATE blob_objects SET size = $2, sha256 = $3 WHERE id = $1`, id, info.Size, info.SHA256); err != nil {
		return Info{}, fmt.Errorf("blob: put %s: %w", id, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return Info{}, fmt.Errorf("blob: put %s: %w", id, err)
	}
	return info, nil
}

func (p *Postgres) stat(ctx context.Context, id string) (Info, int64, error) {
	info := Info{ID: id}
	var chunk int64
	err := p.pool.QueryRow(ctx, `SELECT size, sha256, created, chunk FROM blob_objects WHERE id = $1`, id).
		Scan(&info.Size, &info.SHA256, &info.Created, &chunk)
	if errors.Is(err, pgx.ErrNoRows) {
		return Info{}, 0, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return Info{}, 0, fmt.Errorf("blob: stat %s: %w", id, err)
	}
	info.Created = info.Created.UTC()
	return info, chunk, nil
}

// Stat implements Store.
func (p *Postgres) Stat(ctx context.Context, id string) (Info, error) {
	if err := CheckID(id); err != nil {
		return Info{}, err
	}
	if err := p.begin(ctx); err != nil {
		return Info{}, err
	}
	info, _, err := p.stat(ctx, id)
	return info, err
}

// Open implements Store. The Reader fetches chunks on ctx: it fails once
// ctx ends.
func (p *Postgres) Open(ctx context.Context, id string) (Reader, Info, error) {
	if err := CheckID(id); err != nil {
		return nil, Info{}, err
	}
	if err := p.begin(ctx); err != nil {
		return nil, Info{}, err
	}
	info, chunk, err := p.stat(ctx, id)
	if err != nil {
		return nil, Info{}, err
	}
	if chunk <= 0 {
		return nil, Info{}, fmt.Errorf("blob: open %s: bad chunk size %d", id, chunk)
	}
	return &pgReader{p: p, ctx: ctx, id: id, size: info.Size, chunk: chunk, curN: -1}, info, nil
}

// pgReader reads a blob one chunk at a time, keeping the current chunk.
type pgReader struct {
	p      *Postgres
	ctx    context.Context
	id     string
	size   int64
	chunk  int64
	pos    int64
	curN   int64 // the chunk in cur, or -1
	cur    []byte
	closed bool
}

func (r *pgReader) Read(b []byte) (int, error) {
	if r.closed {
		return 0, fmt.Errorf("blob: read %s: %w", r.id, ErrClosed)
	}
	if r.pos >= r.size {
		return 0, io.EOF
	}
	if len(b) == 0 {
		return 0, nil
	}
	n := r.pos / r.chunk
	if n != r.curN {
		want := min(r.chunk, r.size-n*r.chunk)
		var data []byte
		err := r.p.pool.QueryRow(r.ctx, `SELECT data FROM blob_chunks WHERE id = $1 AND n = $2`, r.id, n).Scan(&data)
		if errors.Is(err, pgx.ErrNoRows) {
			return 0, fmt.Errorf("blob: read %s: chunk %d missing (deleted?): %w", r.id, n, io.ErrUnexpectedEOF)
		}
		if err != nil {
			return 0, fmt.Errorf("blob: read %s: %w", r.id, err)
		}
		if int64(len(data)) != want {
			return 0, fmt.Errorf("blob: read %s: chunk %d has %d bytes, want %d", r.id, n, len(data), want)
		}
		r.cur, r.curN = data, n
	}
	k := copy(b, r.cur[r.pos-n*r.chunk:])
	r.pos += int64(k)
	return k, nil
}

func (r *pgReader) Seek(offset int64, whence int) (int64, error) {
	pos, err := seekPos(r.pos, r.size, offset, whence)
	r.pos = pos
	return pos, err
}

func (r *pgReader) Close() error {
	r.closed, r.cur = true, nil
	return nil
}

// Delete implements Store.
func (p *Postgres) Delete(ctx context.Context, id string) error {
	if err := CheckID(id); err != nil {
		return err
	}
	if err := p.begin(ctx); err != nil {
		return err
	}
	tag, err := p.pool.Exec(ctx, `DELETE FROM blob_objects WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("blob: delete %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return nil
}

// List implements Store.
func (p *Postgres) List(ctx context.Context, after string, limit int) ([]Info, error) {
	if err := p.begin(ctx); err != nil {
		return nil, err
	}
	rows, err := p.pool.Query(ctx, `SELECT id, size, sha256, created FROM blob_objects WHERE id > $1 ORDER BY id LIMIT $2`,
		after, pageLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("blob: list: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Info, error) {
		var i Info
		err := row.Scan(&i.ID, &i.Size, &i.SHA256, &i.Created)
		i.Created = i.Created.UTC()
		return i, err
	})
	if err != nil {
		return nil, fmt.Errorf("blob: list: %w", err)
	}
	return out, nil
}

// Close implements Store. It waits for the queries in flight; open Readers
// fail afterwards.
func (p *Postgres) Close() error {
	if p.closed.CompareAndSwap(false, true) {
		p.pool.Close()
	}
	return nil
}
