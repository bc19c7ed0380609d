package blob_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livechat/livechat/pkg/blob"
	"github.com/livechat/livechat/pkg/blob/blobtest"
)

// newDir opens a Dir store in parent/store and, when the test ends (after
// the suite closed the store), checks that tmp/ is empty and that nothing
// was created next to the store directory.
func newDir(t *testing.T) (*blob.Dir, string) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "store")
	s, err := blob.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if left, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(left) != 0 {
			t.Errorf("temporary files left behind: %v", left)
		}
		if out, _ := os.ReadDir(parent); len(out) != 1 {
			t.Errorf("files created outside the store directory: %v", out)
		}
	})
	return s, dir
}

func TestDir(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store {
		s, _ := newDir(t)
		return s
	})
}

// TestDirSymlinkOutside plants symlinks in blobs/ pointing outside the
// directory (at a valid blob file copied there, so only the confinement can
// stop it); Open and Stat must refuse them.
func TestDirSymlinkOutside(t *testing.T) {
	ctx := context.Background()
	s, dir := newDir(t)
	defer func() { _ = s.Close() }()
	if _, err := s.Put(ctx, "real", strings.NewReader("secret outside"), 100); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "victim")
	raw, err := os.ReadFile(filepath.Join(dir, "blobs", "real"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(outside, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "blobs", "abs")); err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(filepath.Join(dir, "blobs"), outside)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(rel, filepath.Join(dir, "blobs", "rel")); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"abs", "rel"} {
		r, _, err := s.Open(ctx, id)
		if err == nil {
			b, _ := io.ReadAll(r)
			_ = r.Close()
			t.Fatalf("Open %s followed a symlink outside the directory and read %q", id, b)
		}
		if _, err := s.Stat(ctx, id); err == nil {
			t.Fatalf("Stat %s followed a symlink outside the directory", id)
		}
	}
	// A symlink in place of tmp/ is not followed by Put either: the new
	// file would land outside.
	if err := os.RemoveAll(filepath.Join(dir, "tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Dir(outside), filepath.Join(dir, "tmp")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "via-tmp", strings.NewReader("x"), 10); err == nil {
		t.Fatal("Put wrote through a symlinked tmp/ outside the directory")
	}
	if left, _ := os.ReadDir(filepath.Dir(outside)); len(left) != 1 {
		t.Fatalf("files appeared outside: %v", left)
	}
	if err := os.Remove(filepath.Join(dir, "tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
}

// TestDirCleansTmp: a Put interrupted by a crash leaves a file in tmp/;
// opening the directory again removes it once it is a day old (a recent one
// may be another process's Put) and keeps the blobs; processes sharing the
// directory open it at once.
func TestDirCleansTmp(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "store")
	s, err := blob.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "kept", strings.NewReader("kept"), 10); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	// A crash two days ago, and a Put in progress in another process.
	crashed, busy := filepath.Join(dir, "tmp", "CRASHED"), filepath.Join(dir, "tmp", "BUSY")
	for _, f := range []string{crashed, busy} {
		if err := os.WriteFile(f, []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(crashed, old, old); err != nil {
		t.Fatal(err)
	}
	st, err := blob.Open(ctx, "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	if left, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(left) != 1 || left[0].Name() != "BUSY" {
		t.Fatalf("tmp/ after open: %v, want only the recent BUSY", left)
	}
	// Servers sharing the directory open it at once.
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			s, err := blob.OpenDir(dir)
			if err == nil {
				err = s.Close()
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Errorf("concurrent OpenDir: %v", err)
		}
	}
	r, _, err := st.Open(ctx, "kept")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.Close() }()
	if b, _ := io.ReadAll(r); !bytes.Equal(b, []byte("kept")) {
		t.Fatalf("kept blob reads %q", b)
	}
}

// TestDirNotABlob: a file in blobs/ without a valid header is refused,
// not served.
func TestDirNotABlob(t *testing.T) {
	ctx := context.Background()
	s, dir := newDir(t)
	defer func() { _ = s.Close() }()
	if err := os.WriteFile(filepath.Join(dir, "blobs", "junk"), bytes.Repeat([]byte("j"), 200), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "blobs", "adir"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"junk", "adir"} {
		if _, err := s.Stat(ctx, id); err == nil || errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("Stat %s: %v, want a not-a-blob error", id, err)
		}
	}
	if err := os.Remove(filepath.Join(dir, "blobs", "adir")); err != nil {
		t.Fatal(err)
	}
}

func TestOpenURL(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, u := range []string{"memory://", "file://" + dir + "/a", "file://localhost" + dir + "/b"} {
		s, err := blob.Open(ctx, u)
		if err != nil {
			t.Fatalf("Open %q: %v", u, err)
		}
		_ = s.Close()
	}
	for _, u := range []string{"file://rel/dir", "file:rel", "file:///x?y=1", "dir:///x", "s3://bucket", "::"} {
		if s, err := blob.Open(ctx, u); !errors.Is(err, blob.ErrUnsupportedURL) {
			if s != nil {
				_ = s.Close()
			}
			t.Fatalf("Open %q: %v, want ErrUnsupportedURL", u, err)
		}
	}
}
