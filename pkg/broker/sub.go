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
// a goroutine that calls the handler. A full queue drops and counts.
//
// The goroutine exists only while messages wait: the first message queued
// starts it, and it ends when it finds the queue empty, so an idle
// subscription (a quiet room holds two) costs no goroutine and no stack.
// The queue is a slice that grows with what is waiting and is taken whole
// by the goroutine (double-buffered), so it costs a few hundred bytes
// however large QueueSize is (a preallocated channel of 8,192 messages would
// hold 320 KiB per subscription), and a burst is handed over with one lock.
type sub struct {
	pattern string
	filter  *pattern // compiled pattern, for backends that must re-check
	fn      deliverFunc
	max     int // QueueSize: most messages waiting
	done    chan struct{}
	dropped atomic.Uint64
	once    sync.Once
	// wg is the backend's, so Close can wait for every goroutine and
	// inline call; they are added under mu while done is open, so none is
	// added once Close's stop of this subscription returned.
	wg     *sync.WaitGroup
	remove func(*sub) error // unregisters from the backend; called once
	// dropsBefore, if set, counts the messages the backend dropped before
	// they reached the queue (NATS's slow consumer); set before the
	// subscription is returned.
	dropsBefore func() uint64

	mu      sync.Mutex
	queue   []Message // waiting, oldest first
	running bool      // a run goroutine drains the queue

	// inline subscriptions (SubscribeInline) run the handler on the
	// delivering goroutine when nothing is queued and no call is running;
	// otherwise the message is queued as for any subscription. runMu is
	// held around every handler call of an inline subscription, by that
	// goroutine or by run, so calls stay sequential and in order.
	inline bool
	runMu  sync.Mutex
}

// keptQueue bounds the capacity a queue keeps between bursts while its
// goroutine runs; idleQueue what it keeps when the goroutine ends.
const (
	keptQueue = 256
	idleQueue = 8
)

func newSub(pat string, filter *pattern, fn deliverFunc, queueSize int, wg *sync.WaitGroup, inline bool) *sub {
	return &sub{
		inline:  inline,
		pattern: pat,
		filter:  filter,
		fn:      fn,
		max:     queueSize,
		done:    make(chan struct{}),
		wg:      wg,
	}
}

// stopped reports whether stop was called.
func (s *sub) stopped() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// deliver queues m without blocking, starting the goroutine when none
// runs; when QueueSize messages are waiting it drops m. After stop it
// drops m silently.
func (s *sub) deliver(m Message) {
	if s.inline && s.runInline(m) {
		return
	}
	s.mu.Lock()
	if s.stopped() {
		s.mu.Unlock()
		return
	}
	if len(s.queue) >= s.max {
		s.mu.Unlock()
		s.dropped.Add(1)
		return
	}
	s.queue = append(s.queue, m)
	start := !s.running
	if start {
		s.running = true
		s.wg.Add(1)
	}
	s.mu.Unlock()
	if start {
		go s.run()
	}
}

// deliverAll delivers payload, received on subject, to subs, converting it
// to bytes once and only if some subscription takes it.
func deliverAll(subs []*sub, subject, payload string) {
	if len(subs) == 0 {
		return
	}
	m := Message{Subject: subject, Data: []byte(payload)}
	for _, s := range subs {
		s.deliver(m)
	}
}

// runInline calls the handler with m on this goroutine if no call is
// running and nothing is queued (what waits in the queue came before m);
// it reports whether m was taken (also when the subscription is stopped).
func (s *sub) runInline(m Message) bool {
	if !s.runMu.TryLock() { // a call is running: m waits its turn
		return false
	}
	defer s.runMu.Unlock()
	s.mu.Lock()
	if s.stopped() {
		s.mu.Unlock()
		return true
	}
	if len(s.queue) > 0 {
		s.mu.Unlock()
		return false
	}
	s.wg.Add(1) // Close waits for this call
	s.mu.Unlock()
	defer s.wg.Done()
	s.fn(s.done, m)
	return true
}

// run hands the queued messages to the handler in order until the queue
// is empty or the subscription stopped.
func (s *sub) run() {
	defer s.wg.Done()
	var batch []Message
	for s.runBatch(&batch) {
	}
}

// runBatch takes the queue and hands it to the handler. It reports false,
// and marks the goroutine gone, when there was nothing to take or the
// subscription stopped.
func (s *sub) runBatch(batch *[]Message) bool {
	if s.inline {
		s.runMu.Lock()
		defer s.runMu.Unlock()
	}
	s.mu.Lock()
	if len(s.queue) == 0 || s.stopped() {
		s.running = false
		if cap(s.queue) > idleQueue {
			s.queue = nil
		}
		clear(s.queue[:cap(s.queue)]) // a stopped queue lets its payloads go
		s.queue = s.queue[:0]
		s.mu.Unlock()
		return false
	}
	b := s.queue
	s.queue = (*batch)[:0]
	s.mu.Unlock()
	for i := range b {
		if s.stopped() {
			break
		}
		s.fn(s.done, b[i])
	}
	clear(b) // let the payloads go
	if cap(b) > keptQueue {
		b = nil
	}
	*batch = b[:0]
	return true
}

// stop ends delivery without unregistering; it reports whether this call
// stopped it.
func (s *sub) stop() bool {
	stopped := false
	s.once.Do(func() {
		s.mu.Lock()
		close(s.done)
		s.mu.Unlock()
		stopped = true
	})
	return stopped
}

func (s *sub) Pattern() string { return s.pattern }

func (s *sub) Dropped() uint64 {
	n := s.dropped.Load()
	if s.dropsBefore != nil {
		n += s.dropsBefore()
	}
	return n
}

func (s *sub) Unsubscribe() error {
	if s.stop() && s.remove != nil {
		return s.remove(s)
	}
	return nil
}

func handlerFunc(h Handler) deliverFunc {
	return func(_ <-chan struct{}, m Message) { h(m) }
}
