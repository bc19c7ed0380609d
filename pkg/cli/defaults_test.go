package cli

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/spf13/cobra"

	"github.com/livechat/livechat/pkg/loadgen"
	"github.com/livechat/livechat/pkg/server"
)

// checkFlagDefaults fails for each flag of cmd in want whose default, as
// --help shows it, is not fmt.Sprint of the wanted value.
func checkFlagDefaults(t *testing.T, cmd *cobra.Command, want map[string]any) {
	t.Helper()
	for name, v := range want {
		f := cmd.Flags().Lookup(name)
		if f == nil {
			t.Errorf("%s has no flag --%s", cmd.Name(), name)
			continue
		}
		if w := fmt.Sprint(v); f.DefValue != w {
			t.Errorf("%s --%s default %q, want %q", cmd.Name(), name, f.DefValue, w)
		}
	}
}

// TestServeDefaultsAreTheServers: serve's flags default to
// server.DefaultConfig(), the config New uses for zero fields.
func TestServeDefaultsAreTheServers(t *testing.T) {
	ios, _, _ := testIO("")
	d := server.DefaultConfig()
	checkFlagDefaults(t, newServeCmd(ios, &GlobalOptions{}), map[string]any{
		"max-conns-per-ip":   d.MaxConnsPerIP,
		"max-rooms-per-conn": d.MaxRoomsPerConn,
		"read-limit":         d.ReadLimit,
		"send-queue":         d.SendQueue,
		"rate":               d.RatePerSec,
		"rate-burst":         d.RateBurst,
		"drain-delay":        d.DrainDelay,
		"broker-grace":       d.BrokerLossGrace,
		"heartbeat-interval": d.HeartbeatInterval,
		"heartbeat":          d.ClientHeartbeat,
		"presence-interval":  d.PresenceInterval,
		"trust-proxy":        d.TrustProxy,
		"allowed-origins":    d.AllowedOrigins,
		"batch-writes":       !d.NoBatchedWrites,
		"write-burst":        !d.NoWriteBurst,
		"read-poller":        !d.NoReadPoller,
		"guests":             !d.NoGuests,
		"addr":               DefaultAddr,
		"broker":             DefaultServeBroker,
		"data":               DefaultDataDir,
		"history":            "",
		"store":              "",
		"secret-file":        "",
	})
	opts := newServeOptions(&GlobalOptions{})
	want := server.DefaultConfig()
	want.AppID = opts.Server.AppID
	if !reflect.DeepEqual(opts.Server, want) {
		t.Errorf("serve's server config %+v\nwant server.DefaultConfig() %+v", opts.Server, want)
	}
}

// TestOpsDefaultsAreTheSingleNodes: publish, tail and stats default to the
// operator API of a node that serve runs with no flags, and find its key in
// the same data directory; token finds its secret there.
func TestOpsDefaultsAreTheSingleNodes(t *testing.T) {
	ios, _, _ := testIO("")
	if want := "http://127.0.0.1" + newServeOptions(&GlobalOptions{}).Addr; DefaultOpsBroker != want {
		t.Errorf("DefaultOpsBroker %q, want serve's address %q", DefaultOpsBroker, want)
	}
	for _, cmd := range []*cobra.Command{newPublishCmd(ios, &GlobalOptions{}), newTailCmd(ios, &GlobalOptions{}), newStatsCmd(ios, &GlobalOptions{})} {
		checkFlagDefaults(t, cmd, map[string]any{
			"broker":            DefaultOpsBroker,
			"data":              DefaultDataDir,
			"operator-key-file": "",
		})
	}
	checkFlagDefaults(t, newTokenCmd(ios, &GlobalOptions{}), map[string]any{
		"data": DefaultDataDir, "ttl": defaultTokenTTL, "secret-file": "",
	})
	// users and rooms: the servers' store as serve finds it (--store empty:
	// livechat.db in --data), and those that publish the same broker as
	// publish.
	sub := func(parent *cobra.Command, name string) *cobra.Command {
		c, _, err := parent.Find([]string{name})
		if err != nil || c == parent {
			t.Fatalf("%s has no %s: %v", parent.Name(), name, err)
		}
		return c
	}
	users, rooms := newUsersCmd(ios, &GlobalOptions{}), newRoomsCmd(ios, &GlobalOptions{})
	for _, c := range []*cobra.Command{sub(users, "ban"), sub(users, "delete"), sub(rooms, "remove")} {
		checkFlagDefaults(t, c, map[string]any{
			"broker": DefaultOpsBroker, "data": DefaultDataDir, "operator-key-file": "", "store": "", "prefix": "livechat",
		})
	}
	for _, c := range []*cobra.Command{sub(users, "list"), sub(users, "add"), sub(users, "unban"),
		sub(rooms, "list"), sub(rooms, "create"), sub(rooms, "members"), sub(rooms, "add")} {
		checkFlagDefaults(t, c, map[string]any{"data": DefaultDataDir, "store": ""})
	}
	checkFlagDefaults(t, sub(users, "list"), map[string]any{"limit": defaultPage})
	checkFlagDefaults(t, sub(rooms, "list"), map[string]any{"limit": defaultPage})
	checkFlagDefaults(t, sub(rooms, "add"), map[string]any{"role": "member"})
}

// TestBenchDefaultsAreLoadgens: bench's flags default to
// loadgen.DefaultConfig(), and bench without flags runs what the engine
// makes of the zero Config (with the source addresses of --source-ips
// auto).
func TestBenchDefaultsAreLoadgens(t *testing.T) {
	ios, _, _ := testIO("")
	d := loadgen.DefaultConfig()
	checkFlagDefaults(t, newBenchCmd(ios, &GlobalOptions{}), map[string]any{
		"url":                 d.URLs,
		"clients":             d.Clients,
		"publishers":          d.Publishers,
		"rate":                d.Rate,
		"max-rate-per-conn":   d.MaxRatePerConn,
		"size":                d.Size,
		"duration":            d.Duration,
		"room":                d.Room,
		"rooms":               d.Rooms,
		"connect-concurrency": d.ConnectConcurrency,
		"connect-timeout":     d.ConnectTimeout,
		"join-timeout":        d.JoinTimeout,
		"warmup":              d.Warmup,
		"drain":               d.Drain,
		"source-ips":          "auto",
	})

	got, err := benchConfig(newBenchOptions(&GlobalOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	var want loadgen.Config
	if want.SourceIPs, err = loadgen.ParseSourceIPs("auto", []string{loadgen.DefaultURL}); err != nil {
		t.Fatal(err)
	}
	if err := want.Validate(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("bench without flags runs %+v\nthe engine's defaults are %+v", got, want)
	}

	// bench's help says a publisher's default rate is the server's limit.
	if r := server.DefaultConfig().RatePerSec; d.MaxRatePerConn != r {
		t.Errorf("loadgen's MaxRatePerConn default %v is not the server's RatePerSec default %v", d.MaxRatePerConn, r)
	}
}
