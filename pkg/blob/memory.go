package blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
)

// Memory is a Store in this process's memory, for tests. Put reads the
// whole blob into memory before storing it (still refusing past max).
type Memory struct {
	mu     sync.Mutex
	closed bool
	blobs  map[string]memBlob
}

type memBlob struct {
	info Info
	data []byte // never modified once stored
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty Memory store.
func NewMemory() *Memory { return &Memory{blobs: make(map[string]memBlob)} }

// Put implements Store.
func (m *Memory) Put(ctx context.Context, id string, r io.Reader, max int64) (Info, error) {
	if err := checkPut(id, max); err != nil {
		return Info{}, err
	}
	if _, err := m.Stat(ctx, id); err == nil {
		return Info{}, fmt.Errorf("%w: %s", ErrExists, id)
	}
	info := Info{ID: id, Created: now()}
	var buf bytes.Buffer
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(&buf, h), limited(ctx, r, max))
	if err != nil {
		return Info{}, fmt.Errorf("blob: put %s: %w", id, err)
	}
	if n > max {
		return Info{}, fmt.Errorf("%w: %s: more than %d bytes", ErrTooLarge, id, max)
	}
	info.Size, info.SHA256 = n, hex.EncodeToString(h.Sum(nil))
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Info{}, ErrClosed
	}
	if _, ok := m.blobs[id]; ok {
		return Info{}, fmt.Errorf("%w: %s", ErrExists, id)
	}
	m.blobs[id] = memBlob{info: info, data: buf.Bytes()}
	return info, nil
}

func (m *Memory) get(ctx context.Context, id string) (memBlob, error) {
	if err := CheckID(id); err != nil {
		return memBlob{}, err
	}
	if err := ctx.Err(); err != nil {
		return memBlob{}, fmt.Errorf("blob: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return memBlob{}, ErrClosed
	}
	b, ok := m.blobs[id]
	if !ok {
		return memBlob{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return b, nil
}

// Open implements Store. The Reader does not depend on ctx.
func (m *Memory) Open(ctx context.Context, id string) (Reader, Info, error) {
	b, err := m.get(ctx, id)
	if err != nil {
		return nil, Info{}, err
	}
	return memReader{bytes.NewReader(b.data)}, b.info, nil
}

type memReader struct{ *bytes.Reader }

func (memReader) Close() error { return nil }

// Stat implements Store.
func (m *Memory) Stat(ctx context.Context, id string) (Info, error) {
	b, err := m.get(ctx, id)
	return b.info, err
}

// Delete implements Store.
func (m *Memory) Delete(ctx context.Context, id string) error {
	if _, err := m.get(ctx, id); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.blobs[id]; !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	delete(m.blobs, id)
	return nil
}

// List implements Store.
func (m *Memory) List(ctx context.Context, after string, limit int) ([]Info, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	var out []Info
	for id, b := range m.blobs {
		if id > after {
			out = append(out, b.info)
		}
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.ID, b.ID) })
	return out[:min(len(out), pageLimit(limit))], nil
}

// Close implements Store.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.blobs = nil
	return nil
}
