package server

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// TestReadFrame reads frames larger than the buffer, in pieces, into a
// reused buffer, and passes a read error on.
func TestReadFrame(t *testing.T) {
	buf := make([]byte, 0, 8)
	for _, n := range []int{0, 1, 8, 9, 3000} {
		want := strings.Repeat("x", n)
		got, err := readFrame(iotest.HalfReader(strings.NewReader(want)), buf[:0])
		if err != nil || string(got) != want {
			t.Fatalf("readFrame of %d bytes = %d bytes, %v", n, len(got), err)
		}
		buf = got
	}
	boom := errors.New("boom")
	r := io.MultiReader(bytes.NewReader([]byte("ab")), iotest.ErrReader(boom))
	if got, err := readFrame(r, nil); !errors.Is(err, boom) || string(got) != "ab" {
		t.Fatalf("readFrame with an error = %q, %v", got, err)
	}
}
