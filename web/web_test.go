package web

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"
)

func TestFSHasClientFiles(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"index.html", "app.js", "style.css"} {
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
	for _, id := range []string{"name", "room", "join", "messages", "members", "text", "send", "state", "typing"} {
		if !strings.Contains(html, `id="`+id+`"`) {
			t.Errorf("index.html lacks id=%q", id)
		}
	}
	for _, ref := range []string{`src="app.js"`, `href="style.css"`} {
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
	b, err := fs.ReadFile(FS(), "app.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
		if strings.Contains(string(b), bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
}

// jargonRE matches words of the protocol and the servers that a user of the
// chat does not know.
var jargonRE = regexp.MustCompile(`(?i)\b(subscribe[sd]?|subscription|seqs?|cids?|broker|replay(ed)?|ack(nowledged)?|frames?|websocket|ws|since|via server|payload|policy violation|queued)\b`)

// TestPlainWords keeps the words the page shows a user plain: the sentences
// in app.js's string literals (those with a space: selectors and frame
// fields have none) and the text of index.html.
func TestPlainWords(t *testing.T) {
	t.Parallel()
	js, err := fs.ReadFile(FS(), "app.js")
	if err != nil {
		t.Fatal(err)
	}
	// Comments go first: their apostrophes would pair up with quotes.
	code := regexp.MustCompile(`(?m)(^|\s)//.*$`).ReplaceAllString(string(js), "$1")
	literals := regexp.MustCompile(`'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"`)
	found := 0
	for _, lit := range literals.FindAllString(code, -1) {
		text := lit[1 : len(lit)-1]
		if !strings.Contains(text, " ") {
			continue
		}
		found++
		if w := jargonRE.FindString(text); w != "" {
			t.Errorf("app.js shows the user %q: %q is jargon", text, w)
		}
	}
	if found < 20 {
		t.Fatalf("found only %d sentences in app.js: the literal pattern is broken", found)
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
