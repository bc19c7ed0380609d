package store

import (
	"context"
	"errors"
	"fmt"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/livechat/livechat/internal/sqlitedb"
)

// SQLite is the Store of a single node, in one data file (pure Go SQLite,
// no cgo). The file is in WAL mode, so reads (a small pool of read-only
// connections) go on while a write commits; every write goes through one
// connection, in BEGIN IMMEDIATE transactions, so writers queue in the
// process instead of failing with SQLITE_BUSY. busy_timeout covers another
// process holding the file (an operator command). Foreign keys are on:
// deleting a user cascades to its sessions and memberships.
type SQLite struct {
	sqlStore
}

var _ Store = (*SQLite)(nil)

// OpenSQLite opens (creating it if needed) the data file at path and
// creates or migrates the schema, bounded by ctx. Its directory must exist.
func OpenSQLite(ctx context.Context, path string) (*SQLite, error) {
	if err := check("sqlite path", path, 4096, true); err != nil {
		return nil, err
	}
	w, r, err := sqlitedb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("store: sqlite %s: %w", path, err)
	}
	s := &SQLite{sqlStore{w: w, r: r, d: dialect{name: "sqlite", collate: "COLLATE BINARY", classify: sqliteClassify}}}
	// The schema is created through the writer before any reader opens,
	// so that the first connection sets WAL mode alone.
	if err := sqlitedb.Connect(ctx, w); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("store: sqlite %s: %w", path, err)
	}
	if err := s.migrate(ctx, ""); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("store: sqlite %s: %w", path, err)
	}
	return s, nil
}

func sqliteClassify(err error) error {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return nil
	}
	switch e.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return ErrExists
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return ErrNotFound
	}
	return nil
}
