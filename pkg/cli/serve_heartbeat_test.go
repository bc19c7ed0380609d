package cli

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestServeHeartbeatFlag: --heartbeat (or LIVECHAT_HEARTBEAT) reaches the
// clients' welcome frame as heartbeat_ms, 0 turns heartbeats off (no
// heartbeat_ms), and a value outside 0 or 1s..5m is a usage error that
// names the flag, before anything starts.
func TestServeHeartbeatFlag(t *testing.T) {
	t.Setenv("LIVECHAT_BROKER", "")
	t.Setenv("LIVECHAT_HEARTBEAT", "")
	for _, bad := range []string{"100ms", "6m", "-1s"} {
		code, _, stderr := run(t, "", "serve", "--broker", "memory://", "--addr", "127.0.0.1:0", "--heartbeat", bad)
		if code != ExitUsage || !strings.Contains(stderr, "--heartbeat") || !strings.Contains(stderr, "1s and 5m") {
			t.Errorf("--heartbeat %s: exit %d, stderr:\n%s", bad, code, stderr)
		}
		if strings.Contains(stderr, "livechat serving") {
			t.Errorf("--heartbeat %s: the server started:\n%s", bad, stderr)
		}
	}
	for _, tc := range []struct {
		args []string
		env  string
		want int64 // heartbeat_ms, 0 for none
	}{
		{nil, "", 10000},
		{[]string{"--heartbeat", "2s"}, "", 2000},
		{[]string{"--heartbeat", "0"}, "", 0},
		{nil, "3s", 3000},
		{[]string{"--heartbeat", "4s"}, "3s", 4000}, // the flag wins
	} {
		t.Setenv("LIVECHAT_HEARTBEAT", tc.env)
		if got := serveWelcomeHeartbeat(t, tc.args...); got != tc.want {
			t.Errorf("serve %v (env %q): heartbeat_ms %d, want %d", tc.args, tc.env, got, tc.want)
		}
	}
}

var servingAddr = regexp.MustCompile(`msg="livechat serving" addr=(\S+)`)

// serveWelcomeHeartbeat runs `serve` with args on a free loopback port,
// reads a client's welcome frame and returns its heartbeat_ms (0: absent),
// then stops the server.
func serveWelcomeHeartbeat(t *testing.T, args ...string) int64 {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ios, _, errOut := testIO("")
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, append([]string{"serve", "--broker", "memory://", "--addr", "127.0.0.1:0", "--app-id", "hb"}, args...), ios)
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve %v exited %d:\n%s", args, code, errOut.String())
		}
	}()
	var addr string
	deadline := time.Now().Add(10 * time.Second)
	for addr == "" {
		if m := servingAddr.FindStringSubmatch(errOut.String()); m != nil {
			addr = m[1]
			break
		}
		select {
		case code := <-done:
			done <- code
			t.Fatalf("serve %v ended (%d) before serving:\n%s", args, code, errOut.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve %v did not start:\n%s", args, errOut.String())
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
	ws, resp, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws", nil)
	if resp != nil {
		resp.Body.Close()
	}
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	var w struct {
		Type        string `json:"type"`
		HeartbeatMS *int64 `json:"heartbeat_ms"`
	}
	_, data, err := ws.ReadMessage()
	if err != nil || json.Unmarshal(data, &w) != nil || w.Type != "welcome" {
		t.Fatalf("first frame %s, %v", data, err)
	}
	if w.HeartbeatMS == nil {
		return 0
	}
	if *w.HeartbeatMS == 0 {
		t.Fatalf("welcome %s: heartbeat_ms present but 0", data)
	}
	return *w.HeartbeatMS
}
