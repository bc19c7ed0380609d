// Package servertest runs a livechat server for the tests of its clients
// (the load generator, the command line), as net/http/httptest runs an
// HTTP server.
package servertest

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/livechat/livechat/pkg/broker"
	"github.com/livechat/livechat/pkg/server"
)

// Start runs a server.Server made with cfg on an in-process memory broker,
// started (heartbeats, presence) and listening on a loopback httptest
// server, and returns its WebSocket URL ("ws://127.0.0.1:port/ws"). When
// the test ends it shuts the server down, failing the test if that does
// not finish within 5 s, then closes the listener and the broker. It fails
// the test at once if the server cannot be made.
func Start(t testing.TB, cfg server.Config) string {
	t.Helper()
	b := broker.NewMemory(broker.Options{})
	srv, err := server.New(b, cfg)
	if err != nil {
		_ = b.Close()
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		_ = b.Close()
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("servertest: shutdown: %v", err)
		}
		ts.Close()
		if err := b.Close(); err != nil {
			t.Errorf("servertest: broker close: %v", err)
		}
	})
	return "ws" + strings.TrimPrefix(ts.URL, "http") + "/ws"
}
