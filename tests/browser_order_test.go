//go:build unix

package tests

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/livechat/livechat/web"
)

// TestBrowserOrder: the page against a stand-in server that sends a room's
// messages out of seq order, one twice, one without a seq, and then a page
// of older messages. The page shows each once, by seq (the one without a
// seq where it came), with one name header for the sender's group: the
// view puts each bubble at the index the state gives and regroups its
// neighbours. The state's entries and the list's elements stay one to one.
func TestBrowserOrder(t *testing.T) {
	t.Parallel()
	done := make(chan struct{})
	mux := http.NewServeMux()
	mux.Handle("/", http.FileServerFS(web.FS()))
	var up websocket.Upgrader
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		if ws.WriteJSON(map[string]any{"type": "welcome", "server": "stand-in", "protocol": 1}) != nil {
			return
		}
		for {
			var f struct{ Type, Room, Name string }
			if err := ws.ReadJSON(&f); err != nil {
				return
			}
			if f.Type != "join" {
				continue
			}
			now := time.Now().UnixMilli()
			msg := func(id string, seq int, text string) map[string]any {
				m := map[string]any{"id": id, "room": f.Room, "from": "bob", "text": text, "ts": now, "server": "stand-in"}
				if seq > 0 {
					m["seq"] = seq
				}
				return m
			}
			frames := []map[string]any{
				{"type": "joined", "room": f.Room, "name": f.Name, "members": []string{f.Name, "bob"}, "member_count": 2, "last_seq": 12},
			}
			for _, m := range []map[string]any{msg("m10", 10, "ten"), msg("m12", 12, "twelve"), msg("m11", 11, "eleven"),
				msg("m11", 11, "eleven"), msg("x", 0, "no seq")} {
				m["type"] = "message"
				frames = append(frames, m)
			}
			frames = append(frames, map[string]any{"type": "history", "room": f.Room, "more": false,
				"messages": []map[string]any{msg("m7", 7, "seven"), msg("m8", 8, "eight"), msg("m10", 10, "ten")}})
			for _, fr := range frames {
				if ws.WriteJSON(fr) != nil {
					return
				}
			}
			select {
			case <-done:
				return
			case <-r.Context().Done():
				return
			}
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer close(done)

	b := newBrowser(t, 60*time.Second)
	p := b.page()
	goTo(t, p, "joining", srv.URL+"/?name=alice&room=general&join=1")
	expectJS(t, p, "alice", "the older messages", hasMessage("bob", "seven"))
	const texts = `[...document.querySelectorAll('#messages .msg')].map(li => (li.dataset.seq || '-') + ' ' + li.querySelector('.text').textContent).join(', ')`
	if got, want := evalJS[string](t, p, texts), "7 seven, 8 eight, 10 ten, 11 eleven, 12 twelve, - no seq"; got != want {
		t.Errorf("the page shows %q, want %q", got, want)
	}
	if got := evalJS[string](t, p, visibleHeaders); got != "bob" {
		t.Errorf("bob's six messages show the name headers %q, want one (bob)", got)
	}
	const oneToOne = `(() => { const r = livechat.state.rooms.get('general');
		return r.entries.length === r.list.children.length; })()`
	if !evalJS[bool](t, p, oneToOne) {
		t.Errorf("the room has %d entries and its list %d elements", evalJS[int](t, p, `livechat.state.rooms.get('general').entries.length`),
			evalJS[int](t, p, `livechat.state.rooms.get('general').list.children.length`))
	}
}
