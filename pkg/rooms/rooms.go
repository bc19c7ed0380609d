// Package rooms decides who may enter which room and keeps the rooms that
// are not public: private rooms (owner, members, invitations) and direct
// chats between two users. It implements the chat server's Authorizer
// (Enter, Active) without importing pkg/server, serves the JSON API under
// /api/rooms, /api/conversations and /api/direct (Handler), and offers the
// operator's calls of `livechat rooms` (Create, List, Members, Add, Remove,
// Room).
//
// Room ids starting with protocol.ReservedRoomPrefix are made here from
// random characters, never from names: protocol.PrivateRoomPrefix and 20
// characters of [a-z0-9] for a private room, protocol.DirectRoomPrefix and
// 20 more for a direct chat. Every other valid room name is a public room
// that anyone may enter.
//
// Access is denied by default: a reserved room is entered, listed or
// changed only by its owner or members, and a room that does not exist
// gives exactly the same answer (auth.ErrNoRoom, or a byte-identical 404
// not_found) as one the caller may not see.
//
// When a user loses a room (removed by its owner, an invitation withdrawn
// or declined, a member leaving) a protocol.UserEvent of type
// protocol.TypeRemoved is published on protocol.UserSubject so that every
// server takes that user's connections out of the room.
package rooms

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/livechat/livechat/pkg/auth"
	"github.com/livechat/livechat/pkg/protocol"
	"github.com/livechat/livechat/pkg/store"
)

// Errors of the operator calls. Store errors (store.ErrNotFound,
// store.ErrExists, ...) are wrapped as they come; compare with errors.Is.
var (
	// ErrInvalid: a room name or title, kind or role that cannot be used.
	ErrInvalid = errors.New("rooms: invalid argument")
	// ErrPublish: the store change was made but its event could not be
	// published (connections of the user may stay in the room until they
	// reconnect).
	ErrPublish = errors.New("rooms: publish failed")
)

// Bounds and sizes.
const (
	// IDRandomLen is the number of random characters after the prefix of
	// a private or direct room id.
	IDRandomLen = 20
	// MaxTitleLen is the longest private room title, in runes.
	MaxTitleLen = 64
	// DefaultTouchEvery is Config.TouchEvery's default.
	DefaultTouchEvery = 10 * time.Second
	// directoryPage is how many public rooms GET /api/rooms returns.
	directoryPage = 100
	// touchQueue bounds the Active calls waiting for the store; more are
	// dropped.
	touchQueue = 1024
	// maxTracked bounds the per-room maps of the authoriser (public rooms
	// recorded, last touch): past it they are cleared and start again,
	// which costs at most some repeated store writes.
	maxTracked = 100_000
	// storeTimeout bounds the store and publish calls made in the
	// background or after a request has been answered.
	storeTimeout = 5 * time.Second
)

// Config configures a Service.
type Config struct {
	// Store keeps rooms, users and memberships. Required. The Service does
	// not close it.
	Store store.Store
	// Identify says who makes an HTTP request (pkg/account's
	// Authenticate: the session cookie or a bearer token). It returns
	// auth.ErrNoCredentials when the request carries none. Default: every
	// request is anonymous (only GET /api/rooms answers).
	Identify func(*http.Request) (auth.Identity, error)
	// Publish sends a user event to every server (the broker's Publish).
	// Default (nil): events are not published (a single server without a
	// broker; removed users stay connected to the room until they leave).
	Publish func(ctx context.Context, subject string, data []byte) error
	// Prefix is the subject namespace. Default: protocol.DefaultPrefix.
	Prefix string
	// AllowedOrigins are the other origins (host[:port] path.Match
	// patterns, "*" for any) whose pages may change state through the API;
	// the request's own host is always allowed. Default: none.
	AllowedOrigins []string
	// Logger receives failures of the store and of publishing. Default:
	// slog.Default().
	Logger *slog.Logger
	// TouchEvery is the shortest interval between two store.Touch calls
	// for one room from this process. Default: DefaultTouchEvery (10s).
	TouchEvery time.Duration
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// fill returns c with its defaults applied.
func (c Config) fill() (Config, error) {
	if c.Store == nil {
		return c, errors.New("rooms: Config.Store is required")
	}
	if c.Identify == nil {
		c.Identify = func(*http.Request) (auth.Identity, error) { return auth.Identity{}, auth.ErrNoCredentials }
	}
	if c.Prefix == "" {
		c.Prefix = protocol.DefaultPrefix
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.TouchEvery <= 0 {
		c.TouchEvery = DefaultTouchEvery
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// Service is the rooms service. Its methods are safe for concurrent use.
type Service struct {
	cfg Config
	st  store.Store
	log *slog.Logger

	// touches carries Active's store writes to the touch goroutine.
	touches chan touch
	// ctx is cancelled by Close (stop); wg waits for the touch goroutine.
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	// mu guards the two maps below.
	mu sync.Mutex
	// public holds the public rooms this process has recorded in the store.
	public map[string]struct{}
	// touched holds the time of each room's last queued Touch.
	touched map[string]time.Time

	// roomLocks serialise this process's read-then-write changes of one
	// room's memberships (invite, accept, remove), so that an accept cannot
	// bring back an invitation its owner is withdrawing at the same moment.
	// Servers sharing a store are not serialised with each other.
	roomLocks [64]sync.Mutex
	lockSeed  maphash.Seed
}

// New returns a Service and starts its touch goroutine (stopped by Close).
func New(cfg Config) (*Service, error) {
	cfg, err := cfg.fill()
	if err != nil {
		return nil, err
	}
	s := &Service{
		cfg:      cfg,
		st:       cfg.Store,
		log:      cfg.Logger,
		touches:  make(chan touch, touchQueue),
		public:   make(map[string]struct{}),
		touched:  make(map[string]time.Time),
		lockSeed: maphash.MakeSeed(),
	}
	s.ctx, s.stop = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.touchLoop()
	return s, nil
}

// Close stops the background goroutine and waits for it (a Touch in
// flight is cancelled). Active calls after Close are dropped. It does not
// close the Store and is safe to call more than once.
func (s *Service) Close() {
	s.stop()
	s.wg.Wait()
}

// MemberInfo is one membership as the operator sees it.
type MemberInfo struct {
	UserID string
	Name   string // the user's name; empty when the user is gone
	Role   store.Role
}

// Create makes a room: a public room named name (a valid room name outside
// the reserved prefix; its id is the name) or a private room titled name
// (1-MaxTitleLen runes, no control characters; its id is random). ownerID,
// when set, names an existing user who becomes the owner; it may be empty
// for public rooms made by the operator. It blocks on the store.
func (s *Service) Create(ctx context.Context, name string, kind store.Kind, ownerID string) (store.Room, error) {
	r, err := s.create(ctx, name, kind, ownerID)
	if err != nil {
		return store.Room{}, fmt.Errorf("rooms: create %s room: %w", kind, err)
	}
	return r, nil
}

// create is Create without the error prefix; its ErrInvalid errors are
// safe to show to the user.
func (s *Service) create(ctx context.Context, name string, kind store.Kind, ownerID string) (store.Room, error) {
	switch kind {
	case store.KindPublic:
		if err := PublicName(name); err != nil {
			return store.Room{}, err
		}
		r, err := s.st.CreateRoom(ctx, store.Room{ID: name, Name: name, Kind: store.KindPublic, Owner: ownerID, Created: s.cfg.Now()})
		if err == nil {
			s.remember(name)
		}
		return r, err
	case store.KindPrivate:
		title, err := Title(name)
		if err != nil {
			return store.Room{}, err
		}
		if ownerID == "" {
			return store.Room{}, fmt.Errorf("%w: a private room needs an owner", ErrInvalid)
		}
		for range 3 { // a collision of 103 random bits is not expected; retry anyway
			r, err := s.st.CreateRoom(ctx, store.Room{ID: NewID(protocol.PrivateRoomPrefix), Name: title,
				Kind: store.KindPrivate, Owner: ownerID, Created: s.cfg.Now()})
			if !errors.Is(err, store.ErrExists) {
				return r, err
			}
		}
		return store.Room{}, store.ErrExists
	}
	return store.Room{}, fmt.Errorf("%w: kind must be %q or %q", ErrInvalid, store.KindPublic, store.KindPrivate)
}

// List returns up to limit public rooms with ids after after, ordered by
// id (the directory). It blocks on the store.
func (s *Service) List(ctx context.Context, after string, limit int) ([]store.Room, error) {
	rs, err := s.st.PublicRooms(ctx, after, limit)
	if err != nil {
		return nil, fmt.Errorf("rooms: list: %w", err)
	}
	return rs, nil
}

// Room returns the room with that id (store.ErrNotFound when missing). It
// blocks on the store.
func (s *Service) Room(ctx context.Context, id string) (store.Room, error) {
	r, err := s.st.Room(ctx, id)
	if err != nil {
		return store.Room{}, fmt.Errorf("rooms: room %q: %w", id, err)
	}
	return r, nil
}

// Members lists a room's memberships with the users' names, ordered by
// user id (store.ErrNotFound for a missing room). It blocks on the store.
func (s *Service) Members(ctx context.Context, roomID string) ([]MemberInfo, error) {
	ms, err := s.members(ctx, roomID)
	if err != nil {
		return nil, fmt.Errorf("rooms: members of %q: %w", roomID, err)
	}
	return ms, nil
}

func (s *Service) members(ctx context.Context, roomID string) ([]MemberInfo, error) {
	ms, err := s.st.Members(ctx, roomID)
	if err != nil {
		return nil, err
	}
	out := make([]MemberInfo, 0, len(ms))
	for _, m := range ms {
		u, err := s.st.UserByID(ctx, m.UserID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		out = append(out, MemberInfo{UserID: m.UserID, Name: u.Name, Role: m.Role})
	}
	return out, nil
}

// Add makes userID a member of roomID with role, or changes its role
// (store.ErrNotFound for a missing room or user, store.ErrInvalid for a
// direct room). It publishes nothing. It blocks on the store.
func (s *Service) Add(ctx context.Context, roomID, userID string, role store.Role) error {
	if err := s.st.AddMember(ctx, roomID, userID, role); err != nil {
		return fmt.Errorf("rooms: add %q to %q: %w", userID, roomID, err)
	}
	return nil
}

// Remove ends userID's membership (or invitation) of roomID and publishes
// the removed event, so that the user's connections leave the room. When
// publishing fails the membership is still gone and the error wraps
// ErrPublish. It blocks on the store and the broker.
func (s *Service) Remove(ctx context.Context, roomID, userID string) error {
	if err := s.st.RemoveMember(ctx, roomID, userID); err != nil {
		return fmt.Errorf("rooms: remove %q from %q: %w", userID, roomID, err)
	}
	if err := s.publishRemoved(ctx, roomID, userID); err != nil {
		return fmt.Errorf("rooms: remove %q from %q: %w", userID, roomID, err)
	}
	return nil
}

// publishRemoved publishes the removed event of userID in roomID; a
// failure is logged and returned wrapping ErrPublish.
func (s *Service) publishRemoved(ctx context.Context, roomID, userID string) error {
	if s.cfg.Publish == nil {
		return nil
	}
	data, err := json.Marshal(protocol.UserEvent{Type: protocol.TypeRemoved, User: userID, Room: roomID, Reason: protocol.ReasonRemoved})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPublish, err)
	}
	if err := s.cfg.Publish(ctx, protocol.UserSubject(s.cfg.Prefix, userID), data); err != nil {
		s.log.Warn("rooms: publishing a removal failed; the user's connections stay in the room until they reconnect",
			"room", roomID, "user", userID, "err", err)
		return fmt.Errorf("%w: %w", ErrPublish, err)
	}
	return nil
}

// PublicName checks the name of a public room: a valid room name
// (protocol.ValidRoom) outside the reserved prefix.
func PublicName(name string) error {
	if protocol.ValidRoom(name) != nil || !protocol.PublicRoom(name) {
		return fmt.Errorf("%w: a public room name is 1-%d characters of letters, digits, '-' and '_', not starting with %q",
			ErrInvalid, protocol.MaxRoomLen, protocol.ReservedRoomPrefix)
	}
	return nil
}

// Title checks a private room's title and returns it without leading and
// trailing white space: 1-MaxTitleLen runes of valid UTF-8 without control
// characters, line or paragraph separators, or bidirectional overrides and
// isolates (which could make a title read as another).
func Title(name string) (string, error) {
	bad := fmt.Errorf("%w: a room title is 1-%d characters without control characters", ErrInvalid, MaxTitleLen)
	if !utf8.ValidString(name) {
		return "", bad
	}
	for _, r := range name {
		if unicode.IsControl(r) || unicode.In(r, unicode.Zl, unicode.Zp) ||
			r >= 0x202A && r <= 0x202E || r >= 0x2066 && r <= 0x2069 || r == utf8.RuneError {
			return "", bad
		}
	}
	name = strings.TrimSpace(name)
	if n := utf8.RuneCountInString(name); n == 0 || n > MaxTitleLen {
		return "", bad
	}
	return name, nil
}

// idChars are the characters of the random part of room ids.
const idChars = "abcdefghijklmnopqrstuvwxyz0123456789"

// NewID returns prefix followed by IDRandomLen characters of [a-z0-9] from
// crypto/rand (about 103 bits). It is safe for concurrent use.
func NewID(prefix string) string {
	b := make([]byte, 0, len(prefix)+IDRandomLen)
	b = append(b, prefix...)
	var buf [64]byte
	for len(b) < cap(b) {
		if _, err := io.ReadFull(rand.Reader, buf[:]); err != nil {
			panic("rooms: crypto/rand failed: " + err.Error()) // never happens on supported systems
		}
		for _, c := range buf {
			if c >= 252 { // 252 = 7*36: reject to keep the choice uniform
				continue
			}
			b = append(b, idChars[int(c)%len(idChars)])
			if len(b) == cap(b) {
				break
			}
		}
	}
	return string(b)
}
