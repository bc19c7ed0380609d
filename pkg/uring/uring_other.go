//go:build !linux

package uring

import "errors"

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
