package broker

import (
	"context"
	"fmt"
)

// batchChunk bounds the messages a backend sends in one round trip of
// PublishBatch (a Redis pipeline): a huge batch is not one huge buffer.
const batchChunk = 256

// BatchPublisher is the capability of a broker that publishes a batch of
// messages in fewer round trips than one per message (Redis and Redis
// Cluster pipeline them). PublishBatch (the function) uses it when b has it;
// a wrapper of a Broker that should keep it implements it too.
type BatchPublisher interface {
	// PublishBatch publishes msgs with the contract of the function
	// PublishBatch.
	PublishBatch(ctx context.Context, msgs []Message) error
}

// PublishBatch publishes msgs in order, as b.Publish would one by one, with
// the same guarantees: each message reaches every matching subscription at
// most once, and the messages of one subject are delivered in the order of
// msgs. A BatchPublisher does it its way: Redis sends PUBLISH pipelines (one
// round trip per 256 messages), Redis Cluster SPUBLISH pipelines (one round
// trip per master node per 256 messages); the other backends' Publish is
// called in a loop (a NATS publish is buffered already).
//
// Every subject is validated first: an invalid one fails the batch, naming
// the subject (errors.Is ErrInvalidSubject), before anything is published.
// Otherwise it blocks like Publish until the backend accepted every
// message, or returns an error naming the first message that failed
// (ErrClosed on a closed broker): the others may or may not have been
// published (a pipeline sends on after a refused command, a cluster sends
// to its nodes in parallel). An empty batch publishes nothing and returns
// nil. The Data of msgs must not be modified afterwards. It is safe for
// concurrent use.
func PublishBatch(ctx context.Context, b Broker, msgs []Message) error {
	if bp, ok := b.(BatchPublisher); ok {
		return bp.PublishBatch(ctx, msgs)
	}
	if err := validateBatch(msgs); err != nil {
		return err
	}
	for _, m := range msgs {
		if err := b.Publish(ctx, m.Subject, m.Data); err != nil {
			return err
		}
	}
	return nil
}

// validateBatch returns an error naming the first invalid subject of msgs.
func validateBatch(msgs []Message) error {
	for _, m := range msgs {
		if err := ValidateSubject(m.Subject); err != nil {
			return fmt.Errorf("broker: publish to %q: %w", m.Subject, err)
		}
	}
	return nil
}
