package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/livechat/livechat/pkg/broker"
	"github.com/livechat/livechat/pkg/history"
	"github.com/livechat/livechat/pkg/protocol"
)

// TailOptions are the inputs of `livechat tail`.
type TailOptions struct {
	Global *GlobalOptions
	// Rooms to watch. Default: every room.
	Rooms []string
	// Subjects are raw subject patterns to watch instead of rooms.
	Subjects []string
	// Typing also prints typing notices.
	Typing bool
	// Since, when SinceSet, replays the room's stored messages after this
	// seq before the live ones (exactly one room; needs history).
	Since    uint64
	SinceSet bool
	// History is the history store URL for --since: "" means the broker's
	// own backend, as for serve.
	History string
}

func newTailCmd(ios *IOStreams, g *GlobalOptions) *cobra.Command {
	opts := &TailOptions{Global: g}
	cmd := &cobra.Command{
		Use:   "tail [--room ROOM ...] [--subject PATTERN ...]",
		Short: "Print chat traffic live, one line per message, until interrupted",
		Long: `Watch the messages flowing through the broker: time, room, accepting server,
sender and text, one line per message (one JSON object per line with --output json).
Without --room or --subject every room is watched. Broker disconnects and
reconnects are reported on standard error.`,
		Example: `  livechat tail
  livechat tail --room general --room ops
  livechat tail --room general --since 120
  livechat tail --subject 'livechat.>' --output json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.SinceSet = cmd.Flags().Changed("since")
			return runTail(cmd.Context(), opts, ios)
		},
	}
	cmd.Flags().Uint64Var(&opts.Since, "since", 0, "first print the room's stored messages after this seq (0: all held), then the live ones, without duplicates; needs exactly one --room")
	cmd.Flags().StringVar(&opts.History, "history", "", `history store for --since, as for publish: empty means the broker's Redis, or with an http:// broker the node's livechat.db in --data when there`)
	cmd.Flags().StringArrayVarP(&opts.Rooms, "room", "r", nil, "room to watch (repeatable)")
	cmd.Flags().StringArrayVar(&opts.Subjects, "subject", nil, "raw subject pattern to watch, with * and > wildcards (repeatable)")
	cmd.Flags().BoolVar(&opts.Typing, "typing", false, "also print typing notices")
	addOpsFlags(cmd, g)
	addOutputFlag(cmd, g)
	return cmd
}

// tailLine is the JSON form of one line of tail output.
type tailLine struct {
	Subject string          `json:"subject"`
	Frame   json.RawMessage `json:"frame"`
}

func runTail(ctx context.Context, opts *TailOptions, ios *IOStreams) error {
	var patterns []string
	for _, r := range opts.Rooms {
		if err := protocol.ValidRoom(r); err != nil {
			return usageErrorf("--room %q: %v", r, err)
		}
		patterns = append(patterns, protocol.RoomSubject(opts.Global.Prefix, r))
	}
	for _, s := range opts.Subjects {
		if err := broker.ValidatePattern(s); err != nil {
			return usageErrorf("--subject: %v", err)
		}
		patterns = append(patterns, s)
	}
	if len(patterns) == 0 {
		patterns = []string{protocol.RoomSubject(opts.Global.Prefix, "*")}
	}
	if opts.SinceSet && (len(opts.Rooms) != 1 || len(opts.Subjects) > 0) {
		return usageErrorf("--since needs exactly one --room and no --subject")
	}

	lines := make(chan broker.Message, 1024)
	b, err := openBroker(ctx, opts.Global, broker.Options{
		OnStateChange: func(s broker.State) {
			switch s {
			case broker.StateReconnecting:
				fmt.Fprintf(ios.ErrOut, "%s -- broker connection lost, reconnecting\n", time.Now().Format(time.TimeOnly))
			case broker.StateConnected:
				fmt.Fprintf(ios.ErrOut, "%s -- broker connection restored\n", time.Now().Format(time.TimeOnly))
			}
		},
	})
	if err != nil {
		return err
	}
	defer b.Close()
	for _, p := range patterns {
		if _, err := broker.SubscribeChan(ctx, b, p, lines); err != nil {
			return fmt.Errorf("subscribe %s: %w", p, err)
		}
	}
	// With --since the subscription is already up: the replay and the live
	// stream overlap, and live seqs already printed are skipped.
	var rp *replayer
	if opts.SinceSet {
		if rp, err = startReplay(ctx, opts, ios); err != nil {
			return err
		}
		defer func() { _ = rp.h.Close() }()
	}
	fmt.Fprintf(ios.ErrOut, "watching %s (Ctrl-C to stop)\n", strings.Join(patterns, ", "))
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-lines:
			if rp != nil {
				if err := rp.live(ctx, m); err != nil {
					return err
				}
				continue
			}
			if err := printTail(ios, opts, m); err != nil {
				return err
			}
		}
	}
}

// replayer prints a room's stored messages for tail --since and then keeps
// the live stream in seq order: duplicates are skipped and a gap is filled
// from the store.
type replayer struct {
	h       history.Store
	opts    *TailOptions
	ios     *IOStreams
	subject string
	last    uint64 // last seq printed
}

func startReplay(ctx context.Context, opts *TailOptions, ios *IOStreams) (*replayer, error) {
	h, _, err := openHistory(ctx, opts.History, opts.Global, nil, false)
	if err != nil {
		return nil, err
	}
	if h == nil {
		return nil, usageErrorf("--since needs a history store (--history is \"none\")")
	}
	room := opts.Rooms[0]
	rp := &replayer{h: h, opts: opts, ios: ios, subject: protocol.RoomSubject(opts.Global.Prefix, room), last: opts.Since}
	rctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	b, err := h.Bounds(rctx, room)
	if err != nil {
		_ = h.Close()
		return nil, fmt.Errorf("history of room %s: %w", room, err)
	}
	switch {
	case opts.Since > b.Last:
		fmt.Fprintf(ios.ErrOut, "-- room %s has no seq %d: its history restarted (last seq %d); printing what is held\n", room, opts.Since, b.Last)
		rp.last = 0
	case !b.Covers(opts.Since):
		fmt.Fprintf(ios.ErrOut, "-- messages %d..%d of room %s are no longer held\n", opts.Since+1, b.First-1, room)
	}
	if err := rp.fill(rctx, b.Last); err != nil {
		_ = h.Close()
		return nil, err
	}
	return rp, nil
}

// fill prints the stored messages after rp.last up to seq `to`.
func (rp *replayer) fill(ctx context.Context, to uint64) error {
	room := rp.opts.Rooms[0]
	for rp.last < to {
		msgs, err := rp.h.After(ctx, room, rp.last, int(min(to-rp.last, history.MaxPage)))
		if err != nil {
			return fmt.Errorf("history of room %s: %w", room, err)
		}
		if len(msgs) == 0 {
			return nil
		}
		for i := range msgs {
			m := &msgs[i]
			if m.Seq > to {
				return nil
			}
			m.Type = protocol.TypeMessage
			data := protocol.AppendMessage(make([]byte, 0, protocol.MessageSizeHint(m)), m)
			if err := printTail(rp.ios, rp.opts, broker.Message{Subject: rp.subject, Data: data}); err != nil {
				return err
			}
			rp.last = m.Seq
		}
	}
	return nil
}

// live prints a live message unless its seq was printed already, after the
// stored messages of a gap before it.
func (rp *replayer) live(ctx context.Context, m broker.Message) error {
	var h protocol.Header
	if !protocol.DecodeHeader(m.Data, &h) || h.Type != protocol.TypeMessage || h.Seq == 0 {
		return printTail(rp.ios, rp.opts, m)
	}
	if h.Seq <= rp.last {
		return nil
	}
	if h.Seq > rp.last+1 {
		fctx, cancel := context.WithTimeout(ctx, connectTimeout)
		err := rp.fill(fctx, h.Seq-1)
		cancel()
		if err != nil {
			fmt.Fprintf(rp.ios.ErrOut, "-- cannot fill the gap before seq %d: %v\n", h.Seq, err)
		}
	}
	rp.last = h.Seq
	return printTail(rp.ios, rp.opts, m)
}

// printTail writes one message; frames other than chat messages are shown
// only when asked for (typing) or when watching raw subjects.
func printTail(ios *IOStreams, opts *TailOptions, m broker.Message) error {
	var f struct {
		protocol.Message
		Name string `json:"name"`
	}
	isJSON := json.Unmarshal(m.Data, &f) == nil
	raw := len(opts.Subjects) > 0
	if isJSON && f.Type == protocol.TypeTyping && !opts.Typing && !raw {
		return nil
	}
	if opts.Global.Output == "json" {
		frame := json.RawMessage(m.Data)
		if !isJSON {
			q, _ := json.Marshal(string(m.Data))
			frame = q
		}
		line, err := json.Marshal(tailLine{Subject: m.Subject, Frame: frame})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(ios.Out, "%s\n", line)
		return err
	}
	var err error
	switch {
	case isJSON && f.Type == protocol.TypeMessage:
		from := f.From
		if f.System {
			from = "[system] " + from
		}
		_, err = fmt.Fprintf(ios.Out, "%s #%s [%s] %s: %s\n", formatTS(f.TS), f.Room, f.Server, from, oneLine(f.Text))
	case isJSON && f.Type == protocol.TypeTyping:
		_, err = fmt.Fprintf(ios.Out, "%s #%s [%s] %s is typing\n", formatTS(time.Now().UnixMilli()), f.Room, f.Server, f.Name)
	default:
		_, err = fmt.Fprintf(ios.Out, "%s %s %s\n", formatTS(time.Now().UnixMilli()), m.Subject, oneLine(string(m.Data)))
	}
	return err
}

func formatTS(ms int64) string {
	return time.UnixMilli(ms).Format("15:04:05.000")
}

// oneLine keeps a multi-line text on one output line.
func oneLine(s string) string {
	return strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(s)
}
