package cli

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for a command writing while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testIO returns streams with the given stdin and buffers for the output.
func testIO(stdin string) (*IOStreams, *syncBuffer, *syncBuffer) {
	out, errOut := &syncBuffer{}, &syncBuffer{}
	return &IOStreams{In: strings.NewReader(stdin), Out: out, ErrOut: errOut}, out, errOut
}

// run executes the command line and returns exit code, stdout and stderr.
func run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ios, out, errOut := testIO(stdin)
	code := Run(ctx, args, ios)
	return code, out.String(), errOut.String()
}

func TestErrors(t *testing.T) {
	t.Setenv("LIVECHAT_BROKER", "")
	tests := []struct {
		name   string
		args   []string
		stdin  string
		code   int
		stderr string // must appear
		notIn  string // must not appear
	}{
		{"unknown command", []string{"frobnicate"}, "", ExitUsage, "unknown command", ""},
		{"unknown flag", []string{"publish", "--nope"}, "", ExitUsage, "unknown flag: --nope", ""},
		{"bad output", []string{"--output", "yaml", "version"}, "", ExitUsage, "--output must be table or json", ""},
		{"bad prefix", []string{"--prefix", "a.b", "stats"}, "", ExitUsage, `--prefix "a.b": must be 1-64 characters`, ""},
		{"publish without room", []string{"publish", "hi"}, "", ExitUsage, "--room is required", ""},
		{"publish bad room", []string{"publish", "--room", "no spaces", "hi"}, "", ExitUsage, `--room "no spaces"`, ""},
		{"publish bad from", []string{"publish", "--room", "g", "--from", " ", "hi"}, "", ExitUsage, "--from", ""},
		{"publish blank text", []string{"publish", "--room", "g", "  "}, "", ExitUsage, "text is empty", ""},
		{"publish no stdin", []string{"publish", "--room", "g"}, "\n\n", ExitUsage, "no text", ""},
		{"publish long text", []string{"publish", "--room", "g", strings.Repeat("x", 4001)}, "", ExitUsage, "longer than 4000", ""},
		{"publish unknown scheme", []string{"publish", "--broker", "kafka://x:1", "--room", "g", "hi"}, "", ExitUsage,
			"error: --broker: broker: unsupported URL \"kafka://x:1\": scheme must be memory://, redis:// (rediss://), redis+cluster:// (rediss+cluster://), nats:// (tls://) or http:// (https://, a node's operator API)\nRun 'livechat publish --help' for usage.\n", ""},
		{"publish unreachable", []string{"publish", "--broker", "redis://:s3cret@127.0.0.1:1/0", "--room", "g", "hi"}, "", ExitError, "127.0.0.1:1", "s3cret"},
		{"publish unreachable history", []string{"publish", "--broker", "memory://", "--history", "redis://127.0.0.1:1", "--room", "g", "hi"}, "", ExitError, "127.0.0.1:1", ""},
		{"publish bad history scheme", []string{"publish", "--broker", "memory://", "--history", "mongo://x", "--room", "g", "hi"}, "", ExitUsage, "--history", ""},
		{"tail bad room", []string{"tail", "--room", "a.b"}, "", ExitUsage, `--room "a.b"`, ""},
		{"tail bad subject", []string{"tail", "--subject", "a..b"}, "", ExitUsage, "invalid subject", ""},
		{"tail unreachable", []string{"tail", "--broker", "redis://127.0.0.1:1"}, "", ExitError, "127.0.0.1:1", ""},
		{"stats bad interval", []string{"stats", "--interval", "0s"}, "", ExitUsage, "error: --interval 0s: must be between 10ms and 1h\n", ""},
		{"stats unreachable", []string{"stats", "--broker", "redis://127.0.0.1:1"}, "", ExitError, "127.0.0.1:1", ""},
		{"stats nobody", []string{"stats", "--broker", "memory://", "--interval", "50ms"}, "", ExitError, "no server heartbeat", ""},
		{"serve unreachable", []string{"serve", "--broker", "redis://127.0.0.1:1", "--addr", "127.0.0.1:0"}, "", ExitError, "127.0.0.1:1", ""},
		{"serve bad log level", []string{"serve", "--log-level", "loud"}, "", ExitUsage, "--log-level", ""},
		{"serve bad addr", []string{"serve", "--broker", "memory://", "--addr", "256.0.0.1:99999"}, "", ExitUsage, "--addr 256.0.0.1:99999: port must be", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := run(t, tt.stdin, tt.args...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr does not contain %q:\n%s", tt.stderr, stderr)
			}
			if tt.notIn != "" && strings.Contains(stderr, tt.notIn) {
				t.Errorf("stderr contains %q:\n%s", tt.notIn, stderr)
			}
		})
	}
}

// TestUsageErrorOutput checks the whole output of a usage mistake (the error
// and one line naming the command's --help, exit 2) and of a failure (the
// error alone, exit 1).
func TestUsageErrorOutput(t *testing.T) {
	t.Setenv("LIVECHAT_BROKER", "")
	t.Setenv("LIVECHAT_PREFIX", "")
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
		stdout string
	}{
		{"unknown flag", []string{"publish", "--nope"}, ExitUsage,
			"error: unknown flag: --nope\nRun 'livechat publish --help' for usage.\n", ""},
		{"missing flag value", []string{"publish", "--room"}, ExitUsage,
			"error: flag needs an argument: --room\nRun 'livechat publish --help' for usage.\n", ""},
		{"missing required flag", []string{"publish", "hello"}, ExitUsage,
			"error: --room is required\nRun 'livechat publish --help' for usage.\n", ""},
		{"extra argument", []string{"version", "now"}, ExitUsage,
			"error: unexpected argument \"now\": livechat version takes no arguments\nRun 'livechat version --help' for usage.\n", ""},
		{"unknown command", []string{"frobnicate"}, ExitUsage,
			"error: unknown command \"frobnicate\" for \"livechat\"\nRun 'livechat --help' for usage.\n", ""},
		{"misspelt command", []string{"serv", "--addr", ":1"}, ExitUsage,
			"error: unknown command \"serv\" for \"livechat\"; did you mean \"serve\"?\nRun 'livechat --help' for usage.\n", ""},
		{"not a number", []string{"serve", "--rate", "fast"}, ExitUsage,
			"error: --rate \"fast\": must be a number\nRun 'livechat serve --help' for usage.\n", ""},
		{"duration without unit", []string{"stats", "--interval", "5"}, ExitUsage,
			"error: --interval \"5\": must be a duration with a unit, such as 500ms, 10s or 2m\nRun 'livechat stats --help' for usage.\n", ""},
		{"run failure", []string{"stats", "--broker", "memory://", "--interval", "50ms"}, ExitError,
			"error: no server heartbeat on livechat.stats.* within 50ms: no server is running with --prefix livechat on this broker\n",
			"APPID\tADDRESS\tVERSION\tUPTIME\tCONNS\tROOMS\tIN/S\tOUT/S\tDROPS\tBROKER\tLAST SEEN\tSTATUS\n" +
				"TOTAL 0\t\t\t\t0\t\t0.0\t0.0\t0\t\t\t0 stale\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := run(t, "", tc.args...)
			if code != tc.code || stderr != tc.stderr || stdout != tc.stdout {
				t.Errorf("livechat %s: exit %d, stdout %q, stderr:\n%s\nwant exit %d, stdout %q, stderr:\n%s",
					strings.Join(tc.args, " "), code, stdout, stderr, tc.code, tc.stdout, tc.stderr)
			}
		})
	}
}

// TestRootHelpDocumentsExitCodes checks that `livechat --help` states the
// exit codes.
func TestRootHelpDocumentsExitCodes(t *testing.T) {
	code, out, _ := run(t, "", "--help")
	if code != ExitOK || !strings.Contains(out, "Exit status: 0 on success; 1 when the command failed") ||
		!strings.Contains(out, "2 for a\nusage mistake") {
		t.Errorf("livechat --help: exit %d, no exit status paragraph:\n%s", code, out)
	}
}

func TestEnvLayering(t *testing.T) {
	t.Setenv("LIVECHAT_OUTPUT", "json")
	code, out, stderr := run(t, "", "version")
	if code != 0 || !strings.HasPrefix(out, `{"commit":`) {
		t.Fatalf("env LIVECHAT_OUTPUT=json not applied: code %d out %q err %q", code, out, stderr)
	}
	code, out, _ = run(t, "", "version", "--output", "table")
	if code != 0 || !strings.HasPrefix(out, "livechat ") {
		t.Fatalf("flag does not win over env: %q", out)
	}
	t.Setenv("LIVECHAT_OUTPUT", "yaml")
	if code, _, stderr := run(t, "", "version"); code != ExitUsage || !strings.Contains(stderr, "yaml") {
		t.Fatalf("bad env value: code %d stderr %q", code, stderr)
	}
}

func TestHelpHasExamplesAndEnv(t *testing.T) {
	for _, cmd := range []string{"serve", "publish", "tail", "stats", "bench", "token", "version", "users list", "users add",
		"users ban", "users unban", "users delete", "rooms list", "rooms create", "rooms members", "rooms add", "rooms remove"} {
		code, out, _ := run(t, "", append(strings.Fields(cmd), "--help")...)
		if code != 0 || !strings.Contains(out, "Examples:") || !strings.Contains(out, "(env LIVECHAT_") {
			t.Errorf("%s --help: code %d, want examples and env names:\n%s", cmd, code, out)
		}
	}
	if code, out, _ := run(t, "", "--help"); code != 0 || !strings.Contains(out, "Examples:") {
		t.Errorf("livechat --help has no examples:\n%s", out)
	}
	if code, out, _ := run(t, "", "serve", "--help"); code != 0 || !strings.Contains(out, "also env APPID") ||
		!strings.Contains(out, "(env LIVECHAT_BROKER)") {
		t.Errorf("serve --help does not mention APPID and LIVECHAT_BROKER:\n%s", out)
	}
}

// TestHelpListsOnlyFlagsThatApply checks every command's help lists exactly
// the flags the command uses: no --broker or --prefix where nothing talks to
// the broker, no --output where nothing is printed as JSON.
func TestHelpListsOnlyFlagsThatApply(t *testing.T) {
	flagName := regexp.MustCompile(`^\s+(?:-\w, )?--([a-z-]+)`)
	for cmd, want := range map[string]string{
		"version": "help output",
		"bench": "big-room clients connect-concurrency connect-timeout drain duration help join-timeout " +
			"max-rate-per-conn output publishers rate room rooms size source-ips token-secret-file tokens upload-size uploaders url warmup",
		"publish": "blobs broker data file from help history history-dedup-window history-max-age history-max-len operator-key-file output prefix room store",
		"tail":    "broker data help history operator-key-file output prefix room since subject typing",
		"stats":   "broker data help interval operator-key-file output prefix watch",
		"token":   "data help name output room secret-file ttl user",
		"serve": "addr allowed-origins app-id append-publish batch-writes blobs broker broker-grace data drain-delay flusher guest-uploads guests heartbeat heartbeat-interval help history " +
			"history-dedup-window history-max-age history-max-len " +
			"inline-delivery inline-reads log-format log-level max-conns-per-ip max-rooms-per-conn max-upload prefix presence-interval rate rate-burst " +
			"read-limit read-poller secret-file send-queue shutdown-timeout store trust-proxy upload-any upload-quota upload-rate upload-timeout write-burst",
		"users list":    "after data help limit output store",
		"users add":     "data help output store",
		"users ban":     "broker data help id operator-key-file prefix store",
		"users unban":   "data help id store",
		"users delete":  "broker data help id operator-key-file prefix store yes",
		"rooms list":    "after data help limit output store",
		"rooms create":  "data help output owner private store",
		"rooms members": "data help output store",
		"rooms add":     "data help id role store",
		"rooms remove":  "broker data help id operator-key-file prefix store",
	} {
		code, out, _ := run(t, "", append(strings.Fields(cmd), "--help")...)
		var got []string
		for _, line := range strings.Split(out[strings.Index(out, "\nFlags:\n"):], "\n") {
			if m := flagName.FindStringSubmatch(line); m != nil {
				got = append(got, m[1])
			}
		}
		if code != ExitOK || strings.Join(got, " ") != want {
			t.Errorf("%s --help: exit %d, flags\n  %s\nwant\n  %s", cmd, code, strings.Join(got, " "), want)
		}
	}
	// A flag another command has is refused, with the pointer to --help.
	code, _, stderr := run(t, "", "bench", "--broker", "memory://")
	if code != ExitUsage || stderr != "error: unknown flag: --broker\nRun 'livechat bench --help' for usage.\n" {
		t.Errorf("bench --broker: exit %d, stderr %q", code, stderr)
	}
}

func TestCompletion(t *testing.T) {
	code, out, _ := run(t, "", "completion", "bash")
	if code != 0 || !strings.Contains(out, "__start_livechat") {
		t.Fatalf("completion bash: code %d, output starts %.100q", code, out)
	}
}
