// Package leaktest checks that a package's tests leave no goroutine of this
// module (or of the WebSocket library) running: the engine's readers,
// writers, flushers and pollers, and the chat's loops, must all end with
// their connections.
package leaktest

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Timeout is how long Main waits for the goroutines to end.
const Timeout = 5 * time.Second

// Main runs the tests (call it from TestMain) and, when they pass, fails
// the run if goroutines of this module are still running after Timeout.
func Main(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := Check(Timeout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// Check polls until no goroutine of this module or of gorilla/websocket is
// left, and returns an error with their stacks after timeout.
func Check(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		leaked := goroutines()
		if len(leaked) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("leaktest: %d goroutines left:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
		}
		runtime.Gosched()
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
}

// goroutines returns the stacks of the goroutines of this module and of
// gorilla/websocket, except the test runner's and this package's own.
func goroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "TestMain") || strings.Contains(g, "internal/leaktest.") {
			continue
		}
		if strings.Contains(g, "livechat/livechat/") || strings.Contains(g, "gorilla/websocket") {
			out = append(out, g)
		}
	}
	return out
}
