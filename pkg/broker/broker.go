// Package broker is a small NATS-style publish/subscribe layer.
//
// Subjects are dot-separated tokens ("livechat.room.general"). A subscription
// pattern may use "*" (exactly one token) and ">" (one or more trailing
// tokens). Five backends implement Broker: an in-process one (memory://) for a
// single node and tests, Redis Pub/Sub (redis://, rediss://), Redis Cluster
// sharded Pub/Sub (redis+cluster://, rediss+cluster://; see RedisCluster for
// how wildcards work there and what a pattern watcher costs) and core NATS
// (nats://, tls://) for a cluster, and a node's operator API (http://,
// https://; HTTPHandler serves it) for operator tools next to a single node. Open chooses one by URL.
//
// Delivery is at most once. Messages from one publisher on one subject are
// delivered to a subscription in the order they were published. Every
// subscription has its own bounded queue and delivery goroutine, so a slow
// handler delays only itself: when its queue is full, further messages for it
// are dropped and counted (Subscription.Dropped), never blocking the publisher
// or other subscriptions.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/livechat/livechat/internal/redisurl"
)

// Errors returned by brokers. Compare with errors.Is.
var (
	// ErrClosed is returned by calls on a closed Broker or Subscription.
	ErrClosed = errors.New("broker: closed")
	// ErrInvalidSubject is wrapped by every subject validation error.
	ErrInvalidSubject = errors.New("broker: invalid subject")
	// ErrUnsupportedURL is returned by Open for an unknown scheme or a malformed URL.
	ErrUnsupportedURL = errors.New("broker: unsupported URL")
)

// Message is one delivery. Data is shared by every subscription that receives
// the message: handlers must not modify it.
type Message struct {
	// Subject is the concrete subject the message was published to.
	Subject string
	// Data is the payload, as published.
	Data []byte
}

// Handler receives messages of one subscription. Calls for one subscription are
// sequential, never concurrent, from that subscription's own goroutine (or,
// with SubscribeInline, sometimes the publisher's).
type Handler func(Message)

// Broker publishes and subscribes. All methods are safe for concurrent use.
type Broker interface {
	// Publish sends data to every subscription matching subject, which must be
	// a literal subject (no wildcards). It returns once the backend accepted
	// the message; it does not wait for delivery. data must not be modified
	// afterwards: the in-process backend hands it to the subscriptions as is.
	Publish(ctx context.Context, subject string, data []byte) error
	// Subscribe registers h for every message whose subject matches pattern.
	// It returns only once the backend has confirmed the subscription, so a
	// message published after Subscribe returns is delivered.
	Subscribe(ctx context.Context, pattern string, h Handler) (Subscription, error)
	// State reports the connection state.
	State() State
	// Close unsubscribes everything, stops every goroutine the broker started
	// and releases its connections. It waits for handler calls already
	// running to return (a pending SubscribeChan send is abandoned). It is
	// idempotent.
	Close() error
}

// Reacher is implemented by a broker of several nodes (Redis Cluster),
// whose State turns StateReconnecting while any node it needs fails over:
// ReachesNone tells a broker cut off from every node from one that lost
// only some.
type Reacher interface {
	// ReachesNone reports whether no node of the broker has answered for
	// a few seconds.
	ReachesNone() bool
}

// Unreachable reports whether b is cut off: ReachesNone for a Reacher,
// otherwise State is StateReconnecting.
func Unreachable(b Broker) bool {
	if r, ok := b.(Reacher); ok {
		return b.State() == StateReconnecting && r.ReachesNone()
	}
	return b.State() == StateReconnecting
}

// Subscription is one registered handler.
type Subscription interface {
	// Pattern is the subject pattern given to Subscribe.
	Pattern() string
	// Unsubscribe stops delivery: once it returns no new handler call starts.
	// It does not wait for a running handler call, so it is safe to call from
	// inside the handler. It is idempotent.
	Unsubscribe() error
	// Dropped counts the messages dropped because this subscription's queue
	// was full.
	Dropped() uint64
}

// State is a broker's connection state.
type State int32

// Connection states.
const (
	// StateConnected means messages flow.
	StateConnected State = iota
	// StateReconnecting means the backend connection was lost and is being
	// re-established; publishes fail and deliveries pause until it is back.
	StateReconnecting
	// StateClosed means Close was called.
	StateClosed
)

// String returns "connected", "reconnecting" or "closed".
func (s State) String() string {
	switch s {
	case StateConnected:
		return "connected"
	case StateReconnecting:
		return "reconnecting"
	case StateClosed:
		return "closed"
	}
	return fmt.Sprintf("State(%d)", int32(s))
}

// Options tune a broker. The zero value is ready to use.
type Options struct {
	// QueueSize bounds each subscription's queue of undelivered messages.
	// Default: 8192.
	QueueSize int
	// OnStateChange, if set, is called on every state change, from a
	// goroutine of the broker; it must not block.
	OnStateChange func(State)
	// Logger receives connection events. Default: slog.Default().
	Logger *slog.Logger
	// Key is the operator key the http:// backend sends as a bearer token
	// (OpenHTTP); the other backends ignore it. It is never logged.
	Key string
	// NoInline makes SubscribeInline subscribe as Subscribe does, every
	// handler call on its subscription's goroutine: the off switch of
	// running quick handlers on the delivering goroutine.
	NoInline bool
}

const defaultQueueSize = 8192

func (o *Options) fill() {
	if o.QueueSize <= 0 {
		o.QueueSize = defaultQueueSize
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Open returns a Broker for rawURL: "memory://" for the in-process broker,
// "redis://[user:password@]host:port[/db]" ("rediss://" for TLS) for Redis,
// or "redis+cluster://[user:password@]host:port[,host:port...]"
// ("rediss+cluster://") for a Redis Cluster (OpenRedisCluster).
// For Redis it connects and returns an error naming the URL, with any password
// redacted, when the server cannot be reached. "http://host:port"
// ("https://") is a livechat node's operator API (OpenHTTP), with
// opts.Key as the operator key.
func Open(ctx context.Context, rawURL string, opts Options) (Broker, error) {
	if redisurl.IsCluster(rawURL) {
		return OpenRedisCluster(ctx, rawURL, opts)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		// A *url.Error repeats the raw URL, password included: keep only its cause.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("%w %q: %w", ErrUnsupportedURL, Redact(rawURL), err)
	}
	switch u.Scheme {
	case "memory":
		return NewMemory(opts), nil
	case "redis", "rediss":
		return OpenRedis(ctx, rawURL, opts)
	case "nats", "tls":
		n, err := OpenNATS(ctx, rawURL, opts)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return n, nil
	case "http", "https":
		return OpenHTTP(ctx, rawURL, opts)
	}
	return nil, fmt.Errorf("%w %q: scheme must be memory://, redis:// (rediss://), redis+cluster:// (rediss+cluster://), nats:// (tls://) or http:// (https://, a node's operator API)", ErrUnsupportedURL, Redact(rawURL))
}

// Redact returns rawURL with any password replaced by "xxxxx", for logs and
// error messages. A URL that does not parse is returned as "<invalid URL>".
// In a nats:// or tls:// URL (a comma-separated list, too) a user name
// without a password is a token: it is replaced as well. A
// redis+cluster:// URL may list several hosts.
func Redact(rawURL string) string {
	if redisurl.IsCluster(rawURL) {
		return redisurl.Redact(rawURL)
	}
	if strings.HasPrefix(rawURL, "nats://") || strings.HasPrefix(rawURL, "tls://") {
		return redactList(rawURL)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return "<invalid URL>"
	}
	return u.Redacted()
}

// NonBlocking is the capability of a broker whose Publish and Subscribe
// never wait on a network or a disk (the in-process one): a caller may then
// call them without a deadline, and from a goroutine that must not wait
// long (an event loop).
type NonBlocking interface {
	// NeverBlocks reports whether the broker's calls never wait.
	NeverBlocks() bool
}

// NeverBlocks reports whether b declares that its calls never wait
// (NonBlocking); a broker that does not say so may block.
func NeverBlocks(b Broker) bool {
	nb, ok := b.(NonBlocking)
	return ok && nb.NeverBlocks()
}

// inlineSubscriber is implemented by the backends that can run a handler on
// the delivering goroutine (SubscribeInline).
type inlineSubscriber interface {
	subscribeInline(ctx context.Context, pattern string, h Handler) (Subscription, error)
}

// SubscribeInline subscribes h, which must be quick and never block: it
// runs on the delivering goroutine whenever no call of it is running and
// nothing waits in its queue, which saves a hand-off to the subscription's
// goroutine (a goroutine started, its stack grown) per message; otherwise
// the message is queued as with Subscribe, and calls stay sequential and in
// order. The in-process broker calls it on the publishing goroutine, before
// Publish returns; Redis, Redis Cluster and NATS on the goroutine that
// reads the connection, which serves every subscription, so a handler that
// blocks holds them all up. Options.NoInline turns this off.
func SubscribeInline(ctx context.Context, b Broker, pattern string, h Handler) (Subscription, error) {
	if is, ok := b.(inlineSubscriber); ok {
		return is.subscribeInline(ctx, pattern, h)
	}
	return b.Subscribe(ctx, pattern, h)
}

// SubscribeChan subscribes and sends every message to ch. The send blocks the
// subscription's own goroutine only: when ch stays full, that subscription's
// queue fills and further messages are dropped and counted. A pending send is
// abandoned when the subscription is unsubscribed or the broker closed.
func SubscribeChan(ctx context.Context, b Broker, pattern string, ch chan<- Message) (Subscription, error) {
	if ds, ok := b.(doneSubscriber); ok {
		return ds.subscribeDone(ctx, pattern, func(done <-chan struct{}, m Message) {
			select {
			case ch <- m:
			case <-done:
			}
		})
	}
	return b.Subscribe(ctx, pattern, func(m Message) { ch <- m })
}
