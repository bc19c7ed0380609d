package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livechat/livechat/internal/wstest"
	"github.com/livechat/livechat/pkg/protocol"
)

// arrival is a frame a client read and when.
type arrival struct {
	typ string
	at  time.Time
	raw []byte
}

// readArrivals reads ws's frames until it has read `beats` heartbeats (or
// fails), recording when each came. Pings are answered by gorilla's default
// handler while it reads.
func readArrivals(ws *wstest.Conn, beats int) ([]arrival, error) {
	var got []arrival
	_ = ws.SetReadDeadline(time.Now().Add(waitTimeout))
	for n := 0; n < beats; {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return got, err
		}
		var f rx
		if err := json.Unmarshal(data, &f); err != nil {
			return got, fmt.Errorf("frame %q: %w", data, err)
		}
		got = append(got, arrival{typ: f.Type, at: time.Now(), raw: data})
		if f.Type == protocol.TypeHeartbeat {
			n++
		}
	}
	return got, nil
}

// lateness measures how late this process runs a goroutine that a timer
// wakes: what a loaded machine adds to each step of a heartbeat's way (the
// server's scan, its flusher, the test's reader).
type lateness struct {
	stop, done chan struct{}
	most       time.Duration // read after stopping
}

func watchLateness() *lateness {
	const every = 5 * time.Millisecond
	l := &lateness{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		t := time.NewTicker(every)
		defer t.Stop()
		prev := time.Now()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
			}
			now := time.Now()
			l.most = max(l.most, now.Sub(prev)-every)
			prev = now
		}
	}()
	return l
}

// end stops the watch and returns the longest delay it saw.
func (l *lateness) end() time.Duration {
	close(l.stop)
	<-l.done
	return l.most
}

// TestHeartbeatsReachIdleConnections: an idle connection gets heartbeat
// frames after its welcome, never more than ClientHeartbeat apart (with the
// slack below), and not much more often than needed (no flood); pings,
// which a page never sees, do not count as frames; heartbeats are counted
// apart from messages_out. In every way a connection is read (its poller's
// goroutine, a goroutine per report, a reader goroutine for its life) and
// with batched writes on and off.
func TestHeartbeatsReachIdleConnections(t *testing.T) {
	for _, mode := range []string{"inline", "spawned", "goroutines", "tls", "noflusher"} {
		for _, batched := range []bool{true, false} {
			if (mode == "tls" || mode == "noflusher") && !batched {
				continue // a TLS socket has its own writer: no flusher
			}
			t.Run(fmt.Sprintf("%s/batched=%v", mode, batched), func(t *testing.T) {
				if (mode == "inline" || mode == "spawned") && runtime.GOOS != "linux" {
					t.Skip("no read poller on this system")
				}
				t.Parallel()
				idleHeartbeats(t, mode, batched)
			})
		}
	}
}

// startTLSServer starts a Server behind a TLS listener, whose sockets give
// the server no file descriptor: they are written by the connections' own
// writer goroutines, not by a flusher. It returns the server, its wss://
// URL and the client's TLS config; cleanup shuts it down.
func startTLSServer(t *testing.T, cfg Config) (*Server, string, *tls.Config) {
	t.Helper()
	cfg.Logger = quietLogger()
	s, err := New(memBroker(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewTLSServer(s.Handler())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		hs.Close()
	})
	pool := x509.NewCertPool()
	pool.AddCert(hs.Certificate())
	return s, "wss" + strings.TrimPrefix(hs.URL, "https") + "/ws", &tls.Config{RootCAs: pool}
}

func idleHeartbeats(t *testing.T, mode string, batched bool) {
	const (
		interval = 400 * time.Millisecond
		// slack is what the test allows above interval for one gap, besides
		// three times the longest delay in running a goroutine this process
		// saw meanwhile (lateness: the scan, the flusher and this reader
		// each wait that long for a processor). The server's quarter-interval
		// margin (heartbeat.go) covers the rest on a machine with processors
		// to spare; under the race detector on a 2-core box shared with
		// other test processes, the gaps have been seen 150 ms above the
		// server's schedule without starving goroutines for long. The median
		// gap shows whether the server keeps to its schedule.
		slack = interval / 2
		n     = 4 // connections: their heartbeats fall due together (a batch)
		beats = 6
	)
	cfg := Config{
		AppID: "1000", Prefix: testPrefix(t), ClientHeartbeat: interval,
		PingPeriod:   70 * time.Millisecond, // pings come between the heartbeats
		NoReadPoller: mode == "goroutines", NoBatchedWrites: !batched, NoFlusher: mode == "noflusher",
		NoInlineReads: mode == "spawned",
	}
	var (
		ts  *Server
		url string
		d   = &wstest.Dialer{HandshakeTimeout: 5 * time.Second}
	)
	if mode == "tls" {
		ts, url, d.TLSClientConfig = startTLSServer(t, cfg)
	} else {
		s := startServer(t, memBroker(t), cfg)
		ts, url = s.Server, s.url
	}
	type result struct {
		got []arrival
		err error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	late := watchLateness()
	for i := range n {
		ws, _, err := dialWith(d, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ws.Close() })
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i].got, results[i].err = readArrivals(ws, beats)
		}()
	}
	wg.Wait()
	allowed := interval + slack + 3*late.end()
	var gaps []time.Duration
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("connection %d after %d frames: %v", i, len(r.got), r.err)
		}
		if r.got[0].typ != protocol.TypeWelcome {
			t.Fatalf("connection %d: first frame %s, want welcome", i, r.got[0].raw)
		}
		var w struct {
			HeartbeatMS int64 `json:"heartbeat_ms"`
		}
		if err := json.Unmarshal(r.got[0].raw, &w); err != nil || w.HeartbeatMS != interval.Milliseconds() {
			t.Fatalf("welcome %s: want heartbeat_ms %d", r.got[0].raw, interval.Milliseconds())
		}
		for k, a := range r.got[1:] {
			if a.typ != protocol.TypeHeartbeat || string(a.raw) != `{"type":"heartbeat"}` {
				t.Fatalf("connection %d: frame %d is %s, want only heartbeats", i, k+1, a.raw)
			}
			gap := a.at.Sub(r.got[k].at)
			if gap > allowed {
				t.Errorf("connection %d: %v without a frame before heartbeat %d, want at most %v (+%v slack for this machine)", i, gap, k+1, interval, allowed-interval)
			}
			gaps = append(gaps, gap)
		}
		// No flood: a heartbeat is queued only after 5/8 of the interval
		// without a frame; each gap alone may shrink by a late read.
		if mean := r.got[beats].at.Sub(r.got[0].at) / beats; mean < interval/2 {
			t.Errorf("connection %d: a frame every %v on average, want at least %v", i, mean, interval/2)
		}
	}
	// A heartbeat is queued 5/8 to 6/8 of the interval after the last
	// frame: most gaps are well below the interval, whatever the load.
	slices.Sort(gaps)
	median := gaps[len(gaps)/2]
	t.Logf("gaps between frames: %v to %v, median %v (interval %v, allowed %v)", gaps[0], gaps[len(gaps)-1], median, interval, allowed)
	if median > interval {
		t.Errorf("median gap %v, want below the interval %v", median, interval)
	}
	// The counter is bumped after the write, so a client may have read its
	// beats before the server counted them: await the count.
	waitFor(t, 5*time.Second, "heartbeats_sent to count every beat", func() bool {
		return ts.heartbeatsSent.Load() >= uint64(n*beats)
	})
	if out := ts.framesOut(); out != n {
		t.Errorf("messages_out %d, want %d (the welcomes; heartbeats are not messages)", out, n)
	}
}

// TestBusyConnectionGetsNoHeartbeat: connections that get a frame more often
// than the interval (a member of a room with steady traffic, and the
// sender, which gets its acks) get no heartbeat; once the traffic stops
// they do, no sooner than the idle time that earns one.
func TestBusyConnectionGetsNoHeartbeat(t *testing.T) {
	t.Parallel()
	const (
		interval = time.Second
		pace     = 50 * time.Millisecond
		sends    = 50 // 2.5 intervals of traffic
	)
	ts := startServer(t, memBroker(t), Config{
		AppID: "1000", Prefix: testPrefix(t), ClientHeartbeat: interval,
		RatePerSec: 1000, RateBurst: 1000,
	})
	sender, member := dial(t, ts.url), dial(t, ts.url)
	sender.join("busy", "sender")
	member.join("busy", "member")
	tick := time.NewTicker(pace) // the sender's pace, not a synchronisation
	defer tick.Stop()
	var lastSend time.Time
	for i := range sends {
		lastSend = time.Now()
		sender.sendJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "busy", Text: "m" + strconv.Itoa(i), CID: strconv.Itoa(i)})
		<-tick.C
	}
	lastText := "m" + strconv.Itoa(sends-1)
	for _, c := range []*client{sender, member} {
		c.waitUntil("the last message", func(frames []rx) bool {
			for _, f := range frames {
				if f.Type == protocol.TypeMessage && f.Text == lastText {
					return true
				}
			}
			return false
		})
	}
	for _, c := range []*client{sender, member} {
		if hb := c.frameList(protocol.TypeHeartbeat); len(hb) > 0 {
			t.Fatalf("a busy connection got %d heartbeats", len(hb))
		}
	}
	for _, c := range []*client{sender, member} {
		c.next(protocol.TypeHeartbeat)
	}
	// A heartbeat is queued after heartbeatAfter of heartbeatScans quiet
	// intervals; the last frames (the last message and its ack) were
	// written after lastSend.
	if el, least := time.Since(lastSend), interval*heartbeatAfter/heartbeatScans; el < least {
		t.Fatalf("heartbeats came %v after the last send, before %v of quiet", el, least)
	}
}

// TestHeartbeatWelcome: the welcome frame announces the interval, the
// default is 10s, and a negative interval turns heartbeats off: no
// heartbeat_ms, no heartbeat frame. An interval too short for the server is
// refused.
func TestHeartbeatWelcome(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  time.Duration
		want string // the welcome's heartbeat_ms field, "" for none
	}{
		{0, `"heartbeat_ms":10000`},
		{1500 * time.Millisecond, `"heartbeat_ms":1500`},
		{-1, ""},
	} {
		ts := startServer(t, memBroker(t), Config{AppID: "1000", Prefix: testPrefix(t), ClientHeartbeat: tc.cfg})
		ws, _, err := dialRaw(ts.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = ws.SetReadDeadline(time.Now().Add(waitTimeout))
		_, data, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(data, []byte(`{"type":"welcome"`)) {
			t.Fatalf("first frame %s", data)
		}
		if tc.want == "" && bytes.Contains(data, []byte("heartbeat_ms")) || tc.want != "" && !bytes.Contains(data, []byte(tc.want)) {
			t.Errorf("ClientHeartbeat %v: welcome %s, want %q", tc.cfg, data, tc.want)
		}
		_ = ws.Close()
	}
	if _, err := New(memBroker(t), Config{AppID: "1", ClientHeartbeat: time.Millisecond}); !errors.Is(err, ErrConfig) {
		t.Fatalf("New with ClientHeartbeat 1ms = %v, want ErrConfig", err)
	}
}

// TestHeartbeatsOff: with heartbeats off an idle connection gets nothing
// after its welcome (not even at the shortest interval the server allows)
// and no heartbeat is counted.
func TestHeartbeatsOff(t *testing.T) {
	t.Parallel()
	ts := startServer(t, memBroker(t), Config{AppID: "1000", Prefix: testPrefix(t), ClientHeartbeat: -1})
	ws, _, err := dialRaw(ts.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ws.Close() }()
	readType(t, ws, protocol.TypeWelcome)
	_ = ws.SetReadDeadline(time.Now().Add(30 * minClientHeartbeat))
	_, data, err := ws.ReadMessage()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read ended with %v (frame %s), want a timeout", err, data)
	}
	if n := ts.heartbeatsSent.Load(); n != 0 {
		t.Fatalf("%d heartbeats counted with heartbeats off", n)
	}
}
