//go:build !linux

package loadgen

import "net"

// stamped returns c: receive timestamps are read on Linux only.
func stamped(c net.Conn) net.Conn { return c }
