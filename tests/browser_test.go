//go:build unix

package tests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// artifactsDir is where tests write files worth keeping (screenshots):
// $ARTIFACTS_DIR, default tests/artifacts (gitignored).
func artifactsDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("ARTIFACTS_DIR")
	if dir == "" {
		dir = filepath.Join(repoRoot, "tests", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// waitJS polls a JavaScript boolean expression in the page until it is true.
func waitJS(ctx context.Context, timeout time.Duration, expr string) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s still false: %s", timeout, expr)
		}
		time.Sleep(50 * time.Millisecond) // polling the page
	}
}

// clearInput empties a form field (the page may prefill it).
func clearInput(sel string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Evaluate[bool](fmt.Sprintf(`(document.querySelector(%q).value = "") === ""`, sel))(ctx, t)
		return chromedp.Void{}, err
	}
}

// hasMessage is a JS expression: the page shows a message from `from` whose
// text is exactly `text` (as text, not markup).
func hasMessage(from, text string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('#messages .msg')].some(li =>
		li.querySelector('.from') && li.querySelector('.from').textContent === %q &&
		li.querySelector('.text') && li.querySelector('.text').textContent === %q)`, from, text)
}

// hasMember is a JS expression: the member list shows name.
func hasMember(name string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('#members li')].some(li => li.textContent.includes(%q))`, name)
}

// TestBrowserChat: two headless Chromium pages load the client from nginx
// (which proxies /ws to HAProxy and the four servers), join as alice and
// bob, see each other in the member list and each other's messages; markup
// in a message is shown as text, never run. Screenshots of both pages are
// written to the artifacts directory.
func TestBrowserChat(t *testing.T) {
	t.Parallel()
	chromium := requireTool(t, "chromium")
	c := newCluster(t)
	base := c.startNginx(t)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1100, 800),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	alice, cancelAlice := chromedp.NewContext(allocCtx)
	defer cancelAlice()
	if err := chromedp.Do(alice); err != nil {
		t.Fatalf("starting %s: %v", chromium, err)
	}
	// bob gets his own browser context: separate storage, like another person.
	bob, cancelBob := chromedp.NewContext(alice, chromedp.WithNewBrowserContext())
	defer cancelBob()

	// alert() is replaced, before any page script runs, by a counter: markup
	// that ran would show up in window.__alerts instead of blocking the page
	// with a dialog.
	for _, pctx := range []context.Context{alice, bob} {
		if _, err := chromedp.Call(pctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
			Source: `window.__alerts = 0; window.alert = () => { window.__alerts++; };`,
		}); err != nil {
			t.Fatal(err)
		}
	}

	const room = "general"
	join := func(pctx context.Context, name string) {
		t.Helper()
		err := chromedp.Do(pctx,
			chromedp.Navigate(base+"/"),
			chromedp.WaitVisible(chromedp.CSS("#name")),
			clearInput("#name"),
			chromedp.SendKeys(chromedp.CSS("#name"), name),
			clearInput("#room"),
			chromedp.SendKeys(chromedp.CSS("#room"), room),
			chromedp.Click(chromedp.CSS("#join")),
			chromedp.WaitVisible(chromedp.CSS(`#state[data-state="connected"]`)),
		)
		if err != nil {
			t.Fatalf("%s: join through %s: %v", name, base, err)
		}
	}
	say := func(pctx context.Context, name, text string) {
		t.Helper()
		if err := chromedp.Do(pctx,
			chromedp.SendKeys(chromedp.CSS("#text"), text),
			chromedp.Click(chromedp.CSS("#send")),
		); err != nil {
			t.Fatalf("%s: send: %v", name, err)
		}
	}
	expect := func(pctx context.Context, who, what, expr string) {
		t.Helper()
		if err := waitJS(pctx, 15*time.Second, expr); err != nil {
			t.Fatalf("%s does not see %s: %v", who, what, err)
		}
	}

	join(alice, "alice")
	join(bob, "bob")
	// leastconn puts bob on another server than alice: the chat crosses Redis.
	var on [2]string
	for i, pctx := range []context.Context{alice, bob} {
		st, err := chromedp.Run(pctx, chromedp.Evaluate[string](`document.querySelector('#state').textContent`))
		if err != nil {
			t.Fatal(err)
		}
		on[i] = st
	}
	t.Logf("alice: %q, bob: %q", on[0], on[1])
	if on[0] == on[1] {
		t.Errorf("alice and bob are on the same server (%q); HAProxy should have spread them", on[0])
	}
	expect(alice, "alice", "bob in the member list", hasMember("bob"))
	expect(bob, "bob", "alice in the member list", hasMember("alice"))

	say(alice, "alice", "hello bob")
	say(bob, "bob", "hi alice")
	expect(bob, "bob", "alice's message", hasMessage("alice", "hello bob"))
	expect(alice, "alice", "bob's message", hasMessage("bob", "hi alice"))

	const markup = `<img src=x onerror=alert(1)>`
	say(bob, "bob", markup)
	expect(alice, "alice", "the markup as text", hasMessage("bob", markup))
	expect(bob, "bob", "his own markup as text", hasMessage("bob", markup))
	for _, p := range []struct {
		name string
		ctx  context.Context
	}{{"alice", alice}, {"bob", bob}} {
		imgs, err := chromedp.Run(p.ctx, chromedp.Evaluate[int](`document.querySelectorAll('#messages img').length`))
		if err != nil {
			t.Fatal(err)
		}
		if imgs != 0 {
			t.Errorf("%s's page has %d <img> elements in #messages: markup was rendered", p.name, imgs)
		}
		alerts, err := chromedp.Run(p.ctx, chromedp.Evaluate[int](`window.__alerts`))
		if err != nil {
			t.Fatal(err)
		}
		if alerts != 0 {
			t.Errorf("alert() ran %d times in %s's page: the markup was executed", alerts, p.name)
		}
		shot, err := chromedp.Run(p.ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("%s: screenshot: %v", p.name, err)
		}
		path := filepath.Join(artifactsDir(t), "browser-chat-"+p.name+".png")
		if err := os.WriteFile(path, shot, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", path)
	}
}
