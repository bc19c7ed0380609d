package broker

import (
	"context"
	"fmt"
)

// OpenRedis connects to the Redis server at rawURL. (Placeholder until the
// Redis backend lands.)
func OpenRedis(_ context.Context, rawURL string, _ Options) (Broker, error) {
	return nil, fmt.Errorf("broker: redis backend not implemented yet (%s)", Redact(rawURL))
}
