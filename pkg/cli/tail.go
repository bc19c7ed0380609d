package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/livechat/livechat/pkg/broker"
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
  livechat tail --subject 'livechat.>' --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTail(cmd.Context(), opts, ios)
		},
	}
	cmd.Flags().StringArrayVarP(&opts.Rooms, "room", "r", nil, "room to watch (repeatable)")
	cmd.Flags().StringArrayVar(&opts.Subjects, "subject", nil, "raw subject pattern to watch, with * and > wildcards (repeatable)")
	cmd.Flags().BoolVar(&opts.Typing, "typing", false, "also print typing notices")
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
	fmt.Fprintf(ios.ErrOut, "watching %s (Ctrl-C to stop)\n", strings.Join(patterns, ", "))
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-lines:
			if err := printTail(ios, opts, m); err != nil {
				return err
			}
		}
	}
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
