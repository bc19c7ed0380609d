//go:build unix

package tests

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
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
		li.dataset.from === %q && li.querySelector('.text') && li.querySelector('.text').textContent === %q)`, from, text)
}

// hasMember is a JS expression: the member list shows name.
func hasMember(name string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('#members li')].some(li => li.textContent.includes(%q))`, name)
}

// pageHooks runs in every page before its own scripts. alert() becomes a
// counter: markup that ran shows up in window.__alerts instead of blocking
// the page with a dialog. Every frame the page sends over its WebSocket is
// kept in window.__sent (parsed), so a test can read the joins it sent.
const pageHooks = `window.__alerts = 0; window.alert = () => { window.__alerts++; };
window.__sent = [];
(() => {
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    try { window.__sent.push(JSON.parse(data)); } catch (_) { /* not JSON */ }
    return send.call(this, data);
  };
})();`

// browser is one headless Chromium for a test. Each page it opens gets a
// browser context of its own (separate storage, like another person).
type browser struct {
	t    *testing.T
	root context.Context
}

// newBrowser starts Chromium; it stops when the test ends or after timeout.
func newBrowser(t *testing.T, timeout time.Duration) *browser {
	t.Helper()
	chromium := requireTool(t, "chromium")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
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
	t.Cleanup(cancelAlloc)
	root, cancelRoot := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelRoot)
	if err := chromedp.Do(root); err != nil {
		t.Fatalf("starting %s: %v", chromium, err)
	}
	return &browser{t: t, root: root}
}

// page opens a tab in a new browser context with pageHooks installed.
func (b *browser) page() context.Context {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.root, chromedp.WithNewBrowserContext())
	b.t.Cleanup(cancel)
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: pageHooks,
	}); err != nil {
		b.t.Fatal(err)
	}
	return ctx
}

// joinPage loads the page at base, fills the join form and waits until the
// page is connected.
func joinPage(t *testing.T, pctx context.Context, base, name, room string) {
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
		t.Fatalf("%s: join %s through %s: %v", name, room, base, err)
	}
}

// say types text into the page's composer and sends it.
func say(t *testing.T, pctx context.Context, name, text string) {
	t.Helper()
	if err := chromedp.Do(pctx,
		chromedp.SendKeys(chromedp.CSS("#text"), text),
		chromedp.Click(chromedp.CSS("#send")),
	); err != nil {
		t.Fatalf("%s: send: %v", name, err)
	}
}

// expectJS waits up to 15 s for a JS condition in the page.
func expectJS(t *testing.T, pctx context.Context, who, what, expr string) {
	t.Helper()
	if err := waitJS(pctx, 15*time.Second, expr); err != nil {
		t.Fatalf("%s does not see %s: %v", who, what, err)
	}
}

// evalJS evaluates a JS expression in the page or fails the test.
func evalJS[T any](t *testing.T, pctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(pctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// screenshot captures the page's viewport at width x height (CSS pixels)
// as a PNG.
func screenshot(t *testing.T, pctx context.Context, width, height int64) []byte {
	t.Helper()
	shot, err := chromedp.Run(pctx, func(ctx context.Context, tg *chromedp.Target) ([]byte, error) {
		if _, err := chromedp.EmulateViewport(width, height)(ctx, tg); err != nil {
			return nil, err
		}
		return chromedp.CaptureScreenshot()(ctx, tg)
	})
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	return shot
}

// writeArtifact writes data to the artifacts directory and logs the path.
func writeArtifact(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(artifactsDir(t), name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", path)
	return path
}

// visibleHeaders is a JS expression: the senders whose name header is shown,
// in order (a group of one sender's messages shows one header).
const visibleHeaders = `[...document.querySelectorAll('#messages .msg')]
	.filter(li => li.querySelector('.meta').getClientRects().length > 0)
	.map(li => li.dataset.from).join(',')`

// TestBrowserChat: three headless Chromium pages load the client from nginx
// (which proxies /ws to HAProxy and the four servers), join as alice, bob
// and carol, see each other in the member list and each other's messages.
// A sender's consecutive messages form one group with one name header; the
// server that took a message is in the bubble's tooltip, never in its text.
// The page fits a phone's 390 px. Markup in a message is shown as text,
// never run. Screenshots go to the artifacts directory; the conversation's
// picture, which the README shows, goes to docs/chat.png when
// LIVECHAT_UPDATE_SCREENSHOT=1.
func TestBrowserChat(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	base := c.startNginx(t)
	b := newBrowser(t, 120*time.Second)
	alice, bob, carol := b.page(), b.page(), b.page()
	pages := []struct {
		name string
		ctx  context.Context
	}{{"alice", alice}, {"bob", bob}, {"carol", carol}}

	const room = "general"
	joinPage(t, alice, base, "alice", room)
	joinPage(t, bob, base, "bob", room)
	// leastconn puts bob on another server than alice: the chat crosses Redis.
	aliceOn := evalJS[string](t, alice, `livechat.state.serverID`)
	bobOn := evalJS[string](t, bob, `livechat.state.serverID`)
	t.Logf("alice is on server %s, bob on %s", aliceOn, bobOn)
	if aliceOn == bobOn {
		t.Errorf("alice and bob are on the same server (%s); HAProxy should have spread them", aliceOn)
	}
	joinPage(t, carol, base, "carol", room)
	for _, p := range pages {
		for _, other := range pages {
			expectJS(t, p.ctx, p.name, other.name+" in the member list", hasMember(other.name))
		}
	}

	conversation := []struct {
		who  int // index in pages
		text string
	}{
		{0, "Morning! Is the release still on for today?"},
		{0, "I can write the changelog."},
		{1, "Yes, at 3 pm. Thanks, Alice!"},
		{2, "I'll run the last checks after lunch."},
		{2, "The dashboards look good so far."},
		{0, "Great, see you at 3."},
	}
	for _, m := range conversation {
		from := pages[m.who]
		say(t, from.ctx, from.name, m.text)
		// Every page has it before the next one is sent: the order is the
		// same everywhere.
		for _, p := range pages {
			expectJS(t, p.ctx, p.name, from.name+"'s message", hasMessage(from.name, m.text))
		}
	}

	// Grouping: two messages in a row from one sender show one header.
	for _, p := range pages {
		if got, want := evalJS[string](t, p.ctx, visibleHeaders), "alice,bob,carol,alice"; got != want {
			t.Errorf("%s's page shows name headers for %s, want %s (one per group)", p.name, got, want)
		}
	}
	// The server is in the tooltip, not in the bubble.
	for _, p := range pages {
		if evalJS[bool](t, p.ctx, `document.querySelector('#messages').textContent.includes('via server')`) {
			t.Errorf("%s's page shows \"via server\" in the messages", p.name)
		}
		// (The page learns the server of its own message from its copy of
		// the message, which may come a moment after the other pages got it.)
		const noServer = `[...document.querySelectorAll('#messages .msg')]
			.filter(li => !li.dataset.server || !li.title.includes('server ' + li.dataset.server))
			.map(li => li.dataset.from + ': ' + JSON.stringify(li.title)).join('; ')`
		if err := waitJS(p.ctx, 10*time.Second, noServer+` === ''`); err != nil {
			t.Errorf("%s's page: bubbles without the server in their tooltip: %s", p.name, evalJS[string](t, p.ctx, noServer))
		}
	}
	if got := evalJS[string](t, bob, `[...document.querySelectorAll('#messages .msg')].filter(li => li.dataset.from === 'alice').map(li => li.dataset.server).join(',')`); got != strings.Repeat(aliceOn+",", 2)+aliceOn {
		t.Errorf("bob's page gives alice's messages the servers %q, want %s (hers) for all three", got, aliceOn)
	}

	// The picture of the chat. The composer's focus ring is not part of it.
	evalJS[bool](t, alice, `document.activeElement.blur(), true`)
	shot := screenshot(t, alice, 1000, 650)
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("the screenshot is not a PNG: %v", err)
	}
	if sz := img.Bounds().Size(); sz.X != 1000 || sz.Y != 650 || len(shot) > 200<<10 {
		t.Errorf("the picture is %dx%d, %d bytes; want 1000x650 under 200 KiB", sz.X, sz.Y, len(shot))
	}
	if os.Getenv("LIVECHAT_UPDATE_SCREENSHOT") == "1" {
		path := filepath.Join(repoRoot, "docs", "chat.png")
		if err := os.WriteFile(path, shot, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", path)
	} else {
		writeArtifact(t, "chat.png", shot)
	}

	// On a phone: nothing wider than the screen, the send button on it.
	writeArtifact(t, "browser-chat-phone.png", screenshot(t, carol, 390, 844))
	if w := evalJS[int](t, carol, `document.documentElement.scrollWidth`); w > 390 {
		t.Errorf("at 390 px the page is %d px wide: it scrolls sideways", w)
	}
	if right := evalJS[int](t, carol, `Math.ceil(document.querySelector('#send').getBoundingClientRect().right)`); right > 390 {
		t.Errorf("at 390 px the send button ends at %d px, off the screen", right)
	}

	const markup = `<img src=x onerror=alert(1)>`
	say(t, bob, "bob", markup)
	expectJS(t, alice, "alice", "the markup as text", hasMessage("bob", markup))
	expectJS(t, bob, "bob", "his own markup as text", hasMessage("bob", markup))
	for _, p := range pages[:2] {
		if imgs := evalJS[int](t, p.ctx, `document.querySelectorAll('#messages img').length`); imgs != 0 {
			t.Errorf("%s's page has %d <img> elements in #messages: markup was rendered", p.name, imgs)
		}
		if alerts := evalJS[int](t, p.ctx, `window.__alerts`); alerts != 0 {
			t.Errorf("alert() ran %d times in %s's page: the markup was executed", alerts, p.name)
		}
		writeArtifact(t, "browser-chat-"+p.name+".png", screenshot(t, p.ctx, 1100, 800))
	}
}
