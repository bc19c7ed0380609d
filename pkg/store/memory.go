package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Memory is a Store held in this process, for tests and single-process
// tools. One mutex guards everything; no call blocks on anything but it.
type Memory struct {
	mu       sync.Mutex
	closed   bool
	users    map[string]User            // by ID
	keys     map[string]string          // Key -> user ID
	sessions map[string]Session         // by ID
	rooms    map[string]Room            // by ID
	direct   map[[2]string]string       // ordered pair -> room ID
	members  map[string]map[string]Role // room ID -> user ID -> role
	uploads  map[string]Upload          // by ID
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty Memory store.
func NewMemory() *Memory {
	return &Memory{
		users:    map[string]User{},
		keys:     map[string]string{},
		sessions: map[string]Session{},
		rooms:    map[string]Room{},
		direct:   map[[2]string]string{},
		members:  map[string]map[string]Role{},
		uploads:  map[string]Upload{},
	}
}

// lock takes the mutex after checking ctx and that the store is open; the
// caller unlocks when it returns nil.
func (m *Memory) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	return nil
}

// CreateUser implements Store.
func (m *Memory) CreateUser(ctx context.Context, u User) (User, error) {
	if err := checkUser(u); err != nil {
		return User{}, err
	}
	u.Created = micro(u.Created)
	if err := m.lock(ctx); err != nil {
		return User{}, err
	}
	defer m.mu.Unlock()
	if _, ok := m.users[u.ID]; ok {
		return User{}, fmt.Errorf("%w: user id %q", ErrExists, u.ID)
	}
	if _, ok := m.keys[u.Key]; ok {
		return User{}, fmt.Errorf("%w: user key %q", ErrExists, u.Key)
	}
	m.users[u.ID] = u
	m.keys[u.Key] = u.ID
	return u, nil
}

// UserByID implements Store.
func (m *Memory) UserByID(ctx context.Context, id string) (User, error) {
	if err := checkID("user id", id); err != nil {
		return User{}, err
	}
	if err := m.lock(ctx); err != nil {
		return User{}, err
	}
	defer m.mu.Unlock()
	u, ok := m.users[id]
	if !ok {
		return User{}, fmt.Errorf("%w: user %q", ErrNotFound, id)
	}
	return u, nil
}

// UserByKey implements Store.
func (m *Memory) UserByKey(ctx context.Context, key string) (User, error) {
	if err := check("user key", key, MaxKeyLen, true); err != nil {
		return User{}, err
	}
	if err := m.lock(ctx); err != nil {
		return User{}, err
	}
	defer m.mu.Unlock()
	id, ok := m.keys[key]
	if !ok {
		return User{}, fmt.Errorf("%w: user key %q", ErrNotFound, key)
	}
	return m.users[id], nil
}

// ListUsers implements Store.
func (m *Memory) ListUsers(ctx context.Context, after string, limit int) ([]User, error) {
	if err := check("after", after, MaxKeyLen, false); err != nil {
		return nil, err
	}
	if err := m.lock(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	var out []User
	for _, u := range m.users {
		if u.Key > after {
			out = append(out, u)
		}
	}
	slices.SortFunc(out, func(a, b User) int { return strings.Compare(a.Key, b.Key) })
	return out[:min(len(out), pageLimit(limit))], nil
}

// update applies f to the user, or gives ErrNotFound.
func (m *Memory) update(ctx context.Context, id string, f func(*User)) error {
	if err := checkID("user id", id); err != nil {
		return err
	}
	if err := m.lock(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	u, ok := m.users[id]
	if !ok {
		return fmt.Errorf("%w: user %q", ErrNotFound, id)
	}
	f(&u)
	m.users[id] = u
	return nil
}

// SetPassword implements Store.
func (m *Memory) SetPassword(ctx context.Context, userID, hash string) error {
	if err := check("password hash", hash, MaxHashLen, false); err != nil {
		return err
	}
	return m.update(ctx, userID, func(u *User) { u.PasswordHash = hash })
}

// SetBanned implements Store.
func (m *Memory) SetBanned(ctx context.Context, userID string, banned bool) error {
	return m.update(ctx, userID, func(u *User) { u.Banned = banned })
}

// DeleteUser implements Store.
func (m *Memory) DeleteUser(ctx context.Context, userID string) error {
	if err := checkID("user id", userID); err != nil {
		return err
	}
	if err := m.lock(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	u, ok := m.users[userID]
	if !ok {
		return fmt.Errorf("%w: user %q", ErrNotFound, userID)
	}
	delete(m.users, userID)
	delete(m.keys, u.Key)
	for id, s := range m.sessions {
		if s.UserID == userID {
			delete(m.sessions, id)
		}
	}
	for _, ms := range m.members {
		delete(ms, userID)
	}
	return nil
}

// CreateSession implements Store.
func (m *Memory) CreateSession(ctx context.Context, s Session) (Session, error) {
	if err := errorsJoin(checkID("session id", s.ID), checkID("user id", s.UserID)); err != nil {
		return Session{}, err
	}
	s.Created = micro(s.Created)
	s.Expires = s.Expires.UTC().Truncate(time.Microsecond)
	if err := m.lock(ctx); err != nil {
		return Session{}, err
	}
	defer m.mu.Unlock()
	if _, ok := m.sessions[s.ID]; ok {
		return Session{}, fmt.Errorf("%w: session", ErrExists)
	}
	if _, ok := m.users[s.UserID]; !ok {
		return Session{}, fmt.Errorf("%w: user %q", ErrNotFound, s.UserID)
	}
	m.sessions[s.ID] = s
	return s, nil
}

// Session implements Store.
func (m *Memory) Session(ctx context.Context, id string) (Session, error) {
	if err := checkID("session id", id); err != nil {
		return Session{}, err
	}
	if err := m.lock(ctx); err != nil {
		return Session{}, err
	}
	defer m.mu.Unlock()
	s, ok := m.sessions[id]
	if !ok || !time.Now().Before(s.Expires) {
		return Session{}, fmt.Errorf("%w: session", ErrNotFound)
	}
	return s, nil
}

// DeleteSession implements Store.
func (m *Memory) DeleteSession(ctx context.Context, id string) error {
	if err := checkID("session id", id); err != nil {
		return err
	}
	if err := m.lock(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if _, ok := m.sessions[id]; !ok {
		return fmt.Errorf("%w: session", ErrNotFound)
	}
	delete(m.sessions, id)
	return nil
}

// deleteSessions deletes the sessions for which drop is true.
func (m *Memory) deleteSessions(ctx context.Context, drop func(Session) bool) (int, error) {
	if err := m.lock(ctx); err != nil {
		return 0, err
	}
	defer m.mu.Unlock()
	n := 0
	for id, s := range m.sessions {
		if drop(s) {
			delete(m.sessions, id)
			n++
		}
	}
	return n, nil
}

// DeleteUserSessions implements Store.
func (m *Memory) DeleteUserSessions(ctx context.Context, userID string) (int, error) {
	if err := checkID("user id", userID); err != nil {
		return 0, err
	}
	return m.deleteSessions(ctx, func(s Session) bool { return s.UserID == userID })
}

// DeleteExpiredSessions implements Store.
func (m *Memory) DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error) {
	return m.deleteSessions(ctx, func(s Session) bool { return !now.Before(s.Expires) })
}

// CreateRoom implements Store.
func (m *Memory) CreateRoom(ctx context.Context, r Room) (Room, error) {
	if err := checkRoom(r); err != nil {
		return Room{}, err
	}
	r.Created = micro(r.Created)
	r.LastActive = r.Created
	if err := m.lock(ctx); err != nil {
		return Room{}, err
	}
	defer m.mu.Unlock()
	if _, ok := m.rooms[r.ID]; ok {
		return Room{}, fmt.Errorf("%w: room %q", ErrExists, r.ID)
	}
	ms := map[string]Role{}
	if r.Owner != "" {
		if _, ok := m.users[r.Owner]; !ok {
			return Room{}, fmt.Errorf("%w: user %q", ErrNotFound, r.Owner)
		}
		ms[r.Owner] = RoleOwner
	}
	m.rooms[r.ID] = r
	m.members[r.ID] = ms
	return r, nil
}

// Room implements Store.
func (m *Memory) Room(ctx context.Context, id string) (Room, error) {
	if err := checkID("room id", id); err != nil {
		return Room{}, err
	}
	if err := m.lock(ctx); err != nil {
		return Room{}, err
	}
	defer m.mu.Unlock()
	r, ok := m.rooms[id]
	if !ok {
		return Room{}, fmt.Errorf("%w: room %q", ErrNotFound, id)
	}
	return r, nil
}

// PublicRooms implements Store.
func (m *Memory) PublicRooms(ctx context.Context, after string, limit int) ([]Room, error) {
	if err := check("after", after, MaxIDLen, false); err != nil {
		return nil, err
	}
	if err := m.lock(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	var out []Room
	for _, r := range m.rooms {
		if r.Kind == KindPublic && r.ID > after {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b Room) int { return strings.Compare(a.ID, b.ID) })
	return out[:min(len(out), pageLimit(limit))], nil
}

// DirectRoom implements Store.
func (m *Memory) DirectRoom(ctx context.Context, a, b, newID string) (Room, bool, error) {
	if err := checkDirect(a, b, newID); err != nil {
		return Room{}, false, err
	}
	lo, hi := pair(a, b)
	if err := m.lock(ctx); err != nil {
		return Room{}, false, err
	}
	defer m.mu.Unlock()
	if id, ok := m.direct[[2]string{lo, hi}]; ok {
		return m.rooms[id], false, nil
	}
	for _, u := range []string{lo, hi} {
		if _, ok := m.users[u]; !ok {
			return Room{}, false, fmt.Errorf("%w: user %q", ErrNotFound, u)
		}
	}
	if _, ok := m.rooms[newID]; ok {
		return Room{}, false, fmt.Errorf("%w: room %q", ErrExists, newID)
	}
	now := micro(time.Time{})
	r := Room{ID: newID, Kind: KindDirect, Created: now, LastActive: now}
	m.rooms[newID] = r
	m.direct[[2]string{lo, hi}] = newID
	m.members[newID] = map[string]Role{lo: RoleMember, hi: RoleMember}
	return r, true, nil
}

// TouchRooms implements Store.
func (m *Memory) TouchRooms(ctx context.Context, rooms map[string]time.Time) error {
	for id := range rooms {
		if err := checkID("room id", id); err != nil {
			return err
		}
	}
	if err := m.lock(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	for id, t := range rooms {
		t = t.UTC().Truncate(time.Microsecond)
		if r, ok := m.rooms[id]; ok && t.After(r.LastActive) {
			r.LastActive = t
			m.rooms[id] = r
		}
	}
	return nil
}

// Touch implements Store.
func (m *Memory) Touch(ctx context.Context, roomID string, t time.Time) error {
	if err := checkID("room id", roomID); err != nil {
		return err
	}
	t = t.UTC().Truncate(time.Microsecond)
	if err := m.lock(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	r, ok := m.rooms[roomID]
	if !ok {
		return fmt.Errorf("%w: room %q", ErrNotFound, roomID)
	}
	if t.After(r.LastActive) {
		r.LastActive = t
		m.rooms[roomID] = r
	}
	return nil
}

// AddMember implements Store.
func (m *Memory) AddMember(ctx context.Context, roomID, userID string, role Role) error {
	if err := errorsJoin(checkID("room id", roomID), checkID("user id", userID), checkRole(role)); err != nil {
		return err
	}
	if err := m.lock(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	r, ok := m.rooms[roomID]
	if !ok {
		return fmt.Errorf("%w: room %q", ErrNotFound, roomID)
	}
	if r.Kind == KindDirect {
		return fmt.Errorf("%w: the members of direct room %q are fixed", ErrInvalid, roomID)
	}
	if _, ok := m.users[userID]; !ok {
		return fmt.Errorf("%w: user %q", ErrNotFound, userID)
	}
	m.members[roomID][userID] = role
	return nil
}

// RemoveMember implements Store.
func (m *Memory) RemoveMember(ctx context.Context, roomID, userID string) error {
	if err := errorsJoin(checkID("room id", roomID), checkID("user id", userID)); err != nil {
		return err
	}
	if err := m.lock(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if _, ok := m.members[roomID][userID]; !ok {
		return fmt.Errorf("%w: membership", ErrNotFound)
	}
	delete(m.members[roomID], userID)
	return nil
}

// Member implements Store.
func (m *Memory) Member(ctx context.Context, roomID, userID string) (Role, error) {
	if err := errorsJoin(checkID("room id", roomID), checkID("user id", userID)); err != nil {
		return "", err
	}
	if err := m.lock(ctx); err != nil {
		return "", err
	}
	defer m.mu.Unlock()
	role, ok := m.members[roomID][userID]
	if !ok {
		return "", fmt.Errorf("%w: membership", ErrNotFound)
	}
	return role, nil
}

// Members implements Store.
func (m *Memory) Members(ctx context.Context, roomID string) ([]Member, error) {
	if err := checkID("room id", roomID); err != nil {
		return nil, err
	}
	if err := m.lock(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	ms, ok := m.members[roomID]
	if !ok {
		return nil, fmt.Errorf("%w: room %q", ErrNotFound, roomID)
	}
	out := make([]Member, 0, len(ms))
	for u, role := range ms {
		out = append(out, Member{RoomID: roomID, UserID: u, Role: role})
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.UserID, b.UserID) })
	return out, nil
}

// RoomsOf implements Store.
func (m *Memory) RoomsOf(ctx context.Context, userID string) ([]Conversation, error) {
	if err := checkID("user id", userID); err != nil {
		return nil, err
	}
	if err := m.lock(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	var out []Conversation
	for id, ms := range m.members {
		if role, ok := ms[userID]; ok {
			out = append(out, Conversation{Room: m.rooms[id], Role: role})
		}
	}
	slices.SortFunc(out, compareConversations)
	return out, nil
}

// Close implements Store.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
