package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livechat/livechat/pkg/auth"
	"github.com/livechat/livechat/pkg/broker/brokertest"
	"github.com/livechat/livechat/pkg/loadgen"
)

// TestBenchUploadFlags: --uploaders needs token users and a valid
// --upload-size; each mistake is a usage error saying what to do.
func TestBenchUploadFlags(t *testing.T) {
	secret := writeSecret(t, benchSecret)
	for _, tc := range []struct {
		name   string
		args   []string
		stderr string
	}{
		{"no tokens", []string{"--uploaders", "2"},
			"error: --uploaders 2 needs --tokens or --token-secret-file: the uploads are made by token users\n"},
		{"too many", []string{"--uploaders", "1001", "--token-secret-file", secret}, "error: --uploaders 1001: must be between 0 and 1000\n"},
		{"negative", []string{"--uploaders", "-1", "--token-secret-file", secret}, "error: --uploaders -1: must be between 0 and 1000\n"},
		{"bad size", []string{"--uploaders", "1", "--token-secret-file", secret, "--upload-size", "10MB"},
			`error: --upload-size "10MB": want a number of bytes, optionally with a suffix B, KiB, MiB or GiB (e.g. 10MiB)` + "\n"},
		{"zero size", []string{"--uploaders", "1", "--token-secret-file", secret, "--upload-size", "0"},
			"error: --upload-size 0: must be between 1 and 1073741824\n"},
		{"huge size", []string{"--uploaders", "1", "--token-secret-file", secret, "--upload-size", "2GiB"},
			"error: --upload-size 2147483648: must be between 1 and 1073741824\n"},
		// A typo is caught without --uploaders too.
		{"bad size alone", []string{"--upload-size", "5 apples"}, `error: --upload-size "5 apples": want a number of bytes`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearSecretEnv(t)
			code, _, errOut := benchRun(t, append([]string{"bench", "--clients", "2"}, tc.args...)...)
			if code != ExitUsage || !strings.HasPrefix(errOut, tc.stderr) ||
				!strings.HasSuffix(errOut, "\nRun 'livechat bench --help' for usage.\n") {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 2 and %q", code, errOut, tc.stderr)
			}
		})
	}
}

func TestParseByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"1", 1}, {"512", 512}, {"7B", 7}, {"512KiB", 512 << 10}, {"10MiB", 10 << 20}, {"10 MiB", 10 << 20},
		{"10mib", 10 << 20}, {"1GiB", 1 << 30}, {" 3kib ", 3 << 10}, {"0", 0},
		{"", -1}, {"MiB", -1}, {"-1", -1}, {"1.5MiB", -1}, {"10MB", -1}, {"10M", -1}, {"0x10", -1},
		{"99999999999GiB", -1}, {"18446744073709551616", -1},
	} {
		got, err := parseByteSize(tc.in)
		if tc.want < 0 {
			if err == nil {
				t.Errorf("parseByteSize(%q) = %d, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestUploadBaseURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"ws://127.0.0.1:18080/ws", "http://127.0.0.1:18080"},
		{"wss://chat.example.com/ws", "https://chat.example.com"},
		{"wss://[::1]:8443/a/b?x=1", "https://[::1]:8443"},
		{"http://127.0.0.1:8080/ws", ""},
		{"ws:///ws", ""},
	} {
		got, err := uploadBaseURL(tc.in)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("uploadBaseURL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// TestBenchPlanUploads: the uploaders go to the first URL's server and
// the first room, with tokens of the clients' secret for sub
// bench-up-<i>, valid for the whole run; without --uploaders there are
// none.
func TestBenchPlanUploads(t *testing.T) {
	clearSecretEnv(t)
	opts := newBenchOptions(&GlobalOptions{})
	opts.URLs = []string{"wss://a.example:8443/ws", "ws://b.example:80/ws"}
	opts.Clients, opts.Rooms, opts.Room = 4, 2, "up"
	opts.TokenSecretFile = writeSecret(t, benchSecret)
	if _, up, err := benchPlan(opts); err != nil || up != nil {
		t.Fatalf("no --uploaders: %v, %+v", err, up)
	}
	opts.Uploaders, opts.UploadSize = 3, "512KiB"
	cfg, up, err := benchPlan(opts)
	if err != nil || up == nil {
		t.Fatalf("%v, %+v", err, up)
	}
	if up.BaseURL != "https://a.example:8443" || up.Room != "up-0" || up.Uploaders != 3 || up.Size != 512<<10 {
		t.Errorf("upload config %+v", *up)
	}
	ttl := benchTokenTTL(cfg)
	for i := range 3 {
		tok, err := up.Token(i)
		if err != nil {
			t.Fatal(err)
		}
		c, err := auth.VerifyToken([]byte(benchSecret), tok, time.Now())
		if err != nil || c.Subject != "bench-up-"+strconv.Itoa(i) || c.Name != "bench-"+cfg.RunID+"-u"+strconv.Itoa(i) ||
			c.ExpiresAt.Before(time.Now().Add(ttl-2*time.Second)) {
			t.Errorf("token %d: %v, claims %+v", i, err, c)
		}
	}
	if opts.UploadSize = defaultUploadSize; true {
		if _, up, _ := benchPlan(opts); up == nil || up.Size != 10<<20 {
			t.Errorf("default --upload-size: %+v, want 10 MiB", up)
		}
	}
}

// uploadAPI stands in for the servers' files API for bench's uploaders:
// it wants their tokens, reads each body whole, answers 201 and takes the
// DELETE that follows.
type uploadAPI struct {
	secret []byte
	size   int64

	mu                       sync.Mutex
	bad                      []string
	first, last              time.Time // of the POSTs
	inFlight, posts, deletes int
	created                  int
	ids                      map[string]bool
}

var uploaderName = regexp.MustCompile(`^bench-[0-9a-f]+-u\d+$`)

func (a *uploadAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	c, err := auth.VerifyToken(a.secret, tok, time.Now())
	if err != nil || !strings.HasPrefix(c.Subject, "bench-up-") || !uploaderName.MatchString(c.Name) {
		a.mu.Lock()
		a.bad = append(a.bad, fmt.Sprintf("token %v, claims %+v", err, c))
		a.mu.Unlock()
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/api/files":
		a.mu.Lock()
		if a.first.IsZero() {
			a.first = time.Now()
		}
		a.last = time.Now()
		a.inFlight++
		a.posts++
		a.mu.Unlock()
		n, err := io.Copy(io.Discard, r.Body)
		a.mu.Lock()
		defer a.mu.Unlock()
		a.inFlight--
		if err != nil {
			return
		}
		if n != a.size || r.URL.Query().Get("room") != "bench" {
			a.bad = append(a.bad, fmt.Sprintf("POST %s of %d bytes", r.URL.RawQuery, n))
		}
		a.created++
		id := "u" + strconv.Itoa(a.created)
		a.ids[id] = true
		w.WriteHeader(http.StatusCreated)
		_, _ = fmt.Fprintf(w, `{"file":{"id":%q}}`, id)
	case r.Method == http.MethodDelete:
		a.mu.Lock()
		defer a.mu.Unlock()
		id := strings.TrimPrefix(r.URL.Path, "/api/files/")
		if !a.ids[id] {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		delete(a.ids, id)
		a.deletes++
		w.WriteHeader(http.StatusNoContent)
	}
}

// TestBenchUploads runs bench --uploaders against a server that wants
// tokens: the uploads begin after the warm-up, have all ended when bench
// returns, and the output reports them.
func TestBenchUploads(t *testing.T) {
	clearSecretEnv(t)
	api := &uploadAPI{secret: []byte(benchSecret), size: 100 << 10, ids: map[string]bool{}}
	ts, _ := tokenRoomServerWith(t, []byte(benchSecret), api)
	const warmup = 500 * time.Millisecond
	args := []string{"bench", "--url", wsURL(ts), "--clients", "4", "--rate", "40", "--duration", "500ms",
		"--warmup", warmup.String(), "--drain", "2s", "--source-ips", "none", "--token-secret-file", writeSecret(t, benchSecret),
		"--uploaders", "2", "--upload-size", "100KiB"}
	start := time.Now()
	code, out, errOut := benchRun(t, append(args, "-o", "json")...)
	end := time.Now()
	if code != ExitOK {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	var res struct {
		Delivered, Expected uint64
		Uploads             *loadgen.UploadResult
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Uploads == nil {
		t.Fatalf("output: %v\n%s", err, out)
	}
	// An upload that bench cut at its end ends on the server a moment
	// later, when the server reads the closed body.
	brokertest.WaitFor(t, 10*time.Second, "the uploads cut at the end to end on the server", func() bool {
		api.mu.Lock()
		defer api.mu.Unlock()
		return api.inFlight == 0
	})
	api.mu.Lock()
	if len(api.bad) > 0 {
		t.Errorf("the API saw:\n%s", strings.Join(api.bad, "\n"))
	}
	if api.first.Sub(start) < warmup || api.last.After(end) {
		t.Errorf("POSTs from %v to %v after the start (bench ran %v); want them after the %v warm-up",
			api.first.Sub(start), api.last.Sub(start), end.Sub(start), warmup)
	}
	u := res.Uploads
	if u.Uploaders != 2 || u.Size != 100<<10 || u.Uploads == 0 || u.Deleted != u.Uploads || len(u.Errors) != 0 ||
		uint64(api.deletes) != u.Deleted || u.Bytes < int64(u.Uploads)*u.Size {
		t.Errorf("uploads %+v; the API took %d POSTs and %d DELETEs", *u, api.posts, api.deletes)
	}
	api.mu.Unlock()
	if res.Delivered != res.Expected || res.Expected == 0 {
		t.Errorf("delivered %d of %d", res.Delivered, res.Expected)
	}
	if !strings.Contains(out, `"uploads":{"uploaders":2,"size":102400,`) || !strings.Contains(out, `"mib_per_s":`) {
		t.Errorf("JSON: %s", out)
	}

	code, out, errOut = benchRun(t, args...)
	if code != ExitOK || !regexp.MustCompile(`\nuploads\t\d+ uploads of 100 KiB by 2 users in \d+\.\d\ds, [\d.]+ MiB/s sent; `+
		`p50 [\d.]+ms  p99 [\d.]+ms; errors: none\n$`).MatchString(out) {
		t.Errorf("table: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
}

func TestBenchOutputUploads(t *testing.T) {
	var b strings.Builder
	u := &loadgen.UploadResult{Uploaders: 20, Size: 10 << 20, Seconds: 10.01, Uploads: 180, Deleted: 180,
		Bytes: 190 << 20, MiBPerSec: 18.98, Errors: map[string]uint64{"429 too_many_uploads": 3}, P50: 950.5, P99: 2100}
	if err := writeBench(&b, sampleBenchResult(), u, "table", false); err != nil {
		t.Fatal(err)
	}
	want := "uploads\t180 uploads of 10 MiB by 20 users in 10.01s, 19.0 MiB/s sent; p50 950.50ms  p99 2100.00ms; " +
		"errors: 429 too_many_uploads=3\n"
	if !strings.HasSuffix(b.String(), "\nbench cpu\t5.50s user + 2.50s sys: 80% of one core (whole run 60%)\n"+want) {
		t.Errorf("got:\n%s\nwant it to end with:\n%s", b.String(), want)
	}
	b.Reset()
	if err := writeBench(&b, sampleBenchResult(), u, "json", false); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(b.String()), &m); err != nil {
		t.Fatal(err)
	}
	up, _ := m["uploads"].(map[string]any)
	if m["delivered"] != 3045000.0 || up["uploads"] != 180.0 || up["p99_ms"] != 2100.0 || up["bytes"] != float64(190<<20) ||
		up["errors"].(map[string]any)["429 too_many_uploads"] != 3.0 {
		t.Errorf("json: %s", b.String())
	}
	b.Reset()
	if err := writeBench(&b, sampleBenchResult(), nil, "json", false); err != nil || strings.Contains(b.String(), "uploads") {
		t.Errorf("json without uploads: %v %s", err, b.String())
	}
}
