package blob_test

import (
	"bytes"
	"context"
	"testing"

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
