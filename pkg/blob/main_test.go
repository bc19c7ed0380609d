package blob_test

import (
	"testing"

	"github.com/livechat/livechat/internal/leaktest"
)

// TestMain fails the run when a goroutine of the suite or of a store is
// still running after the tests.
func TestMain(m *testing.M) { leaktest.Main(m) }
