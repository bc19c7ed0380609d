//go:build !linux

package server

// setPollersInline does nothing where there is no poller.
func setPollersInline(*Server, bool) {}
