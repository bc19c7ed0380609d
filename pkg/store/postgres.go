package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// Postgres is the Store shared by the servers of a cluster, on tables named
// store_* in the connection's current schema (set search_path in the URL to
// choose another), created or migrated by Open under an advisory lock so
// servers starting together do not race. It runs the same statements as
// SQLite through database/sql over pgx; concurrency is the database's:
// unique constraints decide races (DirectRoom inserts with ON CONFLICT DO
// NOTHING on the pair of users).
type Postgres struct {
	sqlStore
}

var _ Store = (*Postgres)(nil)

// pgOpenTimeout bounds OpenPostgres when ctx has no deadline.
const pgOpenTimeout = 5 * time.Second

// OpenPostgres connects to PostgreSQL at rawURL and creates or migrates the
// schema. The error names the URL with its password redacted; it is bounded
// by ctx, or by 5 s when ctx has no deadline.
func OpenPostgres(ctx context.Context, rawURL string) (*Postgres, error) {
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		// pgx redacts the password in its parse errors.
		return nil, fmt.Errorf("%w: %w", ErrUnsupportedURL, err)
	}
	redacted := fmt.Sprintf("postgres://%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, pgOpenTimeout)
		defer cancel()
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(4)
	s := &Postgres{sqlStore{w: db, r: db, d: dialect{name: "postgres", dollar: true, collate: `COLLATE "C"`,
		forUpdate: " FOR UPDATE", classify: pgClassify}}}
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: cannot reach postgres at %s: %w", redacted, err)
	}
	if err := s.migrate(ctx, `SELECT pg_advisory_xact_lock(hashtext('livechat.store.' || coalesce(current_schema(), '')))`); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: postgres %s: %w", redacted, err)
	}
	return s, nil
}

func pgClassify(err error) error {
	var e *pgconn.PgError
	if !errors.As(err, &e) {
		return nil
	}
	switch e.Code {
	case "23505": // unique_violation
		return ErrExists
	case "23503": // foreign_key_violation
		return ErrNotFound
	}
	return nil
}
