package loadgen

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/livechat/livechat/pkg/auth"
)

// roomServer is a small chat server for the tests: it speaks the part of
// the protocol the load generator uses and broadcasts every message to every
// member of its room, the sender included, like pkg/server. Its knobs inject
// faults.
//
// The knobs name members by role: the name without "bench-<run>-", such
// as "s3" for subscriber 3 or "p0" for publisher 0.
type roomServer struct {
	// dropTo drops every dropEvery-th message delivery to the member named
	// dropTo.
	dropTo    string
	dropEvery int
	// dupTo delivers every dupEvery-th message twice to the member dupTo.
	dupTo    string
	dupEvery int
	// refuseEvery answers every refuseEvery-th send (per connection) with a
	// rate_limited error instead of accepting it.
	refuseEvery int
	// kickName is closed with code 1008 on its kickAfter-th delivery.
	kickName  string
	kickAfter int
	// joinNever makes the server ignore joins from roles with this prefix.
	joinNever string
	// pingEvery, when set, pings every connection that often.
	pingEvery time.Duration
	// secret, when set, makes the server a token server: a handshake
	// without "Authorization: Bearer <token>" valid for it is refused
	// with 401, and a join whose name is not the token's is answered
	// with error forbidden_name and ignored, as pkg/server does.
	secret []byte

	handshakes atomic.Int64 // every handshake request
	withAuth   atomic.Int64 // those with an Authorization header
	refused    atomic.Int64 // those refused for their token
	badNames   atomic.Int64 // joins refused for their name

	dropped atomic.Int64
	duped   atomic.Int64
	nextID  atomic.Int64

	mu    sync.Mutex
	names []string // every join's name
	sends []string // every send's sender name and cid, "name/cid"
	rooms map[string]map[*rsConn]struct{}
	ips   map[string]int // remote IPs seen
	conns map[*rsConn]struct{}

	wg sync.WaitGroup
	ts *httptest.Server
}

type rsConn struct {
	ws        *websocket.Conn
	out       chan []byte
	quit      chan struct{}
	quitOnce  sync.Once
	name      string // set by the reader before joining a room
	role      string // name without "bench-<run>-"
	delivered int    // guarded by roomServer.mu
	tokenName string // the name the token asserts (secret set)
	sends     int    // reader-owned
}

func (c *rsConn) stop() { c.quitOnce.Do(func() { close(c.quit) }) }

var rsUpgrader = websocket.Upgrader{}

func newRoomServer(t *testing.T, rs *roomServer) *roomServer {
	t.Helper()
	rs.rooms = map[string]map[*rsConn]struct{}{}
	rs.ips = map[string]int{}
	rs.conns = map[*rsConn]struct{}{}
	rs.ts = httptest.NewServer(http.HandlerFunc(rs.serveWS))
	t.Cleanup(func() {
		rs.mu.Lock()
		for c := range rs.conns {
			c.stop()
			_ = c.ws.Close()
		}
		rs.mu.Unlock()
		rs.ts.Close()
		rs.wg.Wait()
	})
	return rs
}

// role returns a load generator name without "bench-<run>-": "s3" for
// "bench-0badcafe-s3".
func role(name string) string {
	rest, ok := strings.CutPrefix(name, "bench-")
	if !ok {
		return name
	}
	if _, r, ok := strings.Cut(rest, "-"); ok {
		return r
	}
	return name
}

func (rs *roomServer) url() string { return "ws" + strings.TrimPrefix(rs.ts.URL, "http") + "/ws" }

func (rs *roomServer) serveWS(w http.ResponseWriter, r *http.Request) {
	rs.handshakes.Add(1)
	authz := r.Header.Get("Authorization")
	if authz != "" {
		rs.withAuth.Add(1)
	}
	var tokenName string
	if rs.secret != nil {
		tok, ok := strings.CutPrefix(authz, "Bearer ")
		claims, err := auth.VerifyToken(rs.secret, tok, time.Now())
		if !ok || err != nil || claims.Name == "" {
			rs.refused.Add(1)
			http.Error(w, "invalid token", http.StatusUnauthorized)
			return
		}
		tokenName = claims.Name
	}
	ws, err := rsUpgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &rsConn{ws: ws, out: make(chan []byte, 1<<14), quit: make(chan struct{}), tokenName: tokenName}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	rs.mu.Lock()
	rs.ips[host]++
	rs.conns[c] = struct{}{}
	rs.mu.Unlock()
	rs.wg.Add(1)
	go func() { // the writer
		defer rs.wg.Done()
		var ping <-chan time.Time
		if rs.pingEvery > 0 {
			t := time.NewTicker(rs.pingEvery)
			defer t.Stop()
			ping = t.C
		}
		for {
			select {
			case <-ping:
				if err := ws.WriteMessage(websocket.PingMessage, []byte("p")); err != nil {
					_ = ws.Close()
					return
				}
			case f := <-c.out:
				if f == nil { // kick
					_ = ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "kicked"))
					_ = ws.Close()
					return
				}
				if err := ws.WriteMessage(websocket.TextMessage, f); err != nil {
					_ = ws.Close()
					return
				}
			case <-c.quit:
				return
			}
		}
	}()
	c.out <- []byte(`{"type":"welcome","server":"test","version":"t","protocol":1}`)
	defer func() {
		c.stop()
		rs.mu.Lock()
		delete(rs.conns, c)
		for _, m := range rs.rooms {
			delete(m, c)
		}
		rs.mu.Unlock()
		_ = ws.Close()
	}()
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return
		}
		var in struct{ Type, Room, Name, Text, CID string }
		if err := json.Unmarshal(data, &in); err != nil {
			return
		}
		switch in.Type {
		case "join":
			if rs.joinNever != "" && strings.HasPrefix(role(in.Name), rs.joinNever) {
				continue
			}
			if rs.secret != nil && in.Name != c.tokenName {
				rs.badNames.Add(1)
				c.out <- []byte(`{"type":"error","code":"forbidden_name","message":"not your name"}`)
				continue
			}
			c.name = in.Name
			c.role = role(in.Name)
			rs.mu.Lock()
			rs.names = append(rs.names, in.Name)
			m := rs.rooms[in.Room]
			if m == nil {
				m = map[*rsConn]struct{}{}
				rs.rooms[in.Room] = m
			}
			m[c] = struct{}{}
			names := []string{}
			for o := range m {
				names = append(names, o.name)
			}
			members, _ := json.Marshal(names)
			rs.mu.Unlock()
			c.out <- []byte(`{"type":"joined","room":"` + in.Room + `","name":"` + in.Name + `","members":` + string(members) + `}`)
		case "send":
			c.sends++
			rs.mu.Lock()
			rs.sends = append(rs.sends, c.name+"/"+in.CID)
			rs.mu.Unlock()
			if rs.refuseEvery > 0 && c.sends%rs.refuseEvery == 0 {
				c.out <- []byte(`{"type":"error","code":"rate_limited","message":"slow down","cid":"` + in.CID + `"}`)
				continue
			}
			id := strconv.FormatInt(rs.nextID.Add(1), 10)
			msg, _ := json.Marshal(map[string]any{"type": "message", "room": in.Room, "id": id, "from": c.name,
				"text": in.Text, "ts": 1, "server": "test", "cid": in.CID})
			c.out <- []byte(`{"type":"ack","cid":"` + in.CID + `","id":"` + id + `","room":"` + in.Room + `"}`)
			rs.broadcast(in.Room, msg)
		}
	}
}

// broadcast sends msg to every member of room. Its frames have sorted keys
// ("type" last), unlike pkg/server's, so the reader's key search is tested
// on both layouts.
func (rs *roomServer) broadcast(room string, msg []byte) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for m := range rs.rooms[room] {
		m.delivered++
		if m.role == rs.dropTo && rs.dropEvery > 0 && m.delivered%rs.dropEvery == 0 {
			rs.dropped.Add(1)
			continue
		}
		m.out <- msg
		if m.role == rs.dupTo && rs.dupEvery > 0 && m.delivered%rs.dupEvery == 0 {
			rs.duped.Add(1)
			m.out <- msg
		}
		if m.role == rs.kickName && m.delivered == rs.kickAfter {
			m.out <- nil
			delete(rs.rooms[room], m)
		}
	}
}
