package cli

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/livechat/livechat/pkg/broker"
	"github.com/livechat/livechat/pkg/broker/brokertest"
	"github.com/livechat/livechat/pkg/history"
	"github.com/livechat/livechat/pkg/protocol"
	"github.com/livechat/livechat/pkg/server"
)

// node is one chat server in-process on a real socket, with its own broker
// connection to the shared Redis.
type node struct {
	srv  *server.Server
	b    broker.Broker
	http *httptest.Server
}

func startNode(t *testing.T, redisURL, prefix, appID string) *node {
	t.Helper()
	ctx := context.Background()
	b, err := broker.Open(ctx, redisURL, broker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The same store `serve` derives from a Redis broker, so announcements
	// that publish stores are replayed like chat.
	store, err := history.Open(ctx, redisURL, history.Options{KeyPrefix: prefix + ":history", MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	srv, err := server.New(b, server.Config{
		AppID: appID, Prefix: prefix, Version: "test", History: store,
		HeartbeatInterval: 100 * time.Millisecond, PresenceInterval: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	n := &node{srv: srv, b: b, http: httptest.NewServer(srv.Handler())}
	t.Cleanup(n.kill)
	return n
}

// kill stops the node without a goodbye, as a crash would: its broker
// connection goes first, so no heartbeat or presence bye leaves it.
func (n *node) kill() {
	_ = n.b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = n.srv.Shutdown(ctx)
	n.http.Close()
}

// client is a WebSocket chat client that has joined a room.
type client struct {
	t    *testing.T
	conn *websocket.Conn
}

func dialJoin(t *testing.T, n *node, room, name string) *client {
	t.Helper()
	url := "ws" + strings.TrimPrefix(n.http.URL, "http") + "/ws"
	conn, resp, err := websocket.DefaultDialer.Dial(url, nil)
	if resp != nil {
		resp.Body.Close()
	}
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &client{t: t, conn: conn}
	if err := conn.WriteJSON(protocol.Inbound{Type: protocol.TypeJoin, Room: room, Name: name}); err != nil {
		t.Fatal(err)
	}
	c.next(protocol.TypeJoined)
	return c
}

// next returns the next frame of type typ, skipping others (welcome,
// presence, typing).
func (c *client) next(typ string) map[string]any {
	c.t.Helper()
	if err := c.conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		c.t.Fatal(err)
	}
	for {
		var f map[string]any
		if err := c.conn.ReadJSON(&f); err != nil {
			c.t.Fatalf("waiting for %s: %v", typ, err)
		}
		if f["type"] == typ {
			return f
		}
	}
}

func TestPublishReachesClientsOnTwoServers(t *testing.T) {
	url, prefix := brokertest.RedisURL(t), brokertest.Prefix(t)
	a, b := startNode(t, url, prefix, "a1"), startNode(t, url, prefix, "b1")
	ca, cb := dialJoin(t, a, "general", "alice"), dialJoin(t, b, "general", "bob")

	code, _, stderr := run(t, "", "publish", "--broker", url, "--prefix", prefix, "--room", "general", "--from", "ops", "maintenance", "at", "18:00")
	if code != 0 {
		t.Fatalf("publish: exit %d: %s", code, stderr)
	}
	for _, c := range []*client{ca, cb} {
		m := c.next(protocol.TypeMessage)
		if m["text"] != "maintenance at 18:00" || m["from"] != "ops" || m["system"] != true || m["room"] != "general" {
			t.Errorf("announcement = %v", m)
		}
	}

	// Lines from stdin are one announcement each.
	code, _, stderr = run(t, "first\n\nsecond\n", "publish", "--broker", url, "--prefix", prefix, "--room", "general")
	if code != 0 {
		t.Fatalf("publish from stdin: exit %d: %s", code, stderr)
	}
	for i, want := range []string{"first", "second"} {
		if m := ca.next(protocol.TypeMessage); m["text"] != want || m["seq"] != float64(i+2) {
			t.Errorf("stdin announcement = %v, want text %q and seq %d", m, want, i+2)
		}
	}

	// Stored in the history: a client joining later sees all three, in order.
	late := dialJoin(t, b, "general", "carol")
	for i, want := range []string{"maintenance at 18:00", "first", "second"} {
		if m := late.next(protocol.TypeMessage); m["text"] != want || m["seq"] != float64(i+1) {
			t.Errorf("replayed announcement = %v, want text %q and seq %d", m, want, i+1)
		}
	}

	// --history none: live only, no seq.
	code, _, stderr = run(t, "", "publish", "--broker", url, "--prefix", prefix, "--history", "none", "--room", "general", "live only")
	if code != 0 {
		t.Fatalf("publish --history none: exit %d: %s", code, stderr)
	}
	if m := ca.next(protocol.TypeMessage); m["text"] != "live only" || m["seq"] != nil {
		t.Errorf("live-only announcement = %v", m)
	}
}

func TestTailPrintsClientMessages(t *testing.T) {
	url, prefix := brokertest.RedisURL(t), brokertest.Prefix(t)
	a := startNode(t, url, prefix, "a1")
	alice := dialJoin(t, a, "lobby", "alice")

	for _, output := range []string{"table", "json"} {
		t.Run(output, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			ios, out, errOut := testIO("")
			done := make(chan int)
			go func() {
				done <- Run(ctx, []string{"tail", "--broker", url, "--prefix", prefix, "--room", "lobby", "--output", output}, ios)
			}()
			brokertest.WaitFor(t, 10*time.Second, "tail to subscribe", func() bool { return strings.Contains(errOut.String(), "watching") })
			text := "hello from " + output
			if err := alice.conn.WriteJSON(protocol.Inbound{Type: protocol.TypeSend, Room: "lobby", Text: text, CID: output}); err != nil {
				t.Fatal(err)
			}
			brokertest.WaitFor(t, 10*time.Second, "tail to print the message", func() bool { return strings.Contains(out.String(), text) })
			cancel()
			if code := <-done; code != 0 {
				t.Fatalf("tail exit %d: %s", code, errOut.String())
			}
			line := strings.TrimSpace(out.String())
			if output == "json" {
				var l struct {
					Subject string           `json:"subject"`
					Frame   protocol.Message `json:"frame"`
				}
				if err := json.Unmarshal([]byte(line), &l); err != nil || l.Frame.From != "alice" || l.Frame.Server != "a1" || l.Subject != prefix+".room.lobby" {
					t.Errorf("json line %q: %+v %v", line, l, err)
				}
			} else if !strings.HasSuffix(line, "#lobby [a1] alice: "+text) {
				t.Errorf("line %q", line)
			}
		})
	}
}

func TestStatsListsServersAndMarksDeadOneStale(t *testing.T) {
	url, prefix := brokertest.RedisURL(t), brokertest.Prefix(t)
	a, b := startNode(t, url, prefix, "a1"), startNode(t, url, prefix, "b1")
	dialJoin(t, a, "r", "alice")
	_ = b

	stats := func() StatsReport {
		t.Helper()
		code, out, stderr := run(t, "", "stats", "--broker", url, "--prefix", prefix, "--interval", "400ms", "--output", "json")
		if code != 0 {
			t.Fatalf("stats: exit %d: %s", code, stderr)
		}
		var rep StatsReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("stats output %q: %v", out, err)
		}
		return rep
	}
	status := func(rep StatsReport) map[string]string {
		m := map[string]string{}
		for _, s := range rep.Servers {
			m[s.AppID] = s.Status
		}
		return m
	}
	// Heartbeats come every 100 ms here, so a loaded machine may make one
	// late now and then: poll.
	var rep StatsReport
	brokertest.WaitFor(t, 15*time.Second, "a1 and b1 ok", func() bool {
		rep = stats()
		st := status(rep)
		return st["a1"] == "ok" && st["b1"] == "ok" && len(st) == 2
	})
	if rep.Totals.Connections != 1 || rep.Totals.Servers != 2 {
		t.Errorf("totals = %+v", rep.Totals)
	}

	b.kill()
	brokertest.WaitFor(t, 15*time.Second, "b1 to be stale", func() bool {
		st := status(stats())
		return st["b1"] == "stale" && st["a1"] == "ok"
	})
}
