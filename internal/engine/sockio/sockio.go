//go:build unix

// Package sockio holds the raw socket reads that the connection engine and
// the load generator share: non-blocking reads of a descriptor, retried on
// EINTR, that tell an empty socket from the end of the stream.
package sockio

import (
	"errors"
	"syscall"
)

// Read calls read, a non-blocking read(2) or recvmsg(2) of a socket, until
// it is not interrupted (EINTR). It returns the bytes read; empty reports
// that the socket holds nothing now (EAGAIN: wait for it to be readable);
// n == 0 with neither empty nor err is the end of the stream. It never
// blocks unless read does.
func Read(read func() (int, error)) (n int, empty bool, err error) {
	for {
		n, err := read()
		switch {
		case err == nil:
			return max(n, 0), false, nil
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EAGAIN):
			return 0, true, nil
		}
		return 0, false, err
	}
}
