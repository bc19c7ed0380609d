package loadgen

import "time"

// CPUWarnPercent is the load generator's own CPU use, in percent of one core
// over the measurement window, above which Result.CPU.Saturated is set: the
// run may have measured the load generator rather than the server.
const CPUWarnPercent = 90

// Result is what one run measured. Durations are in seconds or milliseconds,
// as the JSON names say.
type Result struct {
	// RunID tags every message of this run (the text starts "b<RunID>:").
	RunID string   `json:"run_id"`
	URLs  []string `json:"urls"`
	Rooms int      `json:"rooms"`
	// BigRoom is how many of the Clients were in one more room
	// (Config.BigRoom); 0 without one.
	BigRoom    int     `json:"big_room,omitempty"`
	Clients    int     `json:"clients"`    // subscriber connections asked for, publishers not included
	Publishers int     `json:"publishers"` // publisher connections asked for; they are members too
	SourceIPs  int     `json:"source_ips"` // local addresses bound round-robin; 0 = system's choice
	Size       int     `json:"size"`       // bytes of text per message
	Rate       float64 `json:"rate"`       // messages per second asked for, all publishers together
	// Tokens is set when every connection presented a connection token
	// at its handshake (Config.Token).
	Tokens bool `json:"tokens,omitempty"`

	Connect Connect `json:"connect"`
	// Members is the number of connections that joined before publishing
	// began, publishers included: every message is expected once by each
	// member of its room.
	Members int `json:"members"`

	Sent  uint64 `json:"sent"`  // messages written by publishers
	Acked uint64 `json:"acked"` // acks received for them
	// DupAcks counts the acks (in Acked) with "dup":true: the server took
	// the send for a retry of a message it already held with the same
	// sender name and cid, and delivered nothing. A run's names and cids
	// are its own, so any means another client used them; their
	// deliveries count as lost.
	DupAcks uint64 `json:"dup_acks"`
	// ErrorFrames counts error frames received, by code.
	ErrorFrames map[string]uint64 `json:"error_frames"`
	// Disconnects counts connections the server (or the network) ended
	// before the load generator closed them, by close code ("1006" for an
	// abnormal closure) or "read error".
	Disconnects map[string]uint64 `json:"disconnects"`

	// Expected is acked messages × members of their room.
	Expected uint64 `json:"expected"`
	// Delivered counts distinct expected deliveries that arrived.
	Delivered uint64 `json:"delivered"`
	// Lost is Expected - Delivered (never negative).
	Lost uint64 `json:"lost"`
	// Duplicates counts deliveries of a message a connection had already
	// received (or an older one from the same publisher: out of order).
	Duplicates uint64 `json:"duplicates"`
	// Gaps counts sequence numbers skipped between consecutive deliveries from
	// one publisher to one connection; sends refused with an error frame show
	// up here too.
	Gaps uint64 `json:"gaps"`

	// PublishSeconds is how long the publishers sent; WindowSeconds runs from
	// the first send to the last delivery, the base of the rates below.
	PublishSeconds float64 `json:"publish_s"`
	WindowSeconds  float64 `json:"window_s"`
	DrainSeconds   float64 `json:"drain_s"`
	// DeliveriesPerSec is Delivered / WindowSeconds; ExpectedPerSec is what
	// the asked rate would give (acked rate × members).
	DeliveriesPerSec float64 `json:"deliveries_per_s"`
	ExpectedPerSec   float64 `json:"expected_per_s"`
	// BytesPerSec counts payload bytes of message frames received.
	BytesPerSec float64 `json:"bytes_per_s"`
	// Latency is send-to-receive time of every delivery.
	Latency Latency `json:"latency"`
	// AcceptLatency is, once per message, the time from its send to the
	// server's stamp on it ("ts", whole milliseconds): the part of Latency
	// spent before the server took the message; the rest is fan-out and
	// writing.
	AcceptLatency Latency `json:"accept_latency"`
	// SocketLatency is, for every delivery, the time from its send to the
	// kernel's receipt of it at the client's socket (SO_TIMESTAMPNS; Linux
	// only, count 0 elsewhere): Latency without the load generator's own
	// lag in reading its sockets.
	SocketLatency Latency `json:"socket_latency"`

	CPU CPU `json:"cpu"`
	// Interrupted is set when the context was cancelled during publishing or
	// draining; the figures cover what happened until then.
	Interrupted bool `json:"interrupted,omitempty"`

	// retried is bench.retried at the end (for the tests).
	retried uint64
}

// Connect describes the connection phase.
type Connect struct {
	Attempted   int `json:"attempted"`
	Established int `json:"established"`
	Failed      int `json:"failed"`
	// Errors counts failures by kind ("refused", "timeout", "handshake 503", ...).
	Errors map[string]int `json:"errors,omitempty"`
	// FirstError is the first failure's full message.
	FirstError string `json:"first_error,omitempty"`
	// Time is the dial plus handshake time of each connection.
	Time Latency `json:"time"`
	// TotalSeconds runs from the first dial to the last handshake's end.
	TotalSeconds float64 `json:"total_s"`
	// JoinSeconds runs from the first dial until every connection had joined.
	JoinSeconds float64 `json:"join_s"`
	// NotJoined counts connections that did not join in time; they are
	// closed and not counted as members.
	NotJoined int `json:"not_joined"`
}

// Latency summarises a distribution, in milliseconds.
type Latency struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// CPU is the load generator's own CPU use (getrusage of this process).
type CPU struct {
	// UserSeconds and SystemSeconds cover the measurement window (first
	// send to the end of the drain); Percent is their sum over the window's
	// wall time, 100 = one core.
	UserSeconds   float64 `json:"user_s"`
	SystemSeconds float64 `json:"sys_s"`
	Percent       float64 `json:"percent"`
	// TotalPercent covers the whole run, connection phase included.
	TotalPercent float64 `json:"total_percent"`
	// Saturated is set when Percent >= CPUWarnPercent.
	Saturated bool `json:"saturated"`
}

// Progress is a snapshot passed to Config.Progress.
type Progress struct {
	Phase     string        // connecting, joining, warmup, publishing, draining, done
	Elapsed   time.Duration // since Run began
	Connected int
	Joined    int
	Sent      uint64
	Acked     uint64
	Delivered uint64
	// DeliveriesPerSec is the rate since the previous snapshot.
	DeliveriesPerSec float64
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// cpuTimes is CPU time used by the process.
type cpuTimes struct{ user, sys time.Duration }
