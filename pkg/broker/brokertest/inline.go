package brokertest

import (
	"context"
	"runtime"
	"strings"
	"testing"

	"github.com/livechat/livechat/pkg/broker"
)

// RunInline checks a backend that runs SubscribeInline handlers on its
// delivering goroutine (the publisher's, or the one reading the
// connection): an idle inline subscription's handler never runs on a
// goroutine started for the subscription, and with Options.NoInline it
// always does.
func RunInline(t *testing.T, newBroker NewFunc) {
	for _, tc := range []struct {
		name     string
		noInline bool
	}{{"Inline", false}, {"NoInline", true}} {
		t.Run(tc.name, func(t *testing.T) {
			b := open(t, newBroker, broker.Options{NoInline: tc.noInline})
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			subject := "inline." + strings.ToLower(tc.name)
			onOwn := make(chan bool, 1)
			_, err := broker.SubscribeInline(ctx, b, subject, func(broker.Message) {
				buf := make([]byte, 64<<10)
				buf = buf[:runtime.Stack(buf, false)]
				onOwn <- strings.Contains(string(buf), "broker.(*sub).run(")
			})
			if err != nil {
				t.Fatal(err)
			}
			const n = 20
			own := 0
			for i := range n {
				if err := b.Publish(ctx, subject, []byte("m")); err != nil {
					t.Fatal(err)
				}
				select {
				case o := <-onOwn:
					if o {
						own++
					}
				case <-ctx.Done():
					t.Fatalf("message %d not delivered", i)
				}
			}
			if want := map[bool]int{false: 0, true: n}[tc.noInline]; own != want {
				t.Errorf("%d of %d handler calls ran on the subscription's own goroutine, want %d", own, n, want)
			}
		})
	}
}
