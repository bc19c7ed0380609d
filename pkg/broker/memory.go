package broker

import (
	"context"
	"sync"
	"sync/atomic"
)

// Memory is the in-process broker, for a single node and for tests. Publish
// hands the message to every matching subscription's queue before it returns
// (or, for an idle SubscribeInline subscription, calls its handler).
type Memory struct {
	opts   Options
	wg     sync.WaitGroup
	closed atomic.Bool

	mu sync.RWMutex
	// exact holds subscriptions to literal subjects; wild the others.
	exact map[string]map[*sub]struct{}
	wild  map[*sub]struct{}
}

var (
	_ Broker      = (*Memory)(nil)
	_ NonBlocking = (*Memory)(nil)
)

// NewMemory returns an in-process broker; it is always connected.
func NewMemory(opts Options) *Memory {
	opts.fill()
	return &Memory{
		opts:  opts,
		exact: make(map[string]map[*sub]struct{}),
		wild:  make(map[*sub]struct{}),
	}
}

// NeverBlocks is true: the in-process broker's calls never wait on a
// network or a disk (a publish hands the message to queues, or to a quick
// inline handler).
func (m *Memory) NeverBlocks() bool { return true }

// Publish delivers data to every subscription matching subject.
func (m *Memory) Publish(_ context.Context, subject string, data []byte) error {
	if m.closed.Load() {
		return ErrClosed
	}
	if !isLiteral(subject) { // the fast check; ValidateSubject says why
		if err := ValidateSubject(subject); err != nil {
			return err
		}
	}
	// The subscriptions are collected first and served without the lock:
	// an inline handler runs here, and may subscribe or unsubscribe.
	var buf [4]*sub
	subs := buf[:0]
	m.mu.RLock()
	for s := range m.exact[subject] {
		subs = append(subs, s)
	}
	for s := range m.wild {
		if s.filter.matchString(subject) {
			subs = append(subs, s)
		}
	}
	m.mu.RUnlock()
	msg := Message{Subject: subject, Data: data}
	for _, s := range subs {
		s.deliver(msg)
	}
	return nil
}

// Subscribe registers h for pattern.
func (m *Memory) Subscribe(ctx context.Context, pattern string, h Handler) (Subscription, error) {
	return m.subscribeDone(ctx, pattern, handlerFunc(h))
}

func (m *Memory) subscribeDone(_ context.Context, pat string, fn deliverFunc) (Subscription, error) {
	return m.subscribe(pat, fn, false)
}

// subscribeInline registers h to run on the publisher's goroutine when
// the subscription is idle (SubscribeInline).
func (m *Memory) subscribeInline(_ context.Context, pat string, h Handler) (Subscription, error) {
	return m.subscribe(pat, handlerFunc(h), !m.opts.NoInline)
}

func (m *Memory) subscribe(pat string, fn deliverFunc, inline bool) (Subscription, error) {
	p, err := parse(pat)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed.Load() {
		return nil, ErrClosed
	}
	s := newSub(pat, p, fn, m.opts.QueueSize, &m.wg, inline)
	s.remove = m.remove
	if p.literal {
		set := m.exact[pat]
		if set == nil {
			set = make(map[*sub]struct{})
			m.exact[pat] = set
		}
		set[s] = struct{}{}
	} else {
		m.wild[s] = struct{}{}
	}
	return s, nil
}

func (m *Memory) remove(s *sub) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s.filter.literal {
		set := m.exact[s.pattern]
		delete(set, s)
		if len(set) == 0 {
			delete(m.exact, s.pattern)
		}
	} else {
		delete(m.wild, s)
	}
	return nil
}

// State is StateConnected until Close, then StateClosed.
func (m *Memory) State() State {
	if m.closed.Load() {
		return StateClosed
	}
	return StateConnected
}

// Close stops every subscription and waits for their goroutines.
func (m *Memory) Close() error {
	if m.closed.Swap(true) {
		return nil
	}
	m.mu.Lock()
	for _, set := range m.exact {
		for s := range set {
			s.stop()
		}
	}
	for s := range m.wild {
		s.stop()
	}
	m.exact = make(map[string]map[*sub]struct{})
	m.wild = make(map[*sub]struct{})
	m.mu.Unlock()
	if f := m.opts.OnStateChange; f != nil {
		f(StateClosed)
	}
	m.wg.Wait()
	return nil
}
