package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
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

// sqliteReaders is the size of the read pool.
const sqliteReaders = 4

// sqliteBusy is how long a connection waits for a lock held by another
// process before failing.
const sqliteBusy = 5 * time.Second

// OpenSQLite opens (creating it if needed) the data file at path and
// creates or migrates the schema, bounded by ctx. Its directory must exist.
func OpenSQLite(ctx context.Context, path string) (*SQLite, error) {
	if err := check("sqlite path", path, 4096, true); err != nil {
		return nil, err
	}
	base := "file:" + (&url.URL{Path: path}).EscapedPath() + fmt.Sprintf(
		"?_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)", sqliteBusy.Milliseconds())
	w, err := sql.Open("sqlite", base+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("store: sqlite %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	r, err := sql.Open("sqlite", base+"&_pragma=query_only(1)")
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("store: sqlite %s: %w", path, err)
	}
	r.SetMaxOpenConns(sqliteReaders)
	r.SetMaxIdleConns(sqliteReaders)
	s := &SQLite{sqlStore{w: w, r: r, d: dialect{name: "sqlite", collate: "COLLATE BINARY", classify: sqliteClassify}}}
	// The schema is created through the writer before any reader opens,
	// so that the first connection sets WAL mode alone.
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
