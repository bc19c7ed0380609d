package rooms

import (
	"context"
	"errors"
	"hash/maphash"
	"net/http"
	"strings"

	"github.com/livechat/livechat/internal/httpapi"
	"github.com/livechat/livechat/pkg/auth"
	"github.com/livechat/livechat/pkg/protocol"
	"github.com/livechat/livechat/pkg/store"
)

// Errors of the API besides httpapi's.
var (
	errForbidden = httpapi.Errorf(http.StatusForbidden, "forbidden", "only the room's owner may do that")
	errNoUser    = httpapi.Errorf(http.StatusNotFound, "no_user", "no user of that name")
	errMember    = httpapi.Errorf(http.StatusConflict, "exists", "that user is already a member or invited")
	errSelf      = httpapi.Errorf(http.StatusBadRequest, "bad_request", "a direct chat needs another user than yourself")
	errLeaveDM   = httpapi.Errorf(http.StatusBadRequest, "bad_request", "a direct chat cannot be left")
	errRestrict  = httpapi.Errorf(http.StatusForbidden, "forbidden", "this token is limited to some rooms and cannot make new ones")
	errKind      = httpapi.Errorf(http.StatusBadRequest, "bad_request", `kind must be "public" or "private"`)
	errAfter     = httpapi.Errorf(http.StatusBadRequest, "bad_request", "after must be a room id")
	errTokenUser = httpapi.Errorf(http.StatusBadRequest, "bad_request", "this token's user id is too long to keep rooms for")
)

// Room is a room as the API shows it.
type Room struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Kind string `json:"kind"`
	// LastActive is the time of the room's latest recorded message (or of
	// its creation), in Unix milliseconds.
	LastActive int64 `json:"last_active"`
}

// User is a user as the API shows it.
type User struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Member is a membership as GET /api/rooms/{id}/members shows it.
type Member struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Role string `json:"role"`
}

// Conversation is one entry of GET /api/conversations.
type Conversation struct {
	Room Room   `json:"room"`
	Role string `json:"role"`
	// Peer is the other user of a direct room (absent for other rooms,
	// and when the other user's account is gone).
	Peer *User `json:"peer,omitempty"`
}

func roomJSON(r store.Room) Room {
	return Room{ID: r.ID, Name: r.Name, Kind: string(r.Kind), LastActive: r.LastActive.UnixMilli()}
}

// Handler returns the JSON API:
//
//	GET    /api/rooms[?after=ID]               the public directory (anyone)
//	POST   /api/rooms                          {"name","kind"} make a room
//	GET    /api/conversations                  the caller's rooms, most recently active first
//	GET    /api/rooms/{id}/members             members (owner or member only)
//	POST   /api/rooms/{id}/members             {"name"} invite (owner only)
//	DELETE /api/rooms/{id}/members/{user}      remove (owner), leave or decline (self)
//	POST   /api/rooms/{id}/accept              accept an invitation
//	POST   /api/direct                         {"name"} get or make a direct chat
//
// Every request that changes state is refused with 403 cross_origin unless
// it is same-origin (httpapi.SameOrigin with Config.AllowedOrigins), before
// anything else is looked at. Everything but the directory needs a
// signed-in or token user (401 signed_out otherwise). A room the caller may
// not see and a missing room give the same 404 not_found, byte for byte.
// The handler is safe for concurrent use.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /api/rooms", s.api(false, s.listRooms))
	mux.Handle("POST /api/rooms", s.api(true, s.createRoom))
	mux.Handle("GET /api/conversations", s.api(true, s.conversations))
	mux.Handle("GET /api/rooms/{id}/members", s.api(true, s.listMembers))
	mux.Handle("POST /api/rooms/{id}/members", s.api(true, s.invite))
	mux.Handle("DELETE /api/rooms/{id}/members/{user}", s.api(true, s.removeMember))
	mux.Handle("POST /api/rooms/{id}/accept", s.api(true, s.accept))
	mux.Handle("POST /api/direct", s.api(true, s.direct))
	return mux
}

// apiFunc serves one endpoint for identity id (zero for the directory) and
// returns the error to answer with.
type apiFunc func(w http.ResponseWriter, r *http.Request, id auth.Identity) error

// api wraps an endpoint: same-origin check, identity, error answer.
func (s *Service) api(needUser bool, fn apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store") // also on 204 answers
		if httpapi.Changes(r) && !httpapi.SameOrigin(r, s.cfg.AllowedOrigins) {
			httpapi.WriteError(w, httpapi.ErrCrossOrigin)
			return
		}
		var id auth.Identity
		if needUser {
			var err error
			if id, err = s.identify(r); err != nil {
				s.fail(w, r, err)
				return
			}
		}
		if err := fn(w, r, id); err != nil {
			s.fail(w, r, err)
		}
	})
}

// identify returns the request's signed-in or token user, or
// httpapi.ErrSignedOut.
func (s *Service) identify(r *http.Request) (auth.Identity, error) {
	id, err := s.cfg.Identify(r)
	switch {
	case err == nil && !id.Guest() && id.UserID != "":
		return id, nil
	case err == nil, errors.Is(err, auth.ErrNoCredentials), errors.Is(err, auth.ErrSessionEnded),
		errors.Is(err, auth.ErrAccountClosed), errors.Is(err, auth.ErrInvalidToken):
		return auth.Identity{}, httpapi.ErrSignedOut
	}
	return auth.Identity{}, err
}

// fail answers err: an *httpapi.Error as itself, anything else (the store
// or the identity service failing) as 503 unavailable, logged.
func (s *Service) fail(w http.ResponseWriter, r *http.Request, err error) {
	var e *httpapi.Error
	if !errors.As(err, &e) {
		if r.Context().Err() == nil {
			s.log.Warn("rooms: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		}
		e = httpapi.ErrUnavailable
	}
	httpapi.WriteError(w, e)
}

func (s *Service) listRooms(w http.ResponseWriter, r *http.Request, _ auth.Identity) error {
	after := r.URL.Query().Get("after")
	if after != "" && protocol.ValidRoom(after) != nil {
		return errAfter
	}
	rs, err := s.st.PublicRooms(r.Context(), after, directoryPage)
	if err != nil {
		return err
	}
	out := make([]Room, 0, len(rs))
	for _, rm := range rs {
		out = append(out, roomJSON(rm))
	}
	httpapi.WriteJSON(w, http.StatusOK, struct {
		Rooms []Room `json:"rooms"`
	}{out})
	return nil
}

func (s *Service) createRoom(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	var req struct {
		Name string `json:"name"`
		Kind string `json:"kind"`
	}
	if err := httpapi.ReadJSON(w, r, &req); err != nil {
		return err
	}
	kind := store.Kind(req.Kind)
	if kind != store.KindPublic && kind != store.KindPrivate {
		return errKind
	}
	if id.Rooms != nil {
		return errRestrict
	}
	// A public room belongs to nobody (anyone may enter it; membership
	// would only put it in the creator's conversations for good); the
	// creator of a private room is its owner.
	ctx, owner := r.Context(), ""
	if kind == store.KindPrivate {
		if err := s.ensureUser(ctx, id); err != nil {
			return err
		}
		owner = id.UserID
	}
	rm, err := s.create(ctx, req.Name, kind, owner)
	switch {
	case errors.Is(err, ErrInvalid):
		return httpapi.Errorf(http.StatusBadRequest, "invalid_room", strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": "))
	case errors.Is(err, store.ErrExists):
		return httpapi.Errorf(http.StatusConflict, "exists", "a room of that name exists")
	case errors.Is(err, store.ErrNotFound): // the caller's account is gone
		return httpapi.ErrSignedOut
	case err != nil:
		return err
	}
	httpapi.WriteJSON(w, http.StatusCreated, struct {
		Room Room `json:"room"`
	}{roomJSON(rm)})
	return nil
}

func (s *Service) conversations(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	ctx := r.Context()
	cs, err := s.st.RoomsOf(ctx, id.UserID)
	if err != nil && !errors.Is(err, store.ErrInvalid) { // an id the store cannot keep has no rooms
		return err
	}
	out := make([]Conversation, 0, len(cs))
	for _, c := range cs {
		if !id.AllowsRoom(c.Room.ID) {
			continue
		}
		conv := Conversation{Room: roomJSON(c.Room), Role: string(c.Role)}
		if c.Room.Kind == store.KindDirect {
			if conv.Peer, err = s.peer(ctx, c.Room.ID, id.UserID); err != nil {
				return err
			}
		}
		out = append(out, conv)
	}
	httpapi.WriteJSON(w, http.StatusOK, struct {
		Conversations []Conversation `json:"conversations"`
	}{out})
	return nil
}

// peer returns the other user of a direct room, or nil when it is gone.
func (s *Service) peer(ctx context.Context, roomID, self string) (*User, error) {
	ms, err := s.members(ctx, roomID)
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		if m.UserID != self && m.Name != "" {
			return &User{ID: m.UserID, Name: m.Name}, nil
		}
	}
	return nil, nil
}

// role returns the caller's role in the room of the request's path, or
// httpapi.ErrNotFound when the room is missing, public, outside a token's
// restriction, or the caller is not in it: one answer for all of them.
func (s *Service) role(ctx context.Context, id auth.Identity, room string) (store.Role, error) {
	if protocol.ValidRoom(room) != nil || protocol.PublicRoom(room) || !id.AllowsRoom(room) {
		return "", httpapi.ErrNotFound
	}
	role, err := s.st.Member(ctx, room, id.UserID)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
		return "", httpapi.ErrNotFound
	}
	return role, err
}

func (s *Service) listMembers(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	ctx, room := r.Context(), r.PathValue("id")
	role, err := s.role(ctx, id, room)
	if err != nil {
		return err
	}
	if role != store.RoleOwner && role != store.RoleMember {
		return httpapi.ErrNotFound
	}
	ms, err := s.members(ctx, room)
	if errors.Is(err, store.ErrNotFound) {
		return httpapi.ErrNotFound
	}
	if err != nil {
		return err
	}
	out := make([]Member, 0, len(ms))
	for _, m := range ms {
		out = append(out, Member{ID: m.UserID, Name: m.Name, Role: string(m.Role)})
	}
	httpapi.WriteJSON(w, http.StatusOK, struct {
		Members []Member `json:"members"`
	}{out})
	return nil
}

func (s *Service) invite(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	var req struct {
		Name string `json:"name"`
	}
	if err := httpapi.ReadJSON(w, r, &req); err != nil {
		return err
	}
	ctx, room := r.Context(), r.PathValue("id")
	unlock := s.lockRoom(room)
	defer unlock()
	role, err := s.role(ctx, id, room)
	switch {
	case err != nil:
		return err
	case role == store.RoleMember:
		return errForbidden
	case role != store.RoleOwner:
		return httpapi.ErrNotFound
	}
	u, err := s.userByName(ctx, req.Name)
	if err != nil {
		return err
	}
	switch _, err := s.st.Member(ctx, room, u.ID); {
	case err == nil:
		return errMember
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	if err := s.st.AddMember(ctx, room, u.ID, store.RoleInvited); err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusCreated, struct {
		Member Member `json:"member"`
	}{Member{ID: u.ID, Name: u.Name, Role: string(store.RoleInvited)}})
	return nil
}

func (s *Service) removeMember(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	ctx, room, target := r.Context(), r.PathValue("id"), r.PathValue("user")
	unlock := s.lockRoom(room)
	defer unlock()
	role, err := s.role(ctx, id, room)
	if err != nil {
		return err
	}
	if target != id.UserID {
		switch role {
		case store.RoleOwner:
		case store.RoleMember:
			return errForbidden
		default: // an invitation is not a membership
			return httpapi.ErrNotFound
		}
	}
	rm, err := s.st.Room(ctx, room)
	if errors.Is(err, store.ErrNotFound) {
		return httpapi.ErrNotFound
	}
	if err != nil {
		return err
	}
	if rm.Kind == store.KindDirect {
		return errLeaveDM
	}
	err = s.st.RemoveMember(ctx, room, target)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
		return httpapi.ErrNotFound
	}
	if err != nil {
		return err
	}
	// The membership is gone whatever happens to the event: publishing
	// must not stop when the client hangs up, and its failure is logged.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	_ = s.publishRemoved(pctx, room, target)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Service) accept(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	ctx, room := r.Context(), r.PathValue("id")
	unlock := s.lockRoom(room)
	defer unlock()
	role, err := s.role(ctx, id, room)
	if err != nil {
		return err
	}
	if role != store.RoleInvited {
		return httpapi.ErrNotFound
	}
	if err := s.st.AddMember(ctx, room, id.UserID, store.RoleMember); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Service) direct(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	var req struct {
		Name string `json:"name"`
	}
	if err := httpapi.ReadJSON(w, r, &req); err != nil {
		return err
	}
	if id.Rooms != nil {
		return errRestrict
	}
	ctx := r.Context()
	peer, err := s.userByName(ctx, req.Name)
	if err != nil {
		return err
	}
	if peer.ID == id.UserID {
		return errSelf
	}
	if err := s.ensureUser(ctx, id); err != nil {
		return err
	}
	var (
		rm      store.Room
		created bool
	)
	for range 3 { // a taken random id is not expected; retry anyway
		rm, created, err = s.st.DirectRoom(ctx, id.UserID, peer.ID, NewID(protocol.DirectRoomPrefix))
		if !errors.Is(err, store.ErrExists) {
			break
		}
	}
	switch {
	case errors.Is(err, store.ErrNotFound): // one of the two accounts is gone
		return httpapi.ErrSignedOut
	case err != nil:
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	httpapi.WriteJSON(w, status, struct {
		Room Room `json:"room"`
		Peer User `json:"peer"`
	}{roomJSON(rm), User{ID: peer.ID, Name: peer.Name}})
	return nil
}

// userByName finds an account that may be invited or messaged, by name:
// errNoUser for an invalid, unknown or banned name.
func (s *Service) userByName(ctx context.Context, name string) (store.User, error) {
	key, err := auth.NameKey(strings.TrimSpace(name))
	if err != nil {
		return store.User{}, errNoUser
	}
	u, err := s.st.UserByKey(ctx, key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.User{}, errNoUser
	case err != nil:
		return store.User{}, err
	case u.Banned:
		return store.User{}, errNoUser
	}
	return u, nil
}

// ensureUser gives a token user the store row it needs to own or join a
// room (accounts have one already).
func (s *Service) ensureUser(ctx context.Context, id auth.Identity) error {
	if id.Kind != auth.KindToken {
		return nil
	}
	switch _, err := s.st.UserByID(ctx, id.UserID); {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrInvalid):
		return errTokenUser
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	_, err := s.st.CreateUser(ctx, store.User{ID: id.UserID, Key: "token:" + id.UserID, Name: id.Name, Created: s.cfg.Now()})
	switch {
	case errors.Is(err, store.ErrInvalid): // a subject the store cannot keep (over store.MaxIDLen bytes)
		return errTokenUser
	case err != nil && !errors.Is(err, store.ErrExists):
		return err
	}
	return nil
}

// lockRoom locks the stripe of room in Service.roomLocks and returns the
// unlock function.
func (s *Service) lockRoom(room string) func() {
	m := &s.roomLocks[maphash.String(s.lockSeed, room)%uint64(len(s.roomLocks))]
	m.Lock()
	return m.Unlock
}
