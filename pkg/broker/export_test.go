package broker

// HoldNATSDispatch stops b's dispatch goroutine (b must be a *NATS) until
// the returned function is called, so a test can fill the client's inbox.
func HoldNATSDispatch(b Broker) (release func()) {
	n := b.(*NATS)
	n.mu.Lock()
	return n.mu.Unlock
}
