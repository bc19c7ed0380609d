package loadgen

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livechat/livechat/pkg/auth"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef-loadgen-test")

// tokenConfig returns a quick run against rs whose clients present tokens
// minted for their names; mint(i, claims) may change a token's claims.
// minted counts Token's calls; early counts those made after a handshake
// had begun.
func tokenConfig(t *testing.T, rs *roomServer, mint func(i int, c *auth.Claims)) (cfg Config, minted, late *atomic.Int64) {
	t.Helper()
	id, err := NewRunID()
	if err != nil {
		t.Fatal(err)
	}
	minted, late = &atomic.Int64{}, &atomic.Int64{}
	cfg = quick(rs.url())
	cfg.Clients, cfg.Rate = 10, 60
	cfg.RunID = id
	cfg.Token = func(i int) (string, error) {
		minted.Add(1)
		if rs.handshakes.Load() > 0 {
			late.Add(1)
		}
		c := auth.Claims{Name: cfg.ClientName(i)}
		c.Subject = "bench-" + strconv.Itoa(i)
		if mint != nil {
			mint(i, &c)
		}
		return auth.MintToken(testSecret, c, time.Minute)
	}
	return cfg, minted, late
}

// TestRunTokens: with Config.Token every handshake carries its client's
// token, all of them minted before the first handshake, and every join
// names the client as its token does; the run is as clean as a guest one.
func TestRunTokens(t *testing.T) {
	t.Parallel()
	rs := newRoomServer(t, &roomServer{secret: testSecret})
	cfg, minted, late := tokenConfig(t, rs, nil)
	res := run(t, cfg)
	n := int64(res.Clients + res.Publishers)
	if res.Publishers != 3 || !res.Tokens || res.RunID != cfg.RunID {
		t.Errorf("publishers %d tokens %v run id %s; want 3, true, %s", res.Publishers, res.Tokens, res.RunID, cfg.RunID)
	}
	if minted.Load() != n || late.Load() != 0 {
		t.Errorf("Token called %d times (%d after the first handshake); want %d, all before", minted.Load(), late.Load(), n)
	}
	if h, a := rs.handshakes.Load(), rs.withAuth.Load(); h != n || a != n || rs.refused.Load() != 0 || rs.badNames.Load() != 0 {
		t.Errorf("%d handshakes, %d with Authorization, %d refused, %d joins with another name than the token's; want %d, %d, 0, 0",
			h, a, rs.refused.Load(), rs.badNames.Load(), n, n)
	}
	rs.mu.Lock()
	names := append([]string(nil), rs.names...)
	rs.mu.Unlock()
	want := map[string]bool{}
	for i := range int(n) {
		want[cfg.ClientName(i)] = true
	}
	for _, name := range names {
		if !want[name] {
			t.Errorf("join as %q: not one of the run's names", name)
		}
		delete(want, name)
	}
	if len(want) != 0 {
		t.Errorf("no join as %v", want)
	}
	if res.Connect.Established != int(n) || res.Members != int(n) || res.Sent < 20 || res.Acked != res.Sent ||
		res.Delivered != res.Expected || res.Lost != 0 || len(res.ErrorFrames) != 0 || len(res.Disconnects) != 0 {
		t.Errorf("established %d members %d sent %d acked %d expected %d delivered %d lost %d errors %v disconnects %v",
			res.Connect.Established, res.Members, res.Sent, res.Acked, res.Expected, res.Delivered, res.Lost,
			res.ErrorFrames, res.Disconnects)
	}
}

// TestRunTokenNameMismatch: a client whose token asserts another name is
// refused its join by the token server: the test server does check names.
func TestRunTokenNameMismatch(t *testing.T) {
	t.Parallel()
	rs := newRoomServer(t, &roomServer{secret: testSecret})
	cfg, _, _ := tokenConfig(t, rs, func(i int, c *auth.Claims) {
		if i == 4 {
			c.Name = "someone else"
		}
	})
	cfg.JoinTimeout = 2 * time.Second
	res := run(t, cfg)
	if rs.badNames.Load() != 1 || res.Connect.NotJoined != 1 || res.ErrorFrames["forbidden_name"] != 1 {
		t.Errorf("%d joins refused, %d not joined, error frames %v; want 1, 1, forbidden_name=1",
			rs.badNames.Load(), res.Connect.NotJoined, res.ErrorFrames)
	}
}

// TestRunTokenError: a Token error ends Run before any handshake, naming
// the client but not any token.
func TestRunTokenError(t *testing.T) {
	t.Parallel()
	rs := newRoomServer(t, &roomServer{secret: testSecret})
	cfg := quick(rs.url())
	boom := errors.New("no secret today")
	cfg.Token = func(i int) (string, error) {
		if i == 3 {
			return "", boom
		}
		return "tok" + strconv.Itoa(i), nil
	}
	_, err := runTagged(context.Background(), t, cfg)
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "client 3") || strings.Contains(err.Error(), "tok0") ||
		rs.handshakes.Load() != 0 {
		t.Errorf("Run: %v after %d handshakes; want the Token error for client 3 and no handshake", err, rs.handshakes.Load())
	}
}

// TestRunWithoutTokens: without Config.Token no handshake carries an
// Authorization header, and a token server refuses every one.
func TestRunWithoutTokens(t *testing.T) {
	t.Parallel()
	rs := newRoomServer(t, &roomServer{})
	cfg := quick(rs.url())
	cfg.Clients, cfg.Rate = 5, 20
	res := run(t, cfg)
	if res.Tokens || rs.handshakes.Load() != 6 || rs.withAuth.Load() != 0 {
		t.Errorf("tokens %v, %d handshakes, %d with Authorization; want false, 6, 0", res.Tokens, rs.handshakes.Load(), rs.withAuth.Load())
	}

	ts := newRoomServer(t, &roomServer{secret: testSecret})
	cfg = quick(ts.url())
	cfg.Clients, cfg.Rate = 5, 20
	_, err := runTagged(context.Background(), t, cfg)
	if err == nil || ts.refused.Load() != 6 || !strings.Contains(err.Error(), "(HTTP 401 Unauthorized)") {
		t.Errorf("guests against a token server: %v, %d refused; want every handshake refused with 401", err, ts.refused.Load())
	}
}

// TestTokenClientNameAndRunID: the names Run joins with, and the run ids
// Validate takes.
func TestTokenClientNameAndRunID(t *testing.T) {
	t.Parallel()
	c := Config{Clients: 3, RunID: "0badcafe"}
	for i, want := range []string{"bench-0badcafe-s0", "bench-0badcafe-s2", "bench-0badcafe-p0", "bench-0badcafe-p11"} {
		if got := c.ClientName([]int{0, 2, 3, 14}[i]); got != want {
			t.Errorf("ClientName(%d) = %q, want %q", []int{0, 2, 3, 14}[i], got, want)
		}
	}
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"", true}, {"0badcafe", true}, {"Run1", true},
		{"0badcafe1", false}, {"a-b", false}, {"a:b", false}, {"é", false}, {`a"b`, false},
	} {
		c := Config{RunID: tc.id}
		if err := c.Validate(); (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrConfig)) {
			t.Errorf("RunID %q: %v, want ok %v", tc.id, err, tc.ok)
		}
	}
	id, err := NewRunID()
	if c := (Config{RunID: id}); err != nil || c.Validate() != nil {
		t.Errorf("NewRunID() = %q, %v: not a valid RunID", id, err)
	}
}
