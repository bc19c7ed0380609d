package broker_test

import (
	"testing"

	"github.com/livechat/livechat/pkg/broker"
	"github.com/livechat/livechat/pkg/broker/brokertest"
)

func TestRedisClusterConformance(t *testing.T) {
	c := brokertest.StartRedisCluster(t)
	brokertest.Run(t, func(t testing.TB, o broker.Options) broker.Broker {
		return openRedis(t, c.URL, o)
	})
}
