package historytest

import (
	"context"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
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
		skipOrFail(t, "historytest: no PostgreSQL at POSTGRES_URL or %s: %v", DefaultPostgresURL, err)
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

// StartPostgres runs a PostgreSQL server of its own (initdb into a
// temporary directory, fsync off, trust authentication, listening on a free
// loopback port) and returns the URL of its "postgres" database. stop ends
// it as a crash would (SIGQUIT: immediate shutdown, no checkpoint) and waits
// for it to exit; restart starts it again on the same port and data and
// waits until it accepts connections. Both are safe to call more than once;
// the server is stopped and its directory removed when the test ends. When
// run as root the server runs as the "postgres" user (PostgreSQL refuses
// root). Without the binaries the test fails under CI=true and is skipped
// otherwise.
func StartPostgres(t testing.TB) (url string, stop func(), restart func()) {
	t.Helper()
	bin := postgresBinDir()
	if bin == "" {
		skipOrFail(t, "historytest: initdb/postgres not found in PATH or /usr/lib/postgresql/*/bin")
	}
	dir, err := os.MkdirTemp("", "historytest-pg-")
	if err != nil {
		t.Fatalf("historytest: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	uid, gid := -1, -1
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			skipOrFail(t, "historytest: running as root and no postgres user: %v", err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatalf("historytest: %v", err)
		}
	}
	run := func(name string, args ...string) *exec.Cmd {
		c := exec.Command(filepath.Join(bin, name), args...)
		runAs(c, uid, gid)
		c.Dir = dir
		return c
	}
	data := filepath.Join(dir, "data")
	if out, err := run("initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("historytest: initdb: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("historytest: free port: %v", err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	if err := l.Close(); err != nil {
		t.Fatalf("historytest: free port: %v", err)
	}
	url = "postgres://postgres@127.0.0.1:" + port + "/postgres?sslmode=disable"

	var mu sync.Mutex
	var cmd *exec.Cmd
	var exited chan struct{}
	stop = func() {
		mu.Lock()
		defer mu.Unlock()
		if cmd == nil {
			return
		}
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		cmd = nil
	}
	restart = func() {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if cmd != nil {
			return
		}
		c := run("postgres", "-D", data, "-p", port, "-k", dir, "-c", "listen_addresses=127.0.0.1",
			"-c", "fsync=off", "-c", "logging_collector=off")
		logf, err := os.Create(filepath.Join(dir, "postgres.log"))
		if err != nil {
			t.Fatalf("historytest: %v", err)
		}
		c.Stdout, c.Stderr = logf, logf
		if err := c.Start(); err != nil {
			t.Fatalf("historytest: start postgres: %v", err)
		}
		cmd, exited = c, make(chan struct{})
		done := exited
		go func() {
			_ = c.Wait()
			_ = logf.Close()
			close(done)
		}()
		deadline := time.Now().Add(20 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			conn, err := pgx.Connect(ctx, url)
			if err == nil {
				_ = conn.Close(ctx)
				cancel()
				return
			}
			cancel()
			if time.Now().After(deadline) {
				log, _ := os.ReadFile(filepath.Join(dir, "postgres.log"))
				t.Fatalf("historytest: postgres on port %s not ready within 20s: %v; log:\n%s", port, err, log)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	restart()
	t.Cleanup(stop)
	return url, stop, restart
}

func postgresBinDir() string {
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for i := len(dirs) - 1; i >= 0; i-- { // the newest version
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i]
		}
	}
	return ""
}

func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format+" (CI=true: failing instead of skipping)", args...)
	}
	t.Skipf(format, args...)
}
