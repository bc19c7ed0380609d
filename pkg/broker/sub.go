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
type sub struct {
	pattern string
	filter  *pattern // compiled pattern, for backends that must re-check
	fn      deliverFunc
	queue   chan Message
	done    chan struct{}
	dropped atomic.Uint64
	once    sync.Once
	wg      *sync.WaitGroup  // the backend's, so Close can wait for every sub
	remove  func(*sub) error // unregisters from the backend; called once
}

func newSub(pat string, filter *pattern, fn deliverFunc, queueSize int, wg *sync.WaitGroup) *sub {
	s := &sub{
		pattern: pat,
		filter:  filter,
		fn:      fn,
		queue:   make(chan Message, queueSize),
		done:    make(chan struct{}),
		wg:      wg,
	}
	wg.Add(1)
	go s.run()
	return s
}

// deliver queues m without blocking; when the queue is full it drops m.
func (s *sub) deliver(m Message) {
	select {
	case s.queue <- m:
	default:
		s.dropped.Add(1)
	}
}

func (s *sub) run() {
	defer s.wg.Done()
	for {
		select {
		case <-s.done:
			return
		case m := <-s.queue:
			select {
			case <-s.done:
				return
			default:
			}
			s.fn(s.done, m)
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
