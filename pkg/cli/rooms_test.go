package cli

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/livechat/livechat/pkg/broker"
	"github.com/livechat/livechat/pkg/broker/brokertest"
	"github.com/livechat/livechat/pkg/protocol"
	"github.com/livechat/livechat/pkg/store"
)

func TestRoomsListAndCreate(t *testing.T) {
	e := newOpsEnv(t)
	ctx := context.Background()
	e.addUser(t, "u1alice", "alice", at(1))
	for i, id := range []string{"general", "random"} {
		if _, err := e.st.CreateRoom(ctx, store.Room{ID: id, Name: id, Kind: store.KindPublic, Created: at(10 + i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.st.CreateRoom(ctx, store.Room{ID: "_psecret", Name: "Secret", Kind: store.KindPrivate, Owner: "u1alice", Created: at(20)}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.Touch(ctx, "random", at(30)); err != nil {
		t.Fatal(err)
	}

	// The directory: public rooms only.
	checkRun(t, "", ExitOK,
		"ID\tNAME\tKIND\tOWNER\tCREATED\tLAST ACTIVE\n"+
			"general\tgeneral\tpublic\t-\t2026-03-01T12:00:10Z\t2026-03-01T12:00:10Z\n"+
			"random\trandom\tpublic\t-\t2026-03-01T12:00:11Z\t2026-03-01T12:00:30Z\n",
		"", "rooms", "list")
	checkRun(t, "", ExitOK,
		`{"rooms":[{"id":"random","name":"random","kind":"public","owner":"","created":"2026-03-01T12:00:11Z","last_active":"2026-03-01T12:00:30Z"}]}`+"\n",
		"", "rooms", "list", "--after", "general", "-o", "json")
	checkRun(t, "", ExitOK, "ID\tNAME\tKIND\tOWNER\tCREATED\tLAST ACTIVE\n"+
		"general\tgeneral\tpublic\t-\t2026-03-01T12:00:10Z\t2026-03-01T12:00:10Z\n",
		"more rooms may follow: --after general\n", "rooms", "list", "--limit", "1")
	ios, out, errOut := testIO("")
	ios.IsTerminal = true
	if code := runIO(t, ios, "rooms", "list"); code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	want := `┌─────────┬─────────┬────────┬───────┬──────────────────────┬──────────────────────┐
│   ID    │  NAME   │  KIND  │ OWNER │       CREATED        │     LAST ACTIVE      │
├─────────┼─────────┼────────┼───────┼──────────────────────┼──────────────────────┤
│ general │ general │ public │ -     │ 2026-03-01T12:00:10Z │ 2026-03-01T12:00:10Z │
│ random  │ random  │ public │ -     │ 2026-03-01T12:00:11Z │ 2026-03-01T12:00:30Z │
└─────────┴─────────┴────────┴───────┴──────────────────────┴──────────────────────┘
`
	if out.String() != want {
		t.Errorf("terminal table:\n%s\nwant:\n%s", out.String(), want)
	}

	// Public: the id is the name, printed alone when piped.
	checkRun(t, "", ExitOK, "lobby\n", "", "rooms", "create", "lobby")
	checkRun(t, "", ExitError, "", "error: a room \"lobby\" exists already\n", "rooms", "create", "lobby")
	checkRun(t, "", ExitUsage, "", "error: room name \"_x\": a public room name is 1-64 characters of letters, digits, '-' and '_', not starting with \"_\" "+
		"(--private makes a private room with a title)\nRun 'livechat rooms create --help' for usage.\n", "rooms", "create", "_x")

	// Private: NAME is the title, the id is made and printed.
	code, out2, stderr := run(t, "", "rooms", "create", "--private", "Design team", "--owner", "Alice")
	id := strings.TrimSpace(out2)
	if code != ExitOK || !strings.HasPrefix(id, protocol.PrivateRoomPrefix) || len(id) != 22 || stderr != "" {
		t.Fatalf("create --private: exit %d, stdout %q, stderr %q", code, out2, stderr)
	}
	r, err := e.st.Room(ctx, id)
	if err != nil || r.Name != "Design team" || r.Kind != store.KindPrivate || r.Owner != "u1alice" {
		t.Errorf("stored room %+v, %v", r, err)
	}
	if role, err := e.st.Member(ctx, id, "u1alice"); role != store.RoleOwner || err != nil {
		t.Errorf("alice's role %q, %v; want owner", role, err)
	}
	checkRun(t, "", ExitUsage, "", "error: --owner is required with --private: a private room needs an owner\n"+
		"Run 'livechat rooms create --help' for usage.\n", "rooms", "create", "--private", "Design team")
	checkRun(t, "", ExitError, "", "error: --owner: no user named \"zed\" (`livechat users list` lists them; --id takes a user id)\n",
		"rooms", "create", "--private", "Z", "--owner", "zed")
}

func TestRoomsMembersAddRemove(t *testing.T) {
	e := newOpsEnv(t)
	ctx := context.Background()
	e.addUser(t, "u1alice", "alice", at(1))
	e.addUser(t, "u2bob", "bob", at(2))
	if _, err := e.st.CreateRoom(ctx, store.Room{ID: "_pteam", Name: "Team", Kind: store.KindPrivate, Owner: "u1alice", Created: at(3)}); err != nil {
		t.Fatal(err)
	}
	bob := e.events(t, "u2bob")

	checkRun(t, "", ExitOK, "", "bob (u2bob) is invited to room _pteam\n", "rooms", "add", "_pteam", "bob", "--role", "invited")
	checkRun(t, "", ExitOK, "", "bob (u2bob) is a member of room _pteam\n", "rooms", "add", "_pteam", "BOB")
	noEvent(t, bob)
	checkRun(t, "", ExitOK, "ID\tNAME\tROLE\nu1alice\talice\towner\nu2bob\tbob\tmember\n", "", "rooms", "members", "_pteam")
	checkRun(t, "", ExitOK, `{"members":[{"id":"u1alice","name":"alice","role":"owner"},{"id":"u2bob","name":"bob","role":"member"}]}`+"\n",
		"", "rooms", "members", "_pteam", "-o", "json")
	ios, out, errOut := testIO("")
	ios.IsTerminal = true
	if code := runIO(t, ios, "rooms", "members", "_pteam"); code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	want := `┌─────────┬───────┬────────┐
│   ID    │ NAME  │  ROLE  │
├─────────┼───────┼────────┤
│ u1alice │ alice │ owner  │
│ u2bob   │ bob   │ member │
└─────────┴───────┴────────┘
`
	if out.String() != want {
		t.Errorf("terminal table:\n%s\nwant:\n%s", out.String(), want)
	}

	// remove publishes removed on the user's subject.
	checkRun(t, "", ExitOK, "", "removed bob (u2bob) from room _pteam\n", "rooms", "remove", "_pteam", "bob")
	if ev := awaitEvent(t, bob); ev != (protocol.UserEvent{Type: protocol.TypeRemoved, User: "u2bob", Room: "_pteam", Reason: protocol.ReasonRemoved}) {
		t.Errorf("event %+v, want removed from _pteam", ev)
	}
	if _, err := e.st.Member(ctx, "_pteam", "u2bob"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("bob is still a member: %v", err)
	}
	checkRun(t, "", ExitError, "", "error: bob (u2bob) is not a member of room _pteam (`livechat rooms members _pteam` lists them)\n",
		"rooms", "remove", "_pteam", "bob")

	// Unknown names and bad flags.
	noRoom := "error: no room \"_pnone\" (give a public room's name or the id `livechat rooms create --private` printed)\n"
	checkRun(t, "", ExitError, "", noRoom, "rooms", "members", "_pnone")
	checkRun(t, "", ExitError, "", noRoom, "rooms", "add", "_pnone", "bob")
	checkRun(t, "", ExitError, "", noRoom, "rooms", "remove", "_pnone", "bob")
	checkRun(t, "", ExitError, "", "error: no user named \"zed\" (`livechat users list` lists them; --id takes a user id)\n", "rooms", "add", "_pteam", "zed")
	checkRun(t, "", ExitUsage, "", "error: --role \"admin\": must be member, owner or invited\nRun 'livechat rooms add --help' for usage.\n",
		"rooms", "add", "_pteam", "bob", "--role", "admin")
	checkRun(t, "", ExitUsage, "", "error: USERNAME is required: livechat rooms add ROOM USERNAME [--role member|owner|invited] [flags]\n"+
		"Run 'livechat rooms add --help' for usage.\n", "rooms", "add", "_pteam")

	// A failed publish: the removal stays, exit 1 says what that means.
	checkRun(t, "", ExitOK, "", "bob (u2bob) is a member of room _pteam\n", "rooms", "add", "--id", "_pteam", "u2bob")
	e.failPublish.Store(true)
	code, _, stderr := run(t, "", "rooms", "remove", "_pteam", "bob")
	if code != ExitError || !strings.HasPrefix(stderr, "error: bob (u2bob) is removed from room _pteam, but the removal could not be published: ") ||
		!strings.HasSuffix(stderr, "servers may keep the user's connections in the room until they reconnect (check --broker and --prefix)\n") {
		t.Errorf("failed publish: exit %d, %s", code, stderr)
	}
	if _, err := e.st.Member(ctx, "_pteam", "u2bob"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the removal did not stay: %v", err)
	}
}

// TestRoomsRemoveOverRedis: with a Redis broker and a prefix, as a cluster
// runs, the removal reaches a subscriber of that Redis.
func TestRoomsRemoveOverRedis(t *testing.T) {
	url, prefix := brokertest.RedisURL(t), brokertest.Prefix(t)
	e := newOpsEnv(t)
	ctx := context.Background()
	e.addUser(t, "u1alice", "alice", at(1))
	e.addUser(t, "u2bob", "bob", at(2))
	if _, err := e.st.CreateRoom(ctx, store.Room{ID: "_pteam", Name: "Team", Kind: store.KindPrivate, Owner: "u1alice"}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.AddMember(ctx, "_pteam", "u2bob", store.RoleMember); err != nil {
		t.Fatal(err)
	}
	b, err := broker.Open(ctx, url, broker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ch := make(chan broker.Message, 4)
	if _, err := broker.SubscribeChan(ctx, b, protocol.UserSubject(prefix, "u2bob"), ch); err != nil {
		t.Fatal(err)
	}
	checkRun(t, "", ExitOK, "", "removed bob (u2bob) from room _pteam\n", "rooms", "remove", "_pteam", "bob", "--broker", url, "--prefix", prefix)
	if ev := awaitEvent(t, ch); ev.Type != protocol.TypeRemoved || ev.Room != "_pteam" || ev.User != "u2bob" {
		t.Errorf("event %+v", ev)
	}
}
