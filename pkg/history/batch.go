package history

import (
	"context"
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

// newGroupCommit starts the writer: write answers every request of a batch,
// refuse answers a request that was queued when the store closed.
func newGroupCommit[R any](max int, write func([]*R), refuse func(*R)) *groupCommit[R] {
	g := &groupCommit[R]{
		reqs:    make(chan *R, max),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	go g.run(max, write, refuse)
	return g
}

// submit queues r. It fails with ErrClosed once the store closes, or with
// ctx's error.
func (g *groupCommit[R]) submit(ctx context.Context, r *R) error {
	select {
	case g.reqs <- r:
		return nil
	case <-g.closing:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// wait returns the answer to a submitted request from res, or ctx's error
// (the outcome is then unknown), or ErrClosed when the writer ended
// without answering it.
func wait[R, T any](ctx context.Context, g *groupCommit[R], res <-chan T) (T, error) {
	select {
	case v := <-res:
		return v, nil
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	case <-g.done:
		// The writer answers every request it took before it ends.
		select {
		case v := <-res:
			return v, nil
		default:
			var zero T
			return zero, ErrClosed
		}
	}
}

// run collects batches until close.
func (g *groupCommit[R]) run(max int, write func([]*R), refuse func(*R)) {
	defer close(g.done)
	batch := make([]*R, 0, max)
	for {
		select {
		case r := <-g.reqs:
			batch = append(batch[:0], r)
		collect:
			for len(batch) < max {
				select {
				case r := <-g.reqs:
					batch = append(batch, r)
				default:
					break collect
				}
			}
			write(batch)
			g.batches.Add(1)
			clear(batch)
		case <-g.closing:
			for {
				select {
				case r := <-g.reqs:
					refuse(r)
				default:
					return
				}
			}
		}
	}
}

// close refuses what is queued, lets the batch being written finish and
// waits for the writer to end.
func (g *groupCommit[R]) close() {
	g.once.Do(func() { close(g.closing) })
	<-g.done
}
