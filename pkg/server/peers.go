package server

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/livechat/livechat/pkg/broker"
	"github.com/livechat/livechat/pkg/protocol"
)

// peerMemory is how long a server that stopped beating is still reported
// among the peers of a heartbeat, so `livechat stats` can show it as stale.
const peerMemory = 10 * time.Minute

// peers remembers when every other server's last heartbeat was sent.
type peers struct {
	self string

	mu   sync.Mutex
	last map[string]int64 // APPID -> Unix ms
}

// watch subscribes to every server's heartbeat; the subscription ends with ctx.
func (p *peers) watch(ctx context.Context, b broker.Broker, prefix string) (broker.Subscription, error) {
	return b.Subscribe(ctx, protocol.StatsSubject(prefix, "*"), func(m broker.Message) {
		var hb struct {
			AppID string `json:"app_id"`
			TS    int64  `json:"ts"`
		}
		if json.Unmarshal(m.Data, &hb) != nil || hb.AppID == "" || hb.AppID == p.self {
			return
		}
		p.mu.Lock()
		if hb.TS > p.last[hb.AppID] {
			p.last[hb.AppID] = hb.TS
		}
		p.mu.Unlock()
	})
}

// snapshot returns the peers heard within peerMemory, forgetting older ones.
func (p *peers) snapshot(now time.Time) map[string]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.last) == 0 {
		return nil
	}
	out := make(map[string]int64, len(p.last))
	for id, ts := range p.last {
		if now.Sub(time.UnixMilli(ts)) > peerMemory {
			delete(p.last, id)
			continue
		}
		out[id] = ts
	}
	return out
}
