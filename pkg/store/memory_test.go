package store_test

import (
	"testing"

	"github.com/livechat/livechat/pkg/store"
	"github.com/livechat/livechat/pkg/store/storetest"
)

func TestMemory(t *testing.T) {
	storetest.Run(t, func(*testing.T) store.Store { return store.NewMemory() })
}
