package account

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/livechat/livechat/internal/httpapi"
	"github.com/livechat/livechat/pkg/auth"
	"github.com/livechat/livechat/pkg/protocol"
	"github.com/livechat/livechat/pkg/store"
)

// The API's own errors (see httpapi for the shared ones).
var (
	errBadCredentials = httpapi.Errorf(http.StatusUnauthorized, "bad_credentials", "wrong name or password")
	errAccountClosed  = httpapi.Errorf(http.StatusForbidden, "account_closed", "this account is closed")
	errNameTaken      = httpapi.Errorf(http.StatusConflict, "name_taken", "that name is taken; choose another")
	errInvalidToken   = httpapi.Errorf(http.StatusUnauthorized, "invalid_token", "the token is not valid; get a new one")
)

// User is a user as the API shows it.
type User struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

func userJSON(u store.User) *User { return &User{ID: u.ID, Name: u.Name} }

// userAnswer is the body of sign-up and sign-in.
type userAnswer struct {
	User *User `json:"user"`
}

// meAnswer is the body of GET /api/account/me.
type meAnswer struct {
	User   *User `json:"user"`
	Guests bool  `json:"guests"`
}

// credentials is the body of sign-up and sign-in.
type credentials struct {
	Name     string `json:"name"`
	Password string `json:"password"`
}

// Handler returns the account API:
//
//	POST   /api/account/signup   {"name","password"} → 201 {"user"} + cookie
//	POST   /api/account/signin   {"name","password"} → 200 {"user"} + a new cookie
//	POST   /api/account/signout  → 204, the session ended
//	GET    /api/account/me       → 200 {"user":User|null,"guests":bool}
//	POST   /api/account/password {"old","new"} → 204 + a new cookie
//	DELETE /api/account          {"password"} → 204, the account deleted
//
// Every POST and DELETE from another origin (httpapi.SameOrigin with
// Config.AllowedOrigins) is refused with 403 cross_origin before anything
// else is done. Errors are httpapi's JSON errors. The handler is safe for
// concurrent use; a request blocks while it waits for a hashing slot (a
// few seconds at most, then 503) and on the store.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /api/account/signup", s.changes(s.signup))
	mux.Handle("POST /api/account/signin", s.changes(s.signin))
	mux.Handle("POST /api/account/signout", s.changes(s.signout))
	mux.Handle("GET /api/account/me", s.serve(s.me))
	mux.Handle("POST /api/account/password", s.changes(s.password))
	mux.Handle("DELETE /api/account", s.changes(s.deleteAccount))
	// JSON answers for the wrong method and an unknown path, instead of
	// the mux's plain text.
	for path, allow := range map[string]string{
		"/api/account/signup": "POST", "/api/account/signin": "POST", "/api/account/signout": "POST",
		"/api/account/me": "GET, HEAD", "/api/account/password": "POST", "/api/account": "DELETE",
	} {
		mux.HandleFunc(path, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Allow", allow)
			httpapi.WriteError(w, httpapi.Errorf(http.StatusMethodNotAllowed, "bad_method", "use "+allow))
		})
	}
	mux.HandleFunc("/api/account/", func(w http.ResponseWriter, _ *http.Request) {
		httpapi.WriteError(w, httpapi.ErrNotFound)
	})
	return mux
}

// changes serves a state-changing endpoint: a cross-origin request is
// refused before h runs.
func (s *Service) changes(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !httpapi.SameOrigin(r, s.cfg.AllowedOrigins) {
			httpapi.WriteError(w, httpapi.ErrCrossOrigin)
			return
		}
		if err := h(w, r); err != nil {
			httpapi.WriteError(w, err)
		}
	})
}

// serve serves a read-only endpoint.
func (s *Service) serve(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			httpapi.WriteError(w, err)
		}
	})
}

// unavailable logs a store failure and answers 503.
func (s *Service) unavailable(what string, err error) error {
	s.log.Error("account: "+what, "err", err)
	return httpapi.ErrUnavailable
}

// noContent answers 204.
func noContent(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// detached returns a context for the writes and publishing that must
// happen once a request's answer is decided, even if its client goes.
func detached(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(r.Context()), sideTimeout)
}

// userMessage is an auth error's text without its package prefix.
func userMessage(err error) string { return strings.TrimPrefix(err.Error(), "auth: ") }

// checkName trims what the user typed and returns the name and its key, or
// 400 invalid_name.
func checkName(name string) (string, string, error) {
	name = strings.TrimSpace(name)
	key, err := auth.NameKey(name)
	if err != nil {
		return "", "", httpapi.Errorf(http.StatusBadRequest, "invalid_name", userMessage(err))
	}
	return name, key, nil
}

// checkPassword applies the policy to a new password, or answers 400
// invalid_password with the rule.
func checkPassword(pw string) error {
	if err := auth.CheckPassword(pw); err != nil {
		return httpapi.Errorf(http.StatusBadRequest, "invalid_password", userMessage(err))
	}
	return nil
}

func (s *Service) signup(w http.ResponseWriter, r *http.Request) error {
	var in credentials
	if err := httpapi.ReadJSON(w, r, &in); err != nil {
		return err
	}
	name, key, err := checkName(in.Name)
	if err != nil {
		return err
	}
	if err := checkPassword(in.Password); err != nil {
		return err
	}
	if err := s.throttle(s.byAddress, s.clientAddr(r)); err != nil {
		return err
	}
	ctx := r.Context()
	if _, err := s.cfg.Store.UserByKey(ctx, key); err == nil {
		return errNameTaken
	} else if !errors.Is(err, store.ErrNotFound) {
		return s.unavailable("sign-up: look up the name", err)
	}
	hash, err := s.hashPassword(ctx, in.Password)
	if err != nil {
		return err
	}
	u, err := s.cfg.Store.CreateUser(ctx, store.User{ID: newUserID(), Name: name, Key: key, PasswordHash: hash})
	if errors.Is(err, store.ErrExists) {
		return errNameTaken
	}
	if err != nil {
		return s.unavailable("sign-up: create the user", err)
	}
	if err := s.startSession(w, r, u); err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusCreated, userAnswer{userJSON(u)})
	return nil
}

// hashPassword hashes pw in a hashing slot.
func (s *Service) hashPassword(ctx context.Context, pw string) (string, error) {
	release, err := s.acquireHash(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	hash, err := s.pw.hash(pw)
	if err != nil {
		// The policy was checked before: this is crypto/rand failing.
		s.log.Error("account: hash a password", "err", err)
		return "", httpapi.ErrInternal
	}
	return hash, nil
}

// verifyPassword checks pw against u's hash in a hashing slot; a nil u (no
// such user) does the same work and fails. A malformed stored hash is
// logged and fails like a wrong password.
func (s *Service) verifyPassword(ctx context.Context, u *store.User, pw string) (bool, error) {
	release, err := s.acquireHash(ctx)
	if err != nil {
		return false, err
	}
	defer release()
	if u == nil {
		return s.pw.verifyUnknown(pw), nil
	}
	ok, err := s.pw.verify(u.PasswordHash, pw)
	if errors.Is(err, auth.ErrMalformedHash) {
		if u.PasswordHash != "" { // a token user has none
			s.log.Error("account: malformed password hash in the store", "user", u.ID)
		}
		return s.pw.verifyUnknown(pw), nil
	}
	// Other errors are passwords the policy refuses (too long, NUL):
	// VerifyUnknown refuses them without hashing too.
	return ok && err == nil, nil
}

func (s *Service) signin(w http.ResponseWriter, r *http.Request) error {
	var in credentials
	if err := httpapi.ReadJSON(w, r, &in); err != nil {
		return err
	}
	if err := s.throttle(s.byAddress, s.clientAddr(r)); err != nil {
		return err
	}
	ctx := r.Context()
	// An invalid name is no account: it takes the unknown user's path,
	// throttled by address only.
	var u *store.User
	if _, key, err := checkName(in.Name); err == nil {
		if err := s.throttle(s.byAccount, key); err != nil {
			return err
		}
		found, err := s.cfg.Store.UserByKey(ctx, key)
		if err == nil {
			u = &found
		} else if !errors.Is(err, store.ErrNotFound) {
			return s.unavailable("sign-in: look up the user", err)
		}
	}
	ok, err := s.verifyPassword(ctx, u, in.Password)
	if err != nil {
		return err
	}
	if !ok {
		return errBadCredentials
	}
	if u.Banned {
		return errAccountClosed
	}
	if s.pw.needsRehash(u.PasswordHash) {
		s.rehash(ctx, u, in.Password)
	}
	if err := s.startSession(w, r, *u); err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, userAnswer{userJSON(*u)})
	return nil
}

// rehash stores a hash of pw at the current parameters for u, whose hash
// is weaker. A failure is logged: the old hash still works.
func (s *Service) rehash(ctx context.Context, u *store.User, pw string) {
	if auth.CheckPassword(pw) != nil {
		return // under a policy raised since: keep it until the user changes it
	}
	hash, err := s.hashPassword(ctx, pw)
	if err != nil {
		return
	}
	if err := s.cfg.Store.SetPassword(ctx, u.ID, hash); err != nil {
		s.log.Warn("account: store a rehashed password", "user", u.ID, "err", err)
		return
	}
	u.PasswordHash = hash
}

// startSession ends the session r carries, if any (rotation: a cookie value
// from before a sign-in is never valid after it), makes a new one for u and
// sets its cookie.
func (s *Service) startSession(w http.ResponseWriter, r *http.Request, u store.User) error {
	ctx, cancel := detached(r)
	defer cancel()
	if err := s.endSession(ctx, r); err != nil {
		return err // the old session must not outlive a sign-in
	}
	value, sid := newSession()
	now := s.now()
	if _, err := s.cfg.Store.CreateSession(ctx, store.Session{ID: sid, UserID: u.ID, Created: now, Expires: now.Add(s.cfg.SessionTTL)}); err != nil {
		return s.unavailable("create a session", err)
	}
	http.SetCookie(w, &http.Cookie{
		Name:     CookieName,
		Value:    value,
		Path:     "/",
		MaxAge:   int(s.cfg.SessionTTL / time.Second),
		HttpOnly: true,
		Secure:   s.secure(r),
		SameSite: http.SameSiteLaxMode,
	})
	return nil
}

// endSession deletes the session of r's cookie, if there is one, and
// publishes its sign-out. It reports a store failure.
func (s *Service) endSession(ctx context.Context, r *http.Request) error {
	value, ok := sessionCookie(r)
	if !ok {
		return nil
	}
	sid, ok := sessionID(value)
	if !ok {
		return nil
	}
	ss, err := s.cfg.Store.Session(ctx, sid)
	if err == nil {
		err = s.cfg.Store.DeleteSession(ctx, sid)
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return s.unavailable("end a session", err)
	}
	_ = s.publish(ctx, protocol.UserEvent{Type: protocol.TypeRevoke, User: ss.UserID, Session: sid, Reason: protocol.ReasonSignedOut})
	return nil
}

// expireCookie tells the browser to drop the session cookie.
func (s *Service) expireCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: s.secure(r), SameSite: http.SameSiteLaxMode})
}

func (s *Service) signout(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := detached(r)
	defer cancel()
	if err := s.endSession(ctx, r); err != nil {
		return err
	}
	s.expireCookie(w, r)
	noContent(w)
	return nil
}

func (s *Service) me(w http.ResponseWriter, r *http.Request) error {
	id, err := s.Authenticate(r)
	var u *User
	switch {
	case err == nil:
		u = &User{ID: id.UserID, Name: id.Name}
	case errors.Is(err, auth.ErrInvalidToken):
		return errInvalidToken
	case errors.Is(err, auth.ErrSessionEnded), errors.Is(err, auth.ErrAccountClosed):
		if _, tok := requestToken(r); !tok {
			s.expireCookie(w, r) // a dead cookie: let the browser forget it
		}
	case errors.Is(err, auth.ErrNoCredentials):
	default:
		return s.unavailable("me", err)
	}
	httpapi.WriteJSON(w, http.StatusOK, meAnswer{User: u, Guests: s.cfg.Guests})
	return nil
}

// signedIn returns the account user of r's session cookie (tokens do not
// count: they have no password), or 401 signed_out, 403 account_closed.
func (s *Service) signedIn(r *http.Request) (store.User, error) {
	value, ok := sessionCookie(r)
	if !ok {
		return store.User{}, httpapi.ErrSignedOut
	}
	_, u, err := s.session(r.Context(), value)
	switch {
	case err == nil:
		return u, nil
	case errors.Is(err, auth.ErrSessionEnded):
		return store.User{}, httpapi.ErrSignedOut
	case errors.Is(err, auth.ErrAccountClosed):
		return store.User{}, errAccountClosed
	}
	return store.User{}, s.unavailable("look up the session", err)
}

// checkOwnPassword throttles and verifies the password of a signed-in
// user before a password change or a deletion: 401 bad_credentials when
// it is wrong.
func (s *Service) checkOwnPassword(r *http.Request, u store.User, pw string) error {
	if err := s.throttle(s.byAddress, s.clientAddr(r)); err != nil {
		return err
	}
	if err := s.throttle(s.byAccount, u.Key); err != nil {
		return err
	}
	ok, err := s.verifyPassword(r.Context(), &u, pw)
	if err != nil {
		return err
	}
	if !ok {
		return errBadCredentials
	}
	return nil
}

func (s *Service) password(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Old string `json:"old"`
		New string `json:"new"`
	}
	if err := httpapi.ReadJSON(w, r, &in); err != nil {
		return err
	}
	u, err := s.signedIn(r)
	if err != nil {
		return err
	}
	if err := checkPassword(in.New); err != nil {
		return err
	}
	if err := s.checkOwnPassword(r, u, in.Old); err != nil {
		return err
	}
	hash, err := s.hashPassword(r.Context(), in.New)
	if err != nil {
		return err
	}
	ctx, cancel := detached(r)
	defer cancel()
	if err := s.cfg.Store.SetPassword(ctx, u.ID, hash); err != nil {
		return s.unavailable("password: store the hash", err)
	}
	if _, err := s.cfg.Store.DeleteUserSessions(ctx, u.ID); err != nil {
		return s.unavailable("password: end the sessions", err)
	}
	_ = s.publish(ctx, protocol.UserEvent{Type: protocol.TypeRevoke, User: u.ID, Reason: protocol.ReasonPasswordChanged})
	if err := s.startSession(w, r, u); err != nil {
		return err
	}
	noContent(w)
	return nil
}

func (s *Service) deleteAccount(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Password string `json:"password"`
	}
	if err := httpapi.ReadJSON(w, r, &in); err != nil {
		return err
	}
	u, err := s.signedIn(r)
	if err != nil {
		return err
	}
	if err := s.checkOwnPassword(r, u, in.Password); err != nil {
		return err
	}
	ctx, cancel := detached(r)
	defer cancel()
	if err := s.cfg.Store.DeleteUser(ctx, u.ID); errors.Is(err, store.ErrNotFound) {
		return httpapi.ErrSignedOut
	} else if err != nil {
		return s.unavailable("delete the account", err)
	}
	_ = s.publish(ctx, protocol.UserEvent{Type: protocol.TypeRevoke, User: u.ID, Reason: protocol.ReasonDeleted})
	s.expireCookie(w, r)
	noContent(w)
	return nil
}
