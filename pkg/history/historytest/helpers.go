package historytest

import (
	"context"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/livechat/livechat/pkg/broker/brokertest"
)

// DefaultPostgresURL is used by PostgresURL when POSTGRES_URL is not set.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// PostgresURL creates a schema of its own in the database at $POSTGRES_URL
// (or DefaultPostgresURL), drops it when the test ends, and returns the URL
// with search_path set to it, so tests sharing a database run in parallel.
// When the database cannot be reached the test fails under CI=true and is
// skipped otherwise.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv("POSTGRES_URL")
	if base == "" {
		base = DefaultPostgresURL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		msg := "historytest: no PostgreSQL at POSTGRES_URL or " + DefaultPostgresURL + ": %v"
		if os.Getenv("CI") == "true" {
			t.Fatalf(msg+" (CI=true: failing instead of skipping)", err)
		}
		t.Skipf(msg, err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	schema := brokertest.Prefix(t) // t + 12 hex digits: a valid identifier
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("historytest: create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("historytest: drop schema %s: %v", schema, err)
			return
		}
		defer func() { _ = c.Close(context.Background()) }()
		if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("historytest: drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("historytest: POSTGRES_URL must be a URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
