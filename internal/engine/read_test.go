package engine

import (
	"testing"
	"time"

	"github.com/livechat/livechat/pkg/wsframe"
)

// TestFramesInPieces sends a message as two fragments with a ping between
// them, every frame written to the socket one byte at a time, so the
// engine reads partial frames: it answers the ping, hands the message over
// whole, and closes a frame with a reserved bit set with 1002.
func TestFramesInPieces(t *testing.T) {
	for _, noPoller := range []bool{false, true} {
		t.Run(map[bool]string{false: "poller", true: "NoPoller"}[noPoller], func(t *testing.T) {
			t.Parallel()
			te := startEngine(t, Options{NoPoller: noPoller}, echo())
			ws, c := te.dialed(t)
			pongs := make(chan string, 1)
			ws.SetPongHandler(func(p string) error { pongs <- p; return nil })
			got := reader(ws)

			msg := []byte(`{"type":"join","room":"pieces","name":"ann"}`)
			var stream []byte
			stream = wsframe.AppendFrame(stream, false, wsframe.OpText, msg[:10], maskKey)
			stream = wsframe.AppendFrame(stream, true, wsframe.OpPing, []byte("are you there"), maskKey)
			stream = wsframe.AppendFrame(stream, true, wsframe.OpContinuation, msg[10:], maskKey)
			nc := ws.NetConn()
			for i := range stream {
				if _, err := nc.Write(stream[i : i+1]); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case p := <-pongs:
				if p != "are you there" {
					t.Fatalf("pong %q", p)
				}
			case <-time.After(waitTimeout):
				t.Fatal("no pong")
			}
			if s := recv(t, got); s != string(msg) {
				t.Fatalf("echo %q", s)
			}
			bad := wsframe.AppendFrame(nil, true, wsframe.OpText, []byte(`{}`), maskKey)
			bad[0] |= 0x40 // RSV1, with no extension agreed
			if _, err := nc.Write(bad); err != nil {
				t.Fatal(err)
			}
			if e := te.ended(t, c); e.Reason != ReasonProtocol || e.Code != CloseProtocolError {
				t.Fatalf("end %+v", e)
			}
			for range got { // drained until the end
			}
		})
	}
}
