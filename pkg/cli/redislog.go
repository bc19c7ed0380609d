package cli

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// go-redis logs through a process-wide logger of its own, to stderr in its
// own format: a connection pool's failed dial at every retry while Redis is
// down, for one. The commands send it to their slog logger at debug level
// instead; the broker reports losing and regaining Redis itself, once, at
// warn level.
var (
	redisLogOnce sync.Once
	redisLog     atomic.Pointer[slog.Logger]
)

// routeRedisLog sends go-redis's log lines to l (debug level) from now on.
func routeRedisLog(l *slog.Logger) {
	redisLog.Store(l)
	redisLogOnce.Do(func() { redis.SetLogger(redisLogger{}) })
}

// redisLogger is go-redis's logging interface over redisLog.
type redisLogger struct{}

// Printf logs one go-redis line at debug level, or drops it before any
// command set a logger.
func (redisLogger) Printf(ctx context.Context, format string, v ...any) {
	if l := redisLog.Load(); l != nil && l.Enabled(ctx, slog.LevelDebug) {
		l.DebugContext(ctx, fmt.Sprintf(format, v...))
	}
}
