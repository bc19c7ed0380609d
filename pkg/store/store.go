// Package store is the durable record of who and where: user accounts,
// sign-in sessions, rooms, room memberships and the records of uploaded
// files (which message each is attached to). It does not hash passwords,
// mint ids, normalise names or decide who may do what; its callers do, and
// the store keeps the result consistent (unique keys, one direct room per
// pair of users, no membership or session outliving its user).
//
// Three backends implement Store, chosen by URL in Open:
//
//   - memory:// keeps everything in this process (tests).
//   - sqlite:///abs/path.db or sqlite://rel/path.db keeps a data file for a
//     single node (pure Go SQLite, WAL, every write through one connection).
//   - postgres:// (postgresql://) shares the store between servers.
//
// Guarantees shared by every backend, checked by the conformance suite in
// storetest:
//
//   - A User's Key and the ID of a Session, Room or Upload are unique:
//     creating a second one gives ErrExists and changes nothing.
//   - Looking up, changing or deleting something that does not exist gives
//     ErrNotFound; so does asking for the role of a non-member, so a caller
//     answers the same for "missing" and "forbidden".
//   - Deleting a user deletes its sessions and memberships in the same
//     transaction; its uploads stay (token users have no user record).
//   - AttachUploads is all or nothing, and concurrent calls for one upload
//     agree on its Message.
//   - DirectRoom returns the same room for (a, b) and (b, a), also when
//     called concurrently from many goroutines or servers.
//   - Times are kept with microsecond precision and returned in UTC.
//   - Every string argument is bounded (see the Max constants), valid UTF-8
//     and free of NUL bytes, or the call fails with ErrInvalid.
//
// Every method honours its context, blocks until the backend answered and
// is safe for concurrent use. Errors carry the "store:" prefix and wrap
// their cause; compare them with errors.Is.
package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// Errors returned by stores. Compare with errors.Is.
var (
	// ErrNotFound: the user, session, room, membership or upload does not
	// exist (or the session has expired).
	ErrNotFound = errors.New("store: not found")
	// ErrExists: a user with that Key, or a session, room or upload with
	// that ID, already exists.
	ErrExists = errors.New("store: already exists")
	// ErrClosed is returned by every call on a closed Store.
	ErrClosed = errors.New("store: closed")
	// ErrInvalid wraps errors about arguments: an empty or too long id, a
	// string that is not UTF-8, an unknown kind or role.
	ErrInvalid = errors.New("store: invalid argument")
	// ErrUnsupportedURL is returned by Open for an unknown scheme or a
	// malformed URL.
	ErrUnsupportedURL = errors.New("store: unsupported URL")
)

// Bounds on the arguments, in bytes.
const (
	MaxIDLen   = 128  // user, session, room, upload and message ids; non-empty
	MaxKeyLen  = 256  // User.Key; non-empty
	MaxNameLen = 256  // User.Name, Room.Name and Upload.Name; may be empty
	MaxHashLen = 1024 // User.PasswordHash; may be empty
	MaxPage    = 1000 // the most rows ListUsers and PublicRooms return
	MaxTypeLen = 128  // Upload.Type; non-empty
	MaxAttach  = 100  // the most ids of one AttachUploads
)

// Kind is a room's kind.
type Kind string

// The room kinds.
const (
	KindPublic  Kind = "public"  // listed by PublicRooms, anyone may join
	KindPrivate Kind = "private" // members and invitations only
	KindDirect  Kind = "direct"  // exactly two users, made by DirectRoom
)

// Role is a user's role in a room.
type Role string

// The membership roles.
const (
	RoleOwner   Role = "owner"
	RoleMember  Role = "member"
	RoleInvited Role = "invited" // not yet a member: may accept or decline
)

// User is an account.
type User struct {
	ID   string // made by the caller (random), never reused
	Name string // display name, as typed
	// Key is the unique lookup key: the caller normalises the name
	// (Unicode normalisation, case folding); the store only enforces that
	// no two users share a Key.
	Key          string
	PasswordHash string    // opaque to the store; empty for token users
	Created      time.Time // set to now by CreateUser when zero
	Banned       bool
}

// Session is a signed-in browser. ID is the hex SHA-256 of the secret token
// in the cookie: the store never sees the token itself, so a leaked store
// does not leak live cookies.
type Session struct {
	ID      string
	UserID  string
	Created time.Time // set to now by CreateSession when zero
	Expires time.Time // Session reports ErrNotFound from this instant on
}

// Room is a conversation.
type Room struct {
	ID      string // made by the caller (random); never derived from names
	Name    string // empty for direct rooms
	Kind    Kind
	Owner   string    // the creating user's id; empty for direct rooms
	Created time.Time // set to now by CreateRoom when zero
	// LastActive is the latest time given to Touch, or Created.
	LastActive time.Time
}

// Member is one user's membership of a room.
type Member struct {
	RoomID string
	UserID string
	Role   Role
}

// Conversation is one of a user's rooms, as RoomsOf lists them.
type Conversation struct {
	Room Room
	Role Role
}

// Store keeps users, sessions, rooms, memberships and uploads. All methods
// are safe for concurrent use; see the package doc for the shared
// guarantees.
type Store interface {
	// CreateUser stores u (ErrExists if its ID or Key is taken) and returns
	// it with Created filled in.
	CreateUser(ctx context.Context, u User) (User, error)
	// UserByID returns the user with that ID, or ErrNotFound.
	UserByID(ctx context.Context, id string) (User, error)
	// UserByKey returns the user with that Key, or ErrNotFound.
	UserByKey(ctx context.Context, key string) (User, error)
	// ListUsers returns up to limit users (limit <= 0 or > MaxPage means
	// MaxPage) with Key > after, ordered by Key; pass the last Key for the
	// next page.
	ListUsers(ctx context.Context, after string, limit int) ([]User, error)
	// SetPassword replaces the user's PasswordHash, or gives ErrNotFound.
	// It does not end sessions: call DeleteUserSessions.
	SetPassword(ctx context.Context, userID, hash string) error
	// SetBanned sets or clears the user's ban, or gives ErrNotFound.
	SetBanned(ctx context.Context, userID string, banned bool) error
	// DeleteUser deletes the user with its sessions and memberships, or
	// gives ErrNotFound. Rooms it owns stay.
	DeleteUser(ctx context.Context, userID string) error

	// CreateSession stores s: ErrExists if its ID is taken, ErrNotFound if
	// its user does not exist.
	CreateSession(ctx context.Context, s Session) (Session, error)
	// Session returns the session with that ID, or ErrNotFound when it is
	// missing or expired.
	Session(ctx context.Context, id string) (Session, error)
	// DeleteSession deletes one session, or gives ErrNotFound.
	DeleteSession(ctx context.Context, id string) error
	// DeleteUserSessions deletes every session of the user and returns
	// how many there were (0 for an unknown user).
	DeleteUserSessions(ctx context.Context, userID string) (int, error)
	// DeleteExpiredSessions deletes the sessions expired at now and
	// returns how many there were.
	DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error)

	// CreateRoom stores a public or private room (ErrExists if its ID is
	// taken) and, when Owner is set, makes the owner a member with
	// RoleOwner (ErrNotFound if that user does not exist). Direct rooms
	// are made by DirectRoom only.
	CreateRoom(ctx context.Context, r Room) (Room, error)
	// Room returns the room with that ID, or ErrNotFound.
	Room(ctx context.Context, id string) (Room, error)
	// PublicRooms returns up to limit public rooms (limit as in ListUsers)
	// with ID > after, ordered by ID. Private and direct rooms are never
	// listed.
	PublicRooms(ctx context.Context, after string, limit int) ([]Room, error)
	// DirectRoom returns the direct room of users a and b (a != b, in
	// either order), creating it with id newID and both users as
	// RoleMember when there is none; created reports which. Concurrent
	// calls for one pair all return the same room. ErrNotFound if a user
	// does not exist; ErrExists if newID is taken by another room.
	DirectRoom(ctx context.Context, a, b, newID string) (r Room, created bool, err error)
	// Touch raises the room's LastActive to t (an earlier t changes
	// nothing), or gives ErrNotFound.
	Touch(ctx context.Context, roomID string, t time.Time) error
	// TouchRooms is Touch for many rooms in one write (one transaction):
	// rooms that do not exist are skipped, not an error.
	TouchRooms(ctx context.Context, rooms map[string]time.Time) error

	// AddMember makes the user a member of the room with role, or changes
	// its role. ErrNotFound if the room or user does not exist; ErrInvalid
	// for a direct room, whose two members are fixed.
	AddMember(ctx context.Context, roomID, userID string, role Role) error
	// RemoveMember ends a membership, or gives ErrNotFound.
	RemoveMember(ctx context.Context, roomID, userID string) error
	// Member returns the user's role in the room, or ErrNotFound when the
	// user is not a member or the room does not exist.
	Member(ctx context.Context, roomID, userID string) (Role, error)
	// Members lists the room's members ordered by UserID, or gives
	// ErrNotFound for a missing room.
	Members(ctx context.Context, roomID string) ([]Member, error)
	// RoomsOf lists the rooms the user belongs to or is invited to, the
	// most recently active first (then by ID).
	RoomsOf(ctx context.Context, userID string) ([]Conversation, error)

	// CreateUpload records an upload whose bytes are stored (ErrExists if
	// its ID is taken) and returns it with Created filled in when zero.
	CreateUpload(ctx context.Context, u Upload) (Upload, error)
	// Upload returns the upload with that ID, or ErrNotFound.
	Upload(ctx context.Context, id string) (Upload, error)
	// AttachUploads attaches uploads to a message, all or nothing in one
	// transaction: every id (1 to MaxAttach, no repeats, else ErrInvalid)
	// must name an upload of userID into room, else ErrNotFound and nothing
	// changes. An upload not yet attached gets Message = messageID; one
	// already attached keeps its Message (a retried send). It returns the
	// uploads in the order of ids, as stored after the change.
	AttachUploads(ctx context.Context, userID, room, messageID string, ids []string) ([]Upload, error)
	// DeleteUpload deletes the record of an upload, or gives ErrNotFound.
	// Its blobs are the caller's to delete.
	DeleteUpload(ctx context.Context, id string) error
	// UploadUsage returns how many uploads the user has and their total
	// Size, attached or not (0, 0 for an unknown user).
	UploadUsage(ctx context.Context, userID string) (count int, bytes int64, err error)
	// StaleUploads returns up to limit (as in ListUsers) uploads never
	// attached and created before before, the oldest first (then by ID).
	StaleUploads(ctx context.Context, before time.Time, limit int) ([]Upload, error)
	// MessageUploads returns the uploads attached to the message messageID
	// of room (ordered by ID), so that deleting a message can delete its
	// files; none is not an error.
	MessageUploads(ctx context.Context, room, messageID string) ([]Upload, error)

	// Close releases the store; later calls give ErrClosed. It waits for
	// calls in flight and is safe to call more than once.
	Close() error
}

// Upload is the record of a file a user uploaded into a room: what the
// server decided about it, and the message it was attached to. Its bytes
// are the blob (pkg/blob) with the same ID; an image's thumbnail is the
// blob ID+ThumbSuffix.
type Upload struct {
	ID     string // also the blob id; 1 to MaxIDLen bytes
	UserID string // the uploader; required
	Room   string // the room it was uploaded into; required
	Type   string // MIME type; 1 to MaxTypeLen bytes
	Name   string // the uploader's file name, for display; up to MaxNameLen
	Size   int64  // bytes of the stored file; >= 0
	Width  int    // an image's pixels; 0 for other files
	Height int
	// Thumb says that a thumbnail blob (ID+ThumbSuffix) exists.
	Thumb  bool
	SHA256 string // lower-case hex of the stored bytes; up to 64
	// Created is when the upload was recorded, UTC, microseconds.
	Created time.Time
	// Message is the id of the message it was first attached to; empty
	// while it is attached to none.
	Message string
}

// ThumbSuffix ends the blob id of an upload's thumbnail.
const ThumbSuffix = "_t"

// Open returns the Store named by rawURL: memory://, sqlite:///abs/file.db
// (sqlite://rel/file.db for a path relative to the working directory) or
// postgres:// (postgresql://). It creates or migrates the schema, bounded by
// ctx.
func Open(ctx context.Context, rawURL string) (Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnsupportedURL, err)
	}
	switch u.Scheme {
	case "memory":
		return NewMemory(), nil
	case "sqlite":
		p := u.Host + u.Path
		if p == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return nil, fmt.Errorf("%w: %q: want sqlite:///abs/file.db or sqlite://rel/file.db", ErrUnsupportedURL, rawURL)
		}
		return OpenSQLite(ctx, p)
	case "postgres", "postgresql":
		return OpenPostgres(ctx, rawURL)
	}
	return nil, fmt.Errorf("%w: scheme %q (want memory, sqlite or postgres)", ErrUnsupportedURL, u.Scheme)
}

// check validates one string argument.
func check(what, s string, maxLen int, required bool) error {
	switch {
	case required && s == "":
		return fmt.Errorf("%w: empty %s", ErrInvalid, what)
	case len(s) > maxLen:
		return fmt.Errorf("%w: %s longer than %d bytes", ErrInvalid, what, maxLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: %s is not UTF-8", ErrInvalid, what)
	case strings.IndexByte(s, 0) >= 0:
		return fmt.Errorf("%w: %s contains NUL", ErrInvalid, what)
	}
	return nil
}

func checkID(what, id string) error { return check(what, id, MaxIDLen, true) }

// maxSHA256Len bounds Upload.SHA256 (64 hex digits).
const maxSHA256Len = 64

func checkUpload(u Upload) error {
	err := errorsJoin(checkID("upload id", u.ID), checkID("upload user id", u.UserID), checkID("upload room", u.Room),
		check("upload type", u.Type, MaxTypeLen, true), check("upload name", u.Name, MaxNameLen, false),
		check("upload sha256", u.SHA256, maxSHA256Len, false), check("upload message", u.Message, MaxIDLen, false))
	if err == nil && (u.Size < 0 || u.Width < 0 || u.Height < 0) {
		err = fmt.Errorf("%w: negative upload size, width or height", ErrInvalid)
	}
	return err
}

// checkAttach validates the arguments of AttachUploads.
func checkAttach(userID, room, messageID string, ids []string) error {
	if err := errorsJoin(checkID("user id", userID), checkID("room id", room), checkID("message id", messageID)); err != nil {
		return err
	}
	if len(ids) == 0 || len(ids) > MaxAttach {
		return fmt.Errorf("%w: %d upload ids (want 1 to %d)", ErrInvalid, len(ids), MaxAttach)
	}
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if err := checkID("upload id", id); err != nil {
			return err
		}
		if seen[id] {
			return fmt.Errorf("%w: upload id %q repeated", ErrInvalid, id)
		}
		seen[id] = true
	}
	return nil
}

// compareStale orders StaleUploads: oldest first, then by ID.
func compareStale(a, b Upload) int {
	if c := a.Created.Compare(b.Created); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

func checkUser(u User) error {
	return errorsJoin(checkID("user id", u.ID), check("user key", u.Key, MaxKeyLen, true),
		check("user name", u.Name, MaxNameLen, false), check("password hash", u.PasswordHash, MaxHashLen, false))
}

func checkRole(r Role) error {
	switch r {
	case RoleOwner, RoleMember, RoleInvited:
		return nil
	}
	return fmt.Errorf("%w: role %q", ErrInvalid, r)
}

// pageLimit applies the limit rule of ListUsers and PublicRooms.
func pageLimit(limit int) int {
	if limit <= 0 || limit > MaxPage {
		return MaxPage
	}
	return limit
}

// micro truncates t to the stored precision, in UTC; the zero time becomes now.
func micro(t time.Time) time.Time {
	if t.IsZero() {
		t = time.Now()
	}
	return t.UTC().Truncate(time.Microsecond)
}

// pair orders the two users of a direct room.
func pair(a, b string) (lo, hi string) {
	if a > b {
		return b, a
	}
	return a, b
}

func checkRoom(r Room) error {
	err := errorsJoin(checkID("room id", r.ID), check("room name", r.Name, MaxNameLen, false),
		check("room owner", r.Owner, MaxIDLen, false))
	if err == nil && r.Kind != KindPublic && r.Kind != KindPrivate {
		err = fmt.Errorf("%w: CreateRoom makes public or private rooms, not %q", ErrInvalid, r.Kind)
	}
	return err
}

func checkDirect(a, b, newID string) error {
	err := errorsJoin(checkID("user id", a), checkID("user id", b), checkID("room id", newID))
	if err == nil && a == b {
		err = fmt.Errorf("%w: a direct room needs two different users", ErrInvalid)
	}
	return err
}

// errorsJoin returns the first non-nil error: one clear message, still
// wrapping ErrInvalid.
func errorsJoin(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// compareConversations orders RoomsOf: most recently active first, then by ID.
func compareConversations(a, b Conversation) int {
	if c := b.Room.LastActive.Compare(a.Room.LastActive); c != 0 {
		return c
	}
	return strings.Compare(a.Room.ID, b.Room.ID)
}
