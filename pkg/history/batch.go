package history

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// groupCommit is a store's single writer: Appends queue requests, and one
// goroutine takes every request waiting (up to max) and writes them
// together. A lone request is written at once; requests that arrive while
// a batch is being written go together in the next one, so under load a
// round trip (and a PostgreSQL commit, with its fsync) carries many
// messages.
type groupCommit[R any] struct {
	reqs    chan *R
	closing chan struct{} // closed by close
	done    chan struct{} // closed when the writer has ended
	once    sync.Once
	batches atomic.Uint64 // batches written, for tests
}

// groupHooks are what a store gives its groupCommit.
type groupHooks[R any] struct {
	// write writes a batch and answers every request in it.
	write func([]*R)
	// fail answers a request that is not written: with ErrClosed when the
	// store closed with it queued, with its context's error when its
	// caller gave up before its batch.
	fail func(*R, error)
	// ctx is a request's context.
	ctx func(*R) context.Context
}

// newGroupCommit starts the writer.
func newGroupCommit[R any](max int, h groupHooks[R]) *groupCommit[R] {
	g := &groupCommit[R]{
		reqs:    make(chan *R, max),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	go g.run(max, h)
	return g
}

// call queues r, a request to append to room, and returns the writer's
// answer from res. It fails with ErrClosed once the store closes (or when
// the writer ended without answering), and with ctx's error when ctx ends
// first: before r was queued, or while it waited (the outcome is then
// unknown).
func call[R, T any](ctx context.Context, g *groupCommit[R], room string, r *R, res <-chan T) (T, error) {
	var zero T
	select {
	case g.reqs <- r:
	case <-g.closing:
		return zero, ErrClosed
	case <-ctx.Done():
		return zero, appendFailed(room, ctx.Err())
	}
	select {
	case v := <-res:
		return v, nil
	case <-ctx.Done():
		return zero, fmt.Errorf("history: append to %q: outcome unknown: %w", room, ctx.Err())
	case <-g.done:
		// The writer answers every request it took before it ends.
		select {
		case v := <-res:
			return v, nil
		default:
			return zero, ErrClosed
		}
	}
}

// run collects batches until close.
func (g *groupCommit[R]) run(max int, h groupHooks[R]) {
	defer close(g.done)
	batch := make([]*R, 0, max)
	for {
		select {
		case r := <-g.reqs:
			batch = h.keep(batch[:0], r)
		collect:
			for len(batch) < max {
				select {
				case r := <-g.reqs:
					batch = h.keep(batch, r)
				default:
					break collect
				}
			}
			if len(batch) > 0 {
				h.write(batch)
				g.batches.Add(1)
			}
			clear(batch)
		case <-g.closing:
			for {
				select {
				case r := <-g.reqs:
					h.fail(r, ErrClosed)
				default:
					return
				}
			}
		}
	}
}

// keep appends r to batch, or answers it with its context's error when its
// caller gave up already: it is not written.
func (h groupHooks[R]) keep(batch []*R, r *R) []*R {
	if err := h.ctx(r).Err(); err != nil {
		h.fail(r, err)
		return batch
	}
	return append(batch, r)
}

// appendFailed is the error of an append that was not written: ErrClosed
// as it is, a context's error naming the room.
func appendFailed(room string, err error) error {
	if errors.Is(err, ErrClosed) {
		return err
	}
	return fmt.Errorf("history: append to %q: %w", room, err)
}

// close refuses what is queued, lets the batch being written finish and
// waits for the writer to end.
func (g *groupCommit[R]) close() {
	g.once.Do(func() { close(g.closing) })
	<-g.done
}
