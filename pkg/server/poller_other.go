//go:build !linux

package server

import "errors"

// poller is Linux only (epoll): elsewhere every connection has a reader
// goroutine of its own.
type poller struct{}

// epollSet is Linux only.
type epollSet struct{}

func newPoller(bool) *poller { return nil }

func (*poller) add(*conn) error { return errors.ErrUnsupported }

func (rawConn) shutdown() error { return errors.ErrUnsupported }

// readable is never true here: no connection is polled.
func (*conn) readable(bool) bool { return false }
