//go:build !windows

package engine

import "syscall"

// setBuffer sets a socket buffer (SO_SNDBUF or SO_RCVBUF) to 4 KiB.
func setBuffer(fd uintptr, opt int) error {
	return syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, opt, 4096)
}
