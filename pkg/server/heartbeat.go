package server

import (
	"context"
	"time"

	"github.com/livechat/livechat/internal/engine"
	"github.com/livechat/livechat/pkg/protocol"
)

// The client heartbeat. A browser answers WebSocket pings but never shows
// them to the page, so a page cannot tell a quiet server from a frozen one
// or from a path that a NAT or a proxy dropped silently. The server
// therefore makes sure no connection goes more than Config.ClientHeartbeat
// (the welcome's heartbeat_ms) without a frame the page sees: a connection
// sent nothing for a while gets the frame {"type":"heartbeat"}, and a client
// that hears nothing for twice that reconnects.
//
// It costs no goroutine or timer per connection: one goroutine per server
// looks at every connection heartbeatScans times per interval and queues the
// one shared, pre-encoded frame (heartbeatFrame) to those whose last data
// write (engine.Conn.Idle) started at least heartbeatAfter scan periods ago.
// The frame goes through the connection's queue and writer like any other,
// so one writer at a time still owns the socket; a busy connection, whose
// writes keep lastSent recent, gets none.
//
// A connection is written at most 6/8 of the interval after its last data
// write plus the scan's and the flusher's delays: a scan finds it between
// 5/8 and 6/8, and the flusher writes an idle connection's frame at once
// (at most one write interval, maxCoalesce, after a ping). The last quarter
// of the interval is the margin for a late goroutine and for the network.
const (
	// minClientHeartbeat is the shortest Config.ClientHeartbeat.
	minClientHeartbeat = 10 * time.Millisecond
	// heartbeatScans is how many times per interval the connections are
	// looked at.
	heartbeatScans = 8
	// heartbeatAfter is how many scan periods without a data write earn a
	// connection a heartbeat.
	heartbeatAfter = 5
)

// heartbeatFrame is the heartbeat, encoded once for every connection of
// every server. Its n is 0: messages_out does not count it (heartbeats_sent
// does).
var heartbeatFrame = engine.UncountedTextFrame([]byte(`{"type":"` + protocol.TypeHeartbeat + `"}`))

// clientHeartbeatLoop queues a heartbeat to every connection that has had
// no data write for heartbeatAfter scan periods, once per scan period,
// until ctx ends. It runs only when heartbeats are on (ClientHeartbeat > 0).
func (s *Server) clientHeartbeatLoop(ctx context.Context) {
	defer s.loopWG.Done()
	every := s.cfg.ClientHeartbeat / heartbeatScans
	t := time.NewTicker(every)
	defer t.Stop()
	var due []*session // reused between scans
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cutoff := time.Now().Add(-heartbeatAfter * every)
		s.mu.Lock()
		for c := range s.conns {
			if c.c.Idle(cutoff) {
				due = append(due, c)
			}
		}
		s.mu.Unlock()
		var sent uint64
		for _, c := range due {
			if c.c.SendIfIdle(heartbeatFrame, cutoff) {
				sent++
			}
		}
		s.heartbeatsSent.Add(sent)
		clear(due)
		if cap(due) > 4096 {
			due = nil // a burst's big slice is not kept
		}
		due = due[:0]
	}
}
