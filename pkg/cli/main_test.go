package cli

import (
	"fmt"
	"os"
	"testing"
)

// TestMain points the data directory of every command the tests run at a
// temporary directory, so that no test writes ./livechat-data into the
// package; tests that look at the data directory pass --data themselves.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "livechat-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := os.Setenv("LIVECHAT_DATA", dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}
