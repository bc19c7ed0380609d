package engine

import "testing"

// TestRoleTransitions lists the writer role's transition for every state
// and event, one case per line: who holds the socket next, and what the
// caller must start.
func TestRoleTransitions(t *testing.T) {
	for _, tc := range []struct {
		from role
		ev   event
		to   role
		act  action
	}{
		{roleNone, evQueued, roleFlusher, actFlusher},    // a frame starts the flusher
		{roleNone, evQueuedOwn, roleOwn, actOwn},         // no flusher: the own writer
		{roleNone, evControl, roleOwn, actOwn},           // only the own writer pings and pongs
		{roleNone, evClose, roleOwn, actOwn},             // the own writer runs the handshake
		{roleNone, evStop, roleDone, actNone},            // nobody writes: over at once
		{roleNone, evNeedOwn, roleNone, actNone},         // a holder's event, nobody holds
		{roleNone, evHandBack, roleNone, actNone},        // a holder's event, nobody holds
		{roleNone, evMore, roleNone, actNone},            // a holder's event, nobody holds
		{roleNone, evIdle, roleNone, actNone},            // a holder's event, nobody holds
		{roleNone, evCloseTurn, roleNone, actNone},       // a holder's event, nobody holds
		{roleNone, evEnd, roleNone, actNone},             // a holder's event, nobody holds
		{roleFlusher, evQueued, roleFlusher, actNone},    // the holder sees it at its turn
		{roleFlusher, evQueuedOwn, roleFlusher, actNone}, // the holder sees it at its turn
		{roleFlusher, evControl, roleFlusher, actNone},   // the holder sees it at its turn
		{roleFlusher, evClose, roleFlusher, actNone},     // the holder sees it at its turn
		{roleFlusher, evStop, roleFlusher, actNone},      // the holder sees it at its turn
		{roleFlusher, evNeedOwn, roleOwn, actOwn},        // the flusher hands over
		{roleFlusher, evHandBack, roleFlusher, actNone},  // not this holder's event
		{roleFlusher, evMore, roleFlusher, actFlusher},   // queued again
		{roleFlusher, evIdle, roleNone, actRelease},
		{roleFlusher, evCloseTurn, roleFlusher, actNone}, // not this holder's event
		{roleFlusher, evEnd, roleDone, actRelease},       // a failed write, or the reader finished
		{roleOwn, evQueued, roleOwn, actNone},            // the holder sees it at its turn
		{roleOwn, evQueuedOwn, roleOwn, actNone},         // the holder sees it at its turn
		{roleOwn, evControl, roleOwn, actNone},           // the holder sees it at its turn
		{roleOwn, evClose, roleOwn, actNone},             // the holder sees it at its turn
		{roleOwn, evStop, roleOwn, actNone},              // the holder sees it at its turn
		{roleOwn, evNeedOwn, roleOwn, actNone},           // not this holder's event
		{roleOwn, evHandBack, roleFlusher, actFlusher},   // frames go back to the flusher
		{roleOwn, evMore, roleOwn, actNone},              // not this holder's event
		{roleOwn, evIdle, roleNone, actRelease},
		{roleOwn, evCloseTurn, roleClosing, actHandshake},
		{roleOwn, evEnd, roleDone, actRelease},           // a failed write, or the reader finished
		{roleClosing, evQueued, roleClosing, actNone},    // the handshake goes on
		{roleClosing, evQueuedOwn, roleClosing, actNone}, // the handshake goes on
		{roleClosing, evControl, roleClosing, actNone},   // the handshake goes on
		{roleClosing, evClose, roleClosing, actNone},     // the handshake goes on
		{roleClosing, evStop, roleClosing, actNone},      // the handshake goes on
		{roleClosing, evNeedOwn, roleClosing, actNone},   // the handshake goes on
		{roleClosing, evHandBack, roleClosing, actNone},  // the handshake goes on
		{roleClosing, evMore, roleClosing, actNone},      // the handshake goes on
		{roleClosing, evIdle, roleClosing, actNone},      // the handshake goes on
		{roleClosing, evCloseTurn, roleClosing, actNone}, // the handshake goes on
		{roleClosing, evEnd, roleDone, actRelease},       // the handshake is over
		{roleDone, evQueued, roleDone, actNone},          // over: nothing starts
		{roleDone, evQueuedOwn, roleDone, actNone},       // over: nothing starts
		{roleDone, evControl, roleDone, actNone},         // over: nothing starts
		{roleDone, evClose, roleDone, actNone},           // over: nothing starts
		{roleDone, evStop, roleDone, actNone},            // over: nothing starts
		{roleDone, evNeedOwn, roleDone, actNone},         // over: nothing starts
		{roleDone, evHandBack, roleDone, actNone},        // over: nothing starts
		{roleDone, evMore, roleDone, actNone},            // over: nothing starts
		{roleDone, evIdle, roleDone, actNone},            // over: nothing starts
		{roleDone, evCloseTurn, roleDone, actNone},       // over: nothing starts
		{roleDone, evEnd, roleDone, actNone},             // over: nothing starts
	} {
		if to, act := next(tc.from, tc.ev); to != tc.to || act != tc.act {
			t.Errorf("%v on %v: %v, %v; want %v, %v", tc.from, tc.ev, to, act, tc.to, tc.act)
		}
	}
}

// TestRoleStepCountsWriters: taking the role from nobody counts a writer,
// handing it over does not, and the end without a writer counts none.
func TestRoleStepCountsWriters(t *testing.T) {
	c := &Conn{}
	if a := c.step(evQueued); a != actFlusher || c.out.role != roleFlusher {
		t.Fatalf("queued: %v, role %v", a, c.out.role)
	}
	if a := c.step(evNeedOwn); a != actOwn || c.out.role != roleOwn {
		t.Fatalf("need own: %v, role %v", a, c.out.role)
	}
	if a := c.step(evIdle); a != actRelease || c.out.role != roleNone {
		t.Fatalf("idle: %v, role %v", a, c.out.role)
	}
	c.writers.Done() // the one writer counted; a second Done would panic
	c.step(evStop)
	if c.out.role != roleDone {
		t.Fatalf("stop with nobody writing: role %v", c.out.role)
	}
	c.writers.Wait()
}
