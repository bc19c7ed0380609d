package cli

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/livechat/livechat/pkg/broker"
	"github.com/livechat/livechat/pkg/broker/brokertest"
	"github.com/livechat/livechat/pkg/history"
	"github.com/livechat/livechat/pkg/protocol"
)

// TestTailSince: tail --since prints the stored messages after the seq, then
// the live ones; a live message it printed already is skipped and a gap in
// the live stream is filled from the store.
func TestTailSince(t *testing.T) {
	url, prefix := brokertest.RedisURL(t), brokertest.Prefix(t)
	ctx := context.Background()
	h, err := history.Open(ctx, url, history.Options{KeyPrefix: prefix + ":history", MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = h.Close() }()
	b, err := broker.Open(ctx, url, broker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close() }()
	store := func(text string) []byte {
		m := protocol.Message{Type: protocol.TypeMessage, Room: "lobby", ID: "id-" + text, From: "alice", Text: text, Server: "a1"}
		if _, _, err := h.Append(ctx, &m, ""); err != nil {
			t.Fatal(err)
		}
		data, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	var frames [][]byte
	for i := 1; i <= 5; i++ {
		frames = append(frames, store("m"+strconv.Itoa(i)))
	}

	tctx, cancel := context.WithCancel(ctx)
	ios, out, errOut := testIO("")
	done := make(chan int)
	go func() {
		done <- Run(tctx, []string{"tail", "--broker", url, "--prefix", prefix, "--room", "lobby", "--since", "2"}, ios)
	}()
	brokertest.WaitFor(t, 10*time.Second, "tail to subscribe", func() bool { return strings.Contains(errOut.String(), "watching") })
	subject := protocol.RoomSubject(prefix, "lobby")
	publish := func(data []byte) {
		if err := b.Publish(ctx, subject, data); err != nil {
			t.Fatal(err)
		}
	}
	publish(frames[4])   // seq 5 again: printed already
	store("m6")          // seq 6: stored, its publish lost
	publish(store("m7")) // seq 7: the gap (6) is filled first
	brokertest.WaitFor(t, 10*time.Second, "m7", func() bool { return strings.Contains(out.String(), ": m7") })
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("tail exit %d: %s", code, errOut.String())
	}
	var texts []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		texts = append(texts, line[strings.LastIndex(line, " ")+1:])
	}
	if got := strings.Join(texts, ","); got != "m3,m4,m5,m6,m7" {
		t.Fatalf("printed %s\n%s", got, out.String())
	}
}

func TestTailSinceUsage(t *testing.T) {
	for _, args := range [][]string{
		{"tail", "--since", "3"},
		{"tail", "--since", "3", "--room", "a", "--room", "b"},
		{"tail", "--since", "3", "--room", "a", "--subject", "x.y"},
	} {
		code, _, stderr := run(t, "", args...)
		if code != ExitUsage || !strings.Contains(stderr, "--since needs exactly one --room") {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
	}
}

// TestPublishHistoryMaxLen: publish trims the room to --history-max-len
// as it appends, and refuses bounds out of range before sending anything.
func TestPublishHistoryMaxLen(t *testing.T) {
	url, prefix := brokertest.RedisURL(t), brokertest.Prefix(t)
	ctx := context.Background()
	for i := 1; i <= 5; i++ {
		ios, _, errOut := testIO("")
		args := []string{"publish", "--broker", url, "--prefix", prefix, "--room", "lobby", "--history-max-len", "3", "m" + strconv.Itoa(i)}
		if code := Run(ctx, args, ios); code != 0 {
			t.Fatalf("publish m%d: exit %d: %s", i, code, errOut.String())
		}
	}
	h, err := history.Open(ctx, url, history.Options{KeyPrefix: prefix + ":history"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = h.Close() }()
	ms, err := h.Latest(ctx, "lobby", 10)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, m := range ms {
		texts = append(texts, m.Text)
	}
	if got := strings.Join(texts, ","); got != "m3,m4,m5" {
		t.Errorf("the room holds %s, want m3,m4,m5", got)
	}
	for _, tc := range [][]string{
		{"--history-max-len", "0", "--history-max-len 0: must be between 1 and 10000000"},
		{"--history-max-age", "10s", "--history-max-age 10s: must be between 1m and 876000h"},
		{"--history-dedup-window", "-1h", "--history-dedup-window -1h: must be between 1m and 8760h"},
	} {
		ios, _, errOut := testIO("")
		code := Run(ctx, []string{"publish", "--broker", url, "--prefix", prefix, "--room", "lobby", tc[0], tc[1], "not sent"}, ios)
		if code != 2 || !strings.Contains(errOut.String(), tc[2]) {
			t.Errorf("%s %s: exit %d, %q; want 2 and %q", tc[0], tc[1], code, errOut.String(), tc[2])
		}
	}
	if ms, err := h.Latest(ctx, "lobby", 10); err != nil || len(ms) != 3 || ms[2].Text != "m5" {
		t.Errorf("after the refused publishes: %d messages, %v", len(ms), err)
	}
}
