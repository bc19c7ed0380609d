package files

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/livechat/livechat/pkg/blob"
	"github.com/livechat/livechat/pkg/store"
)

// sweepPage is how many uploads, and blobs, one sweep looks at in each of
// its two passes.
const sweepPage = 500

// Start runs Sweep every Config.SweepEvery in the background until Close.
func (s *Service) Start() {
	ctx, stop := context.WithCancel(context.Background())
	s.stop = stop
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(s.cfg.SweepEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			n, err := s.Sweep(ctx)
			if err != nil && ctx.Err() == nil {
				s.log.Warn("files: sweep", "deleted", n, "err", err)
			} else if n > 0 {
				s.log.Info("files: uploads never attached deleted", "count", n)
			}
		}
	}()
}

// Close stops the sweep started by Start and waits for it. It does not
// close the stores.
func (s *Service) Close() {
	if s.stop != nil {
		s.stop()
	}
	s.wg.Wait()
}

// Sweep deletes what nothing refers to and returns how many uploads and
// blobs it deleted: uploads never attached to a message within
// Config.Keep (their blobs, then their records), and blobs older than Keep
// without a record (left by a server that died between storing the bytes
// and recording them). Each call walks up to sweepPage blobs on from where
// the last call stopped, so a large store is covered over several calls.
// Servers sharing the stores may sweep at the same time.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	cutoff := s.cfg.Now().Add(-s.cfg.Keep)
	stale, err := s.st.StaleUploads(ctx, cutoff, sweepPage)
	if err != nil {
		return 0, fmt.Errorf("files: sweep: %w", err)
	}
	n := 0
	for _, u := range stale {
		if err := s.deleteUpload(ctx, u); err != nil {
			return n, fmt.Errorf("files: sweep: %w", err)
		}
		n++
	}
	m, err := s.sweepBlobs(ctx, cutoff)
	return n + m, err
}

// sweepBlobs deletes the blobs created before cutoff whose upload has no
// record, walking one page on from s.after.
func (s *Service) sweepBlobs(ctx context.Context, cutoff time.Time) (int, error) {
	s.mu.Lock()
	after := s.after
	s.mu.Unlock()
	infos, err := s.bl.List(ctx, after, sweepPage)
	if err != nil {
		return 0, fmt.Errorf("files: sweep blobs: %w", err)
	}
	next := ""
	if len(infos) == sweepPage {
		next = infos[len(infos)-1].ID
	}
	n := 0
	for _, b := range infos {
		if !b.Created.Before(cutoff) {
			continue
		}
		_, err := s.st.Upload(ctx, strings.TrimSuffix(b.ID, store.ThumbSuffix))
		switch {
		case err == nil:
			continue
		case !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrInvalid):
			return n, fmt.Errorf("files: sweep blobs: %w", err)
		}
		if err := s.bl.Delete(ctx, b.ID); err != nil && !errors.Is(err, blob.ErrNotFound) {
			return n, fmt.Errorf("files: sweep blobs: %w", err)
		}
		n++
	}
	s.mu.Lock()
	s.after = next
	s.mu.Unlock()
	return n, nil
}
