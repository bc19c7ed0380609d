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

	// inline subscriptions (SubscribeInline) run the handler on the
	// delivering goroutine when nothing is queued and no call is running;
	// otherwise the message is queued as for any subscription. runMu is
	// held around every handler call of an inline subscription, by that
	// goroutine or by run, so calls stay sequential and in order.
	inline bool
	runMu  sync.Mutex
}

// keptQueue bounds the capacity a drained queue keeps for the next burst.
const keptQueue = 256

func newSub(pat string, filter *pattern, fn deliverFunc, queueSize int, wg *sync.WaitGroup, inline bool) *sub {
	s := &sub{
		inline:  inline,
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
	if s.inline && s.runInline(m) {
		return
	}
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

// runInline calls the handler with m on this goroutine if no call is
// running and nothing is queued (what waits in the queue came before m);
// it reports whether m was taken.
func (s *sub) runInline(m Message) bool {
	if !s.runMu.TryLock() { // a call is running: m waits its turn
		return false
	}
	defer s.runMu.Unlock()
	s.mu.Lock()
	idle := len(s.queue) == 0
	s.mu.Unlock()
	if !idle {
		return false
	}
	select {
	case <-s.done:
	default:
		s.fn(s.done, m)
	}
	return true
}

// run hands the queued messages to the handler in order until stop.
func (s *sub) run() {
	defer s.wg.Done()
	if s.inline {
		// Close waits for this goroutine, so it waits for a running inline
		// call; runMu then stays held: no call starts again.
		defer s.runMu.Lock()
	}
	var batch []Message
	for {
		select {
		case <-s.done:
			return
		case <-s.ready:
		}
		if !s.runBatch(&batch) {
			return
		}
	}
}

// runBatch takes the queue and hands it to the handler; it reports false
// when the subscription was stopped meanwhile.
func (s *sub) runBatch(batch *[]Message) bool {
	if s.inline {
		s.runMu.Lock()
		defer s.runMu.Unlock()
	}
	s.mu.Lock()
	b := s.queue
	s.queue = (*batch)[:0]
	s.mu.Unlock()
	defer func() {
		if cap(b) > keptQueue {
			b = nil
		}
		*batch = b[:0]
	}()
	for i := range b {
		select {
		case <-s.done:
			return false
		default:
		}
		s.fn(s.done, b[i])
		b[i] = Message{} // let the payload go
	}
	return true
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
