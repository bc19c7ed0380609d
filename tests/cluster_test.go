//go:build unix

package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/livechat/livechat/pkg/uring"
)

// dialN connects n clients through HAProxy, named c00, c01, ...
func dialN(t *testing.T, c *cluster, n int) []*wsClient {
	t.Helper()
	clients := make([]*wsClient, n)
	for i := range clients {
		clients[i] = mustDial(t, c.wsURL(), fmt.Sprintf("c%02d", i))
	}
	return clients
}

// spread counts clients per server APPID.
func spread(clients []*wsClient) map[string]int {
	m := map[string]int{}
	for _, c := range clients {
		m[c.server]++
	}
	return m
}

// TestClusterFanout: 40 clients through HAProxy land on all four servers;
// every message reaches every client exactly once; `livechat publish`
// reaches all of them; `livechat stats` lists the four servers.
func TestClusterFanout(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	clients := dialN(t, c, 40)
	per := spread(clients)
	t.Logf("clients per server: %v", per)
	for _, s := range c.servers {
		if per[s.appID] == 0 {
			t.Fatalf("no client landed on server %s: %v", s.appID, per)
		}
	}

	const room = "fanout"
	joinAll(t, clients, room)
	chatRound(t, clients, room, "r1")

	out, err := c.cli("publish", "--room", room, "--from", "ops", "maintenance at 18:00")
	if err != nil {
		t.Fatalf("livechat publish: %v", err)
	}
	isAnnouncement := func(f frame) bool {
		return f.Type == "message" && f.Room == room && f.System && f.Server == "cli" && f.From == "ops" && f.Text == "maintenance at 18:00"
	}
	waitFor(t, 10*time.Second, func() bool {
		for _, cl := range clients {
			if len(cl.find(isAnnouncement)) == 0 {
				return false
			}
		}
		return true
	}, "not every client received the announcement (publish said %q)", out)
	// A second round: anything duplicated from before would have arrived by now.
	chatRound(t, clients, room, "r2")
	for _, cl := range clients {
		if n := len(cl.find(isAnnouncement)); n != 1 {
			t.Errorf("client %s got the announcement %d times", cl.name, n)
		}
		if n := len(cl.find(func(f frame) bool { return f.Type == "message" })); n != 2*len(clients)+1 {
			t.Errorf("client %s got %d messages, want %d", cl.name, n, 2*len(clients)+1)
		}
	}

	// The servers batch their writes (io_uring) where this machine allows
	// it, as it must under CI.
	var batched, single float64
	for _, s := range c.servers {
		m := scrape(s.addr)
		batched += m[`livechat_flusher_writes_total{batched="true"}`]
		single += m[`livechat_flusher_writes_total{batched="false"}`]
	}
	if r, err := uring.New(2); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("io_uring not available under CI: %v", err)
		}
		t.Logf("io_uring not available here (%v): %v writes, none batched", err, single)
	} else {
		_ = r.Close()
		if batched == 0 {
			t.Errorf("no write was batched (%v single writes)", single)
		}
	}

	// stats: four servers, all ok, holding the 40 connections.
	if ok, last := c.waitStats(func(r statsReport) bool { return r.Totals.Connections == int64(len(clients)) }); !ok {
		t.Fatalf("livechat stats does not list the four servers with %d connections: %s", len(clients), last)
	}
}

// statsReport is what the tests read of `livechat stats --output json`.
type statsReport struct {
	Servers []struct {
		AppID       string `json:"app_id"`
		Status      string `json:"status"`
		Connections int64  `json:"connections"`
	} `json:"servers"`
	Totals struct {
		Servers     int   `json:"servers"`
		Connections int64 `json:"connections"`
	} `json:"totals"`
}

// waitStats runs `livechat stats` until it lists the four servers
// (1000..4000) all ok and more holds, for up to 15 s. It returns whether it
// did and the last output.
func (c *cluster) waitStats(more func(statsReport) bool) (bool, string) {
	var last string
	ok := poll(15*time.Second, func() bool {
		var report statsReport
		out, err := c.cli("stats", "--output", "json", "--interval", "1200ms")
		last = fmt.Sprintf("%s (err %v)", out, err)
		if err != nil || json.Unmarshal([]byte(out), &report) != nil {
			return false
		}
		var ids []string
		for _, s := range report.Servers {
			if s.Status == "ok" {
				ids = append(ids, s.AppID)
			}
		}
		sort.Strings(ids)
		return fmt.Sprint(ids) == "[1000 2000 3000 4000]" && (more == nil || more(report))
	})
	return ok, last
}

// victimsOf returns the clients on server appID and the others.
func victimsOf(clients []*wsClient, appID string) (victims, others []*wsClient) {
	for _, c := range clients {
		if c.server == appID {
			victims = append(victims, c)
		} else {
			others = append(others, c)
		}
	}
	return victims, others
}

// reconnect replaces each victim by a new connection through HAProxy,
// which must land on another server, and joins it to room.
func reconnect(t *testing.T, c *cluster, victims []*wsClient, deadAppID, room string, timeout time.Duration) []*wsClient {
	t.Helper()
	out := make([]*wsClient, len(victims))
	for i, v := range victims {
		out[i] = redial(t, c.wsURL(), v.name, timeout)
		if out[i].server == deadAppID {
			t.Fatalf("%s reconnected to the server %s that is going away", v.name, deadAppID)
		}
	}
	joinAll(t, out, room)
	return out
}

// TestClusterDrainOnSIGTERM: a server told to stop fails /readyz, HAProxy
// marks it down, its clients get 1001 "going away", reconnect through
// HAProxy to the other three and keep chatting; the process exits 0.
func TestClusterDrainOnSIGTERM(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	clients := dialN(t, c, 20)
	const room = "drain"
	joinAll(t, clients, room)
	victim, hname := c.byAppID("1000")
	victims, others := victimsOf(clients, victim.appID)
	if len(victims) == 0 {
		t.Fatalf("no client on server %s: %v", victim.appID, spread(clients))
	}

	start := time.Now()
	if err := victim.p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Watch both at once: HAProxy's view of the server and the clients.
	var markedDown, closedAt time.Duration
	if !poll(drainDelay+8*time.Second, func() bool {
		if markedDown == 0 && strings.HasPrefix(c.serverStates()[hname], "DOWN") {
			markedDown = time.Since(start)
		}
		if closedAt == 0 {
			all := true
			for _, v := range victims {
				if done, _ := v.closed(); !done {
					all = false
					break
				}
			}
			if all {
				closedAt = time.Since(start)
			}
		}
		return markedDown > 0 && closedAt > 0
	}) {
		t.Fatalf("draining: HAProxy marked the server down after %s, its clients were all closed after %s (0: not yet); states %v",
			markedDown, closedAt, c.serverStates())
	}
	for _, v := range victims {
		if _, code := v.closed(); code != websocket.CloseGoingAway {
			t.Errorf("%s was closed with %d, want 1001 (going away)", v.name, code)
		}
	}
	for _, o := range others {
		if done, code := o.closed(); done {
			t.Errorf("%s on server %s was closed (%d) though its server stays", o.name, o.server, code)
		}
	}
	t.Logf("SIGTERM: HAProxy marked it down after %s, %d clients closed with 1001 after %s (drain delay %s)",
		markedDown.Round(time.Millisecond), len(victims), closedAt.Round(time.Millisecond), drainDelay)
	// HAProxy should stop routing to the server before the server closes its
	// clients (the drain delay is chosen for that); the bound has slack for a
	// loaded machine, where this test's polling may observe it late.
	if markedDown > drainDelay+time.Second {
		t.Errorf("HAProxy took %s to mark the draining server down; the drain delay is %s", markedDown, drainDelay)
	}

	back := reconnect(t, c, victims, victim.appID, room, 5*time.Second)
	t.Logf("reconnected %d clients after %s: %v", len(back), time.Since(start).Round(time.Millisecond), spread(back))
	if !victim.p.wait(15 * time.Second) {
		t.Fatal("the drained server did not exit within 15 s")
	}
	if code := victim.p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("the drained server exited with %d, want 0", code)
	}
	chatRound(t, append(others, back...), room, "after-drain")
}

// TestClusterKill9: a server killed with SIGKILL is marked down by HAProxy
// and its clients are back, on the other servers, within a few seconds.
func TestClusterKill9(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	clients := dialN(t, c, 20)
	const room = "kill"
	joinAll(t, clients, room)
	victim, hname := c.byAppID("2000")
	victims, others := victimsOf(clients, victim.appID)
	if len(victims) == 0 {
		t.Fatalf("no client on server %s: %v", victim.appID, spread(clients))
	}

	start := time.Now()
	if err := victim.p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool {
		for _, v := range victims {
			if done, _ := v.closed(); !done {
				return false
			}
		}
		return true
	}, "the clients of the killed server were not disconnected")
	cut := time.Since(start)
	back := reconnect(t, c, victims, victim.appID, room, 5*time.Second)
	allBack := time.Since(start)
	waitFor(t, 5*time.Second, func() bool { return strings.HasPrefix(c.serverStates()[hname], "DOWN") },
		"HAProxy did not mark the killed server down: %v", c.serverStates())
	markedDown := time.Since(start)
	t.Logf("SIGKILL: clients cut after %s, all %d back after %s (%v), HAProxy marked it down after %s",
		cut.Round(time.Millisecond), len(back), allBack.Round(time.Millisecond), spread(back), markedDown.Round(time.Millisecond))
	if allBack > 5*time.Second {
		t.Errorf("clients took %s to come back, want a few seconds", allBack)
	}
	chatRound(t, append(others, back...), room, "after-kill")
}
