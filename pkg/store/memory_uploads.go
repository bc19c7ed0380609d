package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// CreateUpload implements Store.
func (m *Memory) CreateUpload(ctx context.Context, u Upload) (Upload, error) {
	if err := checkUpload(u); err != nil {
		return Upload{}, err
	}
	u.Created = micro(u.Created)
	if err := m.lock(ctx); err != nil {
		return Upload{}, err
	}
	defer m.mu.Unlock()
	if _, ok := m.uploads[u.ID]; ok {
		return Upload{}, fmt.Errorf("%w: upload %q", ErrExists, u.ID)
	}
	m.uploads[u.ID] = u
	return u, nil
}

// Upload implements Store.
func (m *Memory) Upload(ctx context.Context, id string) (Upload, error) {
	if err := checkID("upload id", id); err != nil {
		return Upload{}, err
	}
	if err := m.lock(ctx); err != nil {
		return Upload{}, err
	}
	defer m.mu.Unlock()
	u, ok := m.uploads[id]
	if !ok {
		return Upload{}, fmt.Errorf("%w: upload %q", ErrNotFound, id)
	}
	return u, nil
}

// AttachUploads implements Store. It checks every id before changing any.
func (m *Memory) AttachUploads(ctx context.Context, userID, room, messageID string, ids []string) ([]Upload, error) {
	if err := checkAttach(userID, room, messageID, ids); err != nil {
		return nil, err
	}
	if err := m.lock(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	out := make([]Upload, len(ids))
	for i, id := range ids {
		u, ok := m.uploads[id]
		if !ok || u.UserID != userID || u.Room != room {
			return nil, fmt.Errorf("%w: upload %q of that user in that room", ErrNotFound, id)
		}
		out[i] = u
	}
	for i := range out {
		if out[i].Message == "" {
			out[i].Message = messageID
			m.uploads[out[i].ID] = out[i]
		}
	}
	return out, nil
}

// DeleteUpload implements Store.
func (m *Memory) DeleteUpload(ctx context.Context, id string) error {
	if err := checkID("upload id", id); err != nil {
		return err
	}
	if err := m.lock(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if _, ok := m.uploads[id]; !ok {
		return fmt.Errorf("%w: upload %q", ErrNotFound, id)
	}
	delete(m.uploads, id)
	return nil
}

// UploadUsage implements Store.
func (m *Memory) UploadUsage(ctx context.Context, userID string) (int, int64, error) {
	if err := checkID("user id", userID); err != nil {
		return 0, 0, err
	}
	if err := m.lock(ctx); err != nil {
		return 0, 0, err
	}
	defer m.mu.Unlock()
	n, total := 0, int64(0)
	for _, u := range m.uploads {
		if u.UserID == userID {
			n++
			total += u.Size
		}
	}
	return n, total, nil
}

// StaleUploads implements Store.
func (m *Memory) StaleUploads(ctx context.Context, before time.Time, limit int) ([]Upload, error) {
	before = before.UTC().Truncate(time.Microsecond) // as stored by the SQL backends
	if err := m.lock(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	var out []Upload
	for _, u := range m.uploads {
		if u.Message == "" && u.Created.Before(before) {
			out = append(out, u)
		}
	}
	slices.SortFunc(out, compareStale)
	return out[:min(len(out), pageLimit(limit))], nil
}

// MessageUploads implements Store.
func (m *Memory) MessageUploads(ctx context.Context, room, messageID string) ([]Upload, error) {
	if err := errorsJoin(checkID("room id", room), checkID("message id", messageID)); err != nil {
		return nil, err
	}
	if err := m.lock(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	var out []Upload
	for _, u := range m.uploads {
		if u.Room == room && u.Message == messageID {
			out = append(out, u)
		}
	}
	slices.SortFunc(out, func(a, b Upload) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}
