//go:build unix

package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// browserStepWait is how long a browser step may take on a loaded machine.
const browserStepWait = 30 * time.Second

// expectPage waits up to browserStepWait for a JS condition in the page; on failure
// it also evaluates why (a JS expression whose value explains the state).
func expectPage(t *testing.T, pctx context.Context, who, what, expr, why string) {
	t.Helper()
	if err := waitJS(pctx, browserStepWait, expr); err != nil {
		detail := ""
		if why != "" {
			if v, werr := chromedp.Run(pctx, chromedp.Evaluate[string](why)); werr == nil {
				detail = " (" + v + ")"
			}
		}
		t.Fatalf("%s does not see %s%s: %v", who, what, detail, err)
	}
}

// clickWhenThere waits for the element to be in the page, then clicks it
// with the mouse. Lists are redrawn on presence updates, so the node found
// may be replaced before the click lands ("Could not find node with given
// id"): the click is tried again on the new node until browserStepWait.
func clickWhenThere(t *testing.T, pctx context.Context, who, sel string) {
	t.Helper()
	expectPage(t, pctx, who, sel, fmt.Sprintf(`!!document.querySelector(%q)`, sel), "")
	deadline := time.Now().Add(browserStepWait)
	for {
		ctx, cancel := context.WithDeadline(pctx, deadline)
		err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel)))
		cancel()
		if err == nil {
			return
		}
		if pctx.Err() != nil || !time.Now().Before(deadline) || !strings.Contains(strings.ToLower(err.Error()), "node") {
			t.Fatalf("%s: clicking %s: %v", who, sel, err)
		}
		expectPage(t, pctx, who, sel, fmt.Sprintf(`!!document.querySelector(%q)`, sel), "")
	}
}

// signedInState is a JS expression that sums up a signed-in page for failure
// messages: who, where, which rooms, the error line.
const signedInState = `JSON.stringify({user: livechat.state.user, server: livechat.state.serverID, conn: document.body.dataset.conn,
	active: livechat.state.active, rooms: [...livechat.state.rooms.keys()], closes: livechat.state.closes,
	error: document.querySelector('#error-text').textContent, auth: document.querySelector('#auth-error').textContent})`

// signUpPage loads the page at base, creates the account name on the
// sign-in screen, waits until the page is in its first room, then opens
// the public room by its name in the rooms list.
func signUpPage(t *testing.T, pctx context.Context, base, name, room string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(pctx, browserStepWait)
	defer cancel()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS("#auth-form")),
		chromedp.SendKeys(chromedp.CSS("#auth-name"), name),
		chromedp.SendKeys(chromedp.CSS("#auth-password"), password),
		chromedp.Click(chromedp.CSS("#signup")),
	); err != nil {
		t.Fatalf("%s: signing up through %s: %v", name, base, err)
	}
	expectSignedIn(t, pctx, name, "general") // a new account's page opens #general
	ctx, cancel = context.WithTimeout(pctx, browserStepWait)
	defer cancel()
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#add-room"), room),
		chromedp.Click(chromedp.CSS("#add-room-btn")),
	); err != nil {
		t.Fatalf("%s: opening #%s: %v", name, room, err)
	}
	expectSignedIn(t, pctx, name, room)
}

// expectSignedIn waits until the page is signed in as name, connected, in room and
// showing it.
func expectSignedIn(t *testing.T, pctx context.Context, name, room string) {
	t.Helper()
	expectPage(t, pctx, name, "#"+room+" joined while signed in", fmt.Sprintf(`!!livechat.state.user && livechat.state.user.name === %q &&
		!livechat.state.user.guest && document.querySelector('#me').textContent === %q &&
		document.body.dataset.conn === 'connected' && livechat.state.active === %q &&
		!!livechat.state.rooms.get(%q) && livechat.state.rooms.get(%q).joined`, name, name, room, room, room), signedInState)
}

// focusPage brings the page's tab to the front, as a user switching to it
// does: the page's window gets focus.
func focusPage(t *testing.T, pctx context.Context) {
	t.Helper()
	if _, err := chromedp.Call(pctx, page.BringToFront, cdp.Empty{}); err != nil {
		t.Fatalf("bringing the tab to the front: %v", err)
	}
}

// conversationsAsked is a JS expression: how many answers to GET
// /api/conversations the page has had (resource timing).
const conversationsAsked = `performance.getEntriesByType('resource').filter(e => new URL(e.name).pathname === '/api/conversations' && e.responseEnd > 0).length`

// refreshByFocus focuses the page and waits until its own focus handler
// has asked the server for the conversations again. (The wait is longer
// than the page's own refresh period, 30 s, which would do it too.)
func refreshByFocus(t *testing.T, pctx context.Context, who string) {
	t.Helper()
	before := evalJS[int](t, pctx, conversationsAsked)
	focusPage(t, pctx)
	if err := waitJS(pctx, 40*time.Second, fmt.Sprintf(`%s > %d`, conversationsAsked, before)); err != nil {
		t.Fatalf("%s's page did not ask for its conversations again after its window got focus: %v", who, err)
	}
}

// TestBrowserDirectChat is issue 19's proof in the browser, through nginx
// and HAProxy to four servers sharing PostgreSQL and Redis. alice, bob and
// carol sign up in the page (separate browser contexts: separate cookies),
// on three different servers. In #lobby alice clicks bob's name and writes
// to him in their direct chat; bob's rooms list shows it once the page
// asks again (the window gets focus), he opens it, reads her message (taken
// by her server: it crossed Redis) and answers; she reads the answer.
// carol, on a third server, has no such conversation: the chat's link
// (#room=_d…, copied from alice's address bar) says it does not exist or
// she has no access; frames her page sends on its own socket and on a new
// one (with her cookie) for the chat's id get not_found / not_joined,
// exactly as a made-up id, and never a message of it; GET
// /api/rooms/<id>/members from her page is 404 like a made-up id. alice
// signs out in one tab: her other tab (on another server) is closed with
// 4003 within 2 s of the click and shows the sign-in screen saying why.
func TestBrowserDirectChat(t *testing.T) {
	t.Parallel()
	ic := newIdentityCluster(t)
	base := ic.startNginx(t)
	b := newBrowser(t, 5*time.Minute)
	alice, bob, carol := b.page(), b.page(), b.page()
	const lobby = "lobby"
	signUpPage(t, alice, base, "alice", lobby)
	signUpPage(t, bob, base, "bob", lobby)
	signUpPage(t, carol, base, "carol", lobby)
	alice2 := b.tab(alice) // a second tab of alice's browser: the same cookie
	goTo(t, alice2, "alice's second tab", base+"/#room="+lobby)
	expectSignedIn(t, alice2, "alice", lobby)

	// Every socket on a server of its own (HAProxy balances by least
	// connections, so this is the rule; a page that shares a server with
	// one before it is reloaded, a few times at most).
	used := map[string]string{}
	for _, p := range []userTab{{"alice", "alice", alice}, {"bob", "bob", bob}, {"carol", "carol", carol}, {"alice's second tab", "alice", alice2}} {
		on := placeApart(t, p, lobby, used)
		used[on] = p.name
		t.Logf("%s is on server %s", p.name, on)
	}
	aliceOn := evalJS[string](t, alice, `livechat.state.serverID`)
	bobOn := evalJS[string](t, bob, `livechat.state.serverID`)

	// alice starts the direct chat from #lobby's member list.
	clickWhenThere(t, alice, "alice", `#members li[data-name="bob"] button.member-btn`)
	expectPage(t, alice, "alice", "the direct chat with bob, joined and shown", `livechat.state.active.startsWith('_d') &&
		livechat.state.rooms.get(livechat.state.active).joined && document.querySelector('#room-name').textContent === 'bob' &&
		!!document.querySelector('#conversations li[data-kind="direct"][data-room="' + livechat.state.active + '"].active')`, signedInState)
	dm := evalJS[string](t, alice, `livechat.state.active`)
	link := evalJS[string](t, alice, `location.href`)
	if u, err := url.Parse(link); err != nil || u.Fragment != "room="+dm {
		t.Fatalf("alice's address bar shows %q for the direct chat %s, want #room=%s", link, dm, dm)
	}
	if evalJS[bool](t, alice, fmt.Sprintf(`document.body.innerText.includes(%q)`, dm)) {
		t.Errorf("alice's page shows the direct chat's id %s", dm)
	}
	const hello = "Hi Bob, only you should read this."
	say(t, alice, "alice", hello)
	ownAcked := func(from, text string) string {
		return fmt.Sprintf(`[...document.querySelectorAll('#messages .msg.own')].some(li => li.dataset.from === %q &&
			li.querySelector('.text').textContent === %q && !!li.dataset.seq)`, from, text)
	}
	expectPage(t, alice, "alice", "her message to bob confirmed", ownAcked("alice", hello), signedInState)

	// bob's rooms list learns of the chat when the page asks again: when its
	// window gets focus.
	refreshByFocus(t, bob, "bob")
	convItem := fmt.Sprintf(`#conversations li[data-kind="direct"][data-room=%q]`, dm)
	expectPage(t, bob, "bob", "the direct chat with alice in his rooms list", fmt.Sprintf(
		`(document.querySelector(%q + ' button.open') || {}).textContent === 'alice'`, convItem),
		`document.querySelector('#conversations').innerText`)
	clickWhenThere(t, bob, "bob", convItem+" button.open")
	expectPage(t, bob, "bob", "the direct chat with alice shown, her message in it", fmt.Sprintf(`livechat.state.active === %q &&
		livechat.state.rooms.get(%q).joined && document.querySelector('#room-name').textContent === 'alice' && %s`,
		dm, dm, hasMessage("alice", hello)), signedInState)
	if got := evalJS[string](t, bob, `[...document.querySelectorAll('#messages .msg')].find(li => li.dataset.from === 'alice').dataset.server`); got != aliceOn || got == bobOn {
		t.Errorf("bob's page says alice's message was taken by server %q; alice is on %s, bob on %s", got, aliceOn, bobOn)
	}
	const reply = "Got it, Alice. Between us."
	say(t, bob, "bob", reply)
	expectPage(t, bob, "bob", "his answer confirmed", ownAcked("bob", reply), signedInState)
	expectPage(t, alice, "alice", "bob's answer", hasMessage("bob", reply), signedInState)
	evalJS[bool](t, bob, `document.activeElement.blur(), true`)
	writeArtifact(t, "browser-direct-chat-bob.png", screenshot(t, bob, 1100, 800))

	// On a phone: the rooms list folds behind its button and still holds the
	// direct chat; nothing is wider than the screen.
	writeArtifact(t, "browser-direct-chat-phone.png", screenshot(t, bob, 390, 844))
	if w := evalJS[int](t, bob, `document.documentElement.scrollWidth`); w > 390 {
		t.Errorf("at 390 px bob's page is %d px wide: it scrolls sideways", w)
	}
	if !evalJS[bool](t, bob, `(() => { const b = document.querySelector('#rooms-toggle'); return !!b && b.offsetParent !== null &&
		getComputedStyle(document.querySelector('#rooms-panel')).display === 'none'; })()`) {
		t.Error("at 390 px the rooms list is not folded behind #rooms-toggle")
	}
	evalJS[bool](t, bob, `document.querySelector('#rooms-toggle').click(), true`)
	expectPage(t, bob, "bob", "the unfolded rooms list on a phone, with the direct chat", fmt.Sprintf(
		`getComputedStyle(document.querySelector('#rooms-panel')).display !== 'none' &&
		(document.querySelector(%q + ' button.open') || {}).textContent === 'alice'`, convItem), signedInState)
	writeArtifact(t, "browser-direct-chat-phone-rooms.png", screenshot(t, bob, 390, 844))
	evalJS[bool](t, bob, `document.querySelector('#rooms-toggle').click(), true`)
	screenshot(t, bob, 1100, 800) // back to the desktop size

	// carol's rooms list, asked again now that the chat exists, has none.
	// (Focus makes the page ask; the page's own refresh, awaited, makes
	// sure the list drawn is one asked for after the chat was made.)
	refreshByFocus(t, carol, "carol")
	func() {
		ctx, cancel := context.WithTimeout(carol, browserStepWait)
		defer cancel()
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`livechat.account.refresh().then(() => true)`, chromedp.EvalAwaitPromise)); err != nil {
			t.Fatalf("carol: refreshing the rooms list: %v", err)
		}
	}()
	expectPage(t, carol, "carol", "her rooms list loaded", `livechat.state.sidebar.loaded && livechat.state.sidebar.error === ''`, signedInState)
	if n := evalJS[int](t, carol, `document.querySelectorAll('#conversations li, #invitations li').length`); n != 0 {
		t.Errorf("carol's rooms list shows %d conversations: %s", n, evalJS[string](t, carol, `document.querySelector('#conversations').innerText`))
	}
	var conv struct {
		Conversations []json.RawMessage `json:"conversations"`
	}
	if st, body := pageFetch(t, carol, "GET", "/api/conversations"); st != 200 || json.Unmarshal([]byte(body), &conv) != nil || len(conv.Conversations) != 0 {
		t.Errorf("GET /api/conversations from carol's page: %d %s, want 200 and none", st, body)
	}

	// The chat's link, opened by carol in a new tab: the page tries the
	// room and says it does not exist or she has no access.
	carol2 := b.tab(carol)
	func() {
		ctx, cancel := context.WithTimeout(carol2, browserStepWait)
		defer cancel()
		if err := chromedp.Do(ctx, chromedp.Navigate(link)); err != nil {
			t.Fatalf("carol: opening %s: %v", link, err)
		}
	}()
	const noAccess = "This conversation does not exist or you do not have access to it."
	expectPage(t, carol2, "carol", "the no-access text for the chat's link", fmt.Sprintf(`!!livechat.state.user &&
		livechat.state.user.name === 'carol' && document.querySelector('#error-text').textContent === %q &&
		!document.querySelector('#error').hidden && !livechat.state.rooms.has(%q)`, noAccess, dm), signedInState)
	if joins := evalJS[int](t, carol2, fmt.Sprintf(`window.__sent.filter(f => f.type === 'join' && f.room === %q).length`, dm)); joins == 0 {
		t.Errorf("carol's page did not even try to join %s", dm)
	}
	if n := evalJS[int](t, carol2, fmt.Sprintf(`document.querySelectorAll('#tabs li[data-room=%q], #conversations li').length`, dm)); n != 0 {
		t.Errorf("carol's page lists the chat after its link was refused")
	}
	secret := func(pctx context.Context) bool {
		return evalJS[bool](t, pctx, fmt.Sprintf(`document.body.innerText.includes(%q) || document.body.innerText.includes(%q)`, hello, reply))
	}
	writeArtifact(t, "browser-direct-chat-carol.png", screenshot(t, carol2, 1100, 800))

	// Crafted frames from carol's page: on the page's own socket, and on a
	// new socket opened from the page (her cookie goes with it). A made-up
	// id of the same kind gets the same answers.
	fake := guess(1)
	probeJS := `(dm, fake) => {
		const frames = (room, tag) => [
			{type: 'join', room: room, since: 0},
			{type: 'history', room: room},
			{type: 'send', room: room, text: 'let me in', cid: tag + room},
			{type: 'typing', room: room},
		];
		const probe = (ws, tag) => {
			for (const f of [...frames(dm, tag), ...frames(fake, tag), {type: 'join', room: 'lobby'}]) ws.send(JSON.stringify(f));
		};
		window.__got = {page: [], own: [], welcome: null};
		const pageWS = livechat.account.chat.conn.ws;
		pageWS.addEventListener('message', (e) => { window.__got.page.push(JSON.parse(e.data)); });
		probe(pageWS, 'p');
		const own = new WebSocket(livechat.wsURL());
		own.onmessage = (e) => {
			const f = JSON.parse(e.data);
			if (f.type === 'welcome') { window.__got.welcome = f; probe(own, 'o'); return; }
			window.__got.own.push(f);
		};
		window.__probeWS = own;
		return pageWS.readyState === WebSocket.OPEN;
	}`
	if !evalJS[bool](t, carol, fmt.Sprintf(`(%s)(%q, %q)`, probeJS, dm, fake)) {
		t.Fatal("carol's page socket is not open")
	}
	// Each socket: 4 answers for the chat, 4 for the made-up id, lobby joined.
	answered := func(which string) string {
		return fmt.Sprintf(`window.__got.%s.filter(f => f.type === 'error' && (f.room === %q || f.room === %q)).length >= 8 &&
			window.__got.%s.some(f => f.type === 'joined' && f.room === 'lobby')`, which, dm, fake, which)
	}
	expectPage(t, carol, "carol", "answers to the frames on her page's socket", answered("page"), `JSON.stringify(window.__got.page)`)
	expectPage(t, carol, "carol", "answers to the frames on a new socket", answered("own"), `JSON.stringify(window.__got)`)
	var welcomeUser struct {
		ID    string `json:"id"`
		Name  string `json:"name"`
		Guest bool   `json:"guest"`
	}
	if err := json.Unmarshal([]byte(evalJS[string](t, carol, `JSON.stringify(window.__got.welcome.user || null)`)), &welcomeUser); err != nil ||
		welcomeUser.Name != "carol" || welcomeUser.ID == "" || welcomeUser.Guest {
		t.Fatalf("the new socket from carol's page is not carol's: welcome user %+v (%v)", welcomeUser, err)
	}
	// alice writes once more, then in #lobby: once carol's sockets have the
	// lobby message, anything of the chat would have come before it.
	const later = "One more thing, Bob."
	say(t, alice, "alice", later)
	expectPage(t, bob, "bob", "alice's second message", hasMessage("alice", later), signedInState)
	clickWhenThere(t, alice, "alice", `#tabs li[data-room="lobby"] .tab-btn`)
	expectPage(t, alice, "alice", "#lobby shown", `livechat.state.active === 'lobby'`, signedInState)
	const barrier = "Lunch at noon, everyone?"
	say(t, alice, "alice", barrier)
	for _, which := range []string{"page", "own"} {
		expectPage(t, carol, "carol", "alice's #lobby message on the "+which+" socket", fmt.Sprintf(
			`window.__got.%s.some(f => f.type === 'message' && f.room === 'lobby' && f.text === %q)`, which, barrier), "")
	}
	type answer struct {
		Type, Room, Code, Message, Text string
	}
	for _, which := range []string{"page", "own"} {
		var got []answer
		if err := json.Unmarshal([]byte(evalJS[string](t, carol, `JSON.stringify(window.__got.`+which+`)`)), &got); err != nil {
			t.Fatal(err)
		}
		var forDM, forFake []answer
		for _, f := range got {
			if f.Text == hello || f.Text == reply || f.Text == later {
				t.Errorf("carol's %s socket got a message of the direct chat: %+v", which, f)
			}
			switch f.Room {
			case dm:
				forDM = append(forDM, f)
			case fake:
				forFake = append(forFake, f)
			}
		}
		for _, f := range forDM {
			if f.Type != "error" || (f.Code != "not_found" && f.Code != "not_joined") {
				t.Errorf("carol's %s socket got %+v for the direct chat, want only not_found / not_joined errors", which, f)
			}
		}
		if len(forDM) != 4 || forDM[0].Code != "not_found" {
			t.Errorf("carol's %s socket: answers for the direct chat %+v, want 4 (the join's not_found first)", which, forDM)
		}
		if len(forDM) == len(forFake) {
			for i := range forDM {
				// The messages name the room: the same words around either id.
				mDM := strings.ReplaceAll(forDM[i].Message, dm, "ID")
				mFake := strings.ReplaceAll(forFake[i].Message, fake, "ID")
				if forDM[i].Code != forFake[i].Code || mDM != mFake {
					t.Errorf("carol's %s socket: answer %d for the chat %+v, for a made-up id %+v", which, i, forDM[i], forFake[i])
				}
			}
		} else {
			t.Errorf("carol's %s socket: %d answers for the chat, %d for a made-up id", which, len(forDM), len(forFake))
		}
	}
	for _, p := range []context.Context{carol, carol2} {
		if secret(p) {
			t.Error("carol's page shows a message of the direct chat")
		}
		if evalJS[bool](t, p, fmt.Sprintf(`livechat.state.rooms.has(%q) || livechat.state.sidebar.get(%q) !== null`, dm, dm)) {
			t.Error("carol's page holds the direct chat in its state")
		}
	}

	// The API, from carol's page: the chat's members are as missing as
	// those of a made-up id. (alice's page gets them: the request is right.)
	membersOf := func(id string) string { return "/api/rooms/" + url.PathEscape(id) + "/members" }
	st, body := pageFetch(t, carol, "GET", membersOf(dm))
	stFake, bodyFake := pageFetch(t, carol, "GET", membersOf(fake))
	if st != 404 || st != stFake || body != bodyFake {
		t.Errorf("GET %s from carol's page: %d %s; for a made-up id: %d %s; want the same 404", membersOf(dm), st, body, stFake, bodyFake)
	}
	if st, body := pageFetch(t, alice, "GET", membersOf(dm)); st != 200 || !strings.Contains(body, `"alice"`) || !strings.Contains(body, `"bob"`) {
		t.Errorf("GET %s from alice's page: %d %s, want 200 with alice and bob", membersOf(dm), st, body)
	}

	// alice signs out in one tab; her other tab, on another server, is
	// closed by the server (4003) within 2 s of the click and says why.
	// The second tab is loaded afresh first: the page asks for its rooms
	// list every 30 s, and a refresh that found the session gone would
	// close the socket itself (code 1000) before the server's close could
	// be seen. Its next one is 30 s away now.
	goTo(t, alice2, "alice's second tab, reloaded", "")
	expectSignedIn(t, alice2, "alice", lobby)
	placeApart(t, userTab{"alice's second tab", "alice", alice2}, lobby, map[string]string{aliceOn: "alice"})
	if !evalJS[bool](t, alice2, `(() => {
		const ws = livechat.account.chat.conn.ws;
		window.__closed = null;
		ws.addEventListener('close', (e) => { window.__closed = {code: e.code, at: Date.now()}; });
		return ws.readyState === WebSocket.OPEN;
	})()`) {
		t.Fatalf("alice's second tab is not connected: %s", evalJS[string](t, alice2, signedInState))
	}
	evalJS[bool](t, alice, `document.querySelector('#signout').addEventListener('click', () => { window.__clickAt = Date.now(); }, {capture: true}), true`)
	clicked := time.Now()
	clickWhenThere(t, alice, "alice", "#signout")
	expectPage(t, alice2, "alice's second tab", "its socket closed", `window.__closed !== null`, signedInState)
	code := evalJS[int](t, alice2, `window.__closed.code`)
	took := time.Duration(evalJS[int64](t, alice2, `window.__closed.at`)-evalJS[int64](t, alice, `window.__clickAt`)) * time.Millisecond
	t.Logf("alice's second tab (server %s) was closed with %d %s after the click on Sign out (%s as the test saw it)",
		evalJS[string](t, alice2, `livechat.state.serverID`), code, took, time.Since(clicked).Round(time.Millisecond))
	if code != 4003 || took > 2*time.Second {
		t.Errorf("alice's second tab was closed with %d %s after the click, want 4003 within 2 s", code, took)
	}
	const signedOutThere = "You were signed out (in another tab or device). Sign in again."
	expectPage(t, alice2, "alice's second tab", "the sign-in screen saying why", fmt.Sprintf(`!document.querySelector('#auth-screen').hidden &&
		document.querySelector('#chat-screen').hidden && !document.querySelector('#auth-form').hidden &&
		document.querySelector('#auth-error').textContent === %q && livechat.state.user === null`, signedOutThere), signedInState)
	expectPage(t, alice, "alice", "the sign-in screen after signing out", `!document.querySelector('#auth-screen').hidden &&
		document.querySelector('#chat-screen').hidden && document.querySelector('#auth-error').textContent === 'You signed out.'`, signedInState)
	if secret(alice2) || secret(alice) {
		t.Error("a signed-out tab of alice's still shows the direct chat")
	}
	writeArtifact(t, "browser-direct-chat-signed-out.png", screenshot(t, alice2, 1100, 800))
	// bob and carol are still signed in (a reconnect on a loaded machine
	// is not the point; a close for who they are would be).
	for _, p := range []userTab{{"bob", "bob", bob}, {"carol", "carol", carol}} {
		if got := evalJS[string](t, p.ctx, `(livechat.state.user ? livechat.state.user.name : 'nobody') + ' ' +
			document.querySelector('#chat-screen').hidden + ' ' + livechat.state.closes.filter(c => /^400[1-4]$/.test(c)).join(',')`); got != p.user+" false " {
			t.Errorf("%s's page after alice signed out: %q, want %q (signed in, chat shown, no identity close)", p.name, got, p.user+" false ")
		}
	}
}

// pageFetch sends a request from the page (its cookies, its origin) and
// returns the status and body.
func pageFetch(t *testing.T, pctx context.Context, method, path string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(pctx, browserStepWait)
	defer cancel()
	out, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`fetch(%q, {method: %q, credentials: 'same-origin', cache: 'no-store'})
		.then(async (r) => JSON.stringify({status: r.status, body: await r.text()}))`, path, method), chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("fetch %s %s from the page: %v", method, path, err)
	}
	var res struct {
		Status int    `json:"status"`
		Body   string `json:"body"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("fetch %s %s: %v", method, path, err)
	}
	return res.Status, res.Body
}

// userTab is a page and whose it is.
type userTab struct {
	name, user string
	ctx        context.Context
}

// placeApart reloads the page, ten times at most, until its socket is on a
// server that is not in taken (server -> whose), and returns the server.
// The page is signed in as p.user and shows room.
func placeApart(t *testing.T, p userTab, room string, taken map[string]string) string {
	t.Helper()
	for try := 0; ; try++ {
		on := evalJS[string](t, p.ctx, `livechat.state.serverID`)
		other, clash := taken[on]
		if !clash {
			return on
		}
		if try == 10 {
			t.Fatalf("%s stays on server %s with %s after %d reloads", p.name, on, other, try)
		}
		goTo(t, p.ctx, p.name+": reload for another server", "")
		expectSignedIn(t, p.ctx, p.user, room)
	}
}
