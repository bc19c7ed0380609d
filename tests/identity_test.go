//go:build unix

package tests

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/livechat/livechat/pkg/auth"
	"github.com/livechat/livechat/pkg/history/historytest"
)

// password is every test account's password.
const password = "correct horse battery staple"

// identityCluster is the reference topology (four servers behind HAProxy,
// one Redis) with accounts and rooms in one PostgreSQL schema of its own
// and a token secret shared by the servers.
type identityCluster struct {
	*cluster
	base   string // http://HAProxy
	store  string // the store URL the servers use
	secret []byte
}

func newIdentityCluster(t *testing.T, more ...string) *identityCluster {
	t.Helper()
	store := historytest.PostgresURL(t)
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	hexSecret := hex.EncodeToString(secret)
	// The guessing test sends a thousand joins on one connection.
	args := append([]string{"--store", store, "--rate", "5000", "--rate-burst", "5000"}, more...)
	c := newClusterWith(t, clusterOpts{serverArgs: args, env: []string{"LIVECHAT_SECRET=" + hexSecret}})
	return &identityCluster{cluster: c, base: "http://" + c.lb, store: store, secret: []byte(hexSecret)}
}

// apiClient is one browser: a cookie jar and the HTTP API.
type apiClient struct {
	t    *testing.T
	name string
	base string
	hc   *http.Client
}

func newAPIClient(t *testing.T, base, name string) *apiClient {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &apiClient{t: t, name: name, base: base, hc: &http.Client{Jar: jar, Timeout: 15 * time.Second}}
}

// do sends a JSON request and returns the status and body.
func (a *apiClient) do(method, path string, body any) (int, []byte) {
	a.t.Helper()
	var r io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			a.t.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, a.base+path, r)
	if err != nil {
		a.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		a.t.Fatalf("%s: %s %s: %v", a.name, method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// must is do, failing the test on another status; it decodes the answer
// into out when out is not nil.
func (a *apiClient) must(method, path string, body any, want int, out any) {
	a.t.Helper()
	st, data := a.do(method, path, body)
	if st != want {
		a.t.Fatalf("%s: %s %s: status %d, want %d: %s", a.name, method, path, st, want, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			a.t.Fatalf("%s: %s %s: %v: %s", a.name, method, path, err, data)
		}
	}
}

// cookie is the handshake header carrying the browser's cookies.
func (a *apiClient) cookie() http.Header {
	u, _ := url.Parse(a.base)
	var parts []string
	for _, c := range a.hc.Jar.Cookies(u) {
		parts = append(parts, c.Name+"="+c.Value)
	}
	return http.Header{"Cookie": {strings.Join(parts, "; ")}}
}

// user signs a new account up and returns its browser, signed in.
func (ic *identityCluster) user(t *testing.T, name string) *apiClient {
	t.Helper()
	a := newAPIClient(t, ic.base, name)
	a.must("POST", "/api/account/signup", map[string]string{"name": name, "password": password}, http.StatusCreated, nil)
	return a
}

// dialAs opens a socket with a's cookies through HAProxy on a server not
// in avoid (HAProxy balances by least connections: a few tries do).
func (ic *identityCluster) dialAs(t *testing.T, a *apiClient, avoid ...*wsClient) *wsClient {
	t.Helper()
	for try := 0; try < 20; try++ {
		c, err := dialHeader(t, ic.wsURL(), a.name, a.cookie())
		if err != nil {
			t.Fatalf("%s: dial: %v", a.name, err)
		}
		ok := true
		for _, o := range avoid {
			ok = ok && o.server != c.server
		}
		if ok {
			return c
		}
		c.close()
	}
	t.Fatalf("%s: no socket on a server other than the others'", a.name)
	return nil
}

type roomJSON struct {
	Room struct {
		ID   string `json:"id"`
		Name string `json:"name"`
		Kind string `json:"kind"`
	} `json:"room"`
}

// guess is a made-up id of a private room or a direct chat.
func guess(i int) string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	prefix := "_p"
	if i%2 == 1 {
		prefix = "_d"
	}
	return prefix + hex.EncodeToString(b)
}

// errorsFor returns the error frames c got for room.
func errorsFor(c *wsClient, room string) []frame {
	return c.find(func(f frame) bool { return f.Type == "error" && f.Room == room })
}

// TestIdentityPrivateConversations: alice and bob (on different servers)
// talk in a direct chat and a private room; carol, signed in on a third
// server, guesses a thousand ids and tries the real ones, over the socket
// and the API, and gets nothing: no message, history, typing, presence or
// member list, and answers identical to those for ids that do not exist.
func TestIdentityPrivateConversations(t *testing.T) {
	ic := newIdentityCluster(t)
	alice, bob, carol := ic.user(t, "alice"), ic.user(t, "bob"), ic.user(t, "carol")

	var dm, pr roomJSON
	alice.must("POST", "/api/direct", map[string]string{"name": "bob"}, http.StatusCreated, &dm)
	alice.must("POST", "/api/rooms", map[string]string{"name": "Plans", "kind": "private"}, http.StatusCreated, &pr)
	alice.must("POST", "/api/rooms/"+pr.Room.ID+"/members", map[string]string{"name": "bob"}, http.StatusCreated, nil)
	bob.must("POST", "/api/rooms/"+pr.Room.ID+"/accept", nil, http.StatusNoContent, nil)
	secret := []string{dm.Room.ID, pr.Room.ID}
	for _, id := range secret {
		if !strings.HasPrefix(id, "_") || strings.Contains(strings.ToLower(id), "alice") || strings.Contains(strings.ToLower(id), "bob") {
			t.Fatalf("room id %q is not server-made", id)
		}
	}

	wa := ic.dialAs(t, alice)
	wb := ic.dialAs(t, bob, wa)
	wc := ic.dialAs(t, carol, wa, wb)
	for _, id := range secret {
		wa.send(map[string]string{"type": "join", "room": id})
		wb.send(map[string]string{"type": "join", "room": id})
	}
	waitFor(t, 10*time.Second, func() bool {
		return wa.joined(dm.Room.ID) && wb.joined(dm.Room.ID) && wa.joined(pr.Room.ID) && wb.joined(pr.Room.ID)
	},
		"alice and bob did not both join their conversations")

	// Carol's guesses, then the real ids, then every other frame type.
	const guesses = 1000
	ids := make([]string, 0, guesses+2)
	for i := range guesses {
		ids = append(ids, guess(i))
	}
	ids = append(ids, secret...)
	for _, id := range ids {
		wc.send(map[string]string{"type": "join", "room": id})
	}
	waitFor(t, 30*time.Second, func() bool { return len(wc.find(func(f frame) bool { return f.Type == "error" })) >= len(ids) },
		"carol got %d of %d answers", len(wc.find(func(f frame) bool { return f.Type == "error" })), len(ids))
	ref := errorsFor(wc, ids[0])
	if len(ref) != 1 || ref[0].Code != "not_found" {
		t.Fatalf("a guessed id: %+v, want one not_found error", ref)
	}
	for _, id := range ids {
		got := errorsFor(wc, id)
		if len(got) != 1 || got[0].Code != ref[0].Code || got[0].Message != ref[0].Message {
			t.Fatalf("join %s: %+v; a guessed id got %+v", id, got, ref[0])
		}
	}
	for _, id := range []string{ids[1], secret[0], secret[1]} {
		wc.send(map[string]any{"type": "send", "room": id, "text": "let me in", "cid": "x" + id})
		wc.send(map[string]any{"type": "typing", "room": id})
		wc.send(map[string]any{"type": "history", "room": id})
	}
	waitFor(t, 10*time.Second, func() bool { return len(errorsFor(wc, secret[1])) >= 4 }, "carol's other frames were not answered")
	for _, id := range secret {
		got, want := errorsFor(wc, id)[1:], errorsFor(wc, ids[1])[1:]
		if len(got) != len(want) {
			t.Fatalf("frames for %s: %+v, for a guessed id: %+v", id, got, want)
		}
		for i := range got {
			// An error may quote the room the client named: compare with it blanked.
			gotMsg := strings.ReplaceAll(got[i].Message, id, "ROOM")
			wantMsg := strings.ReplaceAll(want[i].Message, ids[1], "ROOM")
			if got[i].Code != want[i].Code || gotMsg != wantMsg {
				t.Fatalf("frame %d for %s: %+v, for a guessed id: %+v", i, id, got[i], want[i])
			}
		}
	}

	// Alice and bob talk; carol must hear nothing of it.
	wa.send(map[string]string{"type": "typing", "room": dm.Room.ID})
	wa.send(map[string]string{"type": "send", "room": dm.Room.ID, "text": "the password is swordfish", "cid": "a1"})
	wb.send(map[string]string{"type": "send", "room": pr.Room.ID, "text": "plans for friday", "cid": "b1"})
	waitFor(t, 10*time.Second, func() bool {
		return len(wb.find(func(f frame) bool { return f.Type == "message" && f.Text == "the password is swordfish" })) == 1 &&
			len(wa.find(func(f frame) bool { return f.Type == "message" && f.Text == "plans for friday" })) == 1
	}, "alice and bob did not hear each other across servers %s and %s", wa.server, wb.server)
	got := wb.find(func(f frame) bool { return f.Type == "message" && f.Room == dm.Room.ID })
	if got[0].From != "alice" {
		t.Fatalf("bob got a message from %q, want alice", got[0].From)
	}
	// A last frame through carol's server after the conversation: once it
	// arrives, anything of the private rooms would have arrived before it.
	wa.send(map[string]string{"type": "join", "room": "lobby"})
	wc.send(map[string]string{"type": "join", "room": "lobby"})
	waitFor(t, 10*time.Second, func() bool { return wc.joined("lobby") && wa.joined("lobby") }, "lobby")
	wa.send(map[string]string{"type": "send", "room": "lobby", "text": "end", "cid": "end"})
	waitFor(t, 10*time.Second, func() bool { return len(wc.find(func(f frame) bool { return f.Text == "end" })) == 1 }, "carol did not get the lobby message")
	for _, f := range wc.find(func(f frame) bool { return f.Room == dm.Room.ID || f.Room == pr.Room.ID }) {
		if f.Type != "error" {
			t.Errorf("carol got a %s frame of a private conversation: %+v", f.Type, f)
		}
	}

	// The API: members, invitations, acceptance and history of the real
	// ids answer carol exactly as ids that do not exist.
	for _, probe := range []struct{ method, path string }{
		{"GET", "/api/rooms/%s/members"},
		{"POST", "/api/rooms/%s/accept"},
		{"DELETE", "/api/rooms/%s/members/" + "nobody"},
	} {
		wantSt, wantBody := carol.do(probe.method, fmt.Sprintf(probe.path, guess(0)), nil)
		if wantSt != http.StatusNotFound {
			t.Fatalf("%s %s for a guessed id: %d %s", probe.method, probe.path, wantSt, wantBody)
		}
		for i := range 100 {
			st, body := carol.do(probe.method, fmt.Sprintf(probe.path, guess(i)), nil)
			if st != wantSt || !bytes.Equal(body, wantBody) {
				t.Fatalf("%s %s for guess %d: %d %s, want %d %s", probe.method, probe.path, i, st, body, wantSt, wantBody)
			}
		}
		for _, id := range secret {
			st, body := carol.do(probe.method, fmt.Sprintf(probe.path, id), nil)
			if st != wantSt || !bytes.Equal(body, wantBody) {
				t.Fatalf("%s %s for a real room: %d %s, want %d %s", probe.method, probe.path, st, body, wantSt, wantBody)
			}
		}
	}
	var conv struct {
		Conversations []json.RawMessage `json:"conversations"`
	}
	carol.must("GET", "/api/conversations", nil, http.StatusOK, &conv)
	if len(conv.Conversations) != 0 {
		t.Fatalf("carol's conversation list: %s", conv.Conversations)
	}
}

// TestIdentityImpersonation: a frame that names someone else is refused,
// and a message always carries the sender's real identity.
func TestIdentityImpersonation(t *testing.T) {
	ic := newIdentityCluster(t)
	alice, mallory := ic.user(t, "alice"), ic.user(t, "mallory")
	wa := ic.dialAs(t, alice)
	wm := ic.dialAs(t, mallory, wa)
	wa.send(map[string]string{"type": "join", "room": "lobby"})
	wm.send(map[string]string{"type": "join", "room": "lobby", "name": "alice"})
	waitFor(t, 10*time.Second, func() bool { return wa.joined("lobby") && len(errorsFor(wm, "lobby")) == 1 }, "joins not answered")
	if e := errorsFor(wm, "lobby")[0]; e.Code != "forbidden_name" {
		t.Fatalf("join as alice: %+v, want forbidden_name", e)
	}
	if wm.joined("lobby") {
		t.Fatal("mallory joined as alice")
	}
	wm.send(map[string]string{"type": "join", "room": "lobby"})
	waitFor(t, 10*time.Second, func() bool { return wm.joined("lobby") }, "mallory's own join")
	wm.send(map[string]string{"type": "send", "room": "lobby", "text": "named", "cid": "m1", "name": "alice"})
	wm.send(map[string]any{"type": "send", "room": "lobby", "text": "claimed", "cid": "m2", "from": "alice", "user": "u-alice", "guest": false})
	waitFor(t, 10*time.Second, func() bool {
		return len(errorsFor(wm, "lobby")) == 2 && len(wa.find(func(f frame) bool { return f.Text == "claimed" })) == 1
	}, "impersonating sends not answered")
	if e := errorsFor(wm, "lobby")[1]; e.Code != "forbidden_name" {
		t.Fatalf("send naming alice: %+v, want forbidden_name", e)
	}
	if n := len(wa.find(func(f frame) bool { return f.Text == "named" })); n != 0 {
		t.Fatal("a send naming alice was delivered")
	}
	m := wa.find(func(f frame) bool { return f.Text == "claimed" })[0]
	var mID string
	_ = json.Unmarshal(m.User, &mID)
	if m.From != "mallory" || mID == "" || mID == "u-alice" || m.Guest {
		t.Fatalf("the message claiming to be alice's: from %q user %q guest %v", m.From, mID, m.Guest)
	}
}

// TestIdentityRevocation: a sign-out closes that session's sockets on
// every server within 2 s and nothing else; the cookie is dead everywhere;
// a password change closes the other sessions; a ban by the operator
// closes every socket of the user.
func TestIdentityRevocation(t *testing.T) {
	ic := newIdentityCluster(t)
	tabs := ic.user(t, "alice") // one browser, two tabs
	phone := newAPIClient(t, ic.base, "alice")
	phone.must("POST", "/api/account/signin", map[string]string{"name": "alice", "password": password}, http.StatusOK, nil)
	tab1 := ic.dialAs(t, tabs)
	tab2 := ic.dialAs(t, tabs, tab1)
	ph := ic.dialAs(t, phone, tab1, tab2)
	dead := tabs.cookie()

	start := time.Now()
	tabs.must("POST", "/api/account/signout", nil, http.StatusNoContent, nil)
	waitFor(t, 2*time.Second, func() bool {
		c1, code1 := tab1.closed()
		c2, code2 := tab2.closed()
		return c1 && c2 && code1 == 4003 && code2 == 4003
	}, "the signed-out tabs (servers %s, %s) were not closed with 4003 within 2 s: %v %v", tab1.server, tab2.server, closedLine(tab1), closedLine(tab2))
	t.Logf("sign-out closed both tabs in %s", time.Since(start).Round(time.Millisecond))
	if c, _ := ph.closed(); c {
		t.Fatal("the phone's socket (another session) was closed by the sign-out")
	}
	for range 4 { // every server refuses the dead cookie
		if c, err := dialHeader(t, ic.wsURL(), "alice", dead); err == nil {
			t.Fatalf("the signed-out cookie opened a socket on server %s", c.server)
		}
	}
	var me struct {
		User *struct{ ID string } `json:"user"`
	}
	tabs.must("GET", "/api/account/me", nil, http.StatusOK, &me)
	if me.User != nil {
		t.Fatal("the signed-out browser is still signed in")
	}

	// A password change from another browser ends the phone's session.
	laptop := newAPIClient(t, ic.base, "alice")
	laptop.must("POST", "/api/account/signin", map[string]string{"name": "alice", "password": password}, http.StatusOK, nil)
	laptop.must("POST", "/api/account/password", map[string]string{"old": password, "new": password + "!"}, http.StatusNoContent, nil)
	waitFor(t, 2*time.Second, func() bool { c, code := ph.closed(); return c && code == 4003 }, "the phone was not closed after the password change: %v", closedLine(ph))
	ic.dialAs(t, laptop) // the browser that changed it goes on

	// The operator bans bob: all his sockets close with 4004.
	bob := ic.user(t, "bob")
	b1 := ic.dialAs(t, bob)
	b2 := ic.dialAs(t, bob, b1)
	if out, err := ic.cli("users", "ban", "bob", "--store", ic.store); err != nil {
		t.Fatalf("livechat users ban: %v\n%s", err, out)
	}
	waitFor(t, 2*time.Second, func() bool {
		c1, code1 := b1.closed()
		c2, code2 := b2.closed()
		return c1 && c2 && code1 == 4004 && code2 == 4004
	}, "bob's sockets were not closed with 4004 after the ban: %v %v", closedLine(b1), closedLine(b2))
	st, body := newAPIClient(t, ic.base, "bob").do("POST", "/api/account/signin", map[string]string{"name": "bob", "password": password})
	if st != http.StatusForbidden || !strings.Contains(string(body), "account_closed") {
		t.Fatalf("a banned user's sign-in: %d %s", st, body)
	}
}

func subject(sub string) jwt.RegisteredClaims { return jwt.RegisteredClaims{Subject: sub} }

func closedLine(c *wsClient) string {
	closed, code := c.closed()
	return fmt.Sprintf("%s on %s closed=%v code=%d", c.name, c.server, closed, code)
}

// TestIdentityTokens: a site's token opens a socket on any server, its
// room list is enforced, and a bad token is refused before the upgrade.
func TestIdentityTokens(t *testing.T) {
	ic := newIdentityCluster(t)
	mint := func(c auth.Claims, ttl time.Duration) string {
		tok, err := auth.MintToken(ic.secret, c, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := mint(auth.Claims{Name: "Dana", Rooms: []string{"lobby"}, RegisteredClaims: subject("site-42")}, time.Minute)
	c, err := dial(t, ic.wsURL()+"?token="+good, "dana")
	if err != nil {
		t.Fatal(err)
	}
	var who struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	_ = json.Unmarshal(c.welcome.User, &who)
	if who.ID != "site-42" || who.Name != "Dana" {
		t.Fatalf("welcome user: %s", c.welcome.User)
	}
	c.send(map[string]string{"type": "join", "room": "lobby"})
	c.send(map[string]string{"type": "join", "room": "elsewhere"})
	waitFor(t, 10*time.Second, func() bool { return c.joined("lobby") && len(errorsFor(c, "elsewhere")) == 1 }, "joins not answered")
	if e := errorsFor(c, "elsewhere")[0]; e.Code != "not_found" {
		t.Fatalf("a room outside the token's list: %+v", e)
	}
	other := make([]byte, 32)
	_, _ = rand.Read(other)
	forged, err := auth.MintToken([]byte(hex.EncodeToString(other)), auth.Claims{RegisteredClaims: subject("site-42")}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	past := jwt.NewNumericDate(time.Now().Add(-time.Minute))
	expired, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{Subject: "site-42", ExpiresAt: past}).SignedString(ic.secret)
	if err != nil {
		t.Fatal(err)
	}
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.RegisteredClaims{Subject: "site-42", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{
		"expired":  expired,
		"alg none": none,
		"forged":   forged,
		"garbage":  "not.a.token",
	} {
		for range 4 {
			if c, err := dial(t, ic.wsURL()+"?token="+url.QueryEscape(tok), "x"); err == nil || !strings.Contains(err.Error(), "401") {
				t.Fatalf("%s token: %v (server %v)", name, err, c)
			}
		}
	}
	// A token sent in the URL never reaches HAProxy's log (it logs paths).
	haproxyLog := func() string { data, _ := os.ReadFile(ic.haproxy.logPath); return string(data) }
	waitFor(t, 10*time.Second, func() bool { return strings.Count(haproxyLog(), " 401 ") >= 12 },
		"HAProxy logged %d refused handshakes, want 12", strings.Count(haproxyLog(), " 401 "))
	for _, tok := range []string{good, expired, none, forged} {
		if strings.Contains(haproxyLog(), tok[len(tok)-20:]) {
			t.Fatal("HAProxy's log holds a token")
		}
	}
}
