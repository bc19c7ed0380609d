package account

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/livechat/livechat/pkg/auth"
	"github.com/livechat/livechat/pkg/protocol"
	"github.com/livechat/livechat/pkg/store"
)

// publish sends ev on its user's subject (Config.Publish). A failure is
// logged and returned; the store change it follows stays.
func (s *Service) publish(ctx context.Context, ev protocol.UserEvent) error {
	if s.cfg.Publish == nil {
		return nil
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("account: encode a user event: %w", err)
	}
	subject := protocol.UserSubject(s.cfg.Prefix, ev.User)
	if err := s.cfg.Publish(ctx, subject, data); err != nil {
		s.log.Error("account: publish a revocation", "subject", subject, "reason", ev.Reason, "err", err)
		return fmt.Errorf("account: publish the %s revocation of user %s: %w", ev.Reason, ev.User, err)
	}
	return nil
}

// AddUser creates an account (the operator's `livechat users add`): name
// is trimmed and must be a valid account name (auth.ErrInvalidUserName),
// password must meet the policy (auth.ErrPassword*), and no account may
// hold the name's key (auth.ErrNameTaken). The returned user has no
// PasswordHash. It blocks for one hash (waiting for a hashing slot) and
// the store, and is safe for concurrent use.
func (s *Service) AddUser(ctx context.Context, name, password string) (store.User, error) {
	name = strings.TrimSpace(name)
	key, err := auth.NameKey(name)
	if err != nil {
		return store.User{}, fmt.Errorf("account: %w", err)
	}
	if err := auth.CheckPassword(password); err != nil {
		return store.User{}, fmt.Errorf("account: %w", err)
	}
	if _, err := s.cfg.Store.UserByKey(ctx, key); err == nil {
		return store.User{}, fmt.Errorf("account: name %q: %w", name, auth.ErrNameTaken)
	} else if !errors.Is(err, store.ErrNotFound) {
		return store.User{}, fmt.Errorf("account: look up the name: %w", err)
	}
	release, err := s.acquireHash(ctx)
	if err != nil {
		return store.User{}, fmt.Errorf("account: %w", err)
	}
	hash, err := s.pw.hash(password)
	release()
	if err != nil {
		return store.User{}, fmt.Errorf("account: %w", err)
	}
	u, err := s.cfg.Store.CreateUser(ctx, store.User{ID: newUserID(), Name: name, Key: key, PasswordHash: hash})
	if errors.Is(err, store.ErrExists) {
		return store.User{}, fmt.Errorf("account: name %q: %w", name, auth.ErrNameTaken)
	}
	if err != nil {
		return store.User{}, fmt.Errorf("account: create the user: %w", err)
	}
	u.PasswordHash = ""
	return u, nil
}

// Users returns up to limit users (limit <= 0 or > store.MaxPage means
// store.MaxPage) ordered by Key, after the Key after ("" for the first
// page; pass the last user's Key for the next). Their PasswordHash is
// cleared. It blocks on the store and is safe for concurrent use.
func (s *Service) Users(ctx context.Context, after string, limit int) ([]store.User, error) {
	us, err := s.cfg.Store.ListUsers(ctx, after, limit)
	if err != nil {
		return nil, fmt.Errorf("account: list users: %w", err)
	}
	for i := range us {
		us[i].PasswordHash = ""
	}
	return us, nil
}

// UserByName returns the account holding name's key ("ALICE" finds
// "alice"), without its PasswordHash: store.ErrNotFound (wrapped) when
// none does, auth.ErrInvalidUserName for a name no account may hold. It
// blocks on the store and is safe for concurrent use.
func (s *Service) UserByName(ctx context.Context, name string) (store.User, error) {
	key, err := auth.NameKey(strings.TrimSpace(name))
	if err != nil {
		return store.User{}, fmt.Errorf("account: %w", err)
	}
	u, err := s.cfg.Store.UserByKey(ctx, key)
	if err != nil {
		return store.User{}, fmt.Errorf("account: user %q: %w", name, err)
	}
	u.PasswordHash = ""
	return u, nil
}

// SetBanned bans or unbans a user (an account, or a token user's row). A
// ban deletes the user's sessions and publishes the revocation (reason
// banned) that closes its connections everywhere; a banned user cannot
// sign in, and its tokens are refused. Errors: store.ErrNotFound (wrapped)
// for an unknown user, a store error, or a failed publish (the ban stays).
// It blocks on the store and the broker and is safe for concurrent use.
func (s *Service) SetBanned(ctx context.Context, userID string, banned bool) error {
	if err := s.cfg.Store.SetBanned(ctx, userID, banned); err != nil {
		return fmt.Errorf("account: ban user %s: %w", userID, err)
	}
	if !banned {
		return nil
	}
	if _, err := s.cfg.Store.DeleteUserSessions(ctx, userID); err != nil {
		return fmt.Errorf("account: end the sessions of user %s: %w", userID, err)
	}
	return s.publish(ctx, protocol.UserEvent{Type: protocol.TypeRevoke, User: userID, Reason: protocol.ReasonBanned})
}

// DeleteUser deletes a user with its sessions and memberships and
// publishes the revocation (reason deleted). Errors: store.ErrNotFound
// (wrapped) for an unknown user, a store error, or a failed publish (the
// deletion stays). It blocks on the store and the broker and is safe for
// concurrent use.
func (s *Service) DeleteUser(ctx context.Context, userID string) error {
	if err := s.cfg.Store.DeleteUser(ctx, userID); err != nil {
		return fmt.Errorf("account: delete user %s: %w", userID, err)
	}
	return s.publish(ctx, protocol.UserEvent{Type: protocol.TypeRevoke, User: userID, Reason: protocol.ReasonDeleted})
}

// SweepSessions deletes the sessions expired now and returns how many
// there were; call it periodically (expired sessions are refused anyway).
// It blocks on the store and is safe for concurrent use.
func (s *Service) SweepSessions(ctx context.Context) (int, error) {
	n, err := s.cfg.Store.DeleteExpiredSessions(ctx, s.now())
	if err != nil {
		return 0, fmt.Errorf("account: sweep sessions: %w", err)
	}
	return n, nil
}
