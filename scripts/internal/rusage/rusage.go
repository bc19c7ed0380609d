//go:build linux

// Package rusage reads the CPU time of the calling process, for the
// measuring commands under scripts.
package rusage

import (
	"syscall"
	"time"
)

// CPU is the process's user and system CPU time so far (0 if it cannot be
// read).
func CPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime))
}
