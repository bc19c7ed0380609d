package store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/livechat/livechat/pkg/store"
	"github.com/livechat/livechat/pkg/store/storetest"
)

func TestSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "livechat.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestSQLiteKeepsDataAcrossReopen closes the store and opens the same file
// again, as a restarted node does.
func TestSQLiteKeepsDataAcrossReopen(t *testing.T) {
	ctx := context.Background()
	url := "sqlite://" + filepath.Join(t.TempDir(), "data.db") // absolute: sqlite:///...
	s, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateUser(ctx, store.User{ID: "u", Key: "alice", PasswordHash: "h"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateUser(ctx, store.User{ID: "v", Key: "bob"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateSession(ctx, store.Session{ID: "s", UserID: "u", Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	d, _, err := s.DirectRoom(ctx, "u", "v", "d")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	if u, err := s.UserByKey(ctx, "alice"); err != nil || u.ID != "u" || u.PasswordHash != "h" {
		t.Fatalf("UserByKey after reopen = %+v, %v", u, err)
	}
	if _, err := s.Session(ctx, "s"); err != nil {
		t.Fatalf("Session after reopen: %v", err)
	}
	if r, created, err := s.DirectRoom(ctx, "v", "u", "other"); err != nil || created || r.ID != d.ID {
		t.Fatalf("DirectRoom after reopen = %+v, created %v, %v; want %q", r, created, err, d.ID)
	}
	if _, err := s.CreateUser(ctx, store.User{ID: "w", Key: "alice"}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("a taken Key after reopen: %v, want ErrExists", err)
	}
}

func TestOpen(t *testing.T) {
	t.Chdir(t.TempDir())
	ctx := context.Background()
	for _, tc := range []struct {
		url string
		err error
	}{
		{"memory://", nil},
		{"sqlite://rel.db", nil}, // relative to the working directory
		{"sqlite:///" + filepath.Join(t.TempDir(), "abs.db")[1:], nil},
		{"sqlite://", store.ErrUnsupportedURL},
		{"sqlite://x.db?mode=memory", store.ErrUnsupportedURL},
		{"redis://127.0.0.1:6379", store.ErrUnsupportedURL},
		{"::", store.ErrUnsupportedURL},
	} {
		s, err := store.Open(ctx, tc.url)
		if tc.err == nil && err != nil || tc.err != nil && !errors.Is(err, tc.err) {
			t.Errorf("Open(%q) = %v, want %v", tc.url, err, tc.err)
		}
		if err == nil {
			_ = s.Close()
		}
	}
	if _, err := os.Stat("rel.db"); err != nil {
		t.Fatalf("sqlite://rel.db is not in the working directory: %v", err)
	}
}

// TestSQLiteOddPath: a file name with URI metacharacters is a file name.
func TestSQLiteOddPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "we?ird#na%20me.db")
	s, err := store.OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the data file is not at %q: %v", path, err)
	}
}

// TestSQLiteOpenAtOnce: servers sharing a data directory open one new
// database file at the same moment; each waits for the others (switching
// the new file to WAL mode refuses without waiting) instead of failing.
func TestSQLiteOpenAtOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.db")
	const n = 8
	errs := make(chan error, n)
	for range n {
		go func() {
			st, err := store.Open(context.Background(), "sqlite://"+path)
			if err == nil {
				err = st.Close()
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("Open at once: %v", err)
		}
	}
}
