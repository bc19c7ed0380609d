package cli

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/livechat/livechat/pkg/broker"
	"github.com/livechat/livechat/pkg/protocol"
)

// PublishOptions are the inputs of `livechat publish`.
type PublishOptions struct {
	Global *GlobalOptions
	// Room receives the announcement. Required.
	Room string
	// From is the sender shown to clients. Default: "ops".
	From string
	// Text is the announcement; empty means read one per line from stdin.
	Text string
	// History is the servers' history store ("" derives it from the broker:
	// defaultHistory; "none" publishes live only): an announcement stored there gets the
	// room's next seq, so clients that reconnect see it too.
	History string
}

func newPublishCmd(ios *IOStreams, g *GlobalOptions) *cobra.Command {
	opts := &PublishOptions{Global: g}
	cmd := &cobra.Command{
		Use:   "publish --room ROOM [--from NAME] [TEXT...]",
		Short: "Send an announcement to every client in a room, on every server",
		Long: `Publish an operator announcement into a room through the broker. Every client in
the room, on every server, receives it as a system message. With no TEXT, each
non-empty line of standard input is published as its own announcement.`,
		Example: `  livechat publish --room general "maintenance at 18:00 UTC"
  livechat publish --room general --from deploy-bot < notes.txt`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Text = strings.Join(args, " ")
			return runPublish(cmd.Context(), opts, ios)
		},
	}
	cmd.Flags().StringVarP(&opts.Room, "room", "r", "", "room to publish into (required)")
	cmd.Flags().StringVar(&opts.From, "from", "ops", "sender name shown to clients")
	cmd.Flags().StringVar(&opts.History, "history", "", `the servers' history store, as for serve (empty: the broker's Redis, or with an http:// broker the node's livechat.db in --data when there; "none": live only, not replayed)`)
	addOpsFlags(cmd, g)
	addOutputFlag(cmd, g)
	return cmd
}

func runPublish(ctx context.Context, opts *PublishOptions, ios *IOStreams) error {
	if opts.Room == "" {
		return usageErrorf("--room is required")
	}
	if err := protocol.ValidRoom(opts.Room); err != nil {
		return usageErrorf("--room %q: %v", opts.Room, err)
	}
	if err := protocol.ValidName(opts.From); err != nil {
		return usageErrorf("--from %q: %v", opts.From, err)
	}
	var texts []string
	if strings.TrimSpace(opts.Text) != "" {
		texts = []string{opts.Text}
	} else if opts.Text != "" {
		return usageErrorf("text is empty")
	} else {
		sc := bufio.NewScanner(ios.In)
		sc.Buffer(make([]byte, 0, 64*1024), protocol.MaxTextLen+1)
		for sc.Scan() {
			if line := sc.Text(); strings.TrimSpace(line) != "" {
				texts = append(texts, line)
			}
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("reading stdin: %w (a line may be longer than %d bytes)", err, protocol.MaxTextLen)
		}
		if len(texts) == 0 {
			return usageErrorf("no text: give TEXT arguments or lines on stdin")
		}
	}
	for i, t := range texts {
		if err := protocol.ValidText(t); err != nil {
			return usageErrorf("text %d: %v", i+1, err)
		}
	}

	b, err := openBroker(ctx, opts.Global, broker.Options{})
	if err != nil {
		return err
	}
	defer b.Close()
	store, _, err := openHistory(ctx, opts.History, opts.Global, nil, false)
	if err != nil {
		return err
	}
	if store != nil {
		defer store.Close()
	}
	subject := protocol.RoomSubject(opts.Global.Prefix, opts.Room)
	for _, t := range texts {
		m, err := announcement(opts.Room, opts.From, t)
		if err != nil {
			return err
		}
		if store != nil {
			// Stored first, as a server stores a send: the seq orders it
			// among the chat and lets reconnecting clients replay it.
			if _, _, err := store.Append(ctx, &m, ""); err != nil {
				return fmt.Errorf("store announcement in room %s: %w (--history none publishes live only)", opts.Room, err)
			}
		}
		data := protocol.AppendMessage(make([]byte, 0, protocol.MessageSizeHint(&m)), &m)
		if err := b.Publish(ctx, subject, data); err != nil {
			return fmt.Errorf("publish to %s: %w", subject, err)
		}
		if opts.Global.Output == "json" {
			if err := json.NewEncoder(ios.Out).Encode(publishResult{ID: m.ID, Room: opts.Room, Subject: subject, Seq: m.Seq}); err != nil {
				return err
			}
		}
	}
	if opts.Global.Output != "json" {
		fmt.Fprintf(ios.ErrOut, "published %d message(s) to room %s\n", len(texts), opts.Room)
	}
	return nil
}

// publishResult is one line of `publish --output json`.
type publishResult struct {
	ID      string `json:"id"`
	Room    string `json:"room"`
	Subject string `json:"subject"`
	Seq     uint64 `json:"seq,omitempty"`
}

// announcement builds a system message frame, as a server would.
func announcement(room, from, text string) (protocol.Message, error) {
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return protocol.Message{}, err
	}
	m := protocol.Message{
		Type:   protocol.TypeMessage,
		Room:   room,
		ID:     "cli-" + hex.EncodeToString(rnd[:]),
		From:   from,
		Text:   text,
		TS:     time.Now().UnixMilli(),
		Server: "cli",
		System: true,
	}
	return m, nil
}
