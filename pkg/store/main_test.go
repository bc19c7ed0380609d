package store_test

import (
	"testing"

	"github.com/livechat/livechat/internal/leaktest"
)

// TestMain fails the run when a goroutine of the suite (the concurrency
// cases) or of the store is still running after the tests.
func TestMain(m *testing.M) { leaktest.Main(m) }
