package cli

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/livechat/livechat/pkg/broker"
	"github.com/livechat/livechat/pkg/files"
	"github.com/livechat/livechat/pkg/media"
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
	// Files are --file paths: one announcement carrying them (stored and
	// checked as a member's upload), with Text optional.
	Files []string
	// StoreURL (--store) and BlobsURL (--blobs) are the servers' store and
	// blob store, for Files; "" means serve's defaults in --data.
	StoreURL, BlobsURL string
}

func newPublishCmd(ios *IOStreams, g *GlobalOptions) *cobra.Command {
	opts := &PublishOptions{Global: g}
	cmd := &cobra.Command{
		Use:   "publish --room ROOM [--from NAME] [TEXT...]",
		Short: "Send an announcement to every client in a room, on every server",
		Long: `Publish an operator announcement into a room through the broker. Every client in
the room, on every server, receives it as a system message. With no TEXT, each
non-empty line of standard input is published as its own announcement.

With --file (up to 10), one announcement carries the files, with TEXT or none: each
is checked and stored as a member's upload would be (the type from its content,
pictures re-encoded without their metadata) in the servers' blob store (--blobs,
--store: the same as serve's).`,
		Example: `  livechat publish --room general "maintenance at 18:00 UTC"
  livechat publish --room general --from deploy-bot < notes.txt
  livechat publish --room general --file release-notes.pdf "version 2 is out"`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Text = strings.Join(args, " ")
			return runPublish(cmd.Context(), opts, ios)
		},
	}
	cmd.Flags().StringVarP(&opts.Room, "room", "r", "", "room to publish into (required)")
	cmd.Flags().StringVar(&opts.From, "from", "ops", "sender name shown to clients")
	cmd.Flags().StringVar(&opts.History, "history", "", `the servers' history store, as for serve (empty: the broker's Redis, or with an http:// broker the node's livechat.db in --data when there; "none": live only, not replayed)`)
	cmd.Flags().StringArrayVar(&opts.Files, "file", nil, "attach this picture or file (repeat for more, up to 10)")
	cmd.Flags().StringVar(&opts.StoreURL, "store", "", "with --file: the servers' store, as for serve (empty: livechat.db in --data)")
	addBlobsFlag(cmd.Flags(), &opts.BlobsURL)
	addRetentionFlags(cmd.Flags(), g)
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
	if len(opts.Files) > protocol.MaxFiles {
		return usageErrorf("--file: at most %d files", protocol.MaxFiles)
	}
	if err := validateRetention(opts.Global.Retention); err != nil {
		return err
	}
	var texts []string
	if strings.TrimSpace(opts.Text) != "" {
		texts = []string{opts.Text}
	} else if len(opts.Files) > 0 {
		texts = []string{""} // one announcement of the files alone
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
		if t == "" && len(opts.Files) > 0 {
			continue
		}
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
		if len(opts.Files) > 0 {
			if m.Files, err = attachFiles(ctx, opts, m.ID); err != nil {
				return err
			}
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

// opsUploader is the user id of the operator's uploads (publish --file):
// never an account's (those are random) and not a valid token subject
// for a person.
const opsUploader = "_ops"

// attachFiles stores opts.Files as uploads of the operator into the room
// and attaches them to the announcement msgID.
func attachFiles(ctx context.Context, opts *PublishOptions, msgID string) ([]protocol.File, error) {
	storeURL, err := storeURLFor(opts.StoreURL, opts.Global.Data)
	if err != nil {
		return nil, err
	}
	blobsURL, err := blobsURLFor(opts.BlobsURL, storeURL, opts.Global.Data)
	if err != nil {
		return nil, err
	}
	st, err := openStore(ctx, storeURL)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	bs, err := openBlobs(ctx, blobsURL)
	if err != nil {
		return nil, err
	}
	defer bs.Close()
	// The operator's files have the member's limits, but no quota.
	fs, err := files.New(files.Config{Store: st, Blobs: bs, Quota: math.MaxInt64 / 8})
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(opts.Files))
	for _, path := range opts.Files {
		id, err := uploadFile(ctx, fs, opts.Room, path)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return fs.Attach(ctx, opsUploader, opts.Room, msgID, ids)
}

// uploadFile stores the file at path as an upload of the operator.
func uploadFile(ctx context.Context, fs *files.Service, room, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("--file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("--file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", usageErrorf("--file %s: not a regular file", path)
	}
	up, err := fs.Ingest(ctx, opsUploader, room, filepath.Base(path), f, fi.Size())
	switch {
	case errors.Is(err, media.ErrTooLarge), errors.Is(err, media.ErrRefused),
		errors.Is(err, media.ErrBadImage), errors.Is(err, media.ErrBadName):
		return "", usageErrorf("--file %s: %v", path, err)
	case err != nil:
		return "", fmt.Errorf("--file %s: %w", path, err)
	}
	return up.ID, nil
}
