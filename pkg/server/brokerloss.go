package server

import (
	"context"
	"time"

	"github.com/livechat/livechat/internal/engine"
	"github.com/livechat/livechat/pkg/broker"
)

// brokerCheckEvery is how often the server looks at its broker's state.
const brokerCheckEvery = 250 * time.Millisecond

// brokerLossLoop watches the broker. Once it has been unreachable
// (broker.Unreachable: for a Redis Cluster, no node answers) for
// Config.BrokerLossGrace, the server is cut off: nothing its clients send
// reaches anyone on another server, and nothing from there reaches them.
// It then closes every connection with 1001 (going away) so that the
// clients reconnect, through the load balancer, to a server that has its
// broker (/readyz has been 503 since the loss, so the balancer no longer
// picks this one), and it refuses new WebSockets with 503 until the broker
// is back. A shorter loss (a broker restart) disconnects nobody: the
// server catches up from the history when it is back.
func (s *Server) brokerLossLoop(ctx context.Context) {
	defer s.loopWG.Done()
	t := time.NewTicker(brokerCheckEvery)
	defer t.Stop()
	var lostAt time.Time // zero while the broker is connected
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st := s.b.State()
		switch {
		case st == broker.StateClosed:
			return
		case !broker.Unreachable(s.b):
			// Connected, or a cluster with a node failing over while the
			// others answer: other servers are no better off.
			if s.cutOff.Swap(false) {
				s.log.Info("server: broker is back: taking connections again", "lost_for", time.Since(lostAt).Round(time.Millisecond))
			}
			lostAt = time.Time{}
		case lostAt.IsZero():
			lostAt = time.Now()
		case time.Since(lostAt) >= s.cfg.BrokerLossGrace && !s.cutOff.Load():
			s.cutOff.Store(true)
			conns := s.snapshotConns()
			s.log.Warn("server: cut off from the broker: closing connections so that clients reconnect elsewhere",
				"lost_for", time.Since(lostAt).Round(time.Millisecond), "connections", len(conns))
			s.cutOffs.Add(1)
			for _, c := range conns {
				c.c.Close(engine.CloseGoingAway, closeCutOff)
			}
		}
	}
}

// closeCutOff is the close reason of a connection closed because the
// server lost its broker.
const closeCutOff = "server lost its broker: reconnect"
