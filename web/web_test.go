package web

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// modules are the client's JavaScript files (the entry point app.js and
// the modules it imports).
func modules(t *testing.T) []string {
	t.Helper()
	names, err := fs.Glob(FS(), "*.js")
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 2 {
		t.Fatalf("the client has the modules %v: the embed pattern is broken", names)
	}
	return names
}

func TestFSHasClientFiles(t *testing.T) {
	t.Parallel()
	for _, name := range append([]string{"index.html", "style.css"}, modules(t)...) {
		b, err := fs.ReadFile(FS(), name)
		if err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		if len(b) == 0 {
			t.Fatalf("%s is empty", name)
		}
	}
}

// TestIndexHooks pins the element ids the browser tests rely on.
func TestIndexHooks(t *testing.T) {
	t.Parallel()
	b, err := fs.ReadFile(FS(), "index.html")
	if err != nil {
		t.Fatal(err)
	}
	html := string(b)
	for _, id := range []string{"name", "room", "join", "messages", "members", "text", "send", "state", "typing",
		"auth-form", "auth-name", "auth-password", "signin", "signup", "auth-error", "me", "signout", "error",
		"rooms-toggle", "rooms-panel", "public-rooms", "add-room", "add-room-btn", "conversations", "invitations",
		"create-room", "create-room-btn", "invite-form", "invite-name", "invite-btn", "empty",
		"attach", "attach-input", "uploads", "drop-zone", "viewer", "viewer-img", "viewer-open", "viewer-close"} {
		if !strings.Contains(html, `id="`+id+`"`) {
			t.Errorf("index.html lacks id=%q", id)
		}
	}
	for _, ref := range []string{`<script type="module" src="app.js">`, `href="style.css"`} {
		if !strings.Contains(html, ref) {
			t.Errorf("index.html does not reference %s relatively", ref)
		}
	}
	if regexp.MustCompile(`(?i)(src|href)="(https?:)?//`).MatchString(html) {
		t.Error("index.html loads something from another origin")
	}
}

// TestNoHTMLInjection keeps the client from turning text into markup.
func TestNoHTMLInjection(t *testing.T) {
	t.Parallel()
	for _, name := range modules(t) {
		b, err := fs.ReadFile(FS(), name)
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s uses %s", name, bad)
			}
		}
	}
}

// importRE matches a static import of a module of the client.
var importRE = regexp.MustCompile(`(?m)^import .* from '([^']+)';$`)

// TestModulesResolve: every module a module imports is embedded (the
// browser asks the server for it), named relatively, and only view.js and
// app.js touch the DOM (the others load in node).
func TestModulesResolve(t *testing.T) {
	t.Parallel()
	domFree := regexp.MustCompile(`\b(document|window|localStorage|sessionStorage|navigator|location)\b`)
	for _, name := range modules(t) {
		b, err := fs.ReadFile(FS(), name)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range importRE.FindAllStringSubmatch(string(b), -1) {
			spec := m[1]
			if !strings.HasPrefix(spec, "./") || !strings.HasSuffix(spec, ".js") {
				t.Errorf("%s imports %q: want a relative ./name.js (no build step resolves bare names)", name, spec)
				continue
			}
			if _, err := fs.Stat(FS(), strings.TrimPrefix(spec, "./")); err != nil {
				t.Errorf("%s imports %s, which is not embedded: %v", name, spec, err)
			}
		}
		if name == "view.js" || name == "app.js" {
			continue
		}
		code := regexp.MustCompile(`(?m)(^|\s)//.*$`).ReplaceAllString(string(b), "$1")
		if w := domFree.FindString(code); w != "" {
			t.Errorf("%s uses %s: only view.js and app.js may touch the page (the others are tested in node)", name, w)
		}
	}
}

// TestJS runs the client's unit tests (test/*.test.js) with node's test
// runner: the state, the frame handling and the connection, without a DOM.
// Without node it skips, unless CI=true.
func TestJS(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("node is not installed (CI=true: required; scripts/deps.sh installs it)")
		}
		t.Skip("node is not installed, so the JavaScript unit tests in web/test/ do not run (scripts/deps.sh installs it; under CI=true this fails)")
	}
	files, err := filepath.Glob(filepath.Join("test", "*.test.js"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no test/*.test.js (%v)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// TAP: the same summary lines ("# pass N") whatever node's default reporter.
	cmd := exec.CommandContext(ctx, node, append([]string{"--test", "--test-reporter=tap"}, files...)...)
	cmd.Env = append(os.Environ(), "NODE_OPTIONS=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test %s: %v\n%s", strings.Join(files, " "), err, out)
	}
	if m := regexp.MustCompile(`(?m)^# pass (\d+)$`).FindSubmatch(out); m != nil {
		t.Logf("node --test: %s passed", m[1])
	} else {
		t.Fatalf("node --test printed no count of passed tests:\n%s", out)
	}
}

// jargonRE matches words of the protocol and the servers that a user of the
// chat does not know.
var jargonRE = regexp.MustCompile(`(?i)\b(subscribe[sd]?|subscription|seqs?|cids?|broker|replay(ed)?|ack(nowledged)?|frames?|websocket|ws|since|via server|payload|policy violation|queued)\b`)

// TestPlainWords keeps the words the page shows a user plain: the sentences
// in the modules' string literals (those with a space: selectors and frame
// fields have none) and the text of index.html.
func TestPlainWords(t *testing.T) {
	t.Parallel()
	literals := regexp.MustCompile(`'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"`)
	found := 0
	for _, name := range modules(t) {
		js, err := fs.ReadFile(FS(), name)
		if err != nil {
			t.Fatal(err)
		}
		// Comments go first: their apostrophes would pair up with quotes.
		code := regexp.MustCompile(`(?m)(^|\s)//.*$`).ReplaceAllString(string(js), "$1")
		for _, lit := range literals.FindAllString(code, -1) {
			text := lit[1 : len(lit)-1]
			if !strings.Contains(text, " ") {
				continue
			}
			found++
			if w := jargonRE.FindString(text); w != "" {
				t.Errorf("%s shows the user %q: %q is jargon", name, text, w)
			}
		}
	}
	if found < 20 {
		t.Fatalf("found only %d sentences in the modules: the literal pattern is broken", found)
	}
	page, err := fs.ReadFile(FS(), "index.html")
	if err != nil {
		t.Fatal(err)
	}
	html := regexp.MustCompile(`(?s)<!--.*?-->|<head>.*</head>`).ReplaceAllString(string(page), "")
	// The text between tags and the attributes a user reads.
	for _, m := range regexp.MustCompile(`>([^<]+)<|(?:title|placeholder|aria-label)="([^"]*)"`).FindAllStringSubmatch(html, -1) {
		text := strings.TrimSpace(m[1] + m[2])
		if w := jargonRE.FindString(text); text != "" && w != "" {
			t.Errorf("index.html shows the user %q: %q is jargon", text, w)
		}
	}
}
