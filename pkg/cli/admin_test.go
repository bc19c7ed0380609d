package cli

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livechat/livechat/pkg/auth"
	"github.com/livechat/livechat/pkg/broker"
	"github.com/livechat/livechat/pkg/protocol"
	"github.com/livechat/livechat/pkg/store"
)

// opsEnv is what a single node leaves for the operator commands: a data
// directory with the store (livechat.db) and the operator key, and the
// node's operator API over its in-process broker. LIVECHAT_DATA and
// LIVECHAT_BROKER point the commands at them, so they run with no flags.
type opsEnv struct {
	dir string
	st  store.Store   // the same database, opened by the test
	b   broker.Broker // the node's broker: the test subscribes here
	api string
	// failPublish makes the operator API answer 503 to publishes.
	failPublish atomic.Bool
}

const testOperatorKey = "test-operator-key-0123456789abcdef"

func newOpsEnv(t *testing.T) *opsEnv {
	t.Helper()
	e := &opsEnv{dir: t.TempDir()}
	raw, err := dataSQLiteURL(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if e.st, err = store.Open(ctx, raw); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.st.Close() })
	if err := os.WriteFile(filepath.Join(e.dir, operatorKeyFile), []byte(testOperatorKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.b = broker.NewMemory(broker.Options{})
	t.Cleanup(func() { _ = e.b.Close() })
	h := broker.NewHTTPHandler(e.b, []byte(testOperatorKey), slog.New(slog.DiscardHandler))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e.failPublish.Load() && strings.HasSuffix(r.URL.Path, "/publish") {
			http.Error(w, "broker down", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(h.Close)
	e.api = srv.URL
	t.Setenv("LIVECHAT_DATA", e.dir)
	t.Setenv("LIVECHAT_BROKER", e.api)
	t.Setenv("LIVECHAT_PREFIX", "")
	t.Setenv("LIVECHAT_STORE", "")
	t.Setenv("LIVECHAT_OUTPUT", "")
	return e
}

// at is a fixed creation time, second i of a day.
func at(i int) time.Time { return time.Date(2026, 3, 1, 12, 0, i, 0, time.UTC) }

// addUser stores a user with a fixed id and creation time.
func (e *opsEnv) addUser(t *testing.T, id, name string, created time.Time) store.User {
	t.Helper()
	key, err := auth.NameKey(name)
	if err != nil {
		t.Fatal(err)
	}
	u, err := e.st.CreateUser(context.Background(), store.User{ID: id, Name: name, Key: key, PasswordHash: "$argon2id$not-shown", Created: created})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// events subscribes to the user's subject on the node's broker.
func (e *opsEnv) events(t *testing.T, userID string) <-chan broker.Message {
	t.Helper()
	ch := make(chan broker.Message, 16)
	sub, err := broker.SubscribeChan(context.Background(), e.b, protocol.UserSubject(protocol.DefaultPrefix, userID), ch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return ch
}

// awaitEvent returns the next event on ch, failing after 10 s.
func awaitEvent(t *testing.T, ch <-chan broker.Message) protocol.UserEvent {
	t.Helper()
	select {
	case m := <-ch:
		var ev protocol.UserEvent
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatalf("event %q: %v", m.Data, err)
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event published within 10s")
	}
	return protocol.UserEvent{}
}

// noEvent fails when ch holds an event.
func noEvent(t *testing.T, ch <-chan broker.Message) {
	t.Helper()
	select {
	case m := <-ch:
		t.Errorf("unexpected event %s", m.Data)
	default:
	}
}

// runIO runs the command line with ios and returns the exit code.
func runIO(t *testing.T, ios *IOStreams, args ...string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return Run(ctx, args, ios)
}

// checkRun runs args and compares exit code, stdout and stderr exactly.
func checkRun(t *testing.T, stdin string, code int, stdout, stderr string, args ...string) {
	t.Helper()
	gotCode, gotOut, gotErr := run(t, stdin, args...)
	if gotCode != code || gotOut != stdout || gotErr != stderr {
		t.Errorf("livechat %s:\nexit %d, stdout:\n%s\nstderr:\n%s\nwant exit %d, stdout:\n%s\nstderr:\n%s",
			strings.Join(args, " "), gotCode, gotOut, gotErr, code, stdout, stderr)
	}
}

// TestAdminNeedsTheServersStore: without --store, the data directory's
// livechat.db must exist (made by serve); an operator command never makes
// an empty store elsewhere.
func TestAdminNeedsTheServersStore(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("LIVECHAT_DATA", dir)
	t.Setenv("LIVECHAT_STORE", "")
	want := "error: no store: --store is unset and " + filepath.Join(dir, "livechat.db") + " does not exist " +
		"(set --store or LIVECHAT_STORE to the servers' store, or --data to the directory of `livechat serve`)\n"
	checkRun(t, "", ExitError, "", want, "users", "list")
	checkRun(t, "", ExitError, "", want, "rooms", "list")
	if _, err := os.Stat(filepath.Join(dir, "livechat.db")); err == nil {
		t.Error("users list created livechat.db")
	}
	checkRun(t, "", ExitUsage, "", "error: --store: store: unsupported URL: scheme \"mongo\" (want memory, sqlite or postgres)\n"+
		"Run 'livechat users list --help' for usage.\n", "users", "list", "--store", "mongo://x")

	// --store (or LIVECHAT_STORE) names any store.
	other := filepath.Join(t.TempDir(), "other.db")
	t.Setenv("LIVECHAT_STORE", "sqlite://"+other)
	checkRun(t, "", ExitOK, "ID\tNAME\tCREATED\tBANNED\n", "", "users", "list")
}

// TestStoreURLIsServes: the operator commands and serve find the default
// store the same way.
func TestStoreURLIsServes(t *testing.T) {
	dir := t.TempDir()
	got, err := storeURLFor("", dir)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := dataSQLiteURL(dir); got != want {
		t.Errorf("default store %q, want %q", got, want)
	}
	if got, _ := storeURLFor("postgres://x/y", dir); got != "postgres://x/y" {
		t.Errorf("--store ignored: %q", got)
	}
}
