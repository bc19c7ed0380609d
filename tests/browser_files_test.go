//go:build unix

package tests

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/livechat/livechat/internal/mediatest"
)

// TestBrowserPictureInDirectChat is issue 20's proof in the browser,
// through nginx and HAProxy to four servers sharing PostgreSQL (store and
// blobs) and Redis. alice and bob, on different servers, have a direct
// chat. alice pastes a screenshot (a PNG whose eXIf chunk holds a GPS tag)
// into the message box, on a connection throttled to 1 MB/s: her page
// shows the upload's progress, then she sends it. bob's page shows the
// thumbnail in a box reserved before it loaded and opens the full picture
// in the viewer; neither what his page gets for the picture nor for the
// thumbnail holds the GPS tag. carol, signed in, fetches the picture's
// URL from her page and gets the 404 of a made-up id.
func TestBrowserPictureInDirectChat(t *testing.T) {
	t.Parallel()
	ic := newIdentityCluster(t)
	base := ic.startNginx(t)
	b := newBrowser(t, 5*time.Minute)
	alice, bob, carol := b.page(), b.page(), b.page()
	const lobby = "lobby"
	signUpPage(t, alice, base, "alice", lobby)
	signUpPage(t, bob, base, "bob", lobby)
	signUpPage(t, carol, base, "carol", lobby)
	used := map[string]string{}
	for _, p := range []userTab{{"alice", "alice", alice}, {"bob", "bob", bob}} {
		on := placeApart(t, p, lobby, used)
		used[on] = p.name
		t.Logf("%s is on server %s", p.name, on)
	}

	// alice opens the direct chat from the member list; bob opens it from
	// his rooms list.
	// The member list is redrawn on every presence update: a click may land
	// on a button being replaced, so it is tried again until the chat opens.
	dmOpen := `livechat.state.active.startsWith('_d') && livechat.state.rooms.get(livechat.state.active).joined`
	for try := 1; ; try++ {
		clickWhenThere(t, alice, "alice", `#members li[data-name="bob"] button.member-btn`)
		if waitJS(alice, 5*time.Second, dmOpen) == nil {
			break
		}
		if try == 5 {
			expectPage(t, alice, "alice", "the direct chat with bob", dmOpen, signedInState)
		}
	}
	dm := evalJS[string](t, alice, `livechat.state.active`)
	refreshByFocus(t, bob, "bob")
	convItem := fmt.Sprintf(`#conversations li[data-kind="direct"][data-room=%q]`, dm)
	clickWhenThere(t, bob, "bob", convItem+" button.open")
	expectPage(t, bob, "bob", "the direct chat with alice", fmt.Sprintf(`livechat.state.active === %q && livechat.state.rooms.get(%q).joined`, dm, dm), signedInState)

	// alice's uploads go at 1 MB/s: the progress bar has time to move.
	shot := mediatest.ScreenshotWithGPS(1000, 700)
	if len(shot) < 1<<20 || !bytes.Contains(shot, []byte(mediatest.GPSMarker)) {
		t.Fatalf("the screenshot is %d bytes, GPS tag %v", len(shot), bytes.Contains(shot, []byte(mediatest.GPSMarker)))
	}
	if _, err := chromedp.Call(alice, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(alice, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
		MatchedNetworkConditions: []*network.Conditions{{URLPattern: base + "/api/files*", DownloadThroughput: -1, UploadThroughput: 1 << 20}},
	}); err != nil {
		t.Fatal(err)
	}
	// The page records every value its progress bars take.
	evalJS[bool](t, alice, `(() => {
		window.progressSeen = [];
		new MutationObserver(() => {
			for (const p of document.querySelectorAll('#uploads progress.upload-progress')) {
				if (p.max > 0) window.progressSeen.push(p.value / p.max);
			}
		}).observe(document.querySelector('#uploads'), {subtree: true, childList: true, attributes: true});
		return true;
	})()`)
	evalJS[bool](t, alice, fmt.Sprintf(`(() => {
		const bytes = Uint8Array.from(atob(%q), (c) => c.charCodeAt(0));
		const dt = new DataTransfer();
		dt.items.add(new File([bytes], 'image.png', {type: 'image/png'}));
		document.querySelector('#text').focus();
		document.querySelector('#text').dispatchEvent(new ClipboardEvent('paste', {clipboardData: dt, bubbles: true, cancelable: true}));
		return true;
	})()`, base64.StdEncoding.EncodeToString(shot)))
	expectPage(t, alice, "alice", "her screenshot uploading, with a progress bar", `!!document.querySelector('#uploads li.upload[data-state="uploading"] progress.upload-progress')`,
		`document.querySelector('#uploads').innerHTML`)
	writeArtifact(t, "browser-files-uploading.png", screenshot(t, alice, 1100, 800))
	expectPage(t, alice, "alice", "her screenshot uploaded", `!!document.querySelector('#uploads li.upload[data-state="done"]')`,
		`document.querySelector('#uploads').innerText`)
	seen := evalJS[[]float64](t, alice, `window.progressSeen`)
	between := 0
	for _, v := range seen {
		if v > 0 && v < 1 {
			between++
		}
	}
	if between == 0 {
		t.Errorf("alice's progress bar never showed a value between 0 and 100%%: %v", seen)
	}
	t.Logf("alice's progress bar took %d values, %d between 0 and 100%%", len(seen), between)
	clickWhenThere(t, alice, "alice", "#send")
	expectPage(t, alice, "alice", "her picture sent and confirmed", `[...document.querySelectorAll('#messages li.msg.own[data-files]')].some((li) => !!li.dataset.seq)`, signedInState)

	// bob sees the thumbnail, its box reserved, and opens the full picture.
	thumb := `#messages li.msg[data-files] a.thumb img.thumb`
	expectPage(t, bob, "bob", "alice's picture as a thumbnail", fmt.Sprintf(`(() => { const i = document.querySelector(%q);
		return !!i && i.complete && i.naturalWidth === 320 && i.getAttribute('width') === '320' && i.getAttribute('height') === '224'; })()`, thumb),
		`document.querySelector('#messages').innerHTML.slice(-600)`)
	fileID := evalJS[string](t, bob, `document.querySelector('#messages li.msg[data-files] a.thumb').dataset.file`)
	writeArtifact(t, "browser-files-bob.png", screenshot(t, bob, 1100, 800))
	clickWhenThere(t, bob, "bob", "#messages li.msg[data-files] a.thumb")
	expectPage(t, bob, "bob", "the full picture in the viewer", `document.querySelector('#viewer').open &&
		document.querySelector('#viewer-img').complete && document.querySelector('#viewer-img').naturalWidth === 1000 &&
		document.querySelector('#viewer-img').naturalHeight === 700`, `document.querySelector('#viewer').outerHTML.slice(0, 400)`)
	writeArtifact(t, "browser-files-viewer.png", screenshot(t, bob, 1100, 800))
	writeArtifact(t, "browser-files-viewer-phone.png", screenshot(t, bob, 390, 844))
	if w := evalJS[int](t, bob, `document.documentElement.scrollWidth`); w > 390 {
		t.Errorf("at 390 px bob's page with the viewer is %d px wide", w)
	}
	screenshot(t, bob, 1100, 800)

	// What bob's page gets has no GPS tag, no eXIf chunk.
	for _, path := range []string{"/api/files/" + fileID, "/api/files/" + fileID + "/thumb"} {
		got := evalPromise[string](t, bob, fmt.Sprintf(`fetch(%q, {credentials: 'same-origin'}).then(async (r) => {
			const s = new TextDecoder('latin1').decode(await r.arrayBuffer());
			return r.status + ' ' + r.headers.get('content-type') + ' ' + s.includes(%q) + ' ' + s.includes('eXIf') + ' ' + s.length; })`, path, mediatest.GPSMarker))
		t.Logf("bob GET %s: %s", path, got)
		var (
			status       int
			typ          string
			hasGPS, exif bool
			size         int
		)
		if _, err := fmt.Sscan(got, &status, &typ, &hasGPS, &exif, &size); err != nil || status != 200 || hasGPS || exif || size == 0 {
			t.Errorf("bob's page fetching %s: %q, want 200 without the GPS tag or an eXIf chunk", path, got)
		}
	}

	// carol gets the 404 of a made-up id for the picture and its thumbnail.
	st1, body1 := pageFetch(t, carol, "GET", "/api/files/"+fileID)
	st2, body2 := pageFetch(t, carol, "GET", "/api/files/aaaaaaaaaaaaaaaaaaaaaaaaaa")
	if st1 != 404 || st1 != st2 || body1 != body2 {
		t.Errorf("carol fetching the picture: %d %s; a made-up id: %d %s", st1, body1, st2, body2)
	}
	if st, _ := pageFetch(t, carol, "GET", "/api/files/"+fileID+"/thumb"); st != 404 {
		t.Errorf("carol fetching the thumbnail: %d", st)
	}
}

// evalPromise evaluates a JS expression whose value is a promise and
// returns what it resolves to, or fails the test.
func evalPromise[T any](t *testing.T, pctx context.Context, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(pctx, browserStepWait)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// TestBrowserAttachByButtonDropAndCancel covers the web client's other
// ways in and out of an upload, through nginx and HAProxy, for alice alone
// in a public room with a 2 MiB size limit and a 4 MiB quota: the paperclip button opens the file
// chooser, and the chosen PDF goes out as a file card (name, size, a
// download link that saves it); a file dragged onto the conversation shows
// the drop zone and uploads when dropped; an upload cancelled from its
// chip while it runs leaves nothing stored; an SVG, a file over the size
// limit and one past the quota each show why in the chip.
func TestBrowserAttachByButtonDropAndCancel(t *testing.T) {
	t.Parallel()
	ic := newIdentityCluster(t, "--max-upload", "2MiB", "--upload-quota", "4MiB")
	base := ic.startNginx(t)
	b := newBrowser(t, 4*time.Minute)
	alice := b.page()
	const room = "attic"
	signUpPage(t, alice, base, "alice", room)
	expectPage(t, alice, "alice", "the paperclip button", `!document.querySelector('#attach').hidden && !document.querySelector('#attach').disabled &&
		livechat.uploads.maxBytes === 2 * 1024 * 1024`, `JSON.stringify({max: livechat.uploads.maxBytes})`)
	used := func() int {
		return evalPromise[int](t, alice, `fetch('/api/files', {credentials: 'same-origin'}).then((r) => r.json()).then((l) => l.used_bytes)`)
	}
	chips := `document.querySelector('#uploads').innerText`

	// The button: the file chooser opens and the chosen PDF uploads.
	pdf := filepath.Join(t.TempDir(), "report.pdf")
	pdfData := []byte("%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n")
	if err := os.WriteFile(pdf, pdfData, 0o600); err != nil {
		t.Fatal(err)
	}
	chooser := make(chan cdp.BackendNodeID, 1)
	if err := chromedp.Listen(alice, func(ev any) {
		if e, ok := ev.(*page.EventFileChooserOpened); ok {
			select {
			case chooser <- e.BackendNodeID:
			default:
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(alice, page.SetInterceptFileChooserDialog, page.SetInterceptFileChooserDialogParams{Enabled: true}); err != nil {
		t.Fatal(err)
	}
	clickWhenThere(t, alice, "alice", "#attach")
	select {
	case node := <-chooser:
		if _, err := chromedp.Call(alice, dom.SetFileInputFiles, dom.SetFileInputFilesParams{Files: []string{pdf}, BackendNodeID: node}); err != nil {
			t.Fatal(err)
		}
	case <-time.After(browserStepWait):
		t.Fatal("the paperclip button opened no file chooser")
	}
	expectPage(t, alice, "alice", "report.pdf uploaded", `[...document.querySelectorAll('#uploads li.upload[data-state="done"] .upload-name')].some((n) => n.textContent === 'report.pdf')`, chips)
	clickWhenThere(t, alice, "alice", "#send")
	card := `#messages li.msg[data-files] div.file-card[data-kind="pdf"]`
	expectPage(t, alice, "alice", "the PDF as a file card", fmt.Sprintf(`(() => { const c = document.querySelector(%q);
		return !!c && c.querySelector('.file-name').textContent === 'report.pdf' && c.querySelector('.file-size').textContent === %q &&
			c.querySelector('a.file-download').getAttribute('href') === '/api/files/' + c.dataset.file &&
			c.querySelector('a.file-download').getAttribute('download') === 'report.pdf'; })()`, card, fmt.Sprintf("%d bytes", len(pdfData))),
		`document.querySelector('#messages').innerHTML.slice(-800)`)
	href := evalJS[string](t, alice, fmt.Sprintf(`document.querySelector(%q).getAttribute('href')`, card+" a.file-download"))
	got := evalPromise[string](t, alice, fmt.Sprintf(`fetch(%q, {credentials: 'same-origin'}).then((r) => r.status + ' ' + r.headers.get('content-disposition'))`, href))
	if got != "200 attachment; filename=report.pdf" {
		t.Errorf("the card's download link: %q, want 200 and an attachment", got)
	}
	writeArtifact(t, "browser-files-card.png", screenshot(t, alice, 1100, 800))

	// drop puts a file made in the page onto the conversation.
	drop := func(name, mime, content string, size int) {
		t.Helper()
		evalJS[bool](t, alice, fmt.Sprintf(`(() => {
			const body = %d > 0 ? new Uint8Array(%d).fill(97) : %q;
			const dt = new DataTransfer();
			dt.items.add(new File([body], %q, {type: %q}));
			const area = document.querySelector('#drop-zone').parentNode;
			area.dispatchEvent(new DragEvent('dragenter', {dataTransfer: dt, bubbles: true, cancelable: true}));
			window.dropZoneShown = !document.querySelector('#drop-zone').hidden;
			area.dispatchEvent(new DragEvent('dragover', {dataTransfer: dt, bubbles: true, cancelable: true}));
			area.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
			return true;
		})()`, size, size, content, name, mime))
	}
	chipSays := func(name, state, text string) string {
		return fmt.Sprintf(`[...document.querySelectorAll('#uploads li.upload[data-state=%q]')].some((li) =>
			li.querySelector('.upload-name').textContent === %q && (li.querySelector('.upload-error') || {textContent: ''}).textContent.includes(%q))`,
			state, name, text)
	}

	// Cancelled while uploading at 128 KB/s: the chip goes, nothing is kept.
	if _, err := chromedp.Call(alice, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(alice, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
		MatchedNetworkConditions: []*network.Conditions{{URLPattern: base + "/api/files*", DownloadThroughput: -1, UploadThroughput: 128 << 10}},
	}); err != nil {
		t.Fatal(err)
	}
	before := used()
	drop("long.txt", "text/plain", "", 3<<19)
	if !evalJS[bool](t, alice, `window.dropZoneShown`) {
		t.Error("dragging a file over the conversation did not show the drop zone")
	}
	if evalJS[bool](t, alice, `!document.querySelector('#drop-zone').hidden`) {
		t.Error("the drop zone stayed after the drop")
	}
	expectPage(t, alice, "alice", "long.txt uploading, its progress moving", `(() => { const li = [...document.querySelectorAll('#uploads li.upload[data-state="uploading"]')]
		.find((li) => li.querySelector('.upload-name').textContent === 'long.txt');
		const p = li && li.querySelector('progress.upload-progress'); return !!p && p.value > 0 && p.value < p.max; })()`, chips)
	clickWhenThere(t, alice, "alice", `#uploads li.upload[data-state="uploading"] button.upload-cancel`)
	expectPage(t, alice, "alice", "the cancelled upload gone", `livechat.uploads.items.length === 0 && document.querySelector('#uploads').children.length === 0`, chips)

	// Errors in the chip: an SVG (refused by the server), a file over the
	// size limit (refused before uploading), one past the quota.
	drop("logo.svg", "image/svg+xml", `<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`, 0)
	expectPage(t, alice, "alice", "the SVG refused", chipSays("logo.svg", "error", "This type of file is not accepted."), chips)
	drop("huge.txt", "text/plain", "", 2<<20+1)
	expectPage(t, alice, "alice", "the file over the limit refused", chipSays("huge.txt", "error", "Too big: the limit is 2 MB."), chips)
	if _, err := chromedp.Call(alice, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
		MatchedNetworkConditions: []*network.Conditions{{URLPattern: base + "/api/files*", DownloadThroughput: -1, UploadThroughput: -1}},
	}); err != nil {
		t.Fatal(err)
	}
	drop("first.txt", "text/plain", "", 2<<20)
	expectPage(t, alice, "alice", "first.txt uploaded by drag and drop", chipSays("first.txt", "done", ""), chips)
	if u := used(); u != before+2<<20 {
		t.Errorf("used %d bytes after the cancelled upload and first.txt, want %d", u, before+2<<20)
	}
	drop("second.txt", "text/plain", "", 2<<20)
	expectPage(t, alice, "alice", "second.txt past the quota", chipSays("second.txt", "error", "You have used all your storage for files."), chips)
	writeArtifact(t, "browser-files-errors.png", screenshot(t, alice, 1100, 800))
	if u := used(); u != before+2<<20 {
		t.Errorf("used %d bytes after the refused uploads, want %d", u, before+2<<20)
	}
}
