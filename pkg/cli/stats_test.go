package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livechat/livechat/pkg/broker"
	"github.com/livechat/livechat/pkg/broker/brokertest"
	"github.com/livechat/livechat/pkg/protocol"
)

var statsNow = time.UnixMilli(1_800_000_100_000)

func sampleBeats() map[string]protocol.Heartbeat {
	now := statsNow.UnixMilli()
	return map[string]protocol.Heartbeat{
		"1000": {AppID: "1000", Addr: "10.0.0.1:8081", Version: "v1.0.0", StartedMS: now - 3_723_000, TS: now - 500, IntervalMS: 2000,
			Connections: 120, Rooms: 4, MsgsIn: 10, MsgsOut: 100, InPerSec: 12.5, OutPerSec: 1500, SlowDrops: 2, Broker: "connected",
			Peers:    map[string]int64{"2000": now - 700, "3000": now - 60_000, "5000": now - 12_000},
			PeerInfo: map[string]protocol.PeerInfo{"5000": {Addr: "10.0.0.5:8085", Version: "v1.0.0"}}},
		"2000": {AppID: "2000", Addr: "10.0.0.2:8082", Version: "v1.0.0", StartedMS: now - 61_000, TS: now - 700, IntervalMS: 2000,
			Connections: 80, Rooms: 3, InPerSec: 7.5, OutPerSec: 900.25, Broker: "reconnecting", Draining: true},
		// Killed 3.2 s ago: one heartbeat missed.
		"4000": {AppID: "4000", Addr: "10.0.0.4:8084", Version: "v0.9.0", StartedMS: now - 10_000, TS: now - 3_200, IntervalMS: 2000,
			Connections: 40, Rooms: 1, Broker: "connected"},
	}
}

func TestStatsTableTerminal(t *testing.T) {
	var buf bytes.Buffer
	if err := writeStats(&buf, buildReport(sampleBeats(), statsNow), "table", true, statsNow); err != nil {
		t.Fatal(err)
	}
	want := `┌─────────┬───────────────┬─────────┬────────┬───────┬───────┬──────┬────────┬───────┬──────────────┬─────────────┬─────────────────┐
│  APPID  │    ADDRESS    │ VERSION │ UPTIME │ CONNS │ ROOMS │ IN/S │ OUT/S  │ DROPS │    BROKER    │  LAST SEEN  │     STATUS      │
├─────────┼───────────────┼─────────┼────────┼───────┼───────┼──────┼────────┼───────┼──────────────┼─────────────┼─────────────────┤
│ 1000    │ 10.0.0.1:8081 │ v1.0.0  │ 1h2m2s │   120 │     4 │ 12.5 │ 1500.0 │     2 │ connected    │   500ms ago │ ok              │
│ 2000    │ 10.0.0.2:8082 │ v1.0.0  │   1m0s │    80 │     3 │  7.5 │  900.2 │     0 │ reconnecting │   700ms ago │ draining        │
│ 3000    │ -             │ -       │      - │     - │     - │    - │      - │     - │ -            │ silent 1m0s │ stale           │
│ 4000    │ 10.0.0.4:8084 │ v0.9.0  │      - │     - │     - │    - │      - │     - │ -            │ silent 3.2s │ late            │
│ 5000    │ 10.0.0.5:8085 │ v1.0.0  │      - │     - │     - │    - │      - │     - │ -            │  silent 12s │ stale           │
├─────────┼───────────────┼─────────┼────────┼───────┼───────┼──────┼────────┼───────┼──────────────┼─────────────┼─────────────────┤
│ TOTAL 2 │               │         │        │   200 │       │ 20.0 │ 2400.2 │     2 │              │             │ 1 late, 2 stale │
└─────────┴───────────────┴─────────┴────────┴───────┴───────┴──────┴────────┴───────┴──────────────┴─────────────┴─────────────────┘
`
	if got := buf.String(); got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
}

func TestStatsTablePipe(t *testing.T) {
	var buf bytes.Buffer
	if err := writeStats(&buf, buildReport(sampleBeats(), statsNow), "table", false, statsNow); err != nil {
		t.Fatal(err)
	}
	want := "APPID\tADDRESS\tVERSION\tUPTIME\tCONNS\tROOMS\tIN/S\tOUT/S\tDROPS\tBROKER\tLAST SEEN\tSTATUS\n" +
		"1000\t10.0.0.1:8081\tv1.0.0\t1h2m2s\t120\t4\t12.5\t1500.0\t2\tconnected\t500ms ago\tok\n" +
		"2000\t10.0.0.2:8082\tv1.0.0\t1m0s\t80\t3\t7.5\t900.2\t0\treconnecting\t700ms ago\tdraining\n" +
		"3000\t-\t-\t-\t-\t-\t-\t-\t-\t-\tsilent 1m0s\tstale\n" +
		"4000\t10.0.0.4:8084\tv0.9.0\t-\t-\t-\t-\t-\t-\t-\tsilent 3.2s\tlate\n" +
		"5000\t10.0.0.5:8085\tv1.0.0\t-\t-\t-\t-\t-\t-\t-\tsilent 12s\tstale\n" +
		"TOTAL 2\t\t\t\t200\t\t20.0\t2400.2\t2\t\t\t1 late, 2 stale\n"
	if got := buf.String(); got != want {
		t.Errorf("pipe output:\n%q\nwant:\n%q", got, want)
	}
}

func TestStatsJSON(t *testing.T) {
	var buf bytes.Buffer
	if err := writeStats(&buf, buildReport(sampleBeats(), statsNow), "json", false, statsNow); err != nil {
		t.Fatal(err)
	}
	var rep StatsReport
	if err := json.Unmarshal(buf.Bytes(), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, buf.String())
	}
	if len(rep.Servers) != 5 || rep.Servers[2].AppID != "3000" || rep.Servers[2].Status != "stale" ||
		rep.Servers[3].Status != "late" || rep.Servers[3].SilentMS != 3200 || rep.Servers[3].Addr != "10.0.0.4:8084" ||
		rep.Servers[4].Addr != "10.0.0.5:8085" || rep.Servers[4].Version != "v1.0.0" {
		t.Errorf("servers = %+v", rep.Servers)
	}
	want := Totals{Servers: 2, Late: 1, Stale: 2, Connections: 200, InPerSec: 20, OutPerSec: 2400.25, SlowDrops: 2}
	if rep.Totals != want {
		t.Errorf("totals = %+v, want %+v", rep.Totals, want)
	}
}

func TestStatsEmptyJSON(t *testing.T) {
	var buf bytes.Buffer
	if err := writeStats(&buf, buildReport(nil, statsNow), "json", false, statsNow); err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); got != `{"servers":[],"totals":{"servers":0,"late":0,"stale":0,"connections":0,"in_per_sec":0,"out_per_sec":0,"slow_drops":0}}`+"\n" {
		t.Errorf("got %s", got)
	}
}

// TestStatsShowsSilentServer publishes real heartbeats on Redis to a running
// `stats --watch` (with a test clock): a server whose heartbeats stop keeps
// its address and version, is "late" once one heartbeat is overdue and
// "stale" later, with how long it has been silent.
func TestStatsShowsSilentServer(t *testing.T) {
	url, prefix := brokertest.RedisURL(t), brokertest.Prefix(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub, err := broker.Open(ctx, url, broker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()

	const t0 = 1_800_000_000_000
	var clock atomic.Int64
	clock.Store(t0)
	ios, out, errOut := testIO("")
	opts := &StatsOptions{Global: &GlobalOptions{Broker: url, Prefix: prefix, Output: "table"},
		Interval: 20 * time.Millisecond, Watch: true, now: func() time.Time { return time.UnixMilli(clock.Load()) }}
	done := make(chan error, 1)
	go func() { done <- runStats(ctx, opts, ios) }()

	alpha := protocol.Heartbeat{AppID: "alpha", Addr: "10.0.0.1:8081", Version: "v1.2.3", StartedMS: t0 - 60_000,
		TS: t0 - 500, IntervalMS: 2000, Connections: 5, Rooms: 2, Broker: "connected"}
	beta := func(ts int64) protocol.Heartbeat {
		return protocol.Heartbeat{AppID: "beta", Addr: "10.0.0.2:8082", Version: "v1.2.3", StartedMS: t0 - 120_000,
			TS: ts, IntervalMS: 2000, Connections: 7, Rooms: 3, Broker: "connected", Peers: map[string]int64{"alpha": t0 - 500}}
	}
	// await publishes beats (again and again: stats may not have subscribed
	// yet) until stats prints want.
	await := func(what, want string, beats ...protocol.Heartbeat) {
		t.Helper()
		brokertest.WaitFor(t, 15*time.Second, what, func() bool {
			for _, hb := range beats {
				data, err := json.Marshal(hb)
				if err != nil {
					t.Fatal(err)
				}
				if err := pub.Publish(ctx, protocol.StatsSubject(prefix, hb.AppID), data); err != nil {
					t.Fatal(err)
				}
			}
			return strings.Contains(out.String(), want)
		})
	}
	header := "APPID\tADDRESS\tVERSION\tUPTIME\tCONNS\tROOMS\tIN/S\tOUT/S\tDROPS\tBROKER\tLAST SEEN\tSTATUS\n"

	await("both servers ok", header+
		"alpha\t10.0.0.1:8081\tv1.2.3\t59s\t5\t2\t0.0\t0.0\t0\tconnected\t500ms ago\tok\n"+
		"beta\t10.0.0.2:8082\tv1.2.3\t1m59s\t7\t3\t0.0\t0.0\t0\tconnected\t400ms ago\tok\n"+
		"TOTAL 2\t\t\t\t12\t\t0.0\t0.0\t0\t\t\t0 stale\n", alpha, beta(t0-400))

	// alpha is killed: 3.5 s later its next heartbeat is overdue; beta beats on.
	clock.Store(t0 + 3000)
	await("alpha late", header+
		"alpha\t10.0.0.1:8081\tv1.2.3\t-\t-\t-\t-\t-\t-\t-\tsilent 3.5s\tlate\n"+
		"beta\t10.0.0.2:8082\tv1.2.3\t2m2s\t7\t3\t0.0\t0.0\t0\tconnected\t400ms ago\tok\n"+
		"TOTAL 1\t\t\t\t7\t\t0.0\t0.0\t0\t\t\t1 late, 0 stale\n", beta(t0+2600))

	clock.Store(t0 + 11_000)
	await("alpha stale", header+
		"alpha\t10.0.0.1:8081\tv1.2.3\t-\t-\t-\t-\t-\t-\t-\tsilent 11.5s\tstale\n"+
		"beta\t10.0.0.2:8082\tv1.2.3\t2m10s\t7\t3\t0.0\t0.0\t0\tconnected\t400ms ago\tok\n"+
		"TOTAL 1\t\t\t\t7\t\t0.0\t0.0\t0\t\t\t1 stale\n", beta(t0+10_600))

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("stats --watch: %v; stderr: %s", err, errOut.String())
	}
}
