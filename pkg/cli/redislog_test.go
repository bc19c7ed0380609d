package cli

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestRedisLogRouted: go-redis's own log lines go to the command's logger
// at debug level, and nowhere when that logger does not log debug.
func TestRedisLogRouted(t *testing.T) {
	var debug, info bytes.Buffer
	routeRedisLog(slog.New(slog.NewTextHandler(&debug, &slog.HandlerOptions{Level: slog.LevelDebug})))
	// A failed dial makes the pool log through the process-wide logger.
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	_ = c.Ping(context.Background()).Err()
	_ = c.Close()
	if got := debug.String(); !strings.Contains(got, "level=DEBUG") || !strings.Contains(got, "127.0.0.1:1") {
		t.Fatalf("debug logger got %q", got)
	}
	routeRedisLog(slog.New(slog.NewTextHandler(&info, nil)))
	redisLogger{}.Printf(context.Background(), "redis: %s", "dropped")
	if info.Len() != 0 {
		t.Fatalf("info logger got %q", info.String())
	}
}
