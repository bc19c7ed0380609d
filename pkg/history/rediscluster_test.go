package history_test

import (
	"context"
	"testing"

	"github.com/livechat/livechat/pkg/broker/brokertest"
	"github.com/livechat/livechat/pkg/history"
	"github.com/livechat/livechat/pkg/history/historytest"
)

func TestRedisCluster(t *testing.T) {
	c := brokertest.StartRedisCluster(t)
	historytest.Run(t, historytest.Backend{Bounded: true, New: func(t testing.TB, o history.Options) func() history.Store {
		o.KeyPrefix = "livechat-test:" + brokertest.Prefix(t)
		return func() history.Store {
			s, err := history.Open(context.Background(), c.URL, o)
			if err != nil {
				t.Fatalf("Open(%s): %v", c.URL, err)
			}
			return s
		}
	}})
}
