package broker

import (
	"context"
	"fmt"
)

// batchChunk bounds the messages a backend sends in one round trip of
// PublishBatch (a Redis pipeline): a huge batch is not one huge buffer.
const batchChunk = 256

// batchPublisher is implemented by the backends that publish a batch in
// fewer round trips than one per message (PublishBatch). Its msgs have
// valid subjects and are not empty.
type batchPublisher interface {
	publishBatch(ctx context.Context, msgs []Message) error
}

// PublishBatch publishes msgs in order, as b.Publish would one by one, with
// the same guarantees: each message reaches every matching subscription at
// most once, and the messages of one subject are delivered in the order of
// msgs. Redis and Redis Cluster send the batch in pipelines (one round trip
// per batchChunk messages, per master node for a cluster); the other
// backends call Publish in a loop (a NATS publish is buffered already).
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
	if len(msgs) == 0 {
		return nil
	}
	for _, m := range msgs {
		if err := ValidateSubject(m.Subject); err != nil {
			return fmt.Errorf("broker: publish to %q: %w", m.Subject, err)
		}
	}
	if bp, ok := b.(batchPublisher); ok {
		return bp.publishBatch(ctx, msgs)
	}
	for _, m := range msgs {
		if err := b.Publish(ctx, m.Subject, m.Data); err != nil {
			return err
		}
	}
	return nil
}
