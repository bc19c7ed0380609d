package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/livechat/livechat/pkg/auth"
	"github.com/livechat/livechat/pkg/loadgen"
)

const benchSecret = "bench-test-secret-0123456789abcdef0123456789"

// writeSecret writes s to a file of its own and returns its path.
func writeSecret(t *testing.T, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(s+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// clearSecretEnv unsets the token secret variables for the test.
func clearSecretEnv(t *testing.T) {
	t.Setenv(envSecret, "")
	t.Setenv(envSecretFile, "")
	t.Setenv("LIVECHAT_TOKENS", "")
	t.Setenv("LIVECHAT_TOKEN_SECRET_FILE", "")
}

// TestBenchTokenSecretErrors: --tokens without a usable secret is a usage
// error (exit 2) that says where the secret was looked for, and never
// shows a secret.
func TestBenchTokenSecretErrors(t *testing.T) {
	short := writeSecret(t, "short-secret-value")
	missing := filepath.Join(t.TempDir(), "nope")
	for _, tc := range []struct {
		name   string
		env    map[string]string
		args   []string
		stderr string
	}{
		{"no secret", nil, []string{"--tokens"},
			"error: --tokens needs the servers' token secret: set --token-secret-file, LIVECHAT_SECRET or LIVECHAT_SECRET_FILE\n"},
		{"short file", nil, []string{"--token-secret-file", short}, "error: --token-secret-file: auth: token secret must be at least 32 bytes"},
		{"missing file", nil, []string{"--token-secret-file", missing}, "error: --token-secret-file: auth: token secret file: open " + missing},
		{"short env", map[string]string{envSecret: "short-secret-value"}, []string{"--tokens"},
			"must be at least 32 bytes: generate one with `openssl rand -base64 48` (from the environment)"},
		{"missing env file", map[string]string{envSecretFile: missing}, []string{"--tokens"}, "error: --tokens: auth: token secret file: open " + missing},
		{"short env file", map[string]string{envSecretFile: short}, []string{"--tokens"}, "(from the file " + short + ")"},
		// The file flag wins over the environment, even a good one.
		{"flag over env", map[string]string{envSecret: benchSecret}, []string{"--token-secret-file", short}, "at least 32 bytes"},
		// LIVECHAT_SECRET wins over LIVECHAT_SECRET_FILE.
		{"env over env file", map[string]string{envSecret: "short-secret-value", envSecretFile: writeSecret(t, benchSecret)},
			[]string{"--tokens"}, "(from the environment)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearSecretEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			code, _, errOut := benchRun(t, append([]string{"bench", "--clients", "2"}, tc.args...)...)
			if code != ExitUsage || !strings.Contains(errOut, tc.stderr) ||
				!strings.HasSuffix(errOut, "\nRun 'livechat bench --help' for usage.\n") {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 2 and %q", code, errOut, tc.stderr)
			}
			if strings.Contains(errOut, "short-secret-value") || strings.Contains(errOut, benchSecret) {
				t.Errorf("stderr shows the secret:\n%s", errOut)
			}
		})
	}
}

// TestBenchTokenConfig: without --tokens the secret variables change
// nothing; with it every client gets a token for sub bench-<i> asserting
// its bench name, valid for the whole run.
func TestBenchTokenConfig(t *testing.T) {
	clearSecretEnv(t)
	t.Setenv(envSecret, "short") // would be an error were it read
	opts := newBenchOptions(&GlobalOptions{})
	cfg, err := benchConfig(opts)
	if err != nil || cfg.Token != nil || cfg.RunID != "" {
		t.Fatalf("no --tokens: %v, token %v, run id %q; want the default run", err, cfg.Token != nil, cfg.RunID)
	}

	for _, tc := range []struct {
		name string
		set  func(o *BenchOptions)
	}{
		{"env", func(o *BenchOptions) { t.Setenv(envSecret, benchSecret); o.Tokens = true }},
		{"file", func(o *BenchOptions) { o.TokenSecretFile = writeSecret(t, benchSecret) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := newBenchOptions(&GlobalOptions{})
			opts.Clients, opts.Rate, opts.Duration = 3, 40, 20*time.Second
			tc.set(opts)
			cfg, err := benchConfig(opts)
			if err != nil || cfg.Token == nil || cfg.RunID == "" {
				t.Fatalf("%v, token %v, run id %q", err, cfg.Token != nil, cfg.RunID)
			}
			ttl := benchTokenTTL(cfg)
			if min := cfg.Duration + cfg.JoinTimeout + cfg.ConnectTimeout + cfg.Warmup + cfg.Drain; ttl < min+benchTokenMargin {
				t.Errorf("token ttl %v, want at least the run's %v plus %v", ttl, min, benchTokenMargin)
			}
			for i := range cfg.Clients + cfg.Publishers {
				tok, err := cfg.Token(i)
				if err != nil {
					t.Fatalf("Token(%d): %v", i, err)
				}
				c, err := auth.VerifyToken([]byte(benchSecret), tok, time.Now())
				if err != nil || c.Subject != "bench-"+strconv.Itoa(i) || c.Name != cfg.ClientName(i) ||
					c.ExpiresAt.Before(time.Now().Add(ttl-2*time.Second)) {
					t.Errorf("token %d: %v, claims %+v; want sub bench-%d, name %s, exp in %v", i, err, c, i, cfg.ClientName(i), ttl)
				}
			}
		})
	}
}

// tokenRoomServer is a one-room chat server that wants tokens: it refuses
// a handshake without a valid one (401), answers a join whose name is
// not the token's with error forbidden_name, and delivers every message
// to every member. It counts the handshakes it accepted.
func tokenRoomServer(t *testing.T, secret []byte) (*httptest.Server, *atomic.Int64) {
	return tokenRoomServerWith(t, secret, nil)
}

// tokenRoomServerWith is tokenRoomServer serving /api/ with api, if not nil.
func tokenRoomServerWith(t *testing.T, secret []byte, api http.Handler) (*httptest.Server, *atomic.Int64) {
	var (
		accepted atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		members  = map[*websocket.Conn]*sync.Mutex{}
		up       websocket.Upgrader
	)
	write := func(ws *websocket.Conn, wmu *sync.Mutex, v any) {
		wmu.Lock()
		defer wmu.Unlock()
		_ = ws.WriteJSON(v)
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if api != nil && strings.HasPrefix(r.URL.Path, "/api/") {
			api.ServeHTTP(w, r)
			return
		}
		// Counted before the upgrade: ts.Close waits for handlers until they
		// hijack their connection, so no Add comes after the cleanup's Wait.
		wg.Add(1)
		defer wg.Done()
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		claims, err := auth.VerifyToken(secret, tok, time.Now())
		if err != nil {
			http.Error(w, "invalid token", http.StatusUnauthorized)
			return
		}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		accepted.Add(1)
		wmu := &sync.Mutex{}
		defer func() {
			mu.Lock()
			delete(members, ws)
			mu.Unlock()
			_ = ws.Close()
		}()
		for {
			var in struct{ Type, Room, Name, Text, CID string }
			if err := ws.ReadJSON(&in); err != nil {
				return
			}
			switch in.Type {
			case "join":
				if in.Name != claims.Name {
					write(ws, wmu, map[string]any{"type": "error", "code": "forbidden_name"})
					continue
				}
				mu.Lock()
				members[ws] = wmu
				mu.Unlock()
				write(ws, wmu, map[string]any{"type": "joined", "room": in.Room, "name": in.Name, "members": []string{}})
			case "send":
				write(ws, wmu, map[string]any{"type": "ack", "cid": in.CID, "id": in.CID})
				msg := map[string]any{"type": "message", "room": in.Room, "id": in.CID, "from": claims.Name, "text": in.Text}
				mu.Lock()
				for m, mmu := range members {
					write(m, mmu, msg)
				}
				mu.Unlock()
			}
		}
	}))
	t.Cleanup(func() {
		mu.Lock()
		for m := range members {
			_ = m.Close()
		}
		mu.Unlock()
		ts.Close()
		wg.Wait()
	})
	return ts, &accepted
}

// TestBenchTokens runs bench --token-secret-file against a server that
// wants tokens: every client connects and joins, nothing is lost, and
// the output says the clients were token users.
func TestBenchTokens(t *testing.T) {
	clearSecretEnv(t)
	ts, accepted := tokenRoomServer(t, []byte(benchSecret))
	args := []string{"bench", "--url", wsURL(ts), "--clients", "8", "--rate", "40", "--duration", "300ms",
		"--warmup", "0", "--drain", "2s", "--source-ips", "none", "--token-secret-file", writeSecret(t, benchSecret)}
	code, out, errOut := benchRun(t, append(args, "-o", "json")...)
	if code != ExitOK {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	var res loadgen.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out)
	}
	if !res.Tokens || res.Connect.Established != 10 || accepted.Load() != 10 || res.Members != 10 ||
		len(res.ErrorFrames) != 0 || res.Sent == 0 || res.Delivered != res.Expected {
		t.Errorf("tokens %v established %d accepted %d members %d error frames %v sent %d delivered %d of %d",
			res.Tokens, res.Connect.Established, accepted.Load(), res.Members, res.ErrorFrames, res.Sent, res.Delivered, res.Expected)
	}
	if !strings.Contains(out, `"tokens":true`) || !strings.Contains(out, `"total_s":`) {
		t.Errorf("JSON lacks tokens or connect.total_s: %s", out)
	}

	code, out, errOut = benchRun(t, args...)
	if code != ExitOK || !strings.Contains(out, "clients\t8 subscribers + 2 publishers in 1 room: 10 members, token users\n") ||
		!strings.Contains(out, "connections\t10 of 10 (0 failed) in ") {
		t.Errorf("table: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
}
