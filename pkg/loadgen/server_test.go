package loadgen

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/livechat/livechat/pkg/broker/brokertest"
	"github.com/livechat/livechat/pkg/history"
	"github.com/livechat/livechat/pkg/server"
	"github.com/livechat/livechat/pkg/server/servertest"
)

// startChatServer runs a pkg/server on a loopback listener with a Redis
// history under a key prefix of its own (deleted at the end) and returns
// its WebSocket URL. The Redis history de-duplicates sends on sender name
// and cid for a day, as `livechat serve` does.
func startChatServer(t *testing.T) string {
	t.Helper()
	url := brokertest.RedisURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	keyPrefix := brokertest.Prefix(t) + ":history"
	h, err := history.Open(ctx, url, history.Options{KeyPrefix: keyPrefix, MaxAge: time.Hour})
	if err != nil {
		t.Fatalf("redis history %s: %v", url, err)
	}
	// Registered first, so it runs after the server's shutdown.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = h.Close()
		opt, err := redis.ParseURL(url)
		if err != nil {
			return
		}
		rc := redis.NewClient(opt)
		defer func() { _ = rc.Close() }()
		iter := rc.Scan(ctx, 0, keyPrefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			_ = rc.Del(ctx, iter.Val()).Err()
		}
	})
	return servertest.Start(t, server.Config{AppID: "t1", Prefix: brokertest.Prefix(t), History: h})
}

// TestRunTwiceIntoOneRoom: a second run into the same room of a server
// with a Redis history delivers everything, as the first did. Were its
// names and cids the first run's, the history would take every send for a
// retry: acknowledged with "dup":true and delivered to nobody.
func TestRunTwiceIntoOneRoom(t *testing.T) {
	t.Parallel()
	url := startChatServer(t)
	var runIDs []string
	for i := range 2 {
		cfg := quick(url)
		cfg.Clients, cfg.Rate = 10, 60
		res := run(t, cfg)
		runIDs = append(runIDs, res.RunID)
		if res.Sent < 20 || res.Acked != res.Sent || res.DupAcks != 0 || res.Expected != res.Acked*uint64(res.Members) ||
			res.Delivered != res.Expected || res.Lost != 0 || res.Duplicates != 0 || res.Gaps != 0 {
			t.Errorf("run %d: sent %d acked %d (%d dup) expected %d delivered %d lost %d dupes %d gaps %d; want all delivered once",
				i+1, res.Sent, res.Acked, res.DupAcks, res.Expected, res.Delivered, res.Lost, res.Duplicates, res.Gaps)
		}
		if len(res.ErrorFrames) != 0 || len(res.Disconnects) != 0 {
			t.Errorf("run %d: error frames %v disconnects %v", i+1, res.ErrorFrames, res.Disconnects)
		}
	}
	if runIDs[0] == runIDs[1] {
		t.Errorf("both runs have the id %s", runIDs[0])
	}
}
