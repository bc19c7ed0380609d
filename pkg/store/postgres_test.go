package store_test

import (
	"context"
	"testing"

	"github.com/livechat/livechat/pkg/history/historytest"
	"github.com/livechat/livechat/pkg/store"
	"github.com/livechat/livechat/pkg/store/storetest"
)

// TestPostgres runs the suite against the PostgreSQL at $POSTGRES_URL (or
// historytest.DefaultPostgresURL), each subtest in a schema of its own.
func TestPostgres(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := store.OpenPostgres(context.Background(), historytest.PostgresURL(t))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
