package account

import (
	"container/list"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/livechat/livechat/internal/httpapi"
)

// limiters is a bounded map of token buckets (golang.org/x/time/rate), one
// per key. A bucket unused for idle (the time it takes to fill up again)
// holds no information and is dropped; when the map is full, the least
// recently used bucket is dropped for a new key (so that an attacker
// cannot grow it, at the price of forgetting the throttle of the key
// touched longest ago). Its methods are safe for concurrent use.
type limiters struct {
	every rate.Limit
	burst int
	max   int
	idle  time.Duration

	// mu guards the fields below.
	mu sync.Mutex
	// m maps a key to its element of lru.
	m map[string]*list.Element
	// lru holds the *bucket values, the most recently used at the front.
	lru list.List
	// dropped counts buckets dropped while not idle (the map was full).
	dropped int
}

// bucket is one key's token bucket.
type bucket struct {
	key  string
	lim  *rate.Limiter
	last time.Time // the latest use
}

// newLimiters returns buckets of burst tokens refilled one per every,
// at most max of them.
func newLimiters(every time.Duration, burst, max int) *limiters {
	return &limiters{
		every: rate.Every(every),
		burst: burst,
		max:   max,
		idle:  every * time.Duration(burst),
		m:     make(map[string]*list.Element),
	}
}

// allow takes a token of key's bucket at now. It returns 0 when there was
// one, else how long until there is one (at least a second, as
// Retry-After counts seconds).
func (l *limiters) allow(key string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	for e := l.lru.Back(); e != nil; e = l.lru.Back() {
		b := e.Value.(*bucket)
		if now.Sub(b.last) < l.idle {
			break
		}
		l.remove(e)
	}
	e, ok := l.m[key]
	if ok {
		l.lru.MoveToFront(e)
	} else {
		if len(l.m) >= l.max {
			l.remove(l.lru.Back())
			l.dropped++
		}
		e = l.lru.PushFront(&bucket{key: key, lim: rate.NewLimiter(l.every, l.burst)})
		l.m[key] = e
	}
	b := e.Value.(*bucket)
	if now.After(b.last) {
		b.last = now
	}
	if b.lim.AllowN(now, 1) {
		return 0
	}
	wait := time.Duration((1 - b.lim.TokensAt(now)) / float64(l.every) * float64(time.Second))
	return max(wait.Round(time.Millisecond), time.Second)
}

func (l *limiters) remove(e *list.Element) {
	delete(l.m, e.Value.(*bucket).key)
	l.lru.Remove(e)
}

// size returns how many buckets are kept.
func (l *limiters) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}

// throttle takes a token of key in l, or returns 429 throttled with the
// wait as Retry-After.
func (s *Service) throttle(l *limiters, key string) error {
	wait := l.allow(key, s.now())
	if wait == 0 {
		return nil
	}
	return &httpapi.Error{Status: http.StatusTooManyRequests, Code: "throttled",
		Message: "too many attempts; wait a little and try again", RetryAfter: wait}
}

// clientAddr returns the key of r's client address for the per-address
// throttle: its IPv4 address or its IPv6 /64 (what one subscriber
// usually has), from the connection or, with TrustProxy, from the last
// X-Forwarded-For hop (the one the trusted proxy added).
func (s *Service) clientAddr(r *http.Request) string {
	a := r.RemoteAddr
	if s.cfg.TrustProxy {
		if v := lastHop(r.Header.Values("X-Forwarded-For")); v != "" {
			a = v
		}
	}
	var ip netip.Addr
	if ap, err := netip.ParseAddrPort(a); err == nil {
		ip = ap.Addr()
	} else if ip, err = netip.ParseAddr(a); err != nil {
		if len(a) > 64 {
			a = a[:64]
		}
		return a
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// lastHop returns the last element of the comma-separated list spread over
// the header values vs, trimmed; "" for none.
func lastHop(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	v := vs[len(vs)-1]
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return strings.TrimSpace(v)
}

// secure reports whether r came over TLS (with TrustProxy, as the proxy's
// X-Forwarded-Proto says), so that the cookie gets the Secure flag.
func (s *Service) secure(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	return s.cfg.TrustProxy && strings.EqualFold(lastHop(r.Header.Values("X-Forwarded-Proto")), "https")
}
