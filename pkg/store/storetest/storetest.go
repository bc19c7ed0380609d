// Package storetest is the conformance suite every store.Store backend
// passes: Run(t, newStore).
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livechat/livechat/pkg/store"
)

// Run checks the guarantees of the store package against the backend made
// by newStore, which returns a new, empty, open store on each call (the
// suite closes it). Subtests run in parallel, each on a store of its own.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		f    func(t *testing.T, s store.Store)
	}{
		{"Users", testUsers},
		{"KeyUnique", testKeyUnique},
		{"KeyUniqueConcurrent", testKeyUniqueConcurrent},
		{"InvalidInput", testInvalidInput},
		{"ListUsersPaging", testListUsersPaging},
		{"Sessions", testSessions},
		{"SessionExpiry", testSessionExpiry},
		{"DeleteUserCascades", testDeleteUserCascades},
		{"Rooms", testRooms},
		{"PublicRoomsOnlyPublic", testPublicRoomsOnlyPublic},
		{"DirectRoom", testDirectRoom},
		{"DirectRoomConcurrent", testDirectRoomConcurrent},
		{"Members", testMembers},
		{"RoomsOfAndTouch", testRoomsOfAndTouch},
		{"Uploads", testUploads},
		{"UploadsInvalid", testUploadsInvalid},
		{"AttachUploads", testAttachUploads},
		{"AttachUploadsAllOrNothing", testAttachUploadsAllOrNothing},
		{"AttachUploadsConcurrent", testAttachUploadsConcurrent},
		{"UploadUsageAndDelete", testUploadUsageAndDelete},
		{"StaleUploads", testStaleUploads},
		{"MessageUploads", testMessageUploads},
		{"ContextCanceled", testContextCanceled},
		{"Closed", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			t.Cleanup(func() { _ = s.Close() })
			tc.f(t, s)
		})
	}
}

var ctx = context.Background()

// is fails the test unless err matches want (nil for success).
func is(t *testing.T, what string, err, want error) {
	t.Helper()
	if want == nil && err != nil || want != nil && !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
	if err != nil && !strings.HasPrefix(err.Error(), "store: ") {
		t.Fatalf("%s: error %q lacks the store: prefix", what, err)
	}
}

func mustUser(t *testing.T, s store.Store, id string) store.User {
	t.Helper()
	u, err := s.CreateUser(ctx, store.User{ID: id, Name: "Name " + id, Key: "key-" + id, PasswordHash: "hash-" + id})
	is(t, "CreateUser "+id, err, nil)
	return u
}

func mustRoom(t *testing.T, s store.Store, id string, kind store.Kind, owner string) store.Room {
	t.Helper()
	r, err := s.CreateRoom(ctx, store.Room{ID: id, Name: "Room " + id, Kind: kind, Owner: owner})
	is(t, "CreateRoom "+id, err, nil)
	return r
}

func testUsers(t *testing.T, s store.Store) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 6789, time.FixedZone("x", 3600))
	u, err := s.CreateUser(ctx, store.User{ID: "u1", Name: "Ælice", Key: "ælice", PasswordHash: "$argon2id$x", Created: created})
	is(t, "CreateUser", err, nil)
	if !u.Created.Equal(created.Truncate(time.Microsecond)) || u.Created.Location() != time.UTC {
		t.Fatalf("Created = %v, want %v in UTC, to the microsecond", u.Created, created)
	}
	got, err := s.UserByID(ctx, "u1")
	is(t, "UserByID", err, nil)
	if got != u {
		t.Fatalf("UserByID = %+v, want %+v", got, u)
	}
	got, err = s.UserByKey(ctx, "ælice")
	is(t, "UserByKey", err, nil)
	if got != u {
		t.Fatalf("UserByKey = %+v, want %+v", got, u)
	}
	n, err := s.CreateUser(ctx, store.User{ID: "u2", Key: "token-user"})
	is(t, "CreateUser without password or name", err, nil)
	if n.Created.IsZero() || time.Since(n.Created) > time.Minute {
		t.Fatalf("Created = %v, want now", n.Created)
	}

	_, err = s.UserByID(ctx, "nobody")
	is(t, "UserByID missing", err, store.ErrNotFound)
	_, err = s.UserByKey(ctx, "Ælice")
	is(t, "UserByKey is exact (the caller normalises)", err, store.ErrNotFound)

	is(t, "SetPassword", s.SetPassword(ctx, "u1", "new"), nil)
	is(t, "SetBanned", s.SetBanned(ctx, "u1", true), nil)
	got, _ = s.UserByID(ctx, "u1")
	if got.PasswordHash != "new" || !got.Banned {
		t.Fatalf("after SetPassword and SetBanned: %+v", got)
	}
	is(t, "SetBanned false", s.SetBanned(ctx, "u1", false), nil)
	if got, _ = s.UserByID(ctx, "u1"); got.Banned {
		t.Fatal("still banned after SetBanned(false)")
	}
	is(t, "SetPassword missing", s.SetPassword(ctx, "nobody", "x"), store.ErrNotFound)
	is(t, "SetBanned missing", s.SetBanned(ctx, "nobody", true), store.ErrNotFound)
	is(t, "DeleteUser missing", s.DeleteUser(ctx, "nobody"), store.ErrNotFound)
}

func testKeyUnique(t *testing.T, s store.Store) {
	mustUser(t, s, "a")
	_, err := s.CreateUser(ctx, store.User{ID: "b", Key: "key-a"})
	is(t, "same Key, other ID", err, store.ErrExists)
	_, err = s.CreateUser(ctx, store.User{ID: "a", Key: "key-other"})
	is(t, "same ID, other Key", err, store.ErrExists)
	_, err = s.UserByID(ctx, "b")
	is(t, "the refused user was not stored", err, store.ErrNotFound)
	_, err = s.UserByKey(ctx, "key-other")
	is(t, "the refused key was not stored", err, store.ErrNotFound)
}

func testKeyUniqueConcurrent(t *testing.T, s store.Store) {
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.CreateUser(ctx, store.User{ID: fmt.Sprint("u", i), Key: "same"})
		})
	}
	wg.Wait()
	ok := 0
	for i, err := range errs {
		if err == nil {
			ok++
		} else {
			is(t, fmt.Sprint("goroutine ", i), err, store.ErrExists)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of %d concurrent CreateUser with one Key succeeded, want 1", ok, n)
	}
}

func testInvalidInput(t *testing.T, s store.Store) {
	long := strings.Repeat("x", store.MaxIDLen+1)
	mustUser(t, s, "u")
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"empty user id", func() error { _, err := s.CreateUser(ctx, store.User{Key: "k"}); return err }()},
		{"empty key", func() error { _, err := s.CreateUser(ctx, store.User{ID: "x"}); return err }()},
		{"long id", func() error { _, err := s.CreateUser(ctx, store.User{ID: long, Key: "k"}); return err }()},
		{"long key", func() error {
			_, err := s.CreateUser(ctx, store.User{ID: "x", Key: strings.Repeat("k", store.MaxKeyLen+1)})
			return err
		}()},
		{"long name", func() error {
			_, err := s.CreateUser(ctx, store.User{ID: "x", Key: "k", Name: strings.Repeat("n", store.MaxNameLen+1)})
			return err
		}()},
		{"long hash", s.SetPassword(ctx, "u", strings.Repeat("h", store.MaxHashLen+1))},
		{"NUL in key", func() error { _, err := s.CreateUser(ctx, store.User{ID: "x", Key: "a\x00b"}); return err }()},
		{"invalid UTF-8", func() error { _, err := s.UserByKey(ctx, "\xff"); return err }()},
		{"long lookup id", func() error { _, err := s.UserByID(ctx, long); return err }()},
		{"unknown role", s.AddMember(ctx, "r", "u", "admin")},
		{"CreateRoom of kind direct", func() error {
			_, err := s.CreateRoom(ctx, store.Room{ID: "r", Kind: store.KindDirect})
			return err
		}()},
		{"CreateRoom without kind", func() error { _, err := s.CreateRoom(ctx, store.Room{ID: "r"}); return err }()},
		{"direct room with oneself", func() error { _, _, err := s.DirectRoom(ctx, "u", "u", "d"); return err }()},
		{"long page cursor", func() error { _, err := s.PublicRooms(ctx, long, 1); return err }()},
	} {
		is(t, tc.name, tc.err, store.ErrInvalid)
	}
	if _, err := s.Room(ctx, "r"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused CreateRoom stored a room: %v", err)
	}
}

func testListUsersPaging(t *testing.T, s store.Store) {
	// Keys in byte order: upper case before lower case, "b" before "é".
	keys := []string{"A", "B", "a", "b", "ba", "z", "é"}
	for i := len(keys) - 1; i >= 0; i-- {
		_, err := s.CreateUser(ctx, store.User{ID: fmt.Sprint("id", i), Key: keys[i]})
		is(t, "CreateUser", err, nil)
	}
	var got []string
	after, pages := "", 0
	for {
		page, err := s.ListUsers(ctx, after, 2)
		is(t, "ListUsers", err, nil)
		if len(page) > 2 {
			t.Fatalf("page of %d users with limit 2", len(page))
		}
		if len(page) == 0 {
			break
		}
		pages++
		for _, u := range page {
			got = append(got, u.Key)
		}
		after = page[len(page)-1].Key
	}
	if fmt.Sprint(got) != fmt.Sprint(keys) || pages != 4 {
		t.Fatalf("ListUsers pages = %q in %d pages, want %q in 4", got, pages, keys)
	}
	all, err := s.ListUsers(ctx, "", 0)
	is(t, "ListUsers limit 0", err, nil)
	if len(all) != len(keys) {
		t.Fatalf("ListUsers with limit 0 gave %d users, want all %d", len(all), len(keys))
	}
}

func testSessions(t *testing.T, s store.Store) {
	mustUser(t, s, "u")
	mustUser(t, s, "v")
	exp := time.Now().Add(time.Hour)
	ss, err := s.CreateSession(ctx, store.Session{ID: "s1", UserID: "u", Expires: exp})
	is(t, "CreateSession", err, nil)
	got, err := s.Session(ctx, "s1")
	is(t, "Session", err, nil)
	if got != ss || !got.Expires.Equal(exp.Truncate(time.Microsecond)) {
		t.Fatalf("Session = %+v, want %+v", got, ss)
	}
	_, err = s.CreateSession(ctx, store.Session{ID: "s1", UserID: "v", Expires: exp})
	is(t, "CreateSession with a taken ID", err, store.ErrExists)
	_, err = s.CreateSession(ctx, store.Session{ID: "s2", UserID: "nobody", Expires: exp})
	is(t, "CreateSession for a missing user", err, store.ErrNotFound)
	_, err = s.Session(ctx, "missing")
	is(t, "Session missing", err, store.ErrNotFound)

	for _, id := range []string{"s2", "s3", "s4"} {
		_, err = s.CreateSession(ctx, store.Session{ID: id, UserID: "u", Expires: exp})
		is(t, "CreateSession "+id, err, nil)
	}
	_, err = s.CreateSession(ctx, store.Session{ID: "v1", UserID: "v", Expires: exp})
	is(t, "CreateSession v1", err, nil)
	is(t, "DeleteSession", s.DeleteSession(ctx, "s4"), nil)
	is(t, "DeleteSession again", s.DeleteSession(ctx, "s4"), store.ErrNotFound)
	_, err = s.Session(ctx, "s4")
	is(t, "deleted Session", err, store.ErrNotFound)

	n, err := s.DeleteUserSessions(ctx, "u")
	is(t, "DeleteUserSessions", err, nil)
	if n != 3 {
		t.Fatalf("DeleteUserSessions = %d, want 3", n)
	}
	for _, id := range []string{"s1", "s2", "s3"} {
		_, err = s.Session(ctx, id)
		is(t, "Session after DeleteUserSessions", err, store.ErrNotFound)
	}
	_, err = s.Session(ctx, "v1")
	is(t, "another user's session survives", err, nil)
	n, err = s.DeleteUserSessions(ctx, "nobody")
	if err != nil || n != 0 {
		t.Fatalf("DeleteUserSessions(unknown) = %d, %v; want 0, nil", n, err)
	}
}

func testSessionExpiry(t *testing.T, s store.Store) {
	mustUser(t, s, "u")
	now := time.Now()
	for _, tc := range []struct {
		id      string
		expires time.Time
		live    bool
	}{
		{"past", now.Add(-time.Hour), false},
		{"just-past", now.Add(-time.Millisecond), false},
		{"future", now.Add(time.Hour), true},
	} {
		_, err := s.CreateSession(ctx, store.Session{ID: tc.id, UserID: "u", Expires: tc.expires})
		is(t, "CreateSession "+tc.id, err, nil)
		_, err = s.Session(ctx, tc.id)
		if tc.live {
			is(t, "live session "+tc.id, err, nil)
		} else {
			is(t, "expired session "+tc.id, err, store.ErrNotFound)
		}
	}
	n, err := s.DeleteExpiredSessions(ctx, now)
	if err != nil || n != 2 {
		t.Fatalf("DeleteExpiredSessions = %d, %v; want 2, nil", n, err)
	}
	_, err = s.CreateSession(ctx, store.Session{ID: "past", UserID: "u", Expires: now.Add(time.Hour)})
	is(t, "the id of a purged session is free again", err, nil)
	_, err = s.Session(ctx, "future")
	is(t, "a live session survives DeleteExpiredSessions", err, nil)
}

func testDeleteUserCascades(t *testing.T, s store.Store) {
	mustUser(t, s, "u")
	mustUser(t, s, "v")
	mustRoom(t, s, "r", store.KindPrivate, "u")
	is(t, "AddMember", s.AddMember(ctx, "r", "v", store.RoleMember), nil)
	d, _, err := s.DirectRoom(ctx, "u", "v", "d")
	is(t, "DirectRoom", err, nil)
	_, err = s.CreateSession(ctx, store.Session{ID: "su", UserID: "u", Expires: time.Now().Add(time.Hour)})
	is(t, "CreateSession", err, nil)

	is(t, "DeleteUser", s.DeleteUser(ctx, "u"), nil)
	_, err = s.UserByID(ctx, "u")
	is(t, "UserByID after delete", err, store.ErrNotFound)
	_, err = s.UserByKey(ctx, "key-u")
	is(t, "UserByKey after delete", err, store.ErrNotFound)
	_, err = s.Session(ctx, "su")
	is(t, "session after delete", err, store.ErrNotFound)
	_, err = s.Member(ctx, "r", "u")
	is(t, "membership after delete", err, store.ErrNotFound)
	_, err = s.Member(ctx, d.ID, "u")
	is(t, "direct membership after delete", err, store.ErrNotFound)
	rooms, err := s.RoomsOf(ctx, "u")
	is(t, "RoomsOf after delete", err, nil)
	if len(rooms) != 0 {
		t.Fatalf("RoomsOf a deleted user = %+v", rooms)
	}
	ms, err := s.Members(ctx, "r")
	is(t, "Members", err, nil)
	if len(ms) != 1 || ms[0].UserID != "v" {
		t.Fatalf("Members after deleting the owner = %+v, want only v", ms)
	}
	_, err = s.Room(ctx, "r")
	is(t, "the owned room stays", err, nil)
	_, err = s.CreateUser(ctx, store.User{ID: "u2", Key: "key-u"})
	is(t, "the deleted user's Key is free", err, nil)
}

func testRooms(t *testing.T, s store.Store) {
	mustUser(t, s, "u")
	r := mustRoom(t, s, "r", store.KindPrivate, "u")
	got, err := s.Room(ctx, "r")
	is(t, "Room", err, nil)
	if got != r || got.Kind != store.KindPrivate || got.Owner != "u" || !got.LastActive.Equal(got.Created) {
		t.Fatalf("Room = %+v, want %+v with LastActive = Created", got, r)
	}
	role, err := s.Member(ctx, "r", "u")
	if err != nil || role != store.RoleOwner {
		t.Fatalf("the owner's role = %q, %v; want owner", role, err)
	}
	_, err = s.CreateRoom(ctx, store.Room{ID: "r", Kind: store.KindPublic})
	is(t, "CreateRoom with a taken ID", err, store.ErrExists)
	_, err = s.Room(ctx, "missing")
	is(t, "Room missing", err, store.ErrNotFound)
	_, err = s.CreateRoom(ctx, store.Room{ID: "r2", Kind: store.KindPrivate, Owner: "nobody"})
	is(t, "CreateRoom with a missing owner", err, store.ErrNotFound)
	_, err = s.Room(ctx, "r2")
	is(t, "the refused room was not stored", err, store.ErrNotFound)
	ownerless := mustRoom(t, s, "lobby", store.KindPublic, "")
	ms, err := s.Members(ctx, ownerless.ID)
	if err != nil || len(ms) != 0 {
		t.Fatalf("Members of an ownerless room = %+v, %v; want none", ms, err)
	}
}

func testPublicRoomsOnlyPublic(t *testing.T, s store.Store) {
	mustUser(t, s, "u")
	mustUser(t, s, "v")
	for _, tc := range []struct {
		id   string
		kind store.Kind
	}{
		{"p1", store.KindPublic},
		{"x1", store.KindPrivate},
		{"p2", store.KindPublic},
		{"x2", store.KindPrivate},
		{"p3", store.KindPublic},
	} {
		mustRoom(t, s, tc.id, tc.kind, "u")
	}
	_, _, err := s.DirectRoom(ctx, "u", "v", "d1")
	is(t, "DirectRoom", err, nil)
	var got []string
	after := ""
	for {
		page, err := s.PublicRooms(ctx, after, 2)
		is(t, "PublicRooms", err, nil)
		if len(page) == 0 {
			break
		}
		for _, r := range page {
			if r.Kind != store.KindPublic {
				t.Fatalf("PublicRooms listed %+v", r)
			}
			got = append(got, r.ID)
		}
		after = page[len(page)-1].ID
	}
	if fmt.Sprint(got) != "[p1 p2 p3]" {
		t.Fatalf("PublicRooms = %q, want [p1 p2 p3]", got)
	}
}

func testDirectRoom(t *testing.T, s store.Store) {
	mustUser(t, s, "u")
	mustUser(t, s, "v")
	mustUser(t, s, "w")
	r, created, err := s.DirectRoom(ctx, "v", "u", "d1")
	is(t, "DirectRoom", err, nil)
	if !created || r.ID != "d1" || r.Kind != store.KindDirect || r.Owner != "" || r.Name != "" {
		t.Fatalf("DirectRoom = %+v, created %v; want a new direct room d1", r, created)
	}
	again, created, err := s.DirectRoom(ctx, "u", "v", "d2")
	is(t, "DirectRoom (b, a)", err, nil)
	if created || again != r {
		t.Fatalf("DirectRoom(u, v) = %+v, created %v; want the room of (v, u) %+v", again, created, r)
	}
	_, err = s.Room(ctx, "d2")
	is(t, "the unused id made no room", err, store.ErrNotFound)
	ms, err := s.Members(ctx, "d1")
	is(t, "Members", err, nil)
	if fmt.Sprint(ms) != "[{d1 u member} {d1 v member}]" {
		t.Fatalf("Members of a direct room = %v", ms)
	}
	other, created, err := s.DirectRoom(ctx, "u", "w", "d3")
	is(t, "DirectRoom other pair", err, nil)
	if !created || other.ID != "d3" {
		t.Fatalf("DirectRoom(u, w) = %+v, created %v; want a new room d3", other, created)
	}
	_, _, err = s.DirectRoom(ctx, "v", "w", "d1")
	is(t, "DirectRoom with a taken id", err, store.ErrExists)
	_, _, err = s.DirectRoom(ctx, "u", "nobody", "d4")
	is(t, "DirectRoom with a missing user", err, store.ErrNotFound)
	_, err = s.Room(ctx, "d4")
	is(t, "the refused direct room was not stored", err, store.ErrNotFound)
	is(t, "AddMember to a direct room", s.AddMember(ctx, "d1", "w", store.RoleMember), store.ErrInvalid)
	_, err = s.Member(ctx, "d1", "w")
	is(t, "a third user is not a member", err, store.ErrNotFound)
}

func testDirectRoomConcurrent(t *testing.T, s store.Store) {
	mustUser(t, s, "u")
	mustUser(t, s, "v")
	const n = 16
	var wg sync.WaitGroup
	rooms := make([]store.Room, n)
	created := make([]bool, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			a, b := "u", "v"
			if i%2 == 1 {
				a, b = b, a
			}
			rooms[i], created[i], errs[i] = s.DirectRoom(ctx, a, b, fmt.Sprint("d", i))
		})
	}
	wg.Wait()
	made := 0
	for i := range n {
		is(t, fmt.Sprint("goroutine ", i), errs[i], nil)
		if rooms[i].ID != rooms[0].ID {
			t.Fatalf("goroutine %d got room %q, goroutine 0 got %q", i, rooms[i].ID, rooms[0].ID)
		}
		if created[i] {
			made++
		}
	}
	if made != 1 {
		t.Fatalf("%d goroutines report creating the room, want 1", made)
	}
	convs, err := s.RoomsOf(ctx, "u")
	is(t, "RoomsOf", err, nil)
	if len(convs) != 1 {
		t.Fatalf("u has %d conversations, want 1: %+v", len(convs), convs)
	}
}

func testMembers(t *testing.T, s store.Store) {
	for _, u := range []string{"o", "m", "i", "x"} {
		mustUser(t, s, u)
	}
	mustRoom(t, s, "r", store.KindPrivate, "o")
	is(t, "AddMember invited", s.AddMember(ctx, "r", "i", store.RoleInvited), nil)
	is(t, "AddMember member", s.AddMember(ctx, "r", "m", store.RoleInvited), nil)
	is(t, "AddMember changes the role", s.AddMember(ctx, "r", "m", store.RoleMember), nil)
	for _, tc := range []struct {
		room, user string
		role       store.Role
		err        error
	}{
		{"r", "o", store.RoleOwner, nil},
		{"r", "m", store.RoleMember, nil},
		{"r", "i", store.RoleInvited, nil},
		{"r", "x", "", store.ErrNotFound},       // a non-member
		{"r", "nobody", "", store.ErrNotFound},  // a missing user
		{"nowhere", "o", "", store.ErrNotFound}, // a missing room: the same answer
	} {
		role, err := s.Member(ctx, tc.room, tc.user)
		is(t, "Member("+tc.room+", "+tc.user+")", err, tc.err)
		if role != tc.role {
			t.Fatalf("Member(%s, %s) = %q, want %q", tc.room, tc.user, role, tc.role)
		}
	}
	ms, err := s.Members(ctx, "r")
	is(t, "Members", err, nil)
	if fmt.Sprint(ms) != "[{r i invited} {r m member} {r o owner}]" {
		t.Fatalf("Members = %v", ms)
	}
	_, err = s.Members(ctx, "nowhere")
	is(t, "Members of a missing room", err, store.ErrNotFound)
	is(t, "AddMember to a missing room", s.AddMember(ctx, "nowhere", "x", store.RoleMember), store.ErrNotFound)
	is(t, "AddMember of a missing user", s.AddMember(ctx, "r", "nobody", store.RoleMember), store.ErrNotFound)
	is(t, "RemoveMember", s.RemoveMember(ctx, "r", "m"), nil)
	is(t, "RemoveMember again", s.RemoveMember(ctx, "r", "m"), store.ErrNotFound)
	_, err = s.Member(ctx, "r", "m")
	is(t, "Member after RemoveMember", err, store.ErrNotFound)
}

func testRoomsOfAndTouch(t *testing.T, s store.Store) {
	mustUser(t, s, "u")
	mustUser(t, s, "v")
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, id := range []string{"a", "b", "c"} {
		_, err := s.CreateRoom(ctx, store.Room{ID: id, Kind: store.KindPublic, Owner: "v", Created: t0.Add(time.Duration(i) * time.Second)})
		is(t, "CreateRoom", err, nil)
		is(t, "AddMember", s.AddMember(ctx, id, "u", store.RoleMember), nil)
	}
	is(t, "AddMember invited", s.AddMember(ctx, "c", "u", store.RoleInvited), nil)
	mustRoom(t, s, "not-mine", store.KindPublic, "v")
	is(t, "Touch a", s.Touch(ctx, "a", t0.Add(time.Hour)), nil)
	is(t, "Touch b earlier changes nothing", s.Touch(ctx, "b", t0.Add(-time.Hour)), nil)
	is(t, "Touch missing", s.Touch(ctx, "nowhere", t0), store.ErrNotFound)
	later := time.Now().UTC().Add(48 * time.Hour).Truncate(time.Microsecond) // not-mine was made now
	is(t, "TouchRooms", s.TouchRooms(ctx, map[string]time.Time{
		"c":        t0.Add(2 * time.Second), // the same: changes nothing
		"not-mine": later,
		"nowhere":  t0, // skipped
	}), nil)
	is(t, "TouchRooms none", s.TouchRooms(ctx, nil), nil)
	if r, _ := s.Room(ctx, "not-mine"); !r.LastActive.Equal(later) {
		t.Fatalf("Room not-mine LastActive = %v after TouchRooms", r.LastActive)
	}
	is(t, "TouchRooms bad id", s.TouchRooms(ctx, map[string]time.Time{"": t0}), store.ErrInvalid)
	convs, err := s.RoomsOf(ctx, "u")
	is(t, "RoomsOf", err, nil)
	var got []string
	for _, c := range convs {
		got = append(got, fmt.Sprintf("%s:%s:%s", c.Room.ID, c.Role, c.Room.LastActive.Format(time.TimeOnly)))
	}
	want := "[a:member:01:00:00 c:invited:00:00:02 b:member:00:00:01]"
	if fmt.Sprint(got) != want {
		t.Fatalf("RoomsOf = %v, want %v", got, want)
	}
	r, _ := s.Room(ctx, "a")
	if !r.LastActive.Equal(t0.Add(time.Hour)) {
		t.Fatalf("Room a LastActive = %v after Touch", r.LastActive)
	}
}

func testContextCanceled(t *testing.T, s store.Store) {
	mustUser(t, s, "u")
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err := s.UserByID(cctx, "u")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("UserByID with a canceled context: %v", err)
	}
	_, err = s.CreateUser(cctx, store.User{ID: "v", Key: "v"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("CreateUser with a canceled context: %v", err)
	}
	_, err = s.UserByID(ctx, "v")
	is(t, "a canceled CreateUser stored nothing", err, store.ErrNotFound)
}

func testClosed(t *testing.T, s store.Store) {
	mustUser(t, s, "u")
	mustRoom(t, s, "r", store.KindPublic, "u")
	is(t, "Close", s.Close(), nil)
	is(t, "Close again", s.Close(), nil)
	for name, err := range map[string]error{
		"CreateUser": func() error { _, err := s.CreateUser(ctx, store.User{ID: "v", Key: "v"}); return err }(),
		"UserByID":   func() error { _, err := s.UserByID(ctx, "u"); return err }(),
		"ListUsers":  func() error { _, err := s.ListUsers(ctx, "", 0); return err }(),
		"SetBanned":  s.SetBanned(ctx, "u", true),
		"Session":    func() error { _, err := s.Session(ctx, "s"); return err }(),
		"DirectRoom": func() error { _, _, err := s.DirectRoom(ctx, "u", "v", "d"); return err }(),
		"Member":     func() error { _, err := s.Member(ctx, "r", "u"); return err }(),
		"RoomsOf":    func() error { _, err := s.RoomsOf(ctx, "u"); return err }(),
		"Touch":      s.Touch(ctx, "r", time.Now()),
		"CreateUpload": func() error {
			_, err := s.CreateUpload(ctx, store.Upload{ID: "f", UserID: "u", Room: "r", Type: "text/plain"})
			return err
		}(),
		"Upload":         func() error { _, err := s.Upload(ctx, "f"); return err }(),
		"AttachUploads":  func() error { _, err := s.AttachUploads(ctx, "u", "r", "m", []string{"f"}); return err }(),
		"DeleteUpload":   s.DeleteUpload(ctx, "f"),
		"UploadUsage":    func() error { _, _, err := s.UploadUsage(ctx, "u"); return err }(),
		"StaleUploads":   func() error { _, err := s.StaleUploads(ctx, time.Now(), 0); return err }(),
		"MessageUploads": func() error { _, err := s.MessageUploads(ctx, "r", "m"); return err }(),
	} {
		is(t, name+" after Close", err, store.ErrClosed)
	}
}

// upload is a valid unattached upload of user into room.
func upload(id, user, room string) store.Upload {
	return store.Upload{ID: id, UserID: user, Room: room, Type: "image/png", Name: id + ".png",
		Size: 100, Width: 4, Height: 3, Thumb: true, SHA256: strings.Repeat("ab", 32)}
}

func mustUpload(t *testing.T, s store.Store, u store.Upload) store.Upload {
	t.Helper()
	got, err := s.CreateUpload(ctx, u)
	is(t, "CreateUpload "+u.ID, err, nil)
	return got
}

// ids lists the IDs and Messages of uploads, for comparing.
func ids(us []store.Upload) string {
	var b []string
	for _, u := range us {
		b = append(b, u.ID+":"+u.Message)
	}
	return strings.Join(b, " ")
}

func testUploads(t *testing.T, s store.Store) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 6789, time.FixedZone("x", 3600))
	in := store.Upload{ID: "f1", UserID: "token-user", Room: "r", Type: "application/pdf", Name: "Ærlig rapport.pdf",
		Size: 1 << 40, Width: 1 << 20, Height: 7, Thumb: true, SHA256: strings.Repeat("0f", 32), Created: created}
	u, err := s.CreateUpload(ctx, in)
	is(t, "CreateUpload (no user or room row needed)", err, nil)
	want := in
	want.Created = created.UTC().Truncate(time.Microsecond)
	if u != want || u.Created.Location() != time.UTC {
		t.Fatalf("CreateUpload = %+v, want %+v (UTC, microseconds)", u, want)
	}
	got, err := s.Upload(ctx, "f1")
	is(t, "Upload", err, nil)
	if got != want || got.Created.Location() != time.UTC {
		t.Fatalf("Upload = %+v, want %+v", got, want)
	}

	// Zero values round-trip too, and a zero Created becomes now.
	plain := store.Upload{ID: "f2", UserID: "u", Room: "r", Type: "text/plain"}
	p, err := s.CreateUpload(ctx, plain)
	is(t, "CreateUpload with zero fields", err, nil)
	if p.Created.IsZero() || time.Since(p.Created) > time.Minute || p.Created.Location() != time.UTC {
		t.Fatalf("Created = %v, want now in UTC", p.Created)
	}
	got, err = s.Upload(ctx, "f2")
	is(t, "Upload f2", err, nil)
	if got != p {
		t.Fatalf("Upload = %+v, want %+v", got, p)
	}

	_, err = s.CreateUpload(ctx, store.Upload{ID: "f1", UserID: "v", Room: "r2", Type: "text/plain"})
	is(t, "CreateUpload with a taken id", err, store.ErrExists)
	if got, _ = s.Upload(ctx, "f1"); got != want {
		t.Fatalf("the refused upload changed f1: %+v", got)
	}
	_, err = s.Upload(ctx, "nothing")
	is(t, "Upload missing", err, store.ErrNotFound)

	// Deleting the uploader's user record leaves the uploads.
	mustUser(t, s, "u")
	is(t, "DeleteUser", s.DeleteUser(ctx, "u"), nil)
	_, err = s.Upload(ctx, "f2")
	is(t, "Upload after its user was deleted", err, nil)
}

func testUploadsInvalid(t *testing.T, s store.Store) {
	long := func(n int) string { return strings.Repeat("a", n) }
	for name, f := range map[string]func(*store.Upload){
		"empty id":        func(u *store.Upload) { u.ID = "" },
		"long id":         func(u *store.Upload) { u.ID = long(store.MaxIDLen + 1) },
		"NUL in id":       func(u *store.Upload) { u.ID = "a\x00b" },
		"empty user":      func(u *store.Upload) { u.UserID = "" },
		"long user":       func(u *store.Upload) { u.UserID = long(store.MaxIDLen + 1) },
		"bad UTF-8 user":  func(u *store.Upload) { u.UserID = "\xff" },
		"empty room":      func(u *store.Upload) { u.Room = "" },
		"long room":       func(u *store.Upload) { u.Room = long(store.MaxIDLen + 1) },
		"empty type":      func(u *store.Upload) { u.Type = "" },
		"long type":       func(u *store.Upload) { u.Type = long(store.MaxTypeLen + 1) },
		"NUL in type":     func(u *store.Upload) { u.Type = "text/\x00" },
		"long name":       func(u *store.Upload) { u.Name = long(store.MaxNameLen + 1) },
		"bad UTF-8 name":  func(u *store.Upload) { u.Name = "a\xc3.png" },
		"NUL in name":     func(u *store.Upload) { u.Name = "a\x00.png" },
		"negative size":   func(u *store.Upload) { u.Size = -1 },
		"negative width":  func(u *store.Upload) { u.Width = -1 },
		"negative height": func(u *store.Upload) { u.Height = -1 },
		"long sha256":     func(u *store.Upload) { u.SHA256 = long(65) },
		"NUL in sha256":   func(u *store.Upload) { u.SHA256 = "\x00" },
		"long message":    func(u *store.Upload) { u.Message = long(store.MaxIDLen + 1) },
	} {
		u := upload("ok", "u", "r")
		f(&u)
		_, err := s.CreateUpload(ctx, u)
		is(t, "CreateUpload with "+name, err, store.ErrInvalid)
	}
	// The bounds themselves are accepted.
	edge := store.Upload{ID: long(store.MaxIDLen), UserID: long(store.MaxIDLen), Room: long(store.MaxIDLen),
		Type: long(store.MaxTypeLen), Name: long(store.MaxNameLen), SHA256: long(64)}
	_, err := s.CreateUpload(ctx, edge)
	is(t, "CreateUpload at the bounds", err, nil)
	if n, _, _ := s.UploadUsage(ctx, "u"); n != 0 {
		t.Fatalf("refused uploads were stored: usage count %d", n)
	}

	_, err = s.Upload(ctx, "")
	is(t, "Upload empty id", err, store.ErrInvalid)
	is(t, "DeleteUpload empty id", s.DeleteUpload(ctx, ""), store.ErrInvalid)
	_, _, err = s.UploadUsage(ctx, "")
	is(t, "UploadUsage empty user", err, store.ErrInvalid)
	_, err = s.MessageUploads(ctx, "", "m")
	is(t, "MessageUploads empty room", err, store.ErrInvalid)
	_, err = s.MessageUploads(ctx, "r", "")
	is(t, "MessageUploads empty message", err, store.ErrInvalid)
	for name, args := range map[string][3]string{
		"empty user":    {"", "r", "m"},
		"empty room":    {"u", "", "m"},
		"empty message": {"u", "r", ""},
		"bad message":   {"u", "r", "m\x00"},
	} {
		_, err = s.AttachUploads(ctx, args[0], args[1], args[2], []string{"x"})
		is(t, "AttachUploads with "+name, err, store.ErrInvalid)
	}
	_, err = s.AttachUploads(ctx, "u", "r", "m", []string{""})
	is(t, "AttachUploads with an empty id", err, store.ErrInvalid)
}

func testAttachUploads(t *testing.T, s store.Store) {
	for _, id := range []string{"a", "b", "c", "d"} {
		mustUpload(t, s, upload(id, "u", "r"))
	}
	got, err := s.AttachUploads(ctx, "u", "r", "m1", []string{"c", "a"})
	is(t, "AttachUploads", err, nil)
	if ids(got) != "c:m1 a:m1" {
		t.Fatalf("AttachUploads = %q, want c:m1 a:m1 (in the order of ids)", ids(got))
	}
	want := upload("c", "u", "r")
	want.Message, want.Created = "m1", got[0].Created
	if got[0] != want {
		t.Fatalf("AttachUploads returned %+v, want %+v", got[0], want)
	}
	if u, _ := s.Upload(ctx, "c"); u != want {
		t.Fatalf("Upload after AttachUploads = %+v, want %+v", u, want)
	}
	if u, _ := s.Upload(ctx, "b"); u.Message != "" {
		t.Fatalf("an upload not named was attached: %+v", u)
	}

	// A retried send (another message id) keeps the first Message and
	// attaches what was not attached yet.
	got, err = s.AttachUploads(ctx, "u", "r", "m2", []string{"a", "b", "c"})
	is(t, "AttachUploads again", err, nil)
	if ids(got) != "a:m1 b:m2 c:m1" {
		t.Fatalf("AttachUploads again = %q, want a:m1 b:m2 c:m1", ids(got))
	}
	if u, _ := s.Upload(ctx, "a"); u.Message != "m1" {
		t.Fatalf("a retry changed Message to %q", u.Message)
	}
	if u, _ := s.Upload(ctx, "b"); u.Message != "m2" {
		t.Fatalf("b Message = %q, want m2", u.Message)
	}

	_, err = s.AttachUploads(ctx, "u", "r", "m3", []string{"d", "a", "d"})
	is(t, "AttachUploads with a repeated id", err, store.ErrInvalid)
	_, err = s.AttachUploads(ctx, "u", "r", "m3", nil)
	is(t, "AttachUploads with no ids", err, store.ErrInvalid)
	many := make([]string, store.MaxAttach+1)
	for i := range many {
		many[i] = fmt.Sprint("x", i)
	}
	_, err = s.AttachUploads(ctx, "u", "r", "m3", many)
	is(t, "AttachUploads with too many ids", err, store.ErrInvalid)
	if u, _ := s.Upload(ctx, "d"); u.Message != "" {
		t.Fatalf("a refused AttachUploads attached d: %+v", u)
	}

	// MaxAttach ids at once are accepted.
	for _, id := range many[:store.MaxAttach] {
		mustUpload(t, s, upload(id, "u", "r"))
	}
	got, err = s.AttachUploads(ctx, "u", "r", "big", many[:store.MaxAttach])
	is(t, "AttachUploads with MaxAttach ids", err, nil)
	if len(got) != store.MaxAttach || got[store.MaxAttach-1].ID != many[store.MaxAttach-1] || got[0].Message != "big" {
		t.Fatalf("AttachUploads with MaxAttach ids: %d uploads, %q", len(got), ids(got[:min(len(got), 2)]))
	}
}

func testAttachUploadsAllOrNothing(t *testing.T, s store.Store) {
	mustUpload(t, s, upload("mine", "u", "r"))
	mustUpload(t, s, upload("mine2", "u", "r"))
	mustUpload(t, s, upload("theirs", "v", "r"))
	mustUpload(t, s, upload("elsewhere", "u", "r2"))
	for name, other := range map[string]string{
		"another user's upload":   "theirs",
		"an upload of other room": "elsewhere",
		"a missing upload":        "nothing",
	} {
		_, err := s.AttachUploads(ctx, "u", "r", "m", []string{"mine", other, "mine2"})
		is(t, "AttachUploads with "+name, err, store.ErrNotFound)
		for _, id := range []string{"mine", "mine2", "theirs", "elsewhere"} {
			if u, _ := s.Upload(ctx, id); u.Message != "" {
				t.Fatalf("after AttachUploads with %s, %s has Message %q", name, id, u.Message)
			}
		}
	}
	// The owner of "theirs" attaches it in its own room.
	got, err := s.AttachUploads(ctx, "v", "r", "mv", []string{"theirs"})
	is(t, "AttachUploads by its uploader", err, nil)
	if ids(got) != "theirs:mv" {
		t.Fatalf("AttachUploads = %q", ids(got))
	}
	// Attached to another message does not make it anyone else's.
	_, err = s.AttachUploads(ctx, "u", "r", "m", []string{"theirs"})
	is(t, "AttachUploads of an attached upload of another user", err, store.ErrNotFound)
}

func testAttachUploadsConcurrent(t *testing.T, s store.Store) {
	// Several rounds of n calls released together, so that calls overlap.
	const rounds, n = 4, 24
	for r := range rounds {
		files := []string{fmt.Sprint(r, "f1"), fmt.Sprint(r, "f2"), fmt.Sprint(r, "f3")}
		for _, id := range files {
			mustUpload(t, s, upload(id, "u", "r"))
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		got := make([][]store.Upload, n)
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				// Half the calls name the uploads in reverse order.
				order := slices.Clone(files)
				if i%2 == 1 {
					slices.Reverse(order)
				}
				<-start
				got[i], errs[i] = s.AttachUploads(ctx, "u", "r", fmt.Sprint("m", i), order)
			})
		}
		close(start)
		wg.Wait()
		msg := ""
		for i := range n {
			is(t, fmt.Sprint("AttachUploads call ", i), errs[i], nil)
			if len(got[i]) != len(files) {
				t.Fatalf("call %d returned %d uploads", i, len(got[i]))
			}
			for _, u := range got[i] {
				if msg == "" {
					msg = u.Message
				}
				if u.Message != msg || msg == "" {
					t.Fatalf("call %d: %s has Message %q, another %q", i, u.ID, u.Message, msg)
				}
			}
		}
		for _, id := range files {
			if u, _ := s.Upload(ctx, id); u.Message != msg {
				t.Fatalf("%s stored Message %q, the calls returned %q", id, u.Message, msg)
			}
		}
	}
}

func testUploadUsageAndDelete(t *testing.T, s store.Store) {
	n, b, err := s.UploadUsage(ctx, "nobody")
	is(t, "UploadUsage of an unknown user", err, nil)
	if n != 0 || b != 0 {
		t.Fatalf("UploadUsage of an unknown user = %d, %d", n, b)
	}
	for i, size := range []int64{10, 0, 1 << 33} {
		u := upload(fmt.Sprint("f", i), "u", "r")
		u.Size = size
		mustUpload(t, s, u)
	}
	other := upload("g", "v", "r")
	other.Size = 5
	mustUpload(t, s, other)
	_, err = s.AttachUploads(ctx, "u", "r", "m", []string{"f0"})
	is(t, "AttachUploads", err, nil)
	n, b, err = s.UploadUsage(ctx, "u")
	is(t, "UploadUsage", err, nil)
	if n != 3 || b != 10+1<<33 {
		t.Fatalf("UploadUsage = %d, %d; want 3, %d (attached and not)", n, b, 10+1<<33)
	}

	is(t, "DeleteUpload", s.DeleteUpload(ctx, "f0"), nil)
	_, err = s.Upload(ctx, "f0")
	is(t, "Upload after DeleteUpload", err, store.ErrNotFound)
	is(t, "DeleteUpload again", s.DeleteUpload(ctx, "f0"), store.ErrNotFound)
	n, b, _ = s.UploadUsage(ctx, "u")
	if n != 2 || b != 1<<33 {
		t.Fatalf("UploadUsage after DeleteUpload = %d, %d", n, b)
	}
	if n, b, _ = s.UploadUsage(ctx, "v"); n != 1 || b != 5 {
		t.Fatalf("UploadUsage v = %d, %d", n, b)
	}
	// The id is free again.
	mustUpload(t, s, upload("f0", "u", "r"))
}

func testStaleUploads(t *testing.T, s store.Store) {
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for _, f := range []struct {
		id  string
		age time.Duration
	}{{"c", 3}, {"a", 1}, {"b", 1}, {"d", 2}, {"attached", 0}, {"new", 10}} {
		u := upload(f.id, "u", "r")
		u.Created = t0.Add(f.age * time.Second)
		mustUpload(t, s, u)
	}
	_, err := s.AttachUploads(ctx, "u", "r", "m", []string{"attached"})
	is(t, "AttachUploads", err, nil)
	cut := t0.Add(10 * time.Second) // "new" is at the cutoff: not before it
	got, err := s.StaleUploads(ctx, cut, 0)
	is(t, "StaleUploads", err, nil)
	if ids(got) != "a: b: d: c:" {
		t.Fatalf("StaleUploads = %q, want a: b: d: c: (unattached, before the cutoff, oldest first, then by id)", ids(got))
	}
	if got[0] != (func() store.Upload { u := upload("a", "u", "r"); u.Created = t0.Add(time.Second); return u }()) {
		t.Fatalf("StaleUploads returned %+v", got[0])
	}
	got, err = s.StaleUploads(ctx, cut.Add(time.Microsecond), 2)
	is(t, "StaleUploads limit 2", err, nil)
	if ids(got) != "a: b:" {
		t.Fatalf("StaleUploads limit 2 = %q", ids(got))
	}
	got, _ = s.StaleUploads(ctx, cut.Add(time.Microsecond), -1)
	if ids(got) != "a: b: d: c: new:" {
		t.Fatalf("StaleUploads just after new = %q", ids(got))
	}
	got, _ = s.StaleUploads(ctx, t0.Add(time.Second), 0)
	if len(got) != 0 {
		t.Fatalf("StaleUploads before the oldest = %q", ids(got))
	}
}

func testMessageUploads(t *testing.T, s store.Store) {
	for _, id := range []string{"z", "y", "x", "w"} {
		mustUpload(t, s, upload(id, "u", "r"))
	}
	mustUpload(t, s, upload("o", "u", "r2"))
	_, err := s.AttachUploads(ctx, "u", "r", "m", []string{"z", "x"})
	is(t, "AttachUploads", err, nil)
	_, err = s.AttachUploads(ctx, "u", "r", "m2", []string{"y"})
	is(t, "AttachUploads m2", err, nil)
	_, err = s.AttachUploads(ctx, "u", "r2", "m", []string{"o"})
	is(t, "AttachUploads in r2", err, nil)
	got, err := s.MessageUploads(ctx, "r", "m")
	is(t, "MessageUploads", err, nil)
	if ids(got) != "x:m z:m" {
		t.Fatalf("MessageUploads = %q, want x:m z:m (that room's, by id)", ids(got))
	}
	if got[0].Type != "image/png" || got[0].Size != 100 || !got[0].Thumb {
		t.Fatalf("MessageUploads returned %+v", got[0])
	}
	got, err = s.MessageUploads(ctx, "r", "none")
	is(t, "MessageUploads of a message without files", err, nil)
	if len(got) != 0 {
		t.Fatalf("MessageUploads of a message without files = %q", ids(got))
	}
}
