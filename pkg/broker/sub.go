package broker

import (
	"context"
	"sync"
	"sync/atomic"
)

// deliverFunc is a handler that also sees its subscription's done channel.
type deliverFunc func(done <-chan struct{}, m Message)

// doneSubscriber is implemented by this package's backends so SubscribeChan
// can abandon a blocked send when the subscription ends.
type doneSubscriber interface {
	subscribeDone(ctx context.Context, pattern string, fn deliverFunc) (Subscription, error)
}

// sub is the subscription shared by every backend: a bounded queue drained by
// one goroutine that calls the handler. A full queue drops and counts.
//
// The queue is a slice that grows with what is waiting and is taken whole by
// the goroutine (double-buffered), so an idle subscription costs a few
// hundred bytes however large QueueSize is (a preallocated channel of 8,192
// messages would hold 320 KiB per subscription, two per room on a server),
// and a burst is handed over with one lock.
type sub struct {
	pattern string
	filter  *pattern // compiled pattern, for backends that must re-check
	fn      deliverFunc
	max     int           // QueueSize: most messages waiting
	ready   chan struct{} // signalled when the queue becomes non-empty
	done    chan struct{}
	dropped atomic.Uint64
	once    sync.Once
	wg      *sync.WaitGroup  // the backend's, so Close can wait for every sub
	remove  func(*sub) error // unregisters from the backend; called once

	mu    sync.Mutex
	queue []Message // waiting, oldest first
}

// keptQueue bounds the capacity a drained queue keeps for the next burst.
const keptQueue = 256

func newSub(pat string, filter *pattern, fn deliverFunc, queueSize int, wg *sync.WaitGroup) *sub {
	s := &sub{
		pattern: pat,
		filter:  filter,
		fn:      fn,
		max:     queueSize,
		ready:   make(chan struct{}, 1),
		done:    make(chan struct{}),
		wg:      wg,
	}
	wg.Add(1)
	go s.run()
	return s
}

// deliver queues m without blocking; when QueueSize messages are waiting
// it drops m.
func (s *sub) deliver(m Message) {
	s.mu.Lock()
	if len(s.queue) >= s.max {
		s.mu.Unlock()
		s.dropped.Add(1)
		return
	}
	s.queue = append(s.queue, m)
	first := len(s.queue) == 1
	s.mu.Unlock()
	if first {
		select {
		case s.ready <- struct{}{}:
		default: // already signalled
		}
	}
}

// run hands the queued messages to the handler in order until stop.
func (s *sub) run() {
	defer s.wg.Done()
	var batch []Message
	for {
		select {
		case <-s.done:
			return
		case <-s.ready:
		}
		s.mu.Lock()
		batch, s.queue = s.queue, batch[:0]
		s.mu.Unlock()
		for i := range batch {
			select {
			case <-s.done:
				return
			default:
			}
			s.fn(s.done, batch[i])
			batch[i] = Message{} // let the payload go
		}
		if cap(batch) > keptQueue {
			batch = nil
		}
	}
}

// stop ends delivery without unregistering; it reports whether this call
// stopped it.
func (s *sub) stop() bool {
	stopped := false
	s.once.Do(func() {
		close(s.done)
		stopped = true
	})
	return stopped
}

func (s *sub) Pattern() string { return s.pattern }

func (s *sub) Dropped() uint64 { return s.dropped.Load() }

func (s *sub) Unsubscribe() error {
	if s.stop() && s.remove != nil {
		return s.remove(s)
	}
	return nil
}

func handlerFunc(h Handler) deliverFunc {
	return func(_ <-chan struct{}, m Message) { h(m) }
}
