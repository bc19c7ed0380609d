package server

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const metricsNamespace = "livechat"

// metrics are the Prometheus collectors of one Server. Hot-path counters are
// atomics on Server, the sessions and the engine, exported through CounterFunc/GaugeFunc.
type metrics struct {
	rejected *prometheus.CounterVec
	errors   *prometheus.CounterVec
	latency  prometheus.Histogram
	handler  http.Handler

	historyErrors *prometheus.CounterVec
	userEvents    *prometheus.CounterVec
}

func newMetrics(s *Server, reg prometheus.Registerer) (*metrics, error) {
	var gatherer prometheus.Gatherer
	if reg == nil {
		r := prometheus.NewRegistry()
		if err := r.Register(collectors.NewGoCollector()); err != nil {
			return nil, fmt.Errorf("server: register go collector: %w", err)
		}
		if err := r.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
			return nil, fmt.Errorf("server: register process collector: %w", err)
		}
		reg, gatherer = r, r
	} else if g, ok := reg.(prometheus.Gatherer); ok {
		gatherer = g
	} else {
		gatherer = prometheus.DefaultGatherer
	}
	m := &metrics{
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "rejected_connections_total",
			Help: "WebSocket handshakes refused, by reason (origin, per_ip, draining, cut_off, upgrade, auth).",
		}, []string{"reason"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "errors_total",
			Help: "Error frames sent to clients, by code, and clients closed for breaking the rules (invalid_utf8, rate_disconnect, protocol_error).",
		}, []string{"code"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: metricsNamespace, Name: "delivery_latency_seconds",
			Help:    "Time from a message's server timestamp to its arrival from the broker at this server.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
	}
	m.historyErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "history_errors_total",
		Help: "Failed history store calls, by operation (append, replay, history, gap_fill, bounds).",
	}, []string{"op"})
	m.userEvents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "user_events_applied_total",
		Help: "Users' events applied to this server's connections, by type: revoke (a connection closed), removed (a connection taken out of a room), ignored (an event not understood).",
	}, []string{"type"})
	counter := func(name, help string, v interface{ Load() uint64 }) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: metricsNamespace, Name: name, Help: help},
			func() float64 { return float64(v.Load()) })
	}
	cs := []prometheus.Collector{
		m.rejected, m.errors, m.latency, m.historyErrors, m.userEvents,
		counter("gaps_filled_total", "Gaps in a room's live message stream filled from the history store.", &s.gapsFilled),
		counter("gap_messages_lost_total", "Seqs skipped in a room's live stream because the store did not hold them or stayed down.", &s.gapLost),
		counter("duplicates_dropped_total", "Live messages dropped because their seq was already delivered.", &s.dupsDropped),
		counter("history_resets_total", "Rooms whose history restarted its seqs (the store forgot the room).", &s.resets),
		counter("replayed_messages_total", "Messages replayed to joining clients from the history store.", &s.replayed),
		counter("broker_cutoffs_total", "Times the broker stayed lost past BrokerLossGrace and the server closed its connections.", &s.cutOffs),
		counter("heartbeats_sent_total", "Heartbeat frames queued to clients that had been sent nothing for a while.", &s.heartbeatsSent),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "connections",
			Help: "Open WebSocket connections.",
		}, func() float64 { return float64(s.nconns.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "flusher_writes_total",
			Help:        "Writes of queued frames to a client's socket by the flushers, one per connection; batched=\"true\": many connections in one system call (io_uring).",
			ConstLabels: prometheus.Labels{"batched": "true"},
		}, func() float64 { return float64(s.eng.Stats().BatchedWrites) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "flusher_writes_total",
			Help:        "Writes of queued frames to a client's socket by the flushers, one per connection; batched=\"true\": many connections in one system call (io_uring).",
			ConstLabels: prometheus.Labels{"batched": "false"},
		}, func() float64 { return float64(s.eng.Stats().SingleWrites) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "short_writes_total",
			Help: "Writes a client's socket did not take whole (a slow reader), finished by the connection's own writer.",
		}, func() float64 { return float64(s.eng.Stats().ShortWrites) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "writer_goroutines",
			Help: "Connections written by a goroutine of their own (a write that may block, a ping, a close) rather than by a flusher.",
		}, func() float64 { return float64(s.eng.Stats().OwnWriters) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "write_interval_seconds",
			Help: "Least time between two writes to one connection, adapted to the write load and the CPU left (longest of the flushers).",
		}, func() float64 { return s.eng.Stats().WriteInterval.Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "rooms",
			Help: "Rooms with at least one local member (each one broker subscription).",
		}, func() float64 { return float64(s.roomCount()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "messages_in_total",
			Help: "Chat messages accepted from clients and published.",
		}, func() float64 { return float64(s.msgsIn.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "messages_out_total",
			Help: "Frames written to clients (heartbeats are counted by heartbeats_sent_total).",
		}, func() float64 { return float64(s.framesOut()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "broker_messages_total",
			Help: "Room frames received from the broker (each fanned out to the local members).",
		}, func() float64 { return float64(s.brokerIn.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "slow_client_disconnects_total",
			Help: "Clients disconnected because their send queue was full.",
		}, func() float64 { return float64(s.slowDrops.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "broker_state",
			Help: "Broker connection state: 0 connected, 1 reconnecting, 2 closed.",
		}, func() float64 { return float64(s.b.State()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "draining",
			Help: "1 while the server is shutting down.",
		}, func() float64 {
			if s.draining.Load() {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "cut_off",
			Help: "1 while the server has lost its broker for longer than --broker-grace and refuses connections.",
		}, func() float64 {
			if s.cutOff.Load() {
				return 1
			}
			return 0
		}),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("server: register metrics: %w", err)
		}
	}
	m.handler = promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{})
	return m, nil
}
