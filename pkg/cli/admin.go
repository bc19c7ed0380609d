package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/tw"
	"github.com/spf13/cobra"

	"github.com/livechat/livechat/pkg/account"
	"github.com/livechat/livechat/pkg/auth"
	"github.com/livechat/livechat/pkg/broker"
	"github.com/livechat/livechat/pkg/rooms"
	"github.com/livechat/livechat/pkg/store"
)

// The shared part of `livechat users` and `livechat rooms`: they change the
// store the servers use (--store, else the data directory's livechat.db,
// as serve finds it) through pkg/account and pkg/rooms, and publish the
// users' events (a ban, a removal) on the servers' broker, as the servers'
// own API does.

// Defaults of the users and rooms commands.
const (
	// defaultPage is --limit's default for users list and rooms list.
	defaultPage = 100
)

// storeURLFor is the store URL of --store flag: flag itself, else the
// data directory's database (sqlite://DIR/livechat.db). serve and the
// operator commands find the store this one way.
func storeURLFor(flag, dataDir string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if strings.TrimSpace(dataDir) == "" {
		return "", usageErrorf("--data must not be empty")
	}
	return dataSQLiteURL(dataDir)
}

// openStore opens the store at raw with a bounded wait and an error that
// says what to set.
func openStore(ctx context.Context, raw string) (store.Store, error) {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	st, err := store.Open(ctx, raw)
	if err != nil {
		if errors.Is(err, store.ErrUnsupportedURL) {
			return nil, usageErrorf("--store: %v", err)
		}
		return nil, fmt.Errorf("%w (set --store or LIVECHAT_STORE)", err)
	}
	return st, nil
}

// addAdminFlags registers --store and --data on a users or rooms command
// and, when it publishes, the flags of the broker (addOpsFlags: the same
// default as publish, the single node's operator API).
func addAdminFlags(cmd *cobra.Command, g *GlobalOptions, dst *string, publishes bool) {
	cmd.Flags().StringVar(dst, "store", "", "the servers' store of accounts and rooms, as for serve: sqlite:///path/file.db, postgres://... ; empty means livechat.db in --data, made by serve")
	if publishes {
		addOpsFlags(cmd, g)
	} else {
		addDataFlag(cmd, g)
	}
}

// noEnvFlags are flags that choose what one invocation does, not settings:
// no LIVECHAT_* variable sets them (LIVECHAT_YES must never skip a
// confirmation).
var noEnvFlags = map[string]bool{"yes": true, "id": true, "after": true, "private": true, "owner": true, "role": true}

// admin is what a users or rooms command works with. Close releases it.
type admin struct {
	st    store.Store
	b     broker.Broker // nil unless the command publishes
	pub   *publisher    // nil unless the command publishes
	acc   *account.Service
	rooms *rooms.Service
}

// publisher is the services' Publish function: the broker's Publish, which
// remembers that a publish failed, so that the command can tell a failed
// publish (the change is made) from a failed change.
type publisher struct {
	b      broker.Broker
	failed atomic.Bool
}

func (p *publisher) publish(ctx context.Context, subject string, data []byte) error {
	err := p.b.Publish(ctx, subject, data)
	if err != nil {
		p.failed.Store(true)
	}
	return err
}

// openAdmin opens the store named by storeFlag (or the data directory's)
// and, when publishes, the broker of g first, so that an unreachable
// broker fails the command before anything changes. On error nothing
// stays open.
func openAdmin(ctx context.Context, g *GlobalOptions, storeFlag string, publishes bool) (*admin, error) {
	raw, err := storeURLFor(storeFlag, g.Data)
	if err != nil {
		return nil, err
	}
	if storeFlag == "" {
		// An operator command never makes an empty store in a wrong place.
		path := filepath.Join(g.Data, dataDBFile)
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("no store: --store is unset and %s does not exist (set --store or LIVECHAT_STORE to the servers' store, or --data to the directory of `livechat serve`)", path)
		}
	}
	a := &admin{}
	if publishes {
		if a.b, err = openBroker(ctx, g, broker.Options{}); err != nil {
			return nil, fmt.Errorf("nothing was changed: %w", err)
		}
		a.pub = &publisher{b: a.b}
	}
	if a.st, err = openStore(ctx, raw); err != nil {
		a.Close()
		return nil, err
	}
	discard := slog.New(slog.DiscardHandler) // the command reports failures itself
	var pub func(context.Context, string, []byte) error
	if a.pub != nil {
		pub = a.pub.publish
	}
	if a.acc, err = account.New(account.Config{Store: a.st, Publish: pub, Prefix: g.Prefix, Logger: discard}); err == nil {
		a.rooms, err = rooms.New(rooms.Config{Store: a.st, Publish: pub, Prefix: g.Prefix, Logger: discard})
	}
	if err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// Close releases what openAdmin opened.
func (a *admin) Close() {
	if a.rooms != nil {
		a.rooms.Close()
	}
	if a.st != nil {
		_ = a.st.Close()
	}
	if a.b != nil {
		_ = a.b.Close()
	}
}

// publishFailed reports whether a publish of this command failed.
func (a *admin) publishFailed() bool { return a.pub != nil && a.pub.failed.Load() }

// user finds the user arg names: its name (matched as sign-in matches it,
// ignoring case) or, with byID, its id. An unknown user is a failure
// (exit 1) saying so; a name no account may have is a usage error.
func (a *admin) user(ctx context.Context, arg string, byID bool) (store.User, error) {
	if byID {
		u, err := a.st.UserByID(ctx, arg)
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
			return store.User{}, fmt.Errorf("no user with id %q (`livechat users list` lists them)", arg)
		}
		u.PasswordHash = ""
		return u, err
	}
	u, err := a.acc.UserByName(ctx, arg)
	switch {
	case errors.Is(err, auth.ErrInvalidUserName):
		return store.User{}, usageErrorf("user name %q: %s", arg, strings.TrimPrefix(auth.ErrInvalidUserName.Error(), "auth: "))
	case errors.Is(err, store.ErrNotFound):
		return store.User{}, fmt.Errorf("no user named %q (`livechat users list` lists them; --id takes a user id)", arg)
	}
	return u, err
}

// room finds the room with id (a public room's name or a private room's
// "_p..." id).
func (a *admin) room(ctx context.Context, id string) (store.Room, error) {
	r, err := a.rooms.Room(ctx, id)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
		return store.Room{}, fmt.Errorf("no room %q (give a public room's name or the id `livechat rooms create --private` printed)", id)
	}
	return r, err
}

// showUser is "name (id)" for messages.
func showUser(u store.User) string {
	if u.Name == "" {
		return u.ID
	}
	return fmt.Sprintf("%s (%s)", u.Name, u.ID)
}

// stamp formats a time for tables: RFC 3339 in UTC, to the second.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// orDash is s, or "-" when empty (a table cell).
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// writeTable prints rows under header: a table for a terminal, else
// tab-separated lines (the header first), as stats does.
func writeTable(w io.Writer, terminal bool, header []string, rows [][]string) error {
	if !terminal {
		for _, line := range append([][]string{header}, rows...) {
			if _, err := fmt.Fprintln(w, strings.Join(line, "\t")); err != nil {
				return err
			}
		}
		return nil
	}
	table := tablewriter.NewTable(w, tablewriter.WithHeaderAutoFormat(tw.Off))
	table.Header(header)
	if err := table.Bulk(rows); err != nil {
		return err
	}
	return table.Render()
}

// maxLine bounds a line read from standard input (a password, an answer).
const maxLine = 4*auth.MaxPasswordLen + 2

// errLongLine is readLine's error for a line longer than its bound.
var errLongLine = errors.New("line too long")

// readLine reads one line from r, byte by byte so that nothing after it is
// consumed, without its line ending; at most limit bytes. It blocks.
func readLine(r io.Reader, limit int) (string, error) {
	var (
		line []byte
		c    [1]byte
	)
	for {
		n, err := r.Read(c[:])
		if n == 1 {
			if c[0] == '\n' {
				break
			}
			if len(line) >= limit {
				return "", errLongLine
			}
			line = append(line, c[0])
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", err
		}
	}
	return strings.TrimSuffix(string(line), "\r"), nil
}

// confirm asks a person at the terminal question and reports whether the
// answer was y or yes.
func confirm(ios *IOStreams, question string) (bool, error) {
	fmt.Fprintf(ios.ErrOut, "%s [y/N] ", question)
	answer, err := readLine(ios.In, maxLine)
	if err != nil {
		return false, fmt.Errorf("reading the answer: %w", err)
	}
	switch strings.ToLower(strings.TrimSpace(answer)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}
