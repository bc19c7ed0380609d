//go:build !linux

package engine

import "errors"

// poller is Linux only (epoll): elsewhere every connection has a reader
// goroutine of its own.
type poller struct{}

// epollSet is Linux only.
type epollSet struct{}

func newPoller(bool) *poller { return nil }

func (*poller) add(*Conn) error { return errors.ErrUnsupported }

func (*poller) remove(*Conn) {}
