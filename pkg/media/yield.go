package media

import (
	"io"
	"runtime"
)

// Decoding, re-encoding and scaling a picture are long stretches of
// computation in one goroutine; Go preempts it only every 10 ms, and on a
// server with one busy core every goroutine of the chat that wakes meanwhile
// waits for it. So a picture is processed in small steps that yield the
// processor (runtime.Gosched) between them: every read of the decoders (at
// most yieldStep bytes), every write of the encoders, and every band of
// thumbRows rows of the thumbnail. docs/BENCHMARKS.md has the effect.

// yieldStep bounds a read of a decoder (they read 4 KiB at a time anyway).
const yieldStep = 4 << 10

// yieldReader reads at most yieldStep bytes at a time and yields first.
type yieldReader struct{ r io.Reader }

func (y yieldReader) Read(p []byte) (int, error) {
	if len(p) > yieldStep {
		p = p[:yieldStep]
	}
	runtime.Gosched()
	return y.r.Read(p)
}

// yieldWriter yields before each write (the encoders write through a 4 KiB
// buffer).
type yieldWriter struct{ w io.Writer }

func (y yieldWriter) Write(p []byte) (int, error) {
	runtime.Gosched()
	return y.w.Write(p)
}
