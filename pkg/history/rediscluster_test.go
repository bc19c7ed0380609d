package history_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/livechat/livechat/pkg/broker/brokertest"
	"github.com/livechat/livechat/pkg/history"
	"github.com/livechat/livechat/pkg/history/historytest"
	"github.com/livechat/livechat/pkg/protocol"
)

func TestRedisCluster(t *testing.T) {
	c := brokertest.StartRedisCluster(t)
	historytest.Run(t, historytest.Backend{Bounded: true, New: func(t testing.TB, o history.Options) func() history.Store {
		o.KeyPrefix = "livechat-test:" + brokertest.Prefix(t)
		return func() history.Store {
			s, err := history.Open(context.Background(), c.URL, o)
			if err != nil {
				t.Fatalf("Open(%s): %v", c.URL, err)
			}
			return s
		}
	}})
	// A master that lost the script (a restart, or a replica promoted
	// before it was loaded there) gets it again with EVAL.
	t.Run("ScriptFlushed", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		s, err := history.Open(ctx, c.URL, history.Options{KeyPrefix: "livechat-test:" + brokertest.Prefix(t)})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = s.Close() }()
		err = c.Client().ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			return m.ScriptFlush(ctx).Err()
		})
		if err != nil {
			t.Fatal(err)
		}
		// Rooms on every master, appended together (one batch per master).
		rooms := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
		errs := make(chan error, len(rooms))
		for _, r := range rooms {
			go func() {
				_, _, err := s.Append(ctx, &protocol.Message{Room: r, Text: "x"}, "")
				errs <- err
			}()
		}
		for range rooms {
			if err := <-errs; err != nil {
				t.Errorf("Append after SCRIPT FLUSH: %v", err)
			}
		}
		for _, r := range rooms {
			if b, err := s.Bounds(ctx, r); err != nil || b.Last != 1 {
				t.Errorf("Bounds(%s) = %+v, %v; want Last 1", r, b, err)
			}
		}
	})
}

func TestRedisClusterURL(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, u := range []string{"redis+cluster://:s3cret@h:1,h:2/3", "redis+cluster://u:s3cret@h:1,nope", "rediss+cluster://u:s3cret@h:1?bogus=1"} {
		if _, err := history.Open(ctx, u, history.Options{}); !errors.Is(err, history.ErrUnsupportedURL) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open(%q) = %v, want ErrUnsupportedURL without the password", u, err)
		}
	}
	u := "redis+cluster://u:s3cret@127.0.0.1:1,127.0.0.1:2?dial_timeout=200ms"
	_, err := history.Open(ctx, u, history.Options{})
	if !errors.Is(err, history.ErrUnavailable) || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "127.0.0.1:2") {
		t.Errorf("Open(%q) = %v, want ErrUnavailable naming the nodes without the password", u, err)
	}
	if got := history.Redact(u); got != "redis+cluster://u:xxxxx@127.0.0.1:1,127.0.0.1:2?dial_timeout=200ms" {
		t.Errorf("Redact = %q", got)
	}
	if got := history.URLForBroker(u); got != u {
		t.Errorf("URLForBroker(%q) = %q, want the same cluster", u, got)
	}
}
