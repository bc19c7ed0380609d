package store_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"

	"github.com/livechat/livechat/pkg/history/historytest"
	"github.com/livechat/livechat/pkg/store"
)

// downgrade turns a store's database back into schema version 1 (before
// uploads), as a server of the previous release left it.
func downgrade(t *testing.T, driver, dsn string) {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	for _, stmt := range []string{`DROP TABLE store_uploads`, `DELETE FROM store_schema_version WHERE version > 1`} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
}

// testMigrateFromV1: a version 1 database keeps its data and gets the
// uploads table when opened; opening again changes nothing.
func testMigrateFromV1(t *testing.T, open func() store.Store, driver, dsn string) {
	ctx := context.Background()
	s := open()
	if _, err := s.CreateUser(ctx, store.User{ID: "u", Key: "alice"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	downgrade(t, driver, dsn)
	for range 2 {
		s = open()
		if _, err := s.UserByKey(ctx, "alice"); err != nil {
			t.Fatalf("UserByKey after the migration: %v", err)
		}
		if _, err := s.CreateUpload(ctx, store.Upload{ID: "f", UserID: "u", Room: "r", Type: "text/plain", Size: 3}); err != nil {
			t.Fatalf("CreateUpload after the migration: %v", err)
		}
		if n, b, err := s.UploadUsage(ctx, "u"); err != nil || n != 1 || b != 3 {
			t.Fatalf("UploadUsage after the migration = %d, %d, %v", n, b, err)
		}
		if err := s.DeleteUpload(ctx, "f"); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	var v, n int
	if err := db.QueryRow(`SELECT max(version), count(*) FROM store_schema_version`).Scan(&v, &n); err != nil || v != 2 || n != 2 {
		t.Fatalf("schema versions: max %d, %d rows, %v; want 2, 2", v, n, err)
	}
}

func TestSQLiteMigrateFromV1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.db")
	testMigrateFromV1(t, func() store.Store {
		s, err := store.OpenSQLite(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, "sqlite", path)
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	// The stale index is partial: it holds only unattached uploads.
	var def string
	if err := db.QueryRow(`SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'store_uploads_stale'`).Scan(&def); err != nil {
		t.Fatal(err)
	}
	if want := "WHERE message = ''"; !strings.Contains(def, want) {
		t.Fatalf("store_uploads_stale is %q, want a partial index %s", def, want)
	}
}

func TestPostgresMigrateFromV1(t *testing.T) {
	url := historytest.PostgresURL(t)
	testMigrateFromV1(t, func() store.Store {
		s, err := store.OpenPostgres(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, "pgx", url)
}
