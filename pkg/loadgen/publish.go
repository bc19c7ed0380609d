package loadgen

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"syscall"
	"time"

	"github.com/livechat/livechat/pkg/uring"
	"github.com/livechat/livechat/pkg/wsframe"
)

// publishBatched sends every publisher's messages from one goroutine and
// reports whether it could (else each publisher sends its own: publish).
// The publishers' sends are spread evenly, publisher p's k-th at start +
// (k*P + p) * interval/P, so they come due in turn; at each wake-up it
// frames every send due (masked, as a client must) and writes them all
// with one io_uring_enter (uring.Batch): a message costs no goroutine
// wake-up, timer or system call of its own, which at 23,100 messages a
// second was a third of the load generator's core. It needs io_uring and a
// raw socket under every publisher (ws://).
//
// A send the socket does not take whole ends that publisher: its
// connection is closed (counted as a "publish cut short" disconnect) rather
// than finished later, where a pong could come between the two parts.
func (b *bench) publishBatched(ctx context.Context, start, stop time.Time, interval time.Duration) bool {
	type pub struct {
		c     *conn
		rc    syscall.RawConn
		head  []byte
		frame []byte // the frame in flight, kept until the batch returns
		seq   uint64
		gone  bool
	}
	var pubs []*pub
	for _, c := range b.pubs {
		if c.ws == nil || c.excluded.Load() {
			continue
		}
		if c.hc == nil {
			return false
		}
		sc, ok := c.hc.Conn.(syscall.Conn)
		if !ok {
			return false
		}
		rc, err := sc.SyscallConn()
		if err != nil {
			return false
		}
		// The sends never block: no deadline (gorilla leaves its last
		// one on the socket, and once passed it fails a raw write).
		_ = c.hc.SetWriteDeadline(time.Time{})
		pubs = append(pubs, &pub{c: c, rc: rc, head: b.sendHead(c)})
	}
	if len(pubs) == 0 {
		return false
	}
	// A socket may be in a batch once: no more sends per batch than
	// publishers.
	bat, err := uring.NewBatch(min(64, len(pubs)))
	if err != nil {
		return false
	}
	defer bat.Close()
	size := min(bat.Size(), len(pubs))
	// Every publisher's interval is cut in P steps, one publisher each, in
	// the order of b.pubs (publish's offsets).
	step := interval / time.Duration(b.cfg.Publishers)
	at := func(n int) time.Time { return start.Add(time.Duration(n) * step) }
	inBatch := make([]*pub, 0, size)
	var key [4]byte
	timer := time.NewTimer(0)
	<-timer.C
	defer timer.Stop()
	text := make([]byte, 0, 256)
	for n := 0; ; {
		due := at(n)
		if !due.Before(stop) {
			return true
		}
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return true
			}
		}
		now := time.Now()
		inBatch = inBatch[:0]
		for len(inBatch) < size && at(n).Before(stop) && !at(n).After(now) {
			p := pubs[n%len(pubs)]
			n++
			if p.gone {
				continue
			}
			select {
			case <-p.c.done: // its reader ended: the connection is over
				p.gone = true
				continue
			default:
			}
			p.seq++
			text = b.appendSend(text[:0], p.head, p.c, p.seq)
			binary.NativeEndian.PutUint32(key[:], rand.Uint32())
			p.frame = wsframe.AppendFrame(p.frame[:0], true, wsframe.OpText, text, key[:])
			bat.Add(p.rc, [][]byte{p.frame})
			inBatch = append(inBatch, p)
		}
		if len(inBatch) == 0 {
			continue
		}
		bat.Run()
		for i, p := range inBatch {
			m, err := bat.Result(i)
			switch {
			case err == nil && m == len(p.frame):
				p.c.sent.Add(1)
			case errors.Is(err, os.ErrDeadlineExceeded):
				// A pong's deadline (the reader's WriteControl) passed:
				// not sent; clear it and send this seq next time.
				_ = p.c.hc.SetWriteDeadline(time.Time{})
				p.seq--
				b.retried.Add(1)
			case err == nil:
				// Cut short: end the connection rather than risk a frame
				// between the two parts.
				p.gone = true
				b.mu.Lock()
				b.disconnects["publish cut short"]++
				b.mu.Unlock()
				p.c.excluded.Store(true) // not counted again as a read error
				_ = p.c.ws.Close()
			default:
				p.gone = true // the reader records the broken connection
			}
		}
		bat.Reset()
	}
}
