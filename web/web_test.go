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
