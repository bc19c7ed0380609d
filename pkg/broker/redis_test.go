package broker_test

import (
	"context"
	"testing"
	"time"

	"github.com/livechat/livechat/pkg/broker"
	"github.com/livechat/livechat/pkg/broker/brokertest"
)

func openRedis(t testing.TB, url string, o broker.Options) broker.Broker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := broker.Open(ctx, url, o)
	if err != nil {
		t.Fatalf("Open(%q): %v", url, err)
	}
	return b
}

func TestRedisConformance(t *testing.T) {
	url := brokertest.RedisURL(t)
	brokertest.Run(t, func(t testing.TB, o broker.Options) broker.Broker {
		return openRedis(t, url, o)
	})
}
