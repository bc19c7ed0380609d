package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livechat/livechat/pkg/auth"
)

const testSecret = "0123456789abcdef0123456789abcdef-test-secret"

// TestTokenSecretOrder: --secret-file > LIVECHAT_SECRET >
// LIVECHAT_SECRET_FILE > the data directory's secret, as serve reads it.
func TestTokenSecretOrder(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	flagFile := write("flag", strings.Repeat("f", 40))
	envFile := write("envfile", strings.Repeat("e", 40))
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	write("data/secret", strings.Repeat("d", 40))
	envValue := strings.Repeat("v", 40)

	mint := func(args ...string) string {
		t.Helper()
		code, out, stderr := run(t, "", append([]string{"token", "--user", "u1", "--data", data}, args...)...)
		if code != 0 {
			t.Fatalf("token %v: exit %d: %s", args, code, stderr)
		}
		return strings.TrimSpace(out)
	}
	signedWith := func(tok string) string {
		for _, s := range []string{"f", "e", "d", "v"} {
			if _, err := auth.VerifyToken([]byte(strings.Repeat(s, 40)), tok, time.Now()); err == nil {
				return s
			}
		}
		return "?"
	}
	if got := signedWith(mint()); got != "d" {
		t.Errorf("no flag or env: signed with %q, want the data directory's secret", got)
	}
	t.Setenv("LIVECHAT_SECRET_FILE", envFile)
	if got := signedWith(mint()); got != "e" {
		t.Errorf("LIVECHAT_SECRET_FILE: signed with %q", got)
	}
	t.Setenv("LIVECHAT_SECRET", envValue)
	if got := signedWith(mint()); got != "v" {
		t.Errorf("LIVECHAT_SECRET over LIVECHAT_SECRET_FILE: signed with %q", got)
	}
	if got := signedWith(mint("--secret-file", flagFile)); got != "f" {
		t.Errorf("--secret-file over both: signed with %q", got)
	}
}

func TestTokenOutput(t *testing.T) {
	t.Setenv("LIVECHAT_SECRET", testSecret)
	code, out, stderr := run(t, "", "token", "--user", "u42", "--name", "alice", "--room", "general", "--room", "ops", "--ttl", "2h", "-o", "json")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var res struct {
		Token   string `json:"token"`
		User    string `json:"user"`
		Expires string `json:"expires"`
	}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	c, err := auth.VerifyToken([]byte(testSecret), res.Token, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	exp, err := time.Parse(time.RFC3339, res.Expires)
	if err != nil || !exp.Equal(c.ExpiresAt.Time) || time.Until(exp) < 119*time.Minute || time.Until(exp) > 121*time.Minute {
		t.Errorf("expires %q (err %v), token exp %v", res.Expires, err, c.ExpiresAt)
	}
	want := `{"token":"` + res.Token + `","user":"u42","expires":"` + res.Expires + `"}` + "\n"
	if out != want || res.User != "u42" || c.Name != "alice" || strings.Join(c.Rooms, ",") != "general,ops" {
		t.Errorf("output %q, claims %+v", out, c)
	}

	// Plain: the token alone on one line.
	code, out, stderr = run(t, "", "token", "--user", "u42")
	if code != 0 || stderr != "" || strings.Count(out, "\n") != 1 || strings.Count(out, ".") != 2 {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	if c, err := auth.VerifyToken([]byte(testSecret), strings.TrimSpace(out), time.Now()); err != nil || c.Rooms != nil || c.Name != "" {
		t.Errorf("plain token: %+v, %v", c, err)
	}
}

func TestTokenErrors(t *testing.T) {
	t.Setenv("LIVECHAT_SECRET", testSecret)
	help := "Run 'livechat token --help' for usage.\n"
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no user", nil, ExitUsage, "error: --user is required\n" + help},
		{"zero ttl", []string{"--user", "u", "--ttl", "0s"}, ExitUsage, "error: --ttl 0s: must be positive, such as 15m or 24h\n" + help},
		{"negative ttl", []string{"--user", "u", "--ttl", "-1h"}, ExitUsage, "error: --ttl -1h: must be positive, such as 15m or 24h\n" + help},
		{"bad room", []string{"--user", "u", "--room", "a.b"}, ExitUsage, `error: --room "a.b": `},
		{"bad name", []string{"--user", "u", "--name", " "}, ExitUsage, `error: --name " ": `},
		{"control in user", []string{"--user", "u\n1"}, ExitUsage, `error: --user "u\n1": must be at most 128 bytes of text without control characters` + "\n" + help},
		{"argument", []string{"--user", "u", "extra"}, ExitUsage, `error: unexpected argument "extra": livechat token takes no arguments` + "\n" + help},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := run(t, "", append([]string{"token"}, tc.args...)...)
			if code != tc.code || !strings.HasPrefix(stderr, tc.stderr) || out != "" || !strings.HasSuffix(stderr, help) {
				t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant exit %d and stderr starting:\n%s", code, out, stderr, tc.code, tc.stderr)
			}
		})
	}
}

// TestTokenWithoutSecret: no secret anywhere is a failure (exit 1) that
// says where token looked; a short one says which source it came from.
func TestTokenWithoutSecret(t *testing.T) {
	t.Setenv("LIVECHAT_SECRET", "")
	t.Setenv("LIVECHAT_SECRET_FILE", "")
	data := t.TempDir()
	code, out, stderr := run(t, "", "token", "--user", "u1", "--data", data)
	want := "error: no token secret: --secret-file, LIVECHAT_SECRET and LIVECHAT_SECRET_FILE are unset and " +
		filepath.Join(data, "secret") + " does not exist (start `livechat serve` with the same --data once, or set one of them)\n"
	if code != ExitError || out != "" || stderr != want {
		t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant exit 1 and:\n%s", code, out, stderr, want)
	}
	if _, err := os.Stat(filepath.Join(data, "secret")); err == nil {
		t.Error("token created a secret")
	}

	t.Setenv("LIVECHAT_SECRET", "short-secret")
	code, _, stderr = run(t, "", "token", "--user", "u1", "--data", data)
	if code != ExitError || !strings.Contains(stderr, "from LIVECHAT_SECRET") || !strings.Contains(stderr, "at least 32 bytes") ||
		strings.Contains(stderr, "short-secret") {
		t.Errorf("short secret: exit %d, stderr %q", code, stderr)
	}
}

// TestDefaultHistory: a single node keeps its history in the data
// directory; a Redis node keeps today's default (the broker's Redis); the
// operator commands use the node's file next to an http:// broker when it
// is there, else none.
func TestDefaultHistory(t *testing.T) {
	data := t.TempDir()
	db, err := dataSQLiteURL(data)
	if err != nil {
		t.Fatal(err)
	}
	if want := "sqlite://" + filepath.ToSlash(filepath.Join(data, "livechat.db")); db != want {
		t.Errorf("dataSQLiteURL = %q, want %q", db, want)
	}
	for _, tc := range []struct {
		broker  string
		serving bool
		want    string
	}{
		{"memory://", true, db},
		{"redis://127.0.0.1:6379/2", true, "redis://127.0.0.1:6379/2"},
		{"redis://127.0.0.1:6379/2", false, "redis://127.0.0.1:6379/2"},
		{"memory://", false, "memory://"},
		{"http://127.0.0.1:8080", false, "none"},
	} {
		got, err := defaultHistory(&GlobalOptions{Broker: tc.broker, Data: data}, tc.serving)
		if err != nil || got != tc.want {
			t.Errorf("defaultHistory(%s, serving %v) = %q, %v; want %q", tc.broker, tc.serving, got, err, tc.want)
		}
	}
	if err := os.WriteFile(filepath.Join(data, "livechat.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, _ := defaultHistory(&GlobalOptions{Broker: "http://127.0.0.1:8080", Data: data}, false); got != db {
		t.Errorf("http:// broker with the node's file: %q, want %q", got, db)
	}
}

// TestCreateSecretFileOnce: processes starting together on one data
// directory agree on one value; an existing file is never replaced.
func TestCreateSecretFileOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret")
	made := make(chan bool, 8)
	for range 8 {
		go func() {
			ok, err := createSecretFile(path, 48)
			if err != nil {
				t.Error(err)
			}
			made <- ok
		}()
	}
	n := 0
	for range 8 {
		if <-made {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d writers made the file, want 1", n)
	}
	b, err := os.ReadFile(path)
	if err != nil || len(strings.TrimSpace(string(b))) != 64 {
		t.Fatalf("secret %q, %v: want 64 base64 characters", b, err)
	}
	checkMode(t, path, 0o600)
	if ok, err := createSecretFile(path, 48); ok || err != nil {
		t.Errorf("second create: %v, %v", ok, err)
	}
	if again, _ := os.ReadFile(path); string(again) != string(b) {
		t.Error("the secret was replaced")
	}
	if m, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".secret.*")); len(m) != 0 {
		t.Errorf("temporary files left: %v", m)
	}
}

// TestServeSecretFromFlag: with --secret-file serve uses that file and
// makes no secret in the data directory; a short one stops it (exit 1,
// naming the file, not the secret).
func TestServeSecretFromFlag(t *testing.T) {
	t.Setenv("LIVECHAT_SECRET", "")
	t.Setenv("LIVECHAT_SECRET_FILE", "")
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("tooshort-secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	code, _, stderr := run(t, "", "serve", "--addr", "127.0.0.1:0", "--data", data, "--secret-file", short)
	if code != ExitError || !strings.Contains(stderr, "token secret from --secret-file "+short) || strings.Contains(stderr, "tooshort-secret") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(data, "secret")); err == nil {
		t.Error("serve made a secret although --secret-file was given")
	}
}
