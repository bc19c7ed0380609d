package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"time"

	"github.com/livechat/livechat/pkg/broker"
)

// connectTimeout bounds how long a command waits for the broker at start.
const connectTimeout = 5 * time.Second

// openBroker connects to the broker named by g, with a bounded wait and an
// error that says what to do. For an http:// broker (a node's operator
// API) it reads the operator key first (operatorKey).
func openBroker(ctx context.Context, g *GlobalOptions, opts broker.Options) (broker.Broker, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	keyFile := ""
	if isHTTPBroker(g.Broker) {
		var err error
		if opts.Key, keyFile, err = operatorKey(g); err != nil {
			return nil, err
		}
	}
	routeRedisLog(opts.Logger)
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	b, err := broker.Open(ctx, g.Broker, opts)
	if errors.Is(err, broker.ErrUnsupportedURL) {
		return nil, usageErrorf("--broker: %v", err)
	}
	if errors.Is(err, broker.ErrUnauthorized) {
		return nil, fmt.Errorf("%w: the key in %s is not this node's (set --operator-key-file or --data to the node's)", err, keyFile)
	}
	if err != nil {
		if keyFile != "" {
			return nil, fmt.Errorf("%w (is `livechat serve` running there? set --broker or LIVECHAT_BROKER)", err)
		}
		return nil, fmt.Errorf("%w (set --broker or LIVECHAT_BROKER)", err)
	}
	return b, nil
}

// isHTTPBroker reports whether raw names a node's operator API.
func isHTTPBroker(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https")
}

// isNATSBroker reports whether raw names a NATS server.
func isNATSBroker(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "nats" || u.Scheme == "tls")
}

// errNATSNeedsHistory is the usage error when --history is empty with a
// NATS broker: NATS has no store a history could default to, and a
// history of each process's own would hand out conflicting seqs.
func errNATSNeedsHistory(brokerURL string) error {
	return usageErrorf("--broker %s: a NATS broker has no history store to default to; set --history (or LIVECHAT_HISTORY) to the store every server shares: postgres://... or redis://... (sqlite:///path/file.db for one node), or \"none\" for live messages only", broker.Redact(brokerURL))
}

// operatorKey reads the operator key from --operator-key-file, or the data
// directory's operator.key; it returns the key and the file it read.
func operatorKey(g *GlobalOptions) (string, string, error) {
	path := g.OperatorKeyFile
	if path == "" {
		path = filepath.Join(g.Data, operatorKeyFile)
	}
	key, err := readKeyFile(path)
	if err != nil {
		return "", path, fmt.Errorf("operator key for --broker %s: %w (start `livechat serve` with the same --data, or set --operator-key-file)", broker.Redact(g.Broker), err)
	}
	return key, path, nil
}
