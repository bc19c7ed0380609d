package history_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/livechat/livechat/pkg/history"
	"github.com/livechat/livechat/pkg/protocol"
)

// Example shows how a server uses a Store: persist a send first (the store
// assigns the seq), then acknowledge it, then encode the frame once and
// publish it; on a join with since, replay what the client missed, or tell
// it explicitly that the history does not reach back that far.
func Example() {
	ctx := context.Background()
	store, err := history.Open(ctx, "memory://", history.Options{})
	if err != nil {
		panic(err)
	}
	defer func() { _ = store.Close() }()

	// A send {"type":"send","room":"general","text":"hi","cid":"c1"} from alice.
	send := func(text, cid string) {
		m := &protocol.Message{Type: protocol.TypeMessage, Room: "general", ID: "id-" + cid,
			From: "alice", Text: text, Server: "1000", CID: cid}
		seq, dup, err := store.Append(ctx, m, m.From+"\x00"+cid)
		if errors.Is(err, history.ErrUnavailable) {
			fmt.Println("error frame: unavailable, retry the same cid") // never a false ack
			return
		} else if err != nil {
			panic(err)
		}
		fmt.Printf("ack cid=%s id=%s seq=%d dup=%v\n", cid, m.ID, seq, dup)
		if !dup {
			frame, _ := json.Marshal(m) // carries seq: encode once, publish these bytes
			_ = frame
		}
	}
	send("hi", "c1")
	send("hi", "c1") // the client retried: same seq, same id, nothing stored
	send("how are you?", "c2")

	// A join with since=1: replay seq 2.., after checking nothing is lost.
	join := func(since uint64) {
		b, err := store.Bounds(ctx, "general")
		if err != nil {
			panic(err)
		}
		if !b.Covers(since) {
			fmt.Printf("since=%d: tell the client the history starts at %d\n", since, b.First)
		}
		ms, err := store.After(ctx, "general", since, history.MaxPage)
		if err != nil {
			panic(err)
		}
		for _, m := range ms {
			fmt.Printf("replay seq=%d %q\n", m.Seq, m.Text)
		}
	}
	join(1)
	join(7)
	// Output:
	// ack cid=c1 id=id-c1 seq=1 dup=false
	// ack cid=c1 id=id-c1 seq=1 dup=true
	// ack cid=c2 id=id-c2 seq=2 dup=false
	// replay seq=2 "how are you?"
	// since=7: tell the client the history starts at 1
}
