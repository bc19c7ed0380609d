//go:build unix

package sockio

import (
	"errors"
	"syscall"
	"testing"
)

// TestRead: an interrupted read is retried, EAGAIN is an empty socket, a
// zero read the end of the stream, another error is returned.
func TestRead(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name      string
		results   []error // one read each; the last one's n is 3 when nil
		n         int
		empty     bool
		err       error
		eof, read bool
	}{
		{name: "data", results: []error{nil}, n: 3},
		{name: "interrupted twice", results: []error{syscall.EINTR, syscall.EINTR, nil}, n: 3},
		{name: "empty", results: []error{syscall.EAGAIN}, empty: true},
		{name: "error", results: []error{boom}, err: boom},
		{name: "end of stream", results: []error{nil}, eof: true},
	} {
		calls := 0
		n, empty, err := Read(func() (int, error) {
			err := tc.results[calls]
			calls++
			if err != nil || tc.eof {
				return 0, err
			}
			return 3, nil
		})
		if n != tc.n || empty != tc.empty || !errors.Is(err, tc.err) || calls != len(tc.results) {
			t.Errorf("%s: n=%d empty=%v err=%v after %d reads", tc.name, n, empty, err, calls)
		}
	}
}
