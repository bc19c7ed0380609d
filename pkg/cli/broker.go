package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/livechat/livechat/pkg/broker"
)

// connectTimeout bounds how long a command waits for the broker at start.
const connectTimeout = 5 * time.Second

// openBroker connects to the broker named by g, with a bounded wait and an
// error that says what to do.
func openBroker(ctx context.Context, g *GlobalOptions, opts broker.Options) (broker.Broker, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	routeRedisLog(opts.Logger)
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	b, err := broker.Open(ctx, g.Broker, opts)
	if errors.Is(err, broker.ErrUnsupportedURL) {
		return nil, usageErrorf("--broker: %v", err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w (set --broker or LIVECHAT_BROKER)", err)
	}
	return b, nil
}
