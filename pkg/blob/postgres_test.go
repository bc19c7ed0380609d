package blob_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/livechat/livechat/pkg/blob"
	"github.com/livechat/livechat/pkg/blob/blobtest"
	"github.com/livechat/livechat/pkg/history/historytest"
)

// TestPostgres runs the suite against the PostgreSQL at $POSTGRES_URL (or
// historytest.DefaultPostgresURL), each subtest in a schema of its own.
func TestPostgres(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store {
		s, err := blob.OpenPostgres(context.Background(), historytest.PostgresURL(t))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestPostgresTwoServers: a blob put through one server is read through
// another (two stores on one schema, opened concurrently: the schema
// creation is serialised).
func TestPostgresTwoServers(t *testing.T) {
	ctx := context.Background()
	url := historytest.PostgresURL(t)
	stores := make([]*blob.Postgres, 2)
	errs := make(chan error, 2)
	for i := range stores {
		go func() {
			var err error
			stores[i], err = blob.OpenPostgres(ctx, url)
			errs <- err
		}()
	}
	for range stores {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent OpenPostgres: %v", err)
		}
	}
	for _, s := range stores {
		t.Cleanup(func() { _ = s.Close() })
	}
	data := blobtest.Data(9, blob.ChunkSize*2+3)
	if _, err := stores[0].Put(ctx, "shared", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	r, info, err := stores[1].Open(ctx, "shared")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.Close() }()
	var got bytes.Buffer
	if _, err := got.ReadFrom(r); err != nil || !bytes.Equal(got.Bytes(), data) || info.Size != int64(len(data)) {
		t.Fatalf("read through the other server: %v, %d bytes, info %+v", err, got.Len(), info)
	}
}

// TestPostgresNothingLeft: refused and failed Puts leave no row in either
// table, not only no visible blob.
func TestPostgresNothingLeft(t *testing.T) {
	ctx := context.Background()
	url := historytest.PostgresURL(t)
	s, err := blob.OpenPostgres(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	data := blobtest.Data(3, 3*blob.ChunkSize)
	if _, err := s.Put(ctx, "big", bytes.NewReader(data), int64(len(data))-1); !errors.Is(err, blob.ErrTooLarge) {
		t.Fatalf("Put over max: %v", err)
	}
	c, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Put(c, "cancelled", bytes.NewReader(data), int64(len(data))); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put on a cancelled context: %v", err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	var objects, chunks int
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM blob_objects), (SELECT count(*) FROM blob_chunks)`).Scan(&objects, &chunks); err != nil {
		t.Fatal(err)
	}
	if objects != 0 || chunks != 0 {
		t.Fatalf("%d blob rows and %d chunk rows left behind", objects, chunks)
	}
}
