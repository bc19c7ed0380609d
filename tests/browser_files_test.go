//go:build unix

package tests

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
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
