package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/tw"
	"github.com/spf13/cobra"

	"github.com/livechat/livechat/pkg/broker"
	"github.com/livechat/livechat/pkg/protocol"
)

// StatsOptions are the inputs of `livechat stats`.
type StatsOptions struct {
	Global *GlobalOptions
	// Interval is how long to listen for heartbeats per table. Default: 3s.
	Interval time.Duration
	// Watch redraws the table every Interval until interrupted.
	Watch bool
	// now is the clock; tests set it.
	now func() time.Time
}

func newStatsCmd(ios *IOStreams, g *GlobalOptions) *cobra.Command {
	opts := &StatsOptions{Global: g}
	cmd := &cobra.Command{
		Use:   "stats [--watch] [--interval D]",
		Short: "Show a table of every live server, from their heartbeats",
		Long: `Every server publishes a heartbeat on <prefix>.stats.<appid> every few seconds
(--heartbeat-interval, 2s by default). stats listens for one interval and prints
one row per server and a totals row.

STATUS is "ok", "draining" while the server shuts down, "late" as soon as a
heartbeat is overdue (nothing for 1.5 heartbeat intervals: 3s by default) and
"stale" after 5 intervals of silence (10s): a killed, frozen or cut-off server.
For a late or stale server LAST SEEN says how long it has been silent
("silent 3.2s"), ADDRESS and VERSION are those of its last heartbeat that stats
heard, the live figures are "-" and TOTAL leaves it out. Servers learn of each
other from the heartbeats, so a dead server is listed while its peers remember
it (10 minutes), with its address and version, even when stats never heard it
itself.`,
		Example: `  livechat stats
  livechat stats --watch --interval 2s
  livechat stats --output json | jq '.servers[].connections'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runStats(cmd.Context(), opts, ios)
		},
	}
	cmd.Flags().DurationVarP(&opts.Interval, "interval", "i", 3*time.Second, "how long to listen for heartbeats (and the refresh period with --watch)")
	cmd.Flags().BoolVarP(&opts.Watch, "watch", "w", false, "refresh the table every interval until interrupted")
	addOpsFlags(cmd, g)
	addOutputFlag(cmd, g)
	return cmd
}

// ServerRow is one server in the stats output.
type ServerRow struct {
	protocol.Heartbeat
	// LastSeenMS is when its last heartbeat was sent (Unix ms).
	LastSeenMS int64 `json:"last_seen_ms"`
	// SilentMS is how long ago that was, in milliseconds.
	SilentMS int64 `json:"silent_ms"`
	// Status is "ok", "draining", "late" (a heartbeat is overdue) or
	// "stale" (silent for long: gone).
	Status string `json:"status"`
}

// Statuses of a server in stats, by the time since its last heartbeat in
// heartbeat intervals: late after lateBeats, stale after staleBeats.
const (
	lateBeats  = 1.5
	staleBeats = 5
	// defaultBeatMS is the heartbeat interval assumed for a server whose
	// own heartbeat stats has not heard (server.Config's default).
	defaultBeatMS = 2000
)

// StatsReport is the JSON output of `livechat stats`.
type StatsReport struct {
	Servers []ServerRow `json:"servers"`
	Totals  Totals      `json:"totals"`
}

// Totals sums the live servers (ok or draining) and counts the others.
type Totals struct {
	Servers     int     `json:"servers"`
	Late        int     `json:"late"`
	Stale       int     `json:"stale"`
	Connections int64   `json:"connections"`
	InPerSec    float64 `json:"in_per_sec"`
	OutPerSec   float64 `json:"out_per_sec"`
	SlowDrops   uint64  `json:"slow_drops"`
}

func runStats(ctx context.Context, opts *StatsOptions, ios *IOStreams) error {
	if err := between("interval", opts.Interval, 10*time.Millisecond, time.Hour); err != nil {
		return err
	}
	if opts.now == nil {
		opts.now = time.Now
	}
	beats := make(chan broker.Message, 256)
	b, err := openBroker(ctx, opts.Global, broker.Options{})
	if err != nil {
		return err
	}
	defer b.Close()
	subject := protocol.StatsSubject(opts.Global.Prefix, "*")
	if _, err := broker.SubscribeChan(ctx, b, subject, beats); err != nil {
		return fmt.Errorf("subscribe %s: %w", subject, err)
	}
	seen := map[string]protocol.Heartbeat{}
	for {
		timer := time.NewTimer(opts.Interval)
	collect:
		for {
			select {
			case <-ctx.Done():
				timer.Stop()
				return nil
			case <-timer.C:
				break collect
			case m := <-beats:
				var hb protocol.Heartbeat
				if json.Unmarshal(m.Data, &hb) != nil || hb.AppID == "" {
					continue // not a heartbeat; ignore
				}
				seen[hb.AppID] = hb
			}
		}
		report := buildReport(seen, opts.now())
		if opts.Watch && ios.IsTerminal && opts.Global.Output != "json" {
			fmt.Fprint(ios.Out, "\x1b[H\x1b[2J") // redraw in place
		}
		if err := writeStats(ios.Out, report, opts.Global.Output, ios.IsTerminal, opts.now()); err != nil {
			return err
		}
		if !opts.Watch {
			if len(report.Servers) == 0 {
				return fmt.Errorf("no server heartbeat on %s within %s: no server is running with --prefix %s on this broker", subject, opts.Interval, opts.Global.Prefix)
			}
			return nil
		}
	}
}

// buildReport turns the heartbeats heard so far into rows: servers heard
// directly, plus those only their peers remember (stale).
func buildReport(seen map[string]protocol.Heartbeat, now time.Time) StatsReport {
	rows := map[string]ServerRow{}
	for id, hb := range seen {
		rows[id] = ServerRow{Heartbeat: hb, LastSeenMS: hb.TS}
	}
	for _, hb := range seen {
		for peer, last := range hb.Peers {
			if r, ok := rows[peer]; !ok || r.LastSeenMS < last {
				if !ok {
					info := hb.PeerInfo[peer]
					r = ServerRow{Heartbeat: protocol.Heartbeat{AppID: peer, Addr: info.Addr, Version: info.Version}}
				}
				r.LastSeenMS = last
				rows[peer] = r
			}
		}
	}
	var rep StatsReport
	for _, r := range rows {
		interval := r.IntervalMS
		if interval <= 0 {
			interval = defaultBeatMS
		}
		r.SilentMS = max(now.UnixMilli()-r.LastSeenMS, 0)
		switch silent := float64(r.SilentMS) / float64(interval); {
		case silent > staleBeats:
			r.Status = "stale"
			rep.Totals.Stale++
		case silent > lateBeats:
			r.Status = "late"
			rep.Totals.Late++
		case r.Draining:
			r.Status = "draining"
		default:
			r.Status = "ok"
		}
		if r.live() {
			rep.Totals.Servers++
			rep.Totals.Connections += r.Connections
			rep.Totals.InPerSec += r.InPerSec
			rep.Totals.OutPerSec += r.OutPerSec
			rep.Totals.SlowDrops += r.SlowDrops
		}
		rep.Servers = append(rep.Servers, r)
	}
	sort.Slice(rep.Servers, func(i, j int) bool { return rep.Servers[i].AppID < rep.Servers[j].AppID })
	return rep
}

// live reports whether the row's server is heard from on time (ok or
// draining): its figures are current and count in the totals.
func (r ServerRow) live() bool { return r.Status == "ok" || r.Status == "draining" }

var (
	statsHeader = []string{"APPID", "ADDRESS", "VERSION", "UPTIME", "CONNS", "ROOMS", "IN/S", "OUT/S", "DROPS", "BROKER", "LAST SEEN", "STATUS"}
	statsAlign  = []tw.Align{tw.AlignLeft, tw.AlignLeft, tw.AlignLeft, tw.AlignRight, tw.AlignRight, tw.AlignRight,
		tw.AlignRight, tw.AlignRight, tw.AlignRight, tw.AlignLeft, tw.AlignRight, tw.AlignLeft}
)

// writeStats renders the report as JSON, a table for a terminal, or
// tab-separated lines for a pipe.
func writeStats(w io.Writer, rep StatsReport, output string, terminal bool, now time.Time) error {
	if output == "json" {
		if rep.Servers == nil {
			rep.Servers = []ServerRow{}
		}
		return json.NewEncoder(w).Encode(rep)
	}
	rows := make([][]string, 0, len(rep.Servers))
	for _, r := range rep.Servers {
		addr, ver := r.Addr, r.Version
		if addr == "" { // known only from the heartbeats of peers older than PeerInfo
			addr = "-"
		}
		if ver == "" {
			ver = "-"
		}
		if !r.live() || r.StartedMS == 0 { // no current figures
			seen := ago(now, r.LastSeenMS)
			if !r.live() {
				seen = "silent " + (time.Duration(r.SilentMS) * time.Millisecond).Truncate(100*time.Millisecond).String()
			}
			rows = append(rows, []string{r.AppID, addr, ver, "-", "-", "-", "-", "-", "-", "-", seen, r.Status})
			continue
		}
		rows = append(rows, []string{
			r.AppID, addr, ver,
			uptime(time.Duration(r.TS-r.StartedMS) * time.Millisecond),
			strconv.FormatInt(r.Connections, 10), strconv.FormatInt(r.Rooms, 10),
			rate(r.InPerSec), rate(r.OutPerSec),
			strconv.FormatUint(r.SlowDrops, 10), r.Broker, ago(now, r.LastSeenMS), r.Status,
		})
	}
	t := rep.Totals
	others := fmt.Sprintf("%d stale", t.Stale)
	if t.Late > 0 {
		others = fmt.Sprintf("%d late, %s", t.Late, others)
	}
	total := []string{fmt.Sprintf("TOTAL %d", t.Servers), "", "", "", strconv.FormatInt(t.Connections, 10), "",
		rate(t.InPerSec), rate(t.OutPerSec), strconv.FormatUint(t.SlowDrops, 10), "", "", others}
	if !terminal {
		for _, line := range append(append([][]string{statsHeader}, rows...), total) {
			if _, err := fmt.Fprintln(w, strings.Join(line, "\t")); err != nil {
				return err
			}
		}
		return nil
	}
	table := tablewriter.NewTable(w,
		tablewriter.WithHeaderAutoFormat(tw.Off),
		tablewriter.WithRowAlignmentConfig(tw.CellAlignment{PerColumn: statsAlign}),
		tablewriter.WithFooterAlignmentConfig(tw.CellAlignment{PerColumn: statsAlign}),
	)
	table.Header(statsHeader)
	if err := table.Bulk(rows); err != nil {
		return err
	}
	table.Footer(total)
	return table.Render()
}

func uptime(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	return d.Truncate(time.Second).String()
}

func rate(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }

func ago(now time.Time, ms int64) string {
	d := now.Sub(time.UnixMilli(ms))
	if d < 0 {
		d = 0
	}
	return d.Truncate(100*time.Millisecond).String() + " ago"
}
