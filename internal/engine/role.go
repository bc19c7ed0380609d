package engine

// The writer role: who may write a connection's socket. Exactly one writer
// holds it at a time, and outbound.role names it. It passes between the
// flusher (non-blocking writes of queued frames), the connection's own
// writer goroutine (what may block: pings, pongs, the rest of a short
// write, the close, and every write without a flusher) and nobody, and it
// changes only through next, under Conn.mu. What there is to write (the
// queue, a ping or pong due, a close requested, the reader's end) is data
// beside it, read by the holder at its turn to pick the event.
type role uint8

// The writer roles.
const (
	// roleNone: no writer runs; the next frame, ping, pong or close
	// starts one.
	roleNone role = iota
	// roleFlusher: the connection is queued on its flusher, or being
	// written by it.
	roleFlusher
	// roleOwn: the connection's own writer goroutine (writeLoop) holds the
	// socket.
	roleOwn
	// roleClosing: the own writer runs the close handshake; no other
	// writer starts.
	roleClosing
	// roleDone: nothing is written any more (the handshake ended, a write
	// failed, or the reader finished).
	roleDone
)

var roleNames = [...]string{"none", "flusher", "own", "closing", "done"}

func (r role) String() string { return roleNames[r] }

// An event is what happened to a connection's outbound side: work that came
// (from any goroutine), or what the role's holder found at its turn.
type event uint8

// The events.
const (
	// evQueued: a frame was queued on a connection that a flusher writes.
	evQueued event = iota
	// evQueuedOwn: a frame was queued on a connection without a flusher.
	evQueuedOwn
	// evControl: a ping or a pong fell due (only the own writer writes
	// them).
	evControl
	// evClose: a close was requested.
	evClose
	// evStop: the reader finished; writes end (a holder stops at its turn).
	evStop
	// evNeedOwn: the flusher found work only the own writer does (a ping,
	// a pong, the close, the rest of a short write).
	evNeedOwn
	// evHandBack: the own writer wrote what only it writes and frames wait
	// for the flusher.
	evHandBack
	// evMore: the flusher wrote the connection and more came meanwhile.
	evMore
	// evIdle: the holder found nothing to write.
	evIdle
	// evCloseTurn: the own writer found the close requested.
	evCloseTurn
	// evEnd: the holder ends the writes: the close handshake is over, a
	// write failed, or it found the reader finished.
	evEnd
)

var eventNames = [...]string{"queued", "queuedOwn", "control", "close", "stop", "needOwn", "handBack", "more", "idle", "closeTurn", "end"}

func (e event) String() string { return eventNames[e] }

// An action is what the caller of next must do once Conn.mu is released.
type action uint8

// The actions.
const (
	// actNone: nothing; the holder, if any, sees the work at its turn.
	actNone action = iota
	// actFlusher: queue the connection on its flusher (flusher.push).
	actFlusher
	// actOwn: start the own writer (writeLoop).
	actOwn
	// actHandshake: the own writer runs the close handshake.
	actHandshake
	// actRelease: the holder gives the role up (Conn.writers.Done) and
	// returns.
	actRelease
)

var actionNames = [...]string{"none", "flusher", "own", "handshake", "release"}

func (a action) String() string { return actionNames[a] }

// next is the writer role's transition: the role after ev in state s, and
// what the caller must do. An event that does not apply to s (a holder's
// event with nobody holding, work after the end) leaves s as it is. It is
// pure; Conn.step applies it under Conn.mu.
func next(s role, ev event) (role, action) {
	switch s {
	case roleNone:
		switch ev {
		case evQueued:
			return roleFlusher, actFlusher
		case evQueuedOwn, evControl, evClose:
			return roleOwn, actOwn
		case evStop:
			return roleDone, actNone
		}
	case roleFlusher:
		switch ev {
		case evNeedOwn:
			return roleOwn, actOwn
		case evMore:
			return roleFlusher, actFlusher
		case evIdle:
			return roleNone, actRelease
		case evEnd:
			return roleDone, actRelease
		}
	case roleOwn:
		switch ev {
		case evHandBack:
			return roleFlusher, actFlusher
		case evIdle:
			return roleNone, actRelease
		case evCloseTurn:
			return roleClosing, actHandshake
		case evEnd:
			return roleDone, actRelease
		}
	case roleClosing:
		if ev == evEnd {
			return roleDone, actRelease
		}
	}
	return s, actNone
}

// step applies ev to c's writer role and returns the action; c.mu must be
// held. Taking the role (from roleNone) counts a writer in c.writers, and
// releasing it is the holder's, once it is done: the caller's
// c.writers.Done after actRelease.
func (c *Conn) step(ev event) action {
	was := c.out.role
	s, a := next(was, ev)
	c.out.role = s
	if was == roleNone && s != roleNone && s != roleDone {
		c.writers.Add(1)
	}
	return a
}
