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
	last map[string]int64             // APPID -> Unix ms
	info map[string]protocol.PeerInfo // APPID -> its last heartbeat's address and version
}

// watch subscribes to every server's heartbeat; the subscription ends with ctx.
func (p *peers) watch(ctx context.Context, b broker.Broker, prefix string) (broker.Subscription, error) {
	return b.Subscribe(ctx, protocol.StatsSubject(prefix, "*"), func(m broker.Message) {
		var hb struct {
			AppID   string `json:"app_id"`
			TS      int64  `json:"ts"`
			Addr    string `json:"addr"`
			Version string `json:"version"`
		}
		if json.Unmarshal(m.Data, &hb) != nil || hb.AppID == "" || hb.AppID == p.self {
			return
		}
		p.mu.Lock()
		if hb.TS > p.last[hb.AppID] {
			p.last[hb.AppID] = hb.TS
			if p.info == nil {
				p.info = make(map[string]protocol.PeerInfo)
			}
			p.info[hb.AppID] = protocol.PeerInfo{Addr: hb.Addr, Version: hb.Version}
		}
		p.mu.Unlock()
	})
}

// snapshot returns the peers heard within peerMemory (when each was last
// heard, and its address and version), forgetting older ones.
func (p *peers) snapshot(now time.Time) (map[string]int64, map[string]protocol.PeerInfo) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.last) == 0 {
		return nil, nil
	}
	last := make(map[string]int64, len(p.last))
	info := make(map[string]protocol.PeerInfo, len(p.last))
	for id, ts := range p.last {
		if now.Sub(time.UnixMilli(ts)) > peerMemory {
			delete(p.last, id)
			delete(p.info, id)
			continue
		}
		last[id] = ts
		info[id] = p.info[id]
	}
	return last, info
}
