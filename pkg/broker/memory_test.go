package broker_test

import (
	"testing"

	"github.com/livechat/livechat/pkg/broker"
	"github.com/livechat/livechat/pkg/broker/brokertest"
)

func TestMemoryConformance(t *testing.T) {
	brokertest.Run(t, func(_ testing.TB, o broker.Options) broker.Broker {
		return broker.NewMemory(o)
	})
}
