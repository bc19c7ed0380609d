package store_test

import (
	"context"
	"fmt"
	"sync"
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

// TestPostgresTwoServers opens two stores on one schema at once (the
// migration is serialised) and races DirectRoom between them: every call
// gets the same room and exactly one creates it.
func TestPostgresTwoServers(t *testing.T) {
	ctx := context.Background()
	url := historytest.PostgresURL(t)
	var stores [2]store.Store
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range stores {
		wg.Go(func() {
			var s *store.Postgres
			s, errs[i] = store.OpenPostgres(ctx, url)
			if errs[i] == nil {
				stores[i] = s
				t.Cleanup(func() { _ = s.Close() })
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("concurrent OpenPostgres: %v", err)
		}
	}
	for _, id := range []string{"u", "v"} {
		if _, err := stores[0].CreateUser(ctx, store.User{ID: id, Key: id}); err != nil {
			t.Fatal(err)
		}
	}
	const n = 16
	rooms := make([]string, n)
	created := make([]bool, n)
	derrs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			var r store.Room
			r, created[i], derrs[i] = stores[i%2].DirectRoom(ctx, "u", "v", fmt.Sprint("d", i))
			rooms[i] = r.ID
		})
	}
	wg.Wait()
	made := 0
	for i := range n {
		if derrs[i] != nil || rooms[i] != rooms[0] {
			t.Fatalf("call %d: room %q, %v; call 0 got %q", i, rooms[i], derrs[i], rooms[0])
		}
		if created[i] {
			made++
		}
	}
	if made != 1 {
		t.Fatalf("%d calls created the room, want 1", made)
	}
}
