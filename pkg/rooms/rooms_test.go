package rooms

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livechat/livechat/pkg/auth"
	"github.com/livechat/livechat/pkg/protocol"
	"github.com/livechat/livechat/pkg/store"
)

var (
	privateID = regexp.MustCompile(`^_p[a-z0-9]{20}$`)
	directID  = regexp.MustCompile(`^_d[a-z0-9]{20}$`)
)

// The chat server's Authorizer (pkg/server, not imported here).
var _ interface {
	Enter(ctx context.Context, id auth.Identity, room string) error
	Active(room string, t time.Time)
} = (*Service)(nil)

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := NewID(protocol.PrivateRoomPrefix)
		if !privateID.MatchString(id) || protocol.ValidRoom(id) != nil || seen[id] {
			t.Fatalf("NewID = %q (seen before: %v)", id, seen[id])
		}
		seen[id] = true
	}
}

// wantRemoved checks that exactly one removed event of user in room was
// published, on the user's subject.
func wantRemoved(t *testing.T, e *env, room, user string) {
	t.Helper()
	evs := e.takeEvents()
	want := event{protocol.UserSubject(testPrefix, user), protocol.UserEvent{Type: protocol.TypeRemoved, User: user, Room: room, Reason: protocol.ReasonRemoved}}
	if len(evs) != 1 || evs[0] != want {
		t.Fatalf("events = %+v, want [%+v]", evs, want)
	}
}

func TestPrivateRoomFlow(t *testing.T) {
	forStores(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		alice, bob, carol := e.account(t, "Alice"), e.account(t, "Bob"), e.account(t, "Carol")

		before := time.Now().Add(-time.Second).UnixMilli()
		room := e.createRoom(t, alice, "  Our plans ✨ ", "private")
		if !privateID.MatchString(room.ID) || room.Name != "Our plans ✨" || room.Kind != "private" ||
			room.LastActive < before || room.LastActive > time.Now().Add(time.Second).UnixMilli() {
			t.Fatalf("room = %+v", room)
		}
		if r := e.role(t, room.ID, alice.UserID); r != store.RoleOwner {
			t.Fatalf("creator's role = %q", r)
		}

		// Invite (names are found by their key: case does not matter).
		r := e.invite(t, alice, room.ID, "bob", http.StatusCreated, "")
		var inv struct{ Member Member }
		r.decode(t, &inv)
		if inv.Member != (Member{ID: bob.UserID, Name: "Bob", Role: "invited"}) {
			t.Fatalf("invite answer = %+v", inv)
		}
		e.invite(t, alice, room.ID, "BOB", http.StatusConflict, "exists")
		e.invite(t, alice, room.ID, "nobody", http.StatusNotFound, "no_user")
		e.invite(t, alice, room.ID, "not a valid name!", http.StatusNotFound, "no_user")
		if err := e.svc.Enter(ctx, bob, room.ID); !errors.Is(err, auth.ErrNoRoom) {
			t.Fatalf("invited Enter = %v, want ErrNoRoom", err)
		}
		var convs struct{ Conversations []Conversation }
		e.do(t, "GET", "/api/conversations", bob, "").decode(t, &convs)
		if len(convs.Conversations) != 1 || convs.Conversations[0].Role != "invited" || convs.Conversations[0].Room != room {
			t.Fatalf("bob's conversations = %+v", convs)
		}

		// Accept.
		r = e.do(t, "POST", "/api/rooms/"+room.ID+"/accept", bob, "")
		want(t, "accept", r, http.StatusNoContent, "")
		if r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("accept: Cache-Control = %q", r.header.Get("Cache-Control"))
		}
		want(t, "accept twice", e.do(t, "POST", "/api/rooms/"+room.ID+"/accept", bob, ""), http.StatusNotFound, "not_found")
		if err := e.svc.Enter(ctx, bob, room.ID); err != nil {
			t.Fatalf("member Enter = %v", err)
		}
		r = e.do(t, "GET", "/api/rooms/"+room.ID+"/members", bob, "")
		want(t, "members", r, http.StatusOK, "")
		var ms struct{ Members []Member }
		r.decode(t, &ms)
		wantMs := []Member{{alice.UserID, "Alice", "owner"}, {bob.UserID, "Bob", "member"}}
		slices.SortFunc(wantMs, func(a, b Member) int { return cmpStr(a.ID, b.ID) })
		if !slices.Equal(ms.Members, wantMs) {
			t.Fatalf("members = %+v, want %+v", ms.Members, wantMs)
		}

		// The owner removes bob: the event goes out, bob is out.
		want(t, "remove", e.do(t, "DELETE", "/api/rooms/"+room.ID+"/members/"+bob.UserID, alice, ""), http.StatusNoContent, "")
		wantRemoved(t, e, room.ID, bob.UserID)
		if err := e.svc.Enter(ctx, bob, room.ID); !errors.Is(err, auth.ErrNoRoom) {
			t.Fatalf("removed Enter = %v", err)
		}
		want(t, "remove again", e.do(t, "DELETE", "/api/rooms/"+room.ID+"/members/"+bob.UserID, alice, ""), http.StatusNotFound, "not_found")
		e.takeEvents()

		// Carol declines.
		e.invite(t, alice, room.ID, "Carol", http.StatusCreated, "")
		want(t, "decline", e.do(t, "DELETE", "/api/rooms/"+room.ID+"/members/"+carol.UserID, carol, ""), http.StatusNoContent, "")
		wantRemoved(t, e, room.ID, carol.UserID)
		if r := e.role(t, room.ID, carol.UserID); r != "" {
			t.Fatalf("declined role = %q", r)
		}

		// Bob comes back and leaves by himself.
		e.invite(t, alice, room.ID, "Bob", http.StatusCreated, "")
		want(t, "accept", e.do(t, "POST", "/api/rooms/"+room.ID+"/accept", bob, ""), http.StatusNoContent, "")
		want(t, "leave", e.do(t, "DELETE", "/api/rooms/"+room.ID+"/members/"+bob.UserID, bob, ""), http.StatusNoContent, "")
		wantRemoved(t, e, room.ID, bob.UserID)
		if err := e.svc.Enter(ctx, bob, room.ID); !errors.Is(err, auth.ErrNoRoom) {
			t.Fatalf("Enter after leaving = %v", err)
		}
	})
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestPublicRooms(t *testing.T) {
	forStores(t, func(t *testing.T, e *env) {
		alice := e.account(t, "Alice")
		room := e.createRoom(t, alice, "lobby", "public")
		if room.ID != "lobby" || room.Name != "lobby" || room.Kind != "public" {
			t.Fatalf("room = %+v", room)
		}
		if got, err := e.st.Room(context.Background(), "lobby"); err != nil || got.Owner != "" || e.role(t, "lobby", alice.UserID) != "" {
			t.Fatalf("public room = %+v, %v; creator's role %q", got, err, e.role(t, "lobby", alice.UserID))
		}
		want(t, "again", e.do(t, "POST", "/api/rooms", alice, `{"name":"lobby","kind":"public"}`), http.StatusConflict, "exists")
		want(t, "reserved", e.do(t, "POST", "/api/rooms", alice, `{"name":"_pabc","kind":"public"}`), http.StatusBadRequest, "invalid_room")
		want(t, "invalid", e.do(t, "POST", "/api/rooms", alice, `{"name":"a b","kind":"public"}`), http.StatusBadRequest, "invalid_room")
		want(t, "kind", e.do(t, "POST", "/api/rooms", alice, `{"name":"x","kind":"direct"}`), http.StatusBadRequest, "bad_request")

		// Entering an unknown public room records it, for guests too.
		guest := auth.Identity{Kind: auth.KindGuest, UserID: "g_1"}
		if err := e.svc.Enter(context.Background(), guest, "zoo"); err != nil {
			t.Fatal(err)
		}
		r := e.do(t, "GET", "/api/rooms", auth.Identity{}, "")
		want(t, "directory", r, http.StatusOK, "")
		if r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("Cache-Control = %q", r.header.Get("Cache-Control"))
		}
		var dir struct{ Rooms []Room }
		r.decode(t, &dir)
		if len(dir.Rooms) != 2 || dir.Rooms[0].ID != "lobby" || dir.Rooms[1].ID != "zoo" || dir.Rooms[1].Kind != "public" {
			t.Fatalf("directory = %+v", dir)
		}
		e.do(t, "GET", "/api/rooms?after=lobby", auth.Identity{}, "").decode(t, &dir)
		if len(dir.Rooms) != 1 || dir.Rooms[0].ID != "zoo" {
			t.Fatalf("directory after lobby = %+v", dir)
		}
		want(t, "bad after", e.do(t, "GET", "/api/rooms?after=a.b", auth.Identity{}, ""), http.StatusBadRequest, "bad_request")
		// The private rooms are never listed.
		e.createRoom(t, alice, "secret", "private")
		e.do(t, "GET", "/api/rooms", auth.Identity{}, "").decode(t, &dir)
		if len(dir.Rooms) != 2 {
			t.Fatalf("directory = %+v", dir)
		}
	})
}

func TestDirect(t *testing.T) {
	forStores(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		alice, bob, carol := e.account(t, "Alice"), e.account(t, "Bob"), e.account(t, "Carol")
		type answer struct {
			Room Room
			Peer User
		}
		r := e.do(t, "POST", "/api/direct", alice, `{"name":"bob"}`)
		want(t, "direct", r, http.StatusCreated, "")
		var a1 answer
		r.decode(t, &a1)
		if !directID.MatchString(a1.Room.ID) || a1.Room.Kind != "direct" || a1.Peer != (User{bob.UserID, "Bob"}) {
			t.Fatalf("direct = %+v", a1)
		}
		r = e.do(t, "POST", "/api/direct", bob, `{"name":"ALICE"}`)
		want(t, "direct back", r, http.StatusOK, "")
		var a2 answer
		r.decode(t, &a2)
		if a2.Room.ID != a1.Room.ID || a2.Peer != (User{alice.UserID, "Alice"}) {
			t.Fatalf("direct back = %+v, want room %s", a2, a1.Room.ID)
		}
		for _, id := range []auth.Identity{alice, bob} {
			if err := e.svc.Enter(ctx, id, a1.Room.ID); err != nil {
				t.Fatalf("Enter %s: %v", id.Name, err)
			}
		}
		if err := e.svc.Enter(ctx, carol, a1.Room.ID); !errors.Is(err, auth.ErrNoRoom) {
			t.Fatalf("stranger Enter = %v", err)
		}
		var convs struct{ Conversations []Conversation }
		e.do(t, "GET", "/api/conversations", alice, "").decode(t, &convs)
		if len(convs.Conversations) != 1 || convs.Conversations[0].Peer == nil || *convs.Conversations[0].Peer != (User{bob.UserID, "Bob"}) ||
			convs.Conversations[0].Role != "member" {
			t.Fatalf("conversations = %+v", convs)
		}
		// A direct chat cannot be left (it could never be entered again)
		// nor grow.
		want(t, "leave direct", e.do(t, "DELETE", "/api/rooms/"+a1.Room.ID+"/members/"+alice.UserID, alice, ""), http.StatusBadRequest, "bad_request")
		e.invite(t, alice, a1.Room.ID, "Carol", http.StatusForbidden, "forbidden")
		want(t, "unknown", e.do(t, "POST", "/api/direct", alice, `{"name":"nobody"}`), http.StatusNotFound, "no_user")
		if err := e.st.SetBanned(ctx, carol.UserID, true); err != nil {
			t.Fatal(err)
		}
		want(t, "banned", e.do(t, "POST", "/api/direct", alice, `{"name":"carol"}`), http.StatusNotFound, "no_user")
		e.invite(t, alice, e.createRoom(t, alice, "x", "private").ID, "carol", http.StatusNotFound, "no_user")

		// Concurrent calls from both sides make one room.
		dave, erin := e.account(t, "Dave"), e.account(t, "Erin")
		var wg sync.WaitGroup
		ids := make([]string, 20)
		for i := range ids {
			from, to := dave, "Erin"
			if i%2 == 1 {
				from, to = erin, "Dave"
			}
			wg.Go(func() {
				var a answer
				r := e.do(t, "POST", "/api/direct", from, `{"name":"`+to+`"}`)
				if r.status != http.StatusOK && r.status != http.StatusCreated {
					t.Errorf("concurrent direct: %d %s", r.status, r.body)
					return
				}
				r.decode(t, &a)
				ids[i] = a.Room.ID
			})
		}
		wg.Wait()
		for _, id := range ids {
			if id != ids[0] || !directID.MatchString(id) {
				t.Fatalf("concurrent direct rooms: %v", ids)
			}
		}
	})
}

func TestTokenUser(t *testing.T) {
	forStores(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		bob := e.account(t, "Bob")
		tok := auth.Identity{Kind: auth.KindToken, UserID: "site-42", Name: "Zed", Expires: time.Now().Add(time.Hour)}
		e.register(tok)
		// No store row yet: the conversations are empty.
		var convs struct{ Conversations []Conversation }
		r := e.do(t, "GET", "/api/conversations", tok, "")
		want(t, "conversations", r, http.StatusOK, "")
		r.decode(t, &convs)
		if convs.Conversations == nil || len(convs.Conversations) != 0 {
			t.Fatalf("conversations = %s", r.body)
		}
		room := e.createRoom(t, tok, "token room", "private")
		u, err := e.st.UserByID(ctx, tok.UserID)
		if err != nil || u.Key != "token:site-42" || u.Name != "Zed" {
			t.Fatalf("token user row = %+v, %v", u, err)
		}
		if err := e.svc.Enter(ctx, tok, room.ID); err != nil {
			t.Fatal(err)
		}
		e.createRoom(t, tok, "second", "private") // the row exists: fine
		want(t, "direct", e.do(t, "POST", "/api/direct", tok, `{"name":"Bob"}`), http.StatusCreated, "")
		// A subject too long for the store: no rooms, and a clear refusal.
		long := auth.Identity{Kind: auth.KindToken, UserID: strings.Repeat("x", store.MaxIDLen+1), Name: "Long"}
		e.register(long)
		want(t, "long subject conversations", e.do(t, "GET", "/api/conversations", long, ""), http.StatusOK, "")
		want(t, "long subject create", e.do(t, "POST", "/api/rooms", long, `{"name":"r","kind":"private"}`), http.StatusBadRequest, "bad_request")
		want(t, "long subject direct", e.do(t, "POST", "/api/direct", long, `{"name":"Bob"}`), http.StatusBadRequest, "bad_request")
		// A token user is not found by name.
		want(t, "by name", e.do(t, "POST", "/api/direct", bob, `{"name":"Zed"}`), http.StatusNotFound, "no_user")
	})
}

func TestEnter(t *testing.T) {
	forStores(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		alice, bob, carol := e.account(t, "Alice"), e.account(t, "Bob"), e.account(t, "Carol")
		guest := auth.Identity{Kind: auth.KindGuest, UserID: "g_abc", Name: "Visitor"}
		room := e.createRoom(t, alice, "p", "private")
		e.invite(t, alice, room.ID, "Carol", http.StatusCreated, "")
		if err := e.svc.Add(ctx, room.ID, bob.UserID, store.RoleMember); err != nil {
			t.Fatal(err)
		}

		for _, tc := range []struct {
			what string
			id   auth.Identity
			room string
			ok   bool
		}{
			{"guest in public", guest, "lobby", true},
			{"account in public", carol, "lobby", true},
			{"owner", alice, room.ID, true},
			{"member", bob, room.ID, true},
			{"guest in private", guest, room.ID, false},
			{"guest with a member's id", auth.Identity{Kind: auth.KindGuest, UserID: bob.UserID}, room.ID, false},
			{"invited", carol, room.ID, false},
			{"missing private", alice, NewID("_p"), false},
			{"missing direct", alice, NewID("_d"), false},
			{"invalid room", alice, "a.b", false},
			{"token restricted, public", auth.Identity{Kind: auth.KindToken, UserID: bob.UserID, Rooms: []string{"lobby"}}, "other", false},
			{"token restricted, allowed", auth.Identity{Kind: auth.KindToken, UserID: bob.UserID, Rooms: []string{"lobby"}}, "lobby", true},
			{"token restricted, private", auth.Identity{Kind: auth.KindToken, UserID: bob.UserID, Rooms: []string{"lobby"}}, room.ID, false},
			{"token restricted to it", auth.Identity{Kind: auth.KindToken, UserID: bob.UserID, Rooms: []string{room.ID}}, room.ID, true},
			{"token empty restriction", auth.Identity{Kind: auth.KindToken, UserID: bob.UserID, Rooms: []string{}}, "lobby", false},
		} {
			err := e.svc.Enter(ctx, tc.id, tc.room)
			if tc.ok && err != nil || !tc.ok && !isNoRoom(err) {
				t.Errorf("%s: Enter = %v, want ok=%v", tc.what, err, tc.ok)
			}
		}

		// The store down: not ErrNoRoom (the server says unavailable), but
		// public rooms still open.
		_ = e.st.Close()
		if err := e.svc.Enter(ctx, bob, room.ID); err == nil || errors.Is(err, auth.ErrNoRoom) {
			t.Fatalf("Enter with the store closed = %v", err)
		}
		if err := e.svc.Enter(ctx, guest, "elsewhere"); err != nil {
			t.Fatalf("public Enter with the store closed = %v", err)
		}
		want(t, "members, store down", e.do(t, "GET", "/api/rooms/"+room.ID+"/members", alice, ""), http.StatusServiceUnavailable, "unavailable")
	})
}

func TestActiveOrdersConversations(t *testing.T) {
	forStores(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		alice, bob := e.account(t, "Alice"), e.account(t, "Bob")
		a := e.createRoom(t, alice, "a", "private")
		b := e.createRoom(t, alice, "b", "private")
		var d struct{ Room Room }
		e.do(t, "POST", "/api/direct", alice, `{"name":"Bob"}`).decode(t, &d)
		_ = bob

		t0 := time.Now().Add(time.Minute).UTC().Truncate(time.Millisecond)
		lastActive := func(id string) time.Time {
			r, err := e.st.Room(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			return r.LastActive
		}
		e.svc.Active(b.ID, t0)
		e.svc.Active(d.Room.ID, t0.Add(time.Second))
		e.svc.Active(a.ID, t0.Add(2*time.Second))
		waitFor(t, 5*time.Second, "touches", func() bool { return lastActive(a.ID).Equal(t0.Add(2 * time.Second)) })

		order := func() []string {
			var convs struct{ Conversations []Conversation }
			e.do(t, "GET", "/api/conversations", alice, "").decode(t, &convs)
			var ids []string
			for _, c := range convs.Conversations {
				ids = append(ids, c.Room.ID)
			}
			return ids
		}
		if got, want := order(), []string{a.ID, d.Room.ID, b.ID}; !slices.Equal(got, want) {
			t.Fatalf("order = %v, want %v", got, want)
		}
		var convs struct{ Conversations []Conversation }
		e.do(t, "GET", "/api/conversations", alice, "").decode(t, &convs)
		if convs.Conversations[0].Room.LastActive != t0.Add(2*time.Second).UnixMilli() {
			t.Fatalf("last_active = %d, want %d", convs.Conversations[0].Room.LastActive, t0.Add(2*time.Second).UnixMilli())
		}

		// Debounced: a second message within TouchEvery is not written;
		// the touches are written in order by one goroutine, so once a
		// later one is in, the skipped one would have been too.
		e.svc.Active(b.ID, t0.Add(3*time.Second))
		e.svc.Active(d.Room.ID, t0.Add(4*time.Second)) // also debounced
		e.svc.Active("unknown-room", t0)               // public, not in the store: ignored
		e.svc.Active(a.ID, t0.Add(DefaultTouchEvery+2*time.Second))
		waitFor(t, 5*time.Second, "touch of a", func() bool { return lastActive(a.ID).Equal(t0.Add(DefaultTouchEvery + 2*time.Second)) })
		if got := lastActive(b.ID); !got.Equal(t0) {
			t.Fatalf("b touched within TouchEvery: %v", got)
		}
		e.svc.Active(b.ID, t0.Add(DefaultTouchEvery+3*time.Second))
		waitFor(t, 5*time.Second, "touch of b", func() bool { return lastActive(b.ID).Equal(t0.Add(DefaultTouchEvery + 3*time.Second)) })
		if got, want := order(), []string{b.ID, a.ID, d.Room.ID}; !slices.Equal(got, want) {
			t.Fatalf("order = %v, want %v", got, want)
		}
	})
}

// TestActiveNeverBlocks fills the queue while the store is blocked: Active
// returns at once and drops.
func TestActiveNeverBlocks(t *testing.T) {
	blocked := &blockingStore{Store: store.NewMemory(), release: make(chan struct{})}
	svc, err := New(Config{Store: blocked})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	defer close(blocked.release)
	start := time.Now()
	for i := range 3 * touchQueue {
		svc.Active(NewID("r"), time.Now().Add(time.Duration(i)))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Active took %v", d)
	}
}

// blockingStore blocks Touch until release is closed.
type blockingStore struct {
	store.Store
	release chan struct{}
}

func (b *blockingStore) Touch(ctx context.Context, _ string, _ time.Time) error {
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	return nil
}

func TestOperator(t *testing.T) {
	forStores(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		alice, bob := e.account(t, "Alice"), e.account(t, "Bob")
		pub, err := e.svc.Create(ctx, "town-square", store.KindPublic, "")
		if err != nil || pub.ID != "town-square" || pub.Owner != "" {
			t.Fatalf("Create public = %+v, %v", pub, err)
		}
		if _, err := e.svc.Create(ctx, "town-square", store.KindPublic, ""); !errors.Is(err, store.ErrExists) {
			t.Fatalf("Create twice = %v", err)
		}
		if _, err := e.svc.Create(ctx, "_dx", store.KindPublic, ""); !errors.Is(err, ErrInvalid) {
			t.Fatalf("Create reserved = %v", err)
		}
		if _, err := e.svc.Create(ctx, "t", store.KindPrivate, ""); !errors.Is(err, ErrInvalid) {
			t.Fatalf("Create private without owner = %v", err)
		}
		if _, err := e.svc.Create(ctx, "t", store.KindDirect, alice.UserID); !errors.Is(err, ErrInvalid) {
			t.Fatalf("Create direct = %v", err)
		}
		if _, err := e.svc.Create(ctx, "t", store.KindPrivate, "nobody"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Create for a missing owner = %v", err)
		}
		priv, err := e.svc.Create(ctx, "Board", store.KindPrivate, alice.UserID)
		if err != nil || !privateID.MatchString(priv.ID) || priv.Owner != alice.UserID {
			t.Fatalf("Create private = %+v, %v", priv, err)
		}
		if got, err := e.svc.Room(ctx, priv.ID); err != nil || got.Name != "Board" {
			t.Fatalf("Room = %+v, %v", got, err)
		}
		if _, err := e.svc.Room(ctx, "_pmissing"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Room missing = %v", err)
		}
		list, err := e.svc.List(ctx, "", 10)
		if err != nil || len(list) != 1 || list[0].ID != "town-square" {
			t.Fatalf("List = %+v, %v", list, err)
		}
		if err := e.svc.Add(ctx, priv.ID, bob.UserID, store.RoleMember); err != nil {
			t.Fatal(err)
		}
		ms, err := e.svc.Members(ctx, priv.ID)
		wantMs := []MemberInfo{{alice.UserID, "Alice", store.RoleOwner}, {bob.UserID, "Bob", store.RoleMember}}
		slices.SortFunc(wantMs, func(a, b MemberInfo) int { return cmpStr(a.UserID, b.UserID) })
		if err != nil || !slices.Equal(ms, wantMs) {
			t.Fatalf("Members = %+v, %v", ms, err)
		}
		if err := e.svc.Remove(ctx, priv.ID, bob.UserID); err != nil {
			t.Fatal(err)
		}
		wantRemoved(t, e, priv.ID, bob.UserID)
		if err := e.svc.Remove(ctx, priv.ID, bob.UserID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Remove twice = %v", err)
		}

		// A failed publish is returned; the membership is gone anyway.
		if err := e.svc.Add(ctx, priv.ID, bob.UserID, store.RoleMember); err != nil {
			t.Fatal(err)
		}
		e.mu.Lock()
		e.publishErr = errors.New("broker down")
		e.mu.Unlock()
		if err := e.svc.Remove(ctx, priv.ID, bob.UserID); !errors.Is(err, ErrPublish) {
			t.Fatalf("Remove with the broker down = %v", err)
		}
		if r := e.role(t, priv.ID, bob.UserID); r != "" {
			t.Fatalf("role after a failed publish = %q", r)
		}
	})
}

func TestNewNeedsStore(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without a store: no error")
	}
}

// isNoRoom reports whether err is auth.ErrNoRoom itself, not wrapped: the
// same text for a missing room and a forbidden one.
func isNoRoom(err error) bool {
	return errors.Is(err, auth.ErrNoRoom) && err.Error() == auth.ErrNoRoom.Error()
}

// TestTouchesShareAWrite: rooms becoming active one by one (a room every
// 10 ms for 2.5 s) are written at most once per touchSpacing, every one of
// them.
func TestTouchesShareAWrite(t *testing.T) {
	st := &touchCounter{Store: store.NewMemory()}
	svc, err := New(Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	const n = 250
	for i := range n {
		svc.Active("room"+strconv.Itoa(i), time.Now())
		time.Sleep(10 * time.Millisecond) // the pace of the load, not a wait for it
	}
	waitFor(t, 5*time.Second, "every room written", func() bool { return st.rooms() == n })
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.at) > 5 {
		t.Errorf("%d store writes for %d rooms over %v, want one a second at most", len(st.at), n, st.at[len(st.at)-1].Sub(st.at[0]))
	}
	for i := 1; i < len(st.at); i++ {
		if d := st.at[i].Sub(st.at[i-1]); d < touchSpacing-50*time.Millisecond {
			t.Errorf("writes %d and %d only %v apart", i-1, i, d)
		}
	}
}

// touchCounter records when TouchRooms writes and how many rooms.
type touchCounter struct {
	store.Store
	mu sync.Mutex
	at []time.Time
	n  int
}

func (c *touchCounter) TouchRooms(ctx context.Context, rooms map[string]time.Time) error {
	c.mu.Lock()
	c.at = append(c.at, time.Now())
	c.n += len(rooms)
	c.mu.Unlock()
	return c.Store.TouchRooms(ctx, rooms)
}

func (c *touchCounter) rooms() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}
