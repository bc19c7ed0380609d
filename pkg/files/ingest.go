package files

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"golang.org/x/time/rate"

	"github.com/livechat/livechat/pkg/auth"
	"github.com/livechat/livechat/pkg/blob"
	"github.com/livechat/livechat/pkg/media"
	"github.com/livechat/livechat/pkg/protocol"
	"github.com/livechat/livechat/pkg/store"
)

// Errors of Ingest and Attach besides those of pkg/media (ErrTooLarge,
// ErrRefused, ErrBadImage, ErrBadName), which Ingest returns wrapped.
var (
	// ErrQuota: the user's uploads would pass Config.Quota.
	ErrQuota = errors.New("files: quota exceeded")
	// ErrBusy: the user, or this server, has as many uploads in flight as
	// allowed.
	ErrBusy = errors.New("files: too many uploads in flight")
	// ErrServerBusy: this server has as many uploads in flight as allowed.
	ErrServerBusy = errors.New("files: server busy")
)

// storedMax bounds the bytes stored for an upload of at most max bytes: a
// re-encoded image may come out larger than it went in.
func storedMax(max int64) int64 { return 4*max + 1<<20 }

// Ingest takes one upload of user into room: it reserves an upload slot,
// checks the quota, runs the content through pkg/media (the type from the
// content, images re-encoded without metadata), streams what is to be
// kept into the blob store, stores an image's thumbnail and records the
// upload. Nothing is kept unless everything succeeded. size is the
// announced length (a Content-Length), or -1. It does not check that user
// may enter room: its callers do. Errors wrap media's, ErrQuota, ErrBusy,
// ErrServerBusy, or the stores' (then nothing tells the user more than
// "unavailable").
func (s *Service) Ingest(ctx context.Context, user, room, name string, r io.Reader, size int64) (protocol.File, error) {
	name, err := media.CleanName(name)
	if err != nil {
		return protocol.File{}, err
	}
	if size > s.cfg.MaxBytes {
		return protocol.File{}, fmt.Errorf("%w: the file is %d bytes, the limit %d", media.ErrTooLarge, size, s.cfg.MaxBytes)
	}
	release, err := s.reserve(user)
	if err != nil {
		return protocol.File{}, err
	}
	defer release()
	_, used, err := s.st.UploadUsage(ctx, user)
	if err != nil {
		return protocol.File{}, fmt.Errorf("files: usage: %w", err)
	}
	if used+max(size, 0) > s.cfg.Quota {
		return protocol.File{}, ErrQuota
	}

	if s.rate != nil {
		r = &pacedReader{ctx: ctx, r: r, lim: s.rate}
	}
	br := bufio.NewReaderSize(r, 64<<10)
	if head, _ := br.Peek(16); looksLikeImage(head) {
		select {
		case s.images <- struct{}{}:
			defer func() { <-s.images }()
		case <-ctx.Done():
			return protocol.File{}, ctx.Err()
		}
	}
	id := newID()
	res, info, err := s.store(ctx, id, br, name)
	if err != nil {
		return protocol.File{}, err
	}
	// The quota is checked again with what is stored: uploads of one user
	// on several servers at once may each have passed the first check.
	if used+info.Size > s.cfg.Quota {
		s.deleteBlobs(id, res.Image)
		return protocol.File{}, ErrQuota
	}
	if res.Image {
		if _, err := s.bl.Put(ctx, id+store.ThumbSuffix, bytes.NewReader(res.Thumb), int64(len(res.Thumb))); err != nil {
			s.deleteBlobs(id, true)
			return protocol.File{}, fmt.Errorf("files: store the thumbnail: %w", err)
		}
	}
	u := store.Upload{
		ID: id, UserID: user, Room: room, Type: res.Type, Name: name, Size: info.Size,
		Width: res.Width, Height: res.Height, Thumb: res.Image, SHA256: info.SHA256, Created: s.cfg.Now(),
	}
	if u, err = s.st.CreateUpload(ctx, u); err != nil {
		s.deleteBlobs(id, res.Image)
		return protocol.File{}, fmt.Errorf("files: record the upload: %w", err)
	}
	return fileOf(u), nil
}

// store runs r through media.Process into the blob id and returns what
// Process decided and the blob's Info; on error no blob is left.
func (s *Service) store(ctx context.Context, id string, r io.Reader, name string) (media.Result, blob.Info, error) {
	pr, pw := io.Pipe()
	type put struct {
		info blob.Info
		err  error
	}
	done := make(chan put, 1)
	go func() {
		info, err := s.bl.Put(ctx, id, pr, storedMax(s.cfg.MaxBytes))
		pr.CloseWithError(err) // unblocks Process when Put gave up first
		done <- put{info, err}
	}()
	lim := media.Limits{MaxBytes: s.cfg.MaxBytes, MaxPixels: s.cfg.MaxPixels, AllowOther: s.cfg.AllowOther}
	res, perr := media.Process(r, name, lim, pw)
	if perr != nil {
		pw.CloseWithError(perr)
	} else {
		pw.Close()
	}
	p := <-done
	switch {
	case perr != nil:
		if p.err == nil { // cannot happen: Put saw the error; be sure
			s.deleteBlobs(id, false)
		}
		return res, blob.Info{}, perr
	case p.err != nil:
		return res, blob.Info{}, fmt.Errorf("files: store the file: %w", p.err)
	}
	return res, p.info, nil
}

// looksLikeImage reports whether head starts like an image media decodes.
func looksLikeImage(head []byte) bool {
	switch {
	case bytes.HasPrefix(head, []byte("\x89PNG\r\n\x1a\n")),
		bytes.HasPrefix(head, []byte("\xff\xd8\xff")),
		bytes.HasPrefix(head, []byte("GIF87a")), bytes.HasPrefix(head, []byte("GIF89a")):
		return true
	case len(head) >= 12 && string(head[:4]) == "RIFF" && string(head[8:12]) == "WEBP":
		return true
	}
	return false
}

// reserve takes an upload slot for user, or gives ErrBusy or
// ErrServerBusy; the returned func gives it back.
func (s *Service) reserve(user string) (func(), error) {
	s.mu.Lock()
	if s.busy[user] >= s.cfg.PerUser {
		s.mu.Unlock()
		return nil, ErrBusy
	}
	select {
	case s.slots <- struct{}{}:
	default:
		s.mu.Unlock()
		return nil, ErrServerBusy
	}
	s.busy[user]++
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		if s.busy[user]--; s.busy[user] <= 0 {
			delete(s.busy, user)
		}
		s.mu.Unlock()
		<-s.slots
	}, nil
}

// deleteBlobs removes an upload's blob and thumbnail, in the background of
// a failure: errors other than ErrNotFound are logged (the sweep deletes
// what is left).
func (s *Service) deleteBlobs(id string, thumb bool) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	ids := []string{id}
	if thumb {
		ids = append(ids, id+store.ThumbSuffix)
	}
	for _, b := range ids {
		if err := s.bl.Delete(ctx, b); err != nil && !errors.Is(err, blob.ErrNotFound) {
			s.log.Warn("files: delete a blob", "blob", b, "err", err)
		}
	}
}

// fileOf describes an upload on the wire.
func fileOf(u store.Upload) protocol.File {
	return protocol.File{ID: u.ID, Type: u.Type, Size: u.Size, Name: u.Name, Width: u.Width, Height: u.Height}
}

// Attach implements the chat server's FileAttacher: it attaches the
// uploads ids of user in room to the message msgID and describes them.
// An upload older than half of Config.Keep is refused like a missing one,
// so that the sweep never deletes an upload being attached. Errors wrap
// store.ErrNotFound (one of the ids is not user's upload into room, or is
// too old) or store.ErrInvalid (repeated ids), or are the store's.
func (s *Service) Attach(ctx context.Context, user, room, msgID string, ids []string) ([]protocol.File, error) {
	if user == "" {
		return nil, fmt.Errorf("files: attach: %w", store.ErrNotFound)
	}
	oldest := s.cfg.Now().Add(-s.cfg.Keep / 2)
	for _, id := range ids {
		u, err := s.st.Upload(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("files: attach: %w", err)
		}
		if u.Message == "" && u.Created.Before(oldest) {
			return nil, fmt.Errorf("files: attach: upload %s is too old: %w", id, store.ErrNotFound)
		}
	}
	us, err := s.st.AttachUploads(ctx, user, room, msgID, ids)
	if err != nil {
		return nil, fmt.Errorf("files: attach: %w", err)
	}
	out := make([]protocol.File, len(us))
	for i, u := range us {
		out[i] = fileOf(u)
	}
	return out, nil
}

// DeleteMessageFiles deletes the files of a message (for deleting the
// message): the uploads its Files name in its room and those recorded as
// attached to its ID, records and blobs; it returns how many it deleted.
// (A send retried after a failure may carry uploads first attached under
// the failed attempt's id: the message's own Files find them.)
func (s *Service) DeleteMessageFiles(ctx context.Context, m *protocol.Message) (int, error) {
	us, err := s.st.MessageUploads(ctx, m.Room, m.ID)
	if err != nil {
		return 0, fmt.Errorf("files: a message's uploads: %w", err)
	}
	seen := make(map[string]bool, len(us))
	for _, u := range us {
		seen[u.ID] = true
	}
	for _, f := range m.Files {
		if seen[f.ID] {
			continue
		}
		u, err := s.st.Upload(ctx, f.ID)
		switch {
		case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrInvalid):
			continue
		case err != nil:
			return 0, fmt.Errorf("files: a message's upload: %w", err)
		case u.Room != m.Room:
			continue
		}
		seen[u.ID] = true
		us = append(us, u)
	}
	for _, u := range us {
		if err := s.deleteUpload(ctx, u); err != nil {
			return 0, err
		}
	}
	return len(us), nil
}

// deleteUpload deletes an upload's blobs, then its record (so that a
// failure leaves a record the sweep or a retry finds again).
func (s *Service) deleteUpload(ctx context.Context, u store.Upload) error {
	ids := []string{u.ID}
	if u.Thumb {
		ids = append(ids, u.ID+store.ThumbSuffix)
	}
	for _, b := range ids {
		if err := s.bl.Delete(ctx, b); err != nil && !errors.Is(err, blob.ErrNotFound) {
			return fmt.Errorf("files: delete blob %s: %w", b, err)
		}
	}
	if err := s.st.DeleteUpload(ctx, u.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("files: delete upload %s: %w", u.ID, err)
	}
	return nil
}

// publicOnly is Config.Enter's default: public rooms only.
func publicOnly(_ context.Context, id auth.Identity, room string) error {
	if protocol.PublicRoom(room) && id.AllowsRoom(room) {
		return nil
	}
	return auth.ErrNoRoom
}

// pacedReader reads at the pace its limiter allows: after each Read it
// waits for as many tokens as bytes came (a Read asks at most rateBurst).
type pacedReader struct {
	ctx context.Context
	r   io.Reader
	lim *rate.Limiter
}

func (p *pacedReader) Read(b []byte) (int, error) {
	if len(b) > rateBurst {
		b = b[:rateBurst]
	}
	n, err := p.r.Read(b)
	if n > 0 {
		if werr := p.lim.WaitN(p.ctx, n); werr != nil {
			if cerr := p.ctx.Err(); cerr != nil {
				return n, cerr
			}
			// The wait would pass the upload's deadline: a timeout.
			return n, fmt.Errorf("files: %w: %w", context.DeadlineExceeded, werr)
		}
	}
	return n, err
}
