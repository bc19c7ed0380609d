package engine_test

import (
	"log"
	"net/http"
	"time"

	"github.com/livechat/livechat/internal/engine"
)

// echo answers every message with itself.
type echo struct{}

func (echo) Message(c *engine.Conn, op int, data []byte) (int, string) {
	if op != engine.OpText {
		return engine.ClosePolicyViolation, "text only" // ends the connection
	}
	c.Send(engine.TextFrame(data)) // copies data, valid until Message returns
	return 0, ""
}

func (echo) Closed(c *engine.Conn, e engine.End) {
	log.Printf("%v: %v (code %d), %d frames out", c.RemoteAddr(), e.Reason, e.Code, c.FramesOut())
}

// An echo server: Upgrade answers the handshake, Serve starts the reader
// and the pings, Send queues without blocking, and Close (from anywhere)
// ends the connection after its queued frames.
func Example() {
	e := engine.New(engine.Options{PongWait: time.Minute, SendQueue: 64})
	http.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := e.Upgrade(w, r) // on error the request is answered
		if err != nil {
			return
		}
		c.Send(engine.TextFrame([]byte("hello")))
		c.Serve(echo{}) // does not block
	})
}
