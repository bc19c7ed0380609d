package blob_test

import (
	"testing"

	"github.com/livechat/livechat/pkg/blob"
	"github.com/livechat/livechat/pkg/blob/blobtest"
)

func TestMemory(t *testing.T) {
	blobtest.Run(t, func(*testing.T) blob.Store { return blob.NewMemory() })
}
