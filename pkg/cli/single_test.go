package cli

import (
	"context"
	"encoding/json"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/livechat/livechat/pkg/auth"
	"github.com/livechat/livechat/pkg/broker/brokertest"
	"github.com/livechat/livechat/pkg/protocol"
)

// singleNode is `livechat serve` run in-process with no data flags, in the
// test's own working directory (so ./livechat-data is a fresh directory).
type singleNode struct {
	addr   string
	cancel context.CancelFunc
	done   chan int
	errOut *syncBuffer
}

// inTempDir moves the test into a fresh working directory and clears
// LIVECHAT_DATA, so every command uses the default ./livechat-data there.
func inTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Chdir(dir)
	t.Setenv("LIVECHAT_DATA", "")
	return dir
}

// startSingle runs serve on addr with the default broker, history, store,
// secret and data directory; only the port (shared machine), the stats
// heartbeat period (speed) and more flags are set.
func startSingle(t *testing.T, addr string, more ...string) *singleNode {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ios, _, errOut := testIO("")
	n := &singleNode{addr: addr, cancel: cancel, done: make(chan int, 1), errOut: errOut}
	args := append([]string{"serve", "--addr", addr, "--heartbeat-interval", "200ms"}, more...)
	go func() {
		n.done <- Run(ctx, args, ios)
	}()
	t.Cleanup(func() { n.stop(t) })
	brokertest.WaitFor(t, 20*time.Second, "serve to be ready", func() bool {
		select {
		case code := <-n.done:
			n.done <- code
			t.Fatalf("serve exited with %d:\n%s", code, errOut.String())
		default:
		}
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return n
}

// stop ends serve as SIGTERM would and checks it exited cleanly.
func (n *singleNode) stop(t *testing.T) {
	t.Helper()
	if n.cancel == nil {
		return
	}
	n.cancel()
	n.cancel = nil
	select {
	case code := <-n.done:
		if code != 0 {
			t.Errorf("serve exit %d:\n%s", code, n.errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not stop:\n%s", n.errOut.String())
	}
}

// join dials the node and joins room.
func (n *singleNode) join(t *testing.T, room, name string) *client {
	t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial("ws://"+n.addr+"/ws", nil)
	if resp != nil {
		resp.Body.Close()
	}
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &client{t: t, conn: conn}
	if err := conn.WriteJSON(protocol.Inbound{Type: protocol.TypeJoin, Room: room, Name: name}); err != nil {
		t.Fatal(err)
	}
	c.next(protocol.TypeJoined)
	return c
}

func checkMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s: mode %v, want %v", path, got, want)
	}
}

// TestSingleNodeKeepsDataAndServesOperators runs `livechat serve` with no
// flags but its port: its data directory is made with private files; chat
// and an operator announcement (publish through the operator API, seen by
// a WebSocket client and by tail) are kept across a restart; stats lists
// the node; the secret stays the same and token mints with it.
func TestSingleNodeKeepsDataAndServesOperators(t *testing.T) {
	dir := inTempDir(t)
	addr := freePort(t)
	api := "http://" + addr
	n := startSingle(t, addr)

	data := filepath.Join(dir, "livechat-data")
	checkMode(t, data, 0o700)
	checkMode(t, filepath.Join(data, "secret"), 0o600)
	checkMode(t, filepath.Join(data, "operator.key"), 0o600)
	if _, err := os.Stat(filepath.Join(data, "livechat.db")); err != nil {
		t.Fatalf("no database in the data directory: %v", err)
	}
	secret, err := os.ReadFile(filepath.Join(data, "secret"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(n.errOut.String(), strings.TrimSpace(string(secret))) {
		t.Error("serve logged the token secret")
	}

	alice := n.join(t, "lobby", "alice")
	if err := alice.conn.WriteJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "lobby", Text: "before the restart", CID: "c1"}); err != nil {
		t.Fatal(err)
	}
	if m := alice.next(protocol.TypeMessage); m["text"] != "before the restart" {
		t.Fatalf("echo = %v", m)
	}

	// tail and publish through the operator API: only --broker names the
	// port; the key comes from ./livechat-data/operator.key.
	tctx, tcancel := context.WithCancel(context.Background())
	defer tcancel()
	tios, tout, terr := testIO("")
	tdone := make(chan int, 1)
	go func() { tdone <- Run(tctx, []string{"tail", "--broker", api, "--room", "lobby"}, tios) }()
	brokertest.WaitFor(t, 10*time.Second, "tail to subscribe", func() bool { return strings.Contains(terr.String(), "watching") })

	code, _, stderr := run(t, "", "publish", "--broker", api, "--room", "lobby", "maintenance at 18:00")
	if code != 0 {
		t.Fatalf("publish: exit %d: %s", code, stderr)
	}
	if m := alice.next(protocol.TypeMessage); m["text"] != "maintenance at 18:00" || m["system"] != true || m["seq"] != float64(2) {
		t.Errorf("announcement = %v, want system text with seq 2 (stored in the node's history)", m)
	}
	brokertest.WaitFor(t, 10*time.Second, "tail to print the announcement", func() bool {
		return strings.Contains(tout.String(), "#lobby [cli] [system] ops: maintenance at 18:00\n")
	})
	tcancel()
	if code := <-tdone; code != 0 {
		t.Fatalf("tail exit %d: %s", code, terr.String())
	}

	// stats hears the node's heartbeats through the API.
	brokertest.WaitFor(t, 15*time.Second, "stats to list the node", func() bool {
		code, out, stderr := run(t, "", "stats", "--broker", api, "--interval", "500ms", "--output", "json")
		if code != 0 {
			t.Logf("stats: exit %d: %s", code, stderr)
			return false
		}
		var rep StatsReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("stats output %q: %v", out, err)
		}
		return len(rep.Servers) == 1 && rep.Servers[0].Status == "ok" && rep.Totals.Connections == 1
	})

	// Restart: the history is replayed from ./livechat-data/livechat.db.
	n.stop(t)
	n = startSingle(t, addr)
	bob := n.join(t, "lobby", "bob")
	for i, want := range []string{"before the restart", "maintenance at 18:00"} {
		if m := bob.next(protocol.TypeMessage); m["text"] != want || m["seq"] != float64(i+1) {
			t.Errorf("replayed message %d = %v, want %q with seq %d", i+1, m, want, i+1)
		}
	}
	again, err := os.ReadFile(filepath.Join(data, "secret"))
	if err != nil || string(again) != string(secret) {
		t.Errorf("the secret changed across a restart (err %v)", err)
	}

	// token signs with that secret by default.
	code, out, stderr := run(t, "", "token", "--user", "u1", "--name", "alice", "--room", "lobby")
	if code != 0 {
		t.Fatalf("token: exit %d: %s", code, stderr)
	}
	c, err := auth.VerifyToken([]byte(strings.TrimSpace(string(secret))), strings.TrimSpace(out), time.Now())
	if err != nil || c.Subject != "u1" || c.Name != "alice" || !c.AllowsRoom("lobby") || c.AllowsRoom("other") {
		t.Errorf("token %q: claims %+v, %v", out, c, err)
	}
}

// TestOperatorKeyRefused: a wrong or missing operator key is a failure
// (exit 1) that says which file was used, never showing the key; a raw
// request without the key is 401.
func TestOperatorKeyRefused(t *testing.T) {
	dir := inTempDir(t)
	addr := freePort(t)
	api := "http://" + addr
	startSingle(t, addr)

	wrong := filepath.Join(dir, "wrong.key")
	if err := os.WriteFile(wrong, []byte("not-the-key-4242\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"publish", "--broker", api, "--operator-key-file", wrong, "--room", "lobby", "hi"},
		{"tail", "--broker", api, "--operator-key-file", wrong},
		{"stats", "--broker", api, "--operator-key-file", wrong},
	} {
		code, _, stderr := run(t, "", args...)
		want := "error: broker: operator key refused by the livechat node at " + api + " (401): the key in " + wrong +
			" is not this node's (set --operator-key-file or --data to the node's)\n"
		if code != ExitError || stderr != want {
			t.Errorf("%s: exit %d, stderr:\n%s\nwant exit 1 and:\n%s", args[0], code, stderr, want)
		}
	}
	missing := filepath.Join(dir, "none", "operator.key")
	code, _, stderr := run(t, "", "publish", "--broker", api, "--data", filepath.Join(dir, "none"), "--room", "lobby", "hi")
	want := "error: operator key for --broker " + api + ": open " + missing + ": no such file or directory " +
		"(start `livechat serve` with the same --data, or set --operator-key-file)\n"
	if code != ExitError || stderr != want {
		t.Errorf("missing key: exit %d, stderr:\n%s\nwant exit 1 and:\n%s", code, stderr, want)
	}

	for _, auth := range []string{"", "Bearer not-the-key-4242"} {
		req, err := http.NewRequest("POST", api+"/api/ops/publish?subject=livechat.room.lobby", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("publish with %q: %d, want 401", auth, resp.StatusCode)
		}
	}
}
