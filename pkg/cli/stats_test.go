package cli

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/livechat/livechat/pkg/protocol"
)

var statsNow = time.UnixMilli(1_800_000_100_000)

func sampleBeats() map[string]protocol.Heartbeat {
	now := statsNow.UnixMilli()
	return map[string]protocol.Heartbeat{
		"1000": {AppID: "1000", Addr: "10.0.0.1:8081", Version: "v1.0.0", StartedMS: now - 3_723_000, TS: now - 500, IntervalMS: 2000,
			Connections: 120, Rooms: 4, MsgsIn: 10, MsgsOut: 100, InPerSec: 12.5, OutPerSec: 1500, SlowDrops: 2, Broker: "connected",
			Peers: map[string]int64{"2000": now - 700, "3000": now - 60_000}},
		"2000": {AppID: "2000", Addr: "10.0.0.2:8082", Version: "v1.0.0", StartedMS: now - 61_000, TS: now - 700, IntervalMS: 2000,
			Connections: 80, Rooms: 3, InPerSec: 7.5, OutPerSec: 900.25, Broker: "reconnecting", Draining: true},
	}
}

func TestStatsTableTerminal(t *testing.T) {
	var buf bytes.Buffer
	if err := writeStats(&buf, buildReport(sampleBeats(), statsNow), "table", true, statsNow); err != nil {
		t.Fatal(err)
	}
	want := `┌─────────┬───────────────┬─────────┬────────┬───────┬───────┬──────┬────────┬───────┬──────────────┬───────────┬──────────┐
│  APPID  │    ADDRESS    │ VERSION │ UPTIME │ CONNS │ ROOMS │ IN/S │ OUT/S  │ DROPS │    BROKER    │ LAST SEEN │  STATUS  │
├─────────┼───────────────┼─────────┼────────┼───────┼───────┼──────┼────────┼───────┼──────────────┼───────────┼──────────┤
│ 1000    │ 10.0.0.1:8081 │ v1.0.0  │ 1h2m2s │   120 │     4 │ 12.5 │ 1500.0 │     2 │ connected    │ 500ms ago │ ok       │
│ 2000    │ 10.0.0.2:8082 │ v1.0.0  │   1m0s │    80 │     3 │  7.5 │  900.2 │     0 │ reconnecting │ 700ms ago │ draining │
│ 3000    │ -             │ -       │      - │     - │     - │    - │      - │     - │ -            │  1m0s ago │ stale    │
├─────────┼───────────────┼─────────┼────────┼───────┼───────┼──────┼────────┼───────┼──────────────┼───────────┼──────────┤
│ TOTAL 2 │               │         │        │   200 │       │ 20.0 │ 2400.2 │     2 │              │           │ 1 stale  │
└─────────┴───────────────┴─────────┴────────┴───────┴───────┴──────┴────────┴───────┴──────────────┴───────────┴──────────┘
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
		"3000\t-\t-\t-\t-\t-\t-\t-\t-\t-\t1m0s ago\tstale\n" +
		"TOTAL 2\t\t\t\t200\t\t20.0\t2400.2\t2\t\t\t1 stale\n"
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
	if len(rep.Servers) != 3 || rep.Servers[2].AppID != "3000" || rep.Servers[2].Status != "stale" {
		t.Errorf("servers = %+v", rep.Servers)
	}
	want := Totals{Servers: 2, Stale: 1, Connections: 200, InPerSec: 20, OutPerSec: 2400.25, SlowDrops: 2}
	if rep.Totals != want {
		t.Errorf("totals = %+v, want %+v", rep.Totals, want)
	}
}

func TestStatsEmptyJSON(t *testing.T) {
	var buf bytes.Buffer
	if err := writeStats(&buf, buildReport(nil, statsNow), "json", false, statsNow); err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); got != `{"servers":[],"totals":{"servers":0,"stale":0,"connections":0,"in_per_sec":0,"out_per_sec":0,"slow_drops":0}}`+"\n" {
		t.Errorf("got %s", got)
	}
}
