package cli

import (
	"errors"
	"fmt"
	"math"
	"testing"
	"time"
)

// TestFlagChecks lists the flag checks' verdicts, one case per line.
func TestFlagChecks(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{between("n", 5, 1, 10), ""},
		{between("n", 0, 1, 10), "--n 0: must be between 1 and 10"},
		{between("rate", -5.0, 0.1, 10_000), "--rate -5: must be between 0.1 and 10000"},
		{between("rate", math.Inf(1), 0.1, 10_000), "--rate +Inf: must be between 0.1 and 10000"},
		{between("d", 90*time.Second, time.Second, time.Minute), "--d 1m30s: must be between 1s and 1m"},
		{between("d", 2*time.Hour, 0, time.Hour), "--d 2h: must be between 0s and 1h"},
		{offOrBetween("heartbeat", 0, time.Second, 5*time.Minute), ""},
		{offOrBetween("heartbeat", 10*time.Second, time.Second, 5*time.Minute), ""},
		{offOrBetween("heartbeat", 500*time.Millisecond, time.Second, 5*time.Minute),
			"--heartbeat 500ms: must be 0 (off) or between 1s and 5m"},
		{listenAddr("addr", ":8080"), ""},
		{listenAddr("addr", "localhost:0"), ""},
		{listenAddr("addr", "[::1]:8080"), ""},
		{listenAddr("addr", ":65536"), "--addr :65536: port must be a number between 0 and 65535"},
		{listenAddr("addr", "a_b:80"), `--addr a_b:80: host "a_b" is neither an IP address nor a host name`},
		{wsURLPort("url", "ws://127.0.0.1/ws"), ""},
		{wsURLPort("url", "ws://127.0.0.1:0/ws"), "--url ws://127.0.0.1:0/ws: port must be a number between 1 and 65535"},
	} {
		if got := fmt.Sprint(tc.err); (tc.err == nil) != (tc.want == "") || (tc.err != nil && got != tc.want) {
			t.Errorf("got %v, want %q", tc.err, tc.want)
		}
		if tc.err != nil && !errIsUsage(tc.err) {
			t.Errorf("%v is not a UsageError", tc.err)
		}
	}
}

func errIsUsage(err error) bool {
	var ue *UsageError
	return errors.As(err, &ue)
}
