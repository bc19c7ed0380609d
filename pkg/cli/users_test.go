package cli

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/livechat/livechat/pkg/auth"
	"github.com/livechat/livechat/pkg/protocol"
	"github.com/livechat/livechat/pkg/store"
)

// seedUsers stores alice, Bob (banned) and carol.
func seedUsers(t *testing.T, e *opsEnv) {
	t.Helper()
	e.addUser(t, "u1alice", "alice", at(1))
	e.addUser(t, "u2bob", "Bob", at(2))
	if err := e.st.SetBanned(context.Background(), "u2bob", true); err != nil {
		t.Fatal(err)
	}
	e.addUser(t, "u3carol", "carol", at(3))
}

func TestUsersList(t *testing.T) {
	e := newOpsEnv(t)
	seedUsers(t, e)

	checkRun(t, "", ExitOK,
		"ID\tNAME\tCREATED\tBANNED\n"+
			"u1alice\talice\t2026-03-01T12:00:01Z\tno\n"+
			"u2bob\tBob\t2026-03-01T12:00:02Z\tyes\n"+
			"u3carol\tcarol\t2026-03-01T12:00:03Z\tno\n",
		"", "users", "list")

	checkRun(t, "", ExitOK,
		`{"users":[{"id":"u1alice","name":"alice","created":"2026-03-01T12:00:01Z","banned":false},`+
			`{"id":"u2bob","name":"Bob","created":"2026-03-01T12:00:02Z","banned":true},`+
			`{"id":"u3carol","name":"carol","created":"2026-03-01T12:00:03Z","banned":false}]}`+"\n",
		"", "users", "list", "-o", "json")

	// Pages: a full page names the next one's --after.
	checkRun(t, "", ExitOK,
		"ID\tNAME\tCREATED\tBANNED\nu1alice\talice\t2026-03-01T12:00:01Z\tno\nu2bob\tBob\t2026-03-01T12:00:02Z\tyes\n",
		"more users may follow: --after u2bob\n", "users", "list", "--limit", "2")
	checkRun(t, "", ExitOK,
		"ID\tNAME\tCREATED\tBANNED\nu3carol\tcarol\t2026-03-01T12:00:03Z\tno\n",
		"", "users", "list", "--limit", "2", "--after", "u2bob")
	checkRun(t, "", ExitOK,
		`{"users":[{"id":"u1alice","name":"alice","created":"2026-03-01T12:00:01Z","banned":false}],"next":"u1alice"}`+"\n",
		"", "users", "list", "--limit", "1", "-o", "json")
	checkRun(t, "", ExitError, "", "error: --after: no user with id \"u9\" (`livechat users list` lists them)\n",
		"users", "list", "--after", "u9")
	checkRun(t, "", ExitUsage, "", "error: --limit 0: must be between 1 and 1000\nRun 'livechat users list --help' for usage.\n",
		"users", "list", "--limit", "0")

	// On a terminal: a table.
	ios, out, errOut := testIO("")
	ios.IsTerminal = true
	if code := runIO(t, ios, "users", "list"); code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	want := `┌─────────┬───────┬──────────────────────┬────────┐
│   ID    │ NAME  │       CREATED        │ BANNED │
├─────────┼───────┼──────────────────────┼────────┤
│ u1alice │ alice │ 2026-03-01T12:00:01Z │ no     │
│ u2bob   │ Bob   │ 2026-03-01T12:00:02Z │ yes    │
│ u3carol │ carol │ 2026-03-01T12:00:03Z │ no     │
└─────────┴───────┴──────────────────────┴────────┘
`
	if out.String() != want {
		t.Errorf("terminal table:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestUsersAdd(t *testing.T) {
	e := newOpsEnv(t)
	ctx := context.Background()
	const pw = "correct horse battery"

	code, out, stderr := run(t, pw+"\n", "users", "add", "Dora")
	if code != ExitOK || !strings.HasPrefix(out, "u") || strings.Count(out, "\n") != 1 || stderr != "" {
		t.Fatalf("users add: exit %d, stdout %q, stderr %q; want the id alone", code, out, stderr)
	}
	id := strings.TrimSpace(out)
	key, _ := auth.NameKey("dora")
	u, err := e.st.UserByKey(ctx, key)
	if err != nil || u.ID != id || u.Name != "Dora" {
		t.Fatalf("stored user %+v, %v; want id %s named Dora", u, err, id)
	}
	if ok, err := auth.VerifyPassword(u.PasswordHash, pw); !ok || err != nil {
		t.Errorf("the stored hash does not verify the password from stdin: %v", err)
	}

	// The rule, before anything is stored; the password is never echoed.
	checkRun(t, "short\n", ExitUsage, "",
		"error: password must be at least 8 characters; nothing was created\nRun 'livechat users add --help' for usage.\n",
		"users", "add", "erin")
	checkRun(t, strings.Repeat("x", 129)+"\n", ExitUsage, "",
		"error: password must be at most 128 characters; nothing was created\nRun 'livechat users add --help' for usage.\n",
		"users", "add", "erin")
	checkRun(t, "", ExitUsage, "",
		"error: no password: give it as the first line of standard input (livechat users add erin < file), or run on a terminal to be asked\n"+
			"Run 'livechat users add --help' for usage.\n",
		"users", "add", "erin")
	if _, err := e.st.UserByKey(ctx, "erin"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused password stored erin: %v", err)
	}
	checkRun(t, pw+"\n", ExitError, "", "error: a user named \"DORA\" exists already (names are unique ignoring case)\n",
		"users", "add", "DORA")
	checkRun(t, pw+"\n", ExitUsage, "", "error: user name \"a\\tb\": user name must be 1-32 characters: letters, digits, spaces and - _ . ' "+
		"(no leading or trailing space, no invisible characters)\nRun 'livechat users add --help' for usage.\n", "users", "add", "a\tb")
	// The password is never a flag.
	if code, _, stderr := run(t, "", "users", "add", "erin", "--password", pw); code != ExitUsage || !strings.Contains(stderr, "unknown flag: --password") {
		t.Errorf("users add --password: exit %d, %s", code, stderr)
	}

	// JSON: the user without its hash.
	code, out, _ = run(t, pw+"\n", "users", "add", "frank", "-o", "json")
	if code != ExitOK || !strings.Contains(out, `"name":"frank"`) || !strings.Contains(out, `"banned":false`) || strings.Contains(out, "argon2") {
		t.Errorf("users add -o json: exit %d, %s", code, out)
	}

	// On a terminal: asked twice without echo (ReadSecret), never read
	// from In; the id is shown in a sentence.
	secrets := []string{pw, pw}
	ios, tout, terr := testIO("not the password\n")
	ios.IsTerminal, ios.InTerminal = true, true
	ios.ReadSecret = func() (string, error) { s := secrets[0]; secrets = secrets[1:]; return s, nil }
	if code := runIO(t, ios, "users", "add", "gina"); code != ExitOK {
		t.Fatalf("users add on a terminal: exit %d: %s", code, terr.String())
	}
	if terr.String() != "Password for gina: \nRepeat the password: \n" || !strings.HasPrefix(tout.String(), "created user gina with id u") {
		t.Errorf("terminal: stdout %q, stderr %q", tout.String(), terr.String())
	}
	g, err := e.st.UserByKey(ctx, "gina")
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := auth.VerifyPassword(g.PasswordHash, pw); !ok {
		t.Error("the terminal password was not the one stored")
	}
	secrets = []string{pw, pw + "!"}
	ios, _, terr = testIO("")
	ios.InTerminal = true
	ios.ReadSecret = func() (string, error) { s := secrets[0]; secrets = secrets[1:]; return s, nil }
	if code := runIO(t, ios, "users", "add", "hank"); code != ExitUsage || !strings.Contains(terr.String(), "error: the two passwords differ; nothing was created") {
		t.Errorf("differing passwords: exit %d, %s", code, terr.String())
	}
}

func TestUsersBanAndUnban(t *testing.T) {
	e := newOpsEnv(t)
	ctx := context.Background()
	seedUsers(t, e)
	if _, err := e.st.CreateSession(ctx, store.Session{ID: "s1", UserID: "u1alice", Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	events := e.events(t, "u1alice")

	// By name, matched as sign-in matches it.
	checkRun(t, "", ExitOK, "", "banned alice (u1alice): sessions ended, revocation published (its connections close on every server)\n", "users", "ban", "ALICE")
	if ev := awaitEvent(t, events); ev != (protocol.UserEvent{Type: protocol.TypeRevoke, User: "u1alice", Reason: protocol.ReasonBanned}) {
		t.Errorf("event %+v, want a revoke with reason banned", ev)
	}
	if u, _ := e.st.UserByID(ctx, "u1alice"); !u.Banned {
		t.Error("alice is not banned in the store")
	}
	if _, err := e.st.Session(ctx, "s1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("alice's session survived the ban: %v", err)
	}

	checkRun(t, "", ExitOK, "", "unbanned alice (u1alice)\n", "users", "unban", "--id", "u1alice")
	if u, _ := e.st.UserByID(ctx, "u1alice"); u.Banned {
		t.Error("alice is still banned")
	}
	noEvent(t, events)

	// Unknown users: exit 1, nothing published.
	checkRun(t, "", ExitError, "", "error: no user named \"nobody\" (`livechat users list` lists them; --id takes a user id)\n", "users", "ban", "nobody")
	checkRun(t, "", ExitError, "", "error: no user with id \"u404\" (`livechat users list` lists them)\n", "users", "unban", "--id", "u404")
	checkRun(t, "", ExitUsage, "", "error: NAME is required: livechat users ban NAME [flags]\nRun 'livechat users ban --help' for usage.\n", "users", "ban")
	checkRun(t, "", ExitUsage, "", "error: unknown command \"bann\" for \"livechat users\"; did you mean \"ban\"?\nRun 'livechat users --help' for usage.\n", "users", "bann", "alice")
	noEvent(t, events)

	// A broker that cannot be reached: nothing changes.
	code, _, stderr := run(t, "", "users", "ban", "alice", "--broker", "http://127.0.0.1:1")
	if code != ExitError || !strings.HasPrefix(stderr, "error: nothing was changed: ") {
		t.Errorf("unreachable broker: exit %d, %s", code, stderr)
	}
	if u, _ := e.st.UserByID(ctx, "u1alice"); u.Banned {
		t.Error("alice was banned although the broker was unreachable")
	}

	// A publish that fails after the ban: the ban stays, exit 1 says what
	// that means.
	e.failPublish.Store(true)
	code, _, stderr = run(t, "", "users", "ban", "carol")
	if code != ExitError || !strings.HasPrefix(stderr, "error: carol (u3carol) is banned, but the revocation could not be published: ") ||
		!strings.HasSuffix(stderr, "; servers may keep the user's connections until they reconnect (check --broker and --prefix)\n") {
		t.Errorf("failed publish: exit %d, %s", code, stderr)
	}
	if u, _ := e.st.UserByID(ctx, "u3carol"); !u.Banned {
		t.Error("carol's ban did not stay after the failed publish")
	}
}

func TestUsersDelete(t *testing.T) {
	e := newOpsEnv(t)
	ctx := context.Background()
	seedUsers(t, e)
	events := e.events(t, "u1alice")

	// Not a terminal: --yes is required.
	checkRun(t, "", ExitUsage, "", "error: users delete alice: --yes is required when standard input is not a terminal; nothing was deleted\n"+
		"Run 'livechat users delete --help' for usage.\n", "users", "delete", "alice")
	// No variable stands for --yes.
	t.Setenv("LIVECHAT_YES", "true")
	if code, _, _ := run(t, "", "users", "delete", "alice"); code != ExitUsage {
		t.Errorf("LIVECHAT_YES=true: exit %d, want the refusal", code)
	}
	if _, out, _ := run(t, "", "users", "delete", "--help"); strings.Contains(out, "LIVECHAT_YES") {
		t.Errorf("help names LIVECHAT_YES:\n%s", out)
	}
	if _, err := e.st.UserByID(ctx, "u1alice"); err != nil {
		t.Fatalf("alice deleted without --yes: %v", err)
	}

	// A terminal asks; no keeps the user.
	ios, _, errOut := testIO("n\n")
	ios.InTerminal = true
	if code := runIO(t, ios, "users", "delete", "alice"); code != ExitError ||
		errOut.String() != "Delete user alice (u1alice) with its sessions and memberships? This cannot be undone. [y/N] error: alice (u1alice) was not deleted\n" {
		t.Errorf("answered no: exit %d, stderr %q", code, errOut.String())
	}
	if _, err := e.st.UserByID(ctx, "u1alice"); err != nil {
		t.Fatalf("alice deleted after no: %v", err)
	}
	noEvent(t, events)

	ios, _, errOut = testIO("y\n")
	ios.InTerminal = true
	if code := runIO(t, ios, "users", "delete", "alice"); code != ExitOK {
		t.Fatalf("answered yes: exit %d, %s", code, errOut.String())
	}
	if ev := awaitEvent(t, events); ev != (protocol.UserEvent{Type: protocol.TypeRevoke, User: "u1alice", Reason: protocol.ReasonDeleted}) {
		t.Errorf("event %+v, want a revoke with reason deleted", ev)
	}
	if _, err := e.st.UserByID(ctx, "u1alice"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("alice still stored: %v", err)
	}

	bob := e.events(t, "u2bob")
	checkRun(t, "", ExitOK, "", "deleted Bob (u2bob): revocation published (its connections close on every server)\n", "users", "delete", "bob", "--yes")
	if ev := awaitEvent(t, bob); ev.Reason != protocol.ReasonDeleted {
		t.Errorf("event %+v", ev)
	}
	checkRun(t, "", ExitError, "", "error: no user named \"bob\" (`livechat users list` lists them; --id takes a user id)\n", "users", "delete", "bob", "--yes")
}
