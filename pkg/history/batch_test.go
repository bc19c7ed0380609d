package history

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/livechat/livechat/pkg/broker/brokertest"
	"github.com/livechat/livechat/pkg/protocol"
)

// TestRedisAppendsBatched: appends that arrive together reach Redis in
// fewer pipelines than appends, each gets its own seq, and each seq holds
// its own message.
func TestRedisAppendsBatched(t *testing.T) {
	t.Parallel()
	u := brokertest.RedisURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := OpenRedis(ctx, u, Options{KeyPrefix: "livechat-test:" + brokertest.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	const n = 200
	seqs := make([]uint64, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			seq, dup, err := s.Append(ctx, &protocol.Message{Room: "batch", Text: strconv.Itoa(i)}, "k"+strconv.Itoa(i))
			if err != nil || dup {
				t.Errorf("append %d: %v, dup %v", i, err, dup)
			}
			seqs[i] = seq
		})
	}
	close(start)
	wg.Wait()
	batches := s.gc.batches.Load()
	t.Logf("%d appends in %d pipelines", n, batches)
	if batches >= n {
		t.Errorf("%d appends took %d pipelines: none carried two", n, batches)
	}
	msgs, err := s.After(ctx, "batch", 0, n)
	if err != nil || len(msgs) != n {
		t.Fatalf("After: %d messages, %v", len(msgs), err)
	}
	for i, seq := range seqs {
		if m := msgs[seq-1]; m.Seq != seq || m.Text != strconv.Itoa(i) {
			t.Errorf("append %d got seq %d, which holds %q", i, seq, m.Text)
		}
	}
	slices.Sort(seqs)
	for i, seq := range seqs {
		if seq != uint64(i+1) {
			t.Fatalf("seqs %v..., want 1..%d", seqs[:min(5, n)], n)
		}
	}
}
