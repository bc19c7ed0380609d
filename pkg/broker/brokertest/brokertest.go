// Package brokertest is the conformance suite that every broker.Broker
// backend passes, and helpers for tests that need a broker or a Redis or NATS server
// (RedisURL, StartRedis, StartRedisCluster, StartNATS, WaitFor, GoroutineCheck).
//
// A backend's test calls Run from a top-level test that is not parallel
// (Run's last check counts goroutines):
//
//	func TestMemory(t *testing.T) {
//		brokertest.Run(t, func(t testing.TB, o broker.Options) broker.Broker {
//			return broker.NewMemory(o)
//		})
//	}
package brokertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livechat/livechat/pkg/broker"
)

// NewFunc opens a fresh broker with opts. It fails the test when it cannot.
// Run closes the broker itself; a NewFunc may also register Close with
// t.Cleanup (Close is idempotent).
type NewFunc func(t testing.TB, opts broker.Options) broker.Broker

// timeout bounds every wait of the suite; generous for a loaded 2-core box.
const timeout = 10 * time.Second

// Run runs the conformance suite against the brokers that newBroker opens.
// Its subtests run in parallel with each other, each on its own subjects.
// The suite assumes what both backends guarantee: messages from one
// publisher are delivered in publishing order, also across subjects.
func Run(t *testing.T, newBroker NewFunc) {
	tests := []struct {
		name string
		fn   func(*testing.T, NewFunc)
	}{
		{"DeliveryExactlyOncePerMatchingSubscription", testDelivery},
		{"GlobMetacharactersAreLiteral", testGlobMetacharacters},
		{"PerPublisherOrder", testOrder},
		{"PublishBatch", testPublishBatch},
		{"UnsubscribeStopsDelivery", testUnsubscribe},
		{"UnsubscribeFromHandler", testUnsubscribeFromHandler},
		{"SubscribeChan", testSubscribeChan},
		{"SlowHandlerDropsAndCounts", testSlowHandler},
		{"LargePayload", testLargePayload},
		{"InvalidSubjectsRefused", testInvalid},
		{"ConcurrentPublishSubscribe", testConcurrent},
		{"StateConnected", testState},
	}
	// The same contract holds for handlers subscribed with
	// broker.SubscribeInline (where the suite's handlers never block).
	inline := map[string]bool{
		"DeliveryExactlyOncePerMatchingSubscription": true, "GlobMetacharactersAreLiteral": true,
		"PerPublisherOrder": true, "PublishBatch": true, "UnsubscribeStopsDelivery": true, "UnsubscribeFromHandler": true,
		"ConcurrentPublishSubscribe": true,
	}
	newInline := func(t testing.TB, o broker.Options) broker.Broker { return inlineBroker{newBroker(t, o)} }
	t.Run("group", func(t *testing.T) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				tc.fn(t, newBroker)
			})
			if inline[tc.name] {
				t.Run("Inline"+tc.name, func(t *testing.T) {
					t.Parallel()
					tc.fn(t, newInline)
				})
			}
		}
	})
	// Sequential, after the group: it counts goroutines.
	t.Run("CloseReleasesEverything", func(t *testing.T) { testClose(t, newBroker) })
}

// inlineBroker subscribes every handler with broker.SubscribeInline.
type inlineBroker struct{ broker.Broker }

func (b inlineBroker) Subscribe(ctx context.Context, pattern string, h broker.Handler) (broker.Subscription, error) {
	return broker.SubscribeInline(ctx, b.Broker, pattern, h)
}

// open returns a broker closed when the test ends.
func open(t *testing.T, newBroker NewFunc, opts broker.Options) broker.Broker {
	t.Helper()
	b := newBroker(t, opts)
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// recorder collects the messages one subscription receives.
type recorder struct {
	mu   sync.Mutex
	msgs []broker.Message
}

func (r *recorder) handle(m broker.Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
}

func (r *recorder) snapshot() []broker.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]broker.Message(nil), r.msgs...)
}

func (r *recorder) count(data string) int {
	n := 0
	for _, m := range r.snapshot() {
		if string(m.Data) == data {
			n++
		}
	}
	return n
}

func subscribe(t *testing.T, b broker.Broker, pattern string, h broker.Handler) broker.Subscription {
	t.Helper()
	s, err := b.Subscribe(ctxT(t), pattern, h)
	if err != nil {
		t.Fatalf("Subscribe(%q): %v", pattern, err)
	}
	return s
}

func publish(t *testing.T, b broker.Broker, subject, data string) {
	t.Helper()
	if err := b.Publish(ctxT(t), subject, []byte(data)); err != nil {
		t.Fatalf("Publish(%q): %v", subject, err)
	}
}

// fenceSubject is a subject that pattern matches.
func fenceSubject(pattern string) string {
	toks := strings.Split(pattern, ".")
	for i, tok := range toks {
		if tok == "*" || tok == ">" {
			toks[i] = "fence"
		}
	}
	return strings.Join(toks, ".")
}

// fence publishes "fence" to a subject of each pattern and waits until every
// recorder saw a fence: everything published before has then been delivered.
func fence(t *testing.T, b broker.Broker, patterns []string, recs []*recorder) {
	t.Helper()
	for _, p := range patterns {
		publish(t, b, fenceSubject(p), "fence")
	}
	WaitFor(t, timeout, "the fences", func() bool {
		for _, r := range recs {
			if r.count("fence") == 0 {
				return false
			}
		}
		return true
	})
}

func testDelivery(t *testing.T, newBroker NewFunc) {
	b := open(t, newBroker, broker.Options{})
	p := Prefix(t)
	// The second token is unique too, so that the leading wildcard matches
	// this test's subjects only, on a Redis other tests share.
	a := "a" + p
	target := p + "." + a + ".b"
	cases := []struct {
		pattern string
		match   bool
	}{
		{target, true},
		{target, true}, // a second subscription to the same subject
		{p + "." + a + ".*", true},
		{p + "." + a + ".*", true},
		{p + "." + a + ".>", true}, // shares a Redis glob with a.*
		{p + ".>", true},
		{p + ".*.b", true},
		{p + ".*.*", true},
		{"*." + a + ".b", true},
		{p + "." + a, false},
		{target + ".c", false},
		{target + ".>", false},
		{p + "." + a + ".*.*", false},
		{p + ".*", false},
		{p + ".x.*", false},
		{p + "." + a + ".c", false},
		{p + "." + a + ".bb", false},
		{target + "*", false}, // invalid pattern: skipped below
	}
	var patterns []string
	var recs []*recorder
	var want []bool
	for _, c := range cases {
		if broker.ValidatePattern(c.pattern) != nil {
			continue
		}
		r := &recorder{}
		subscribe(t, b, c.pattern, r.handle)
		patterns = append(patterns, c.pattern)
		recs = append(recs, r)
		want = append(want, c.match)
	}
	const n = 50
	for i := range n {
		publish(t, b, target, "m"+strconv.Itoa(i))
	}
	fence(t, b, patterns, recs)
	for i, r := range recs {
		var got []string
		for _, m := range r.snapshot() {
			if string(m.Data) == "fence" {
				continue
			}
			if m.Subject != target {
				t.Errorf("%s: message on subject %q, want %q", patterns[i], m.Subject, target)
			}
			got = append(got, string(m.Data))
		}
		if !want[i] {
			if len(got) > 0 {
				t.Errorf("%s must not match %s but received %d message(s)", patterns[i], target, len(got))
			}
			continue
		}
		if len(got) != n {
			t.Errorf("%s received %d messages, want exactly %d", patterns[i], len(got), n)
			continue
		}
		for j, d := range got {
			if d != "m"+strconv.Itoa(j) {
				t.Errorf("%s: message %d is %q, want %q", patterns[i], j, d, "m"+strconv.Itoa(j))
				break
			}
		}
	}
}

func testGlobMetacharacters(t *testing.T, newBroker NewFunc) {
	b := open(t, newBroker, broker.Options{})
	p := Prefix(t)
	// On Redis these become globs; their metacharacters must stay literal.
	patterns := []string{p + ".[ab].*", p + ".a?.*", p + `.a\b.*`}
	var recs []*recorder
	for _, pat := range patterns {
		r := &recorder{}
		subscribe(t, b, pat, r.handle)
		recs = append(recs, r)
	}
	for _, s := range []string{p + ".a.x", p + ".b.x", p + ".ab.x", p + ".ax.x", p + ".ab.x", p + `.a\\b.x`} {
		publish(t, b, s, "wrong")
	}
	for _, s := range []string{p + ".[ab].x", p + ".a?.x", p + `.a\b.x`} {
		publish(t, b, s, "right")
	}
	fence(t, b, patterns, recs)
	for i, r := range recs {
		if got := r.count("wrong"); got != 0 {
			t.Errorf("%s received %d message(s) for other subjects", patterns[i], got)
		}
		if got := r.count("right"); got != 1 {
			t.Errorf("%s received %d message(s) for its subject, want 1", patterns[i], got)
		}
	}
}

func testOrder(t *testing.T, newBroker NewFunc) {
	b := open(t, newBroker, broker.Options{})
	p := Prefix(t)
	const publishers, n = 4, 300
	var mu sync.Mutex
	next := make(map[string]int)
	var bad atomic.Value
	total := atomic.Int64{}
	subscribe(t, b, p+".order", func(m broker.Message) {
		pub, seq, _ := strings.Cut(string(m.Data), ":")
		i, _ := strconv.Atoi(seq)
		mu.Lock()
		if next[pub] != i {
			bad.CompareAndSwap(nil, fmt.Sprintf("publisher %s: got %d, want %d", pub, i, next[pub]))
		}
		next[pub] = i + 1
		mu.Unlock()
		total.Add(1)
	})
	var wg sync.WaitGroup
	for w := range publishers {
		wg.Go(func() {
			for i := range n {
				if err := b.Publish(ctxT(t), p+".order", []byte(fmt.Sprintf("p%d:%d", w, i))); err != nil {
					t.Errorf("Publish: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	WaitFor(t, timeout, "all messages", func() bool { return total.Load() == publishers*n })
	if v := bad.Load(); v != nil {
		t.Fatal(v)
	}
}

// testPublishBatch publishes a batch of interleaved messages on three
// subjects, longer than one pipeline chunk: every matching subscription,
// wildcards included, gets each message once, in order per subject. A batch
// with an invalid subject fails with ErrInvalidSubject, naming it, and
// publishes nothing.
func testPublishBatch(t *testing.T, newBroker NewFunc) {
	b := open(t, newBroker, broker.Options{})
	p := Prefix(t)
	ctx := ctxT(t)
	subjects := []string{p + ".b1", p + ".b2", p + ".x.b3"}
	cases := []struct {
		pattern string
		match   []bool // per subject
	}{
		{subjects[0], []bool{true, false, false}},
		{subjects[1], []bool{false, true, false}},
		{subjects[2], []bool{false, false, true}},
		{p + ".*", []bool{true, true, false}},
		{p + ".>", []bool{true, true, true}},
		{p + ".x.*", []bool{false, false, true}},
		{p + ".*.*", []bool{false, false, true}},
	}
	var patterns []string
	recs := make([]*recorder, len(cases))
	for i, c := range cases {
		recs[i] = &recorder{}
		subscribe(t, b, c.pattern, recs[i].handle)
		patterns = append(patterns, c.pattern)
	}
	const n = 600 // over two Redis pipeline chunks
	var msgs []broker.Message
	for i := range n {
		msgs = append(msgs, broker.Message{Subject: subjects[i%3], Data: []byte(strconv.Itoa(i))})
	}
	if err := broker.PublishBatch(ctx, b, msgs); err != nil {
		t.Fatalf("PublishBatch: %v", err)
	}
	if err := broker.PublishBatch(ctx, b, nil); err != nil {
		t.Fatalf("PublishBatch of nothing: %v", err)
	}
	want := func(c int) (total int) {
		for k := range subjects {
			if cases[c].match[k] {
				total += n / 3
			}
		}
		return total
	}
	WaitFor(t, timeout, "the batch", func() bool {
		for i, r := range recs {
			if len(r.snapshot()) < want(i) {
				return false
			}
		}
		return true
	})
	fence(t, b, patterns, recs) // duplicates, if any, arrive before the fences
	for i, r := range recs {
		next := map[string]int{} // the next index expected per subject
		for k, s := range subjects {
			next[s] = k
		}
		got, ordered := 0, true
		for _, m := range r.snapshot() {
			if string(m.Data) == "fence" {
				continue
			}
			got++
			k := slices.Index(subjects, m.Subject)
			if k < 0 || !cases[i].match[k] {
				t.Errorf("%s: message on subject %q", patterns[i], m.Subject)
				continue
			}
			if d := string(m.Data); d != strconv.Itoa(next[m.Subject]) && ordered {
				t.Errorf("%s: on %s got message %s, want %d (each once, in order)", patterns[i], m.Subject, d, next[m.Subject])
				ordered = false
			}
			next[m.Subject] += 3
		}
		if got != want(i) {
			t.Errorf("%s received %d messages, want %d", patterns[i], got, want(i))
		}
	}

	// An invalid subject fails the batch before anything is published.
	r := &recorder{}
	subscribe(t, b, p+".inv", r.handle)
	for _, bad := range []string{"a..b", p + ".*", ""} {
		err := broker.PublishBatch(ctx, b, []broker.Message{
			{Subject: p + ".inv", Data: []byte("before")},
			{Subject: bad, Data: []byte("bad")},
			{Subject: p + ".inv", Data: []byte("after")},
		})
		if !errors.Is(err, broker.ErrInvalidSubject) || !strings.Contains(err.Error(), strconv.Quote(bad)) {
			t.Errorf("PublishBatch with subject %q = %v, want ErrInvalidSubject naming it", bad, err)
		}
	}
	fence(t, b, []string{p + ".inv"}, []*recorder{r})
	if got := len(r.snapshot()); got != 1 {
		t.Errorf("a refused batch published %d message(s), want none", got-1)
	}
}

func testUnsubscribe(t *testing.T, newBroker NewFunc) {
	b := open(t, newBroker, broker.Options{})
	p := Prefix(t)
	for _, pat := range []string{p + ".u", p + ".*", p + ".>"} {
		gone, stays := &recorder{}, &recorder{}
		s := subscribe(t, b, pat, gone.handle)
		subscribe(t, b, pat, stays.handle) // same subject: must keep receiving
		if s.Pattern() != pat {
			t.Errorf("Pattern() = %q, want %q", s.Pattern(), pat)
		}
		publish(t, b, p+".u", "before")
		WaitFor(t, timeout, "the first message", func() bool { return gone.count("before") == 1 })
		if err := s.Unsubscribe(); err != nil {
			t.Fatalf("Unsubscribe: %v", err)
		}
		if err := s.Unsubscribe(); err != nil {
			t.Fatalf("second Unsubscribe: %v", err)
		}
		publish(t, b, p+".u", "after")
		fence(t, b, []string{pat}, []*recorder{stays})
		if got := gone.count("after"); got != 0 {
			t.Errorf("%s: received %d message(s) after Unsubscribe", pat, got)
		}
		if got := stays.count("after"); got != 1 {
			t.Errorf("%s: the other subscription received %d message(s), want 1", pat, got)
		}
	}
	// The last subscription of a subject unsubscribed, then subscribed again.
	r := &recorder{}
	s := subscribe(t, b, p+".again", r.handle)
	if err := s.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	subscribe(t, b, p+".again", r.handle)
	publish(t, b, p+".again", "x")
	WaitFor(t, timeout, "delivery after resubscribe", func() bool { return r.count("x") == 1 })
}

func testUnsubscribeFromHandler(t *testing.T, newBroker NewFunc) {
	b := open(t, newBroker, broker.Options{})
	p := Prefix(t)
	var calls atomic.Int32
	var sub broker.Subscription
	ready := make(chan struct{})
	sub = subscribe(t, b, p+".h", func(broker.Message) {
		<-ready
		calls.Add(1)
		if err := sub.Unsubscribe(); err != nil {
			t.Errorf("Unsubscribe in handler: %v", err)
		}
	})
	close(ready)
	publish(t, b, p+".h", "1")
	WaitFor(t, timeout, "the handler call", func() bool { return calls.Load() == 1 })
	r := &recorder{}
	subscribe(t, b, p+".h", r.handle)
	publish(t, b, p+".h", "2")
	WaitFor(t, timeout, "the other subscription", func() bool { return r.count("2") == 1 })
	if got := calls.Load(); got != 1 {
		t.Errorf("handler called %d times after it unsubscribed itself, want 1", got)
	}
}

func testSubscribeChan(t *testing.T, newBroker NewFunc) {
	b := open(t, newBroker, broker.Options{QueueSize: 4})
	p := Prefix(t)
	ch := make(chan broker.Message, 1)
	s, err := broker.SubscribeChan(ctxT(t), b, p+".c", ch)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, b, p+".c", "one")
	select {
	case m := <-ch:
		if string(m.Data) != "one" || m.Subject != p+".c" {
			t.Errorf("got %q on %q", m.Data, m.Subject)
		}
	case <-time.After(timeout):
		t.Fatal("no message on the channel")
	}
	// Nobody reads ch now: the subscription's goroutine blocks on it, its
	// queue fills and drops; Unsubscribe must still return and end it.
	for range 20 {
		publish(t, b, p+".c", "more")
	}
	WaitFor(t, timeout, "drops", func() bool { return s.Dropped() > 0 })
	if err := s.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
}

func testSlowHandler(t *testing.T, newBroker NewFunc) {
	const queue, n = 4, 40
	b := open(t, newBroker, broker.Options{QueueSize: queue})
	p := Prefix(t)
	release := make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock) // runs before the broker's Close
	var slowGot atomic.Int64
	slow := subscribe(t, b, p+".s", func(broker.Message) {
		<-release
		slowGot.Add(1)
	})
	var fastGot atomic.Int64
	subscribe(t, b, p+".s", func(broker.Message) { fastGot.Add(1) })
	wild := &recorder{}
	subscribe(t, b, p+".*", wild.handle)
	// One message at a time (the queues are tiny): the blocked handler
	// must delay nobody, the others receive every message.
	for i := range n {
		publish(t, b, p+".s", strconv.Itoa(i))
		WaitFor(t, timeout, "the fast subscriptions", func() bool {
			return fastGot.Load() == int64(i+1) && len(wild.snapshot()) == i+1
		})
	}
	if d := slow.Dropped(); d < n-queue-1 {
		t.Errorf("Dropped() = %d while blocked, want at least %d", d, n-queue-1)
	}
	unblock()
	WaitFor(t, timeout, "the slow subscription to drain", func() bool {
		return slowGot.Load()+int64(slow.Dropped()) == n
	})
	if got := slowGot.Load(); got > queue+1 {
		t.Errorf("slow handler got %d messages, want at most queue size + 1 = %d", got, queue+1)
	}
}

func testLargePayload(t *testing.T, newBroker NewFunc) {
	b := open(t, newBroker, broker.Options{})
	p := Prefix(t)
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i*7 + i>>8)
	}
	ch := make(chan broker.Message, 1)
	if _, err := broker.SubscribeChan(ctxT(t), b, p+".big", ch); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctxT(t), p+".big", data); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-ch:
		if !bytes.Equal(m.Data, data) {
			t.Errorf("payload differs: got %d bytes, want %d", len(m.Data), len(data))
		}
	case <-time.After(timeout):
		t.Fatal("1 MiB message not delivered")
	}
}

func testInvalid(t *testing.T, newBroker NewFunc) {
	b := open(t, newBroker, broker.Options{})
	ctx := ctxT(t)
	for _, s := range []string{"", ".", "a..b", ".a", "a.", "a.*", "a.>", ">", "a b", "a\tb", "a.b*", "a.>b", "a\x00", strings.Repeat("a", broker.MaxSubjectLen+1)} {
		if err := b.Publish(ctx, s, []byte("x")); !errors.Is(err, broker.ErrInvalidSubject) {
			t.Errorf("Publish(%q) = %v, want ErrInvalidSubject", s, err)
		}
	}
	for _, s := range []string{"", "a..b", "a.>.b", ">.a", "a.b*", "a b", "a.*b"} {
		if sub, err := b.Subscribe(ctx, s, func(broker.Message) {}); !errors.Is(err, broker.ErrInvalidSubject) {
			t.Errorf("Subscribe(%q) = %v, %v, want ErrInvalidSubject", s, sub, err)
		}
	}
}

func testConcurrent(t *testing.T, newBroker NewFunc) {
	b := open(t, newBroker, broker.Options{})
	p := Prefix(t)
	var stable atomic.Int64
	subscribe(t, b, p+".c.>", func(broker.Message) { stable.Add(1) })
	const workers, rounds = 4, 25
	var wg sync.WaitGroup
	var published atomic.Int64
	for w := range workers {
		wg.Go(func() {
			ctx := ctxT(t)
			for i := range rounds {
				pat := fmt.Sprintf("%s.c.%d.*", p, i%3)
				s, err := b.Subscribe(ctx, pat, func(broker.Message) {})
				if err != nil {
					t.Errorf("Subscribe: %v", err)
					return
				}
				for j := range 4 {
					if err := b.Publish(ctx, fmt.Sprintf("%s.c.%d.w%d", p, j%3, w), []byte("x")); err != nil {
						t.Errorf("Publish: %v", err)
						return
					}
					published.Add(1)
				}
				_ = b.State()
				if err := s.Unsubscribe(); err != nil {
					t.Errorf("Unsubscribe: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	WaitFor(t, timeout, "every message on the stable subscription", func() bool {
		return stable.Load() == published.Load()
	})
}

func testState(t *testing.T, newBroker NewFunc) {
	b := open(t, newBroker, broker.Options{})
	if s := b.State(); s != broker.StateConnected {
		t.Errorf("State() = %v, want connected", s)
	}
}

func testClose(t *testing.T, newBroker NewFunc) {
	check := GoroutineCheck(t)
	var states []broker.State
	var mu sync.Mutex
	b := newBroker(t, broker.Options{OnStateChange: func(s broker.State) {
		mu.Lock()
		states = append(states, s)
		mu.Unlock()
	}})
	p := Prefix(t)
	ctx := ctxT(t)
	var subs []broker.Subscription
	for _, pat := range []string{p + ".a", p + ".*", p + ".>"} {
		s, err := b.Subscribe(ctx, pat, func(broker.Message) {})
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	// A subscription blocked sending to a channel nobody reads: Close must
	// end it too.
	ch := make(chan broker.Message) // never read
	if _, err := broker.SubscribeChan(ctx, b, p+".a", ch); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		publish(t, b, p+".a", "x")
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if s := b.State(); s != broker.StateClosed {
		t.Errorf("State() after Close = %v", s)
	}
	if err := b.Publish(ctx, p+".a", nil); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Publish after Close = %v, want ErrClosed", err)
	}
	if _, err := b.Subscribe(ctx, p+".a", func(broker.Message) {}); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Subscribe after Close = %v, want ErrClosed", err)
	}
	if err := broker.PublishBatch(ctx, b, []broker.Message{{Subject: p + ".a"}}); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("PublishBatch after Close = %v, want ErrClosed", err)
	}
	for _, s := range subs {
		if err := s.Unsubscribe(); err != nil {
			t.Errorf("Unsubscribe after Close: %v", err)
		}
	}
	mu.Lock()
	if len(states) == 0 || states[len(states)-1] != broker.StateClosed {
		t.Errorf("OnStateChange calls %v, want the last to be closed", states)
	}
	mu.Unlock()
	check()
}
