//go:build !linux

package uring

import (
	"errors"
	"syscall"
)

// Ring is not available on this system: New always fails.
type Ring struct{}

// ErrUnsupported is returned by New where the kernel offers no io_uring.
var ErrUnsupported = errors.New("uring: io_uring not available")

// New fails: io_uring is Linux's.
func New(int) (*Ring, error) { return nil, ErrUnsupported }

// Entries is 0.
func (*Ring) Entries() int { return 0 }

// Submit does nothing.
func (*Ring) Submit([]int32) error { return nil }

// Close does nothing.
func (*Ring) Close() error { return nil }

// Batch is not available on this system: NewBatch always fails.
type Batch struct{}

// NewBatch fails: io_uring is Linux's.
func NewBatch(int) (*Batch, error) { return nil, ErrUnsupported }

// Add adds nothing.
func (*Batch) Add(syscall.RawConn, [][]byte) int { return -1 }

// Size is 0.
func (*Batch) Size() int { return 0 }

// Len is 0.
func (*Batch) Len() int { return 0 }

// Err is ErrUnsupported.
func (*Batch) Err() error { return ErrUnsupported }

// Run does nothing.
func (*Batch) Run() {}

// Result reports ErrUnsupported.
func (*Batch) Result(int) (int, error) { return 0, ErrUnsupported }

// Reset does nothing.
func (*Batch) Reset() {}

// Close does nothing.
func (*Batch) Close() {}

// MaxIOV is the most buffers one socket's send takes.
const MaxIOV = 1024
