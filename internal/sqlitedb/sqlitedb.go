// Package sqlitedb opens a SQLite data file (modernc.org/sqlite, pure Go,
// driver name "sqlite") the way every livechat store uses it: WAL mode, a
// busy timeout, one writer connection whose transactions begin IMMEDIATE,
// and a small pool of read-only connections.
package sqlitedb

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Readers is the size of the read-only pool returned by Open.
const Readers = 4

// BusyTimeout is how long a connection waits for a lock held by another
// connection or process (an operator command, a second store on the same
// file) before failing with SQLITE_BUSY.
const BusyTimeout = 5 * time.Second

// DSN returns the driver's data source name for the file at path, taken
// literally (?, # and % are escaped), with WAL mode, BusyTimeout and
// foreign keys on, followed by extra query parameters (each starting with
// "&").
func DSN(path string, extra ...string) string {
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + fmt.Sprintf(
		"?_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)", BusyTimeout.Milliseconds())
	for _, e := range extra {
		dsn += e
	}
	return dsn
}

// Open returns two handles on the data file at path (created on first use;
// its directory must exist): w has exactly one connection, kept open, and
// begins every transaction with BEGIN IMMEDIATE, so writers of this
// process queue in database/sql instead of failing with SQLITE_BUSY; r is
// a pool of Readers read-only connections, which in WAL mode read while a
// write commits. Neither connects before first use: create the schema
// through w before reading, so that the first connection sets WAL mode
// alone. The caller closes both. Both are safe for concurrent use.
func Open(path string) (w, r *sql.DB, err error) {
	w, err = sql.Open("sqlite", DSN(path, "&_txlock=immediate"))
	if err != nil {
		return nil, nil, fmt.Errorf("sqlitedb: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	r, err = sql.Open("sqlite", DSN(path, "&_pragma=query_only(1)"))
	if err != nil {
		_ = w.Close()
		return nil, nil, fmt.Errorf("sqlitedb: open %s: %w", path, err)
	}
	r.SetMaxOpenConns(Readers)
	r.SetMaxIdleConns(Readers)
	return w, r, nil
}

// Connect makes w's first connection, trying again for up to BusyTimeout
// (bounded by ctx) while it fails with SQLITE_BUSY: switching a new file
// to WAL mode takes an exclusive lock that SQLite does not wait for, so
// processes opening one new file at once (servers sharing a data
// directory) refuse each other for a moment.
func Connect(ctx context.Context, w *sql.DB) error {
	deadline := time.Now().Add(BusyTimeout)
	for pause := 5 * time.Millisecond; ; pause = min(2*pause, 200*time.Millisecond) {
		err := w.PingContext(ctx)
		if err == nil || !strings.Contains(err.Error(), "SQLITE_BUSY") || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(pause):
		}
	}
}
