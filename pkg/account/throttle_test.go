package account

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestLimitersBucket(t *testing.T) {
	l := newLimiters(10*time.Second, 5, 100)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 5; i++ {
		if w := l.allow("k", now); w != 0 {
			t.Fatalf("attempt %d refused (%v)", i, w)
		}
	}
	if w := l.allow("k", now); w != 10*time.Second {
		t.Fatalf("6th attempt: wait %v, want 10s", w)
	}
	if w := l.allow("k", now.Add(4*time.Second)); w != 6*time.Second {
		t.Fatalf("4 s later: wait %v, want 6s", w)
	}
	if w := l.allow("other", now); w != 0 {
		t.Fatalf("another key refused: %v", w)
	}
	if w := l.allow("k", now.Add(10*time.Second)); w != 0 {
		t.Fatalf("after a refill: wait %v", w)
	}
	if w := l.allow("k", now.Add(10*time.Second)); w == 0 {
		t.Fatalf("one refill gave two attempts")
	}
}

// TestLimitersIdleEvicted: a bucket unused for as long as it takes to
// refill is dropped (it would be full again anyway).
func TestLimitersIdleEvicted(t *testing.T) {
	l := newLimiters(time.Second, 20, 1000)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 500; i++ {
		l.allow(fmt.Sprint("addr", i), now)
	}
	if n := l.size(); n != 500 {
		t.Fatalf("%d buckets, want 500", n)
	}
	l.allow("late", now.Add(19*time.Second))
	if n := l.size(); n != 501 {
		t.Fatalf("%d buckets before the idle time, want 501", n)
	}
	l.allow("later", now.Add(20*time.Second))
	if n := l.size(); n != 2 {
		t.Fatalf("%d buckets after the idle time, want 2", n)
	}
	if l.dropped != 0 {
		t.Fatalf("%d live buckets dropped", l.dropped)
	}
}

// TestLimitersBounded: a flood of keys never grows the map past its
// bound; the least recently used key goes first, and recent ones keep
// their state.
func TestLimitersBounded(t *testing.T) {
	l := newLimiters(10*time.Second, 5, 100)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 5; i++ {
		l.allow("target", now)
	}
	for i := 0; i < 10000; i++ {
		l.allow(fmt.Sprint("flood", i), now)
		if i%50 == 0 {
			l.allow("target", now) // kept recent: stays throttled
		}
		if n := l.size(); n > 100 {
			t.Fatalf("%d buckets, bound 100", n)
		}
	}
	if w := l.allow("target", now); w == 0 {
		t.Fatalf("the recently used bucket was dropped")
	}
	if w := l.allow("flood0", now); w != 0 {
		t.Fatalf("the oldest bucket was kept (%v)", w)
	}
}

func TestClientAddr(t *testing.T) {
	for _, tc := range []struct {
		trust  bool
		remote string
		xff    []string
		want   string
	}{
		{false, "192.0.2.1:1234", nil, "192.0.2.1"},
		{false, "192.0.2.1:1234", []string{"198.51.100.1"}, "192.0.2.1"}, // spoofed, ignored
		{true, "192.0.2.1:1234", []string{"198.51.100.1"}, "198.51.100.1"},
		{true, "192.0.2.1:1234", []string{"203.0.113.9, 198.51.100.1"}, "198.51.100.1"},
		{true, "192.0.2.1:1234", []string{"203.0.113.9", "198.51.100.2"}, "198.51.100.2"},
		{true, "192.0.2.1:1234", []string{""}, "192.0.2.1"},
		{false, "[2001:db8:1:2:3:4:5:6]:443", nil, "2001:db8:1:2::/64"},
		{false, "[2001:db8:1:2:ffff::1]:443", nil, "2001:db8:1:2::/64"},
		{false, "[::ffff:192.0.2.1]:80", nil, "192.0.2.1"},
		{true, "192.0.2.1:1234", []string{"[2001:db8::1]:5"}, "2001:db8::/64"},
	} {
		s := &Service{cfg: Config{TrustProxy: tc.trust}}
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		r.RemoteAddr = tc.remote
		for _, v := range tc.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := s.clientAddr(r); got != tc.want {
			t.Errorf("trust %v, remote %s, XFF %q: %q, want %q", tc.trust, tc.remote, tc.xff, got, tc.want)
		}
	}
}
