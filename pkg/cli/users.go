package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/livechat/livechat/pkg/auth"
	"github.com/livechat/livechat/pkg/store"
)

// UsersOptions are the inputs of the `livechat users` commands; each
// subcommand uses the fields its flags and arguments set.
type UsersOptions struct {
	Global *GlobalOptions
	// Store is --store: the servers' store; "" means livechat.db in --data.
	Store string
	// User is the NAME argument: a user name, or with ByID a user id.
	User string
	// ByID says User is a user id (--id).
	ByID bool
	// After lists the users after this user id (--after). Default: from
	// the first.
	After string
	// Limit is the most users listed (--limit). Default: 100.
	Limit int
	// Yes deletes without asking (--yes).
	Yes bool
}

// userJSON is a user in `users ... -o json`; never the password hash.
type userJSON struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	Banned  bool      `json:"banned"`
}

func newUserJSON(u store.User) userJSON {
	return userJSON{ID: u.ID, Name: u.Name, Created: u.Created.UTC(), Banned: u.Banned}
}

// usersList is the output of `users list -o json`; Next, when set, is the
// --after of the next page.
type usersList struct {
	Users []userJSON `json:"users"`
	Next  string     `json:"next,omitempty"`
}

func newUsersCmd(ios *IOStreams, g *GlobalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "users",
		Short: "List, add, ban, unban and delete user accounts",
		Long: `Manage the accounts in the servers' store. Run it with the servers' --store (or
the --data of a single node); ban and delete also publish on the servers'
broker (--broker, --prefix), so that the user's connections on every server
close at once.`,
		Example: `  livechat users list
  livechat users add alice < password.txt
  livechat users ban alice
  livechat users delete alice --yes`,
		Args:                       unknownCommand,
		SuggestionsMinimumDistance: 2,
		RunE:                       func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newUsersListCmd(ios, g), newUsersAddCmd(ios, g),
		newUsersBanCmd(ios, g, true), newUsersBanCmd(ios, g, false), newUsersDeleteCmd(ios, g))
	return cmd
}

// nArgs requires one argument per name.
func nArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < len(names) {
			return usageErrorf("%s is required: %s", names[len(args)], cmd.UseLine())
		}
		if len(args) > len(names) {
			return usageErrorf("unexpected argument %q: %s", args[len(names)], cmd.UseLine())
		}
		return nil
	}
}

func newUsersListCmd(ios *IOStreams, g *GlobalOptions) *cobra.Command {
	opts := &UsersOptions{Global: g, Limit: defaultPage}
	cmd := &cobra.Command{
		Use:   "list [--after ID] [--limit N]",
		Short: "List the user accounts, by name",
		Long: `List the users of the store, ordered by name: id, name, when created, and
whether banned. A full page ends with a hint naming the --after of the next.`,
		Example: `  livechat users list
  livechat users list --after u4x... --limit 50
  livechat users list -o json | jq -r '.users[].name'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runUsersList(cmd.Context(), opts, ios) },
	}
	cmd.Flags().StringVar(&opts.After, "after", "", "list the users after the user with this id (the last of the previous page)")
	cmd.Flags().IntVar(&opts.Limit, "limit", opts.Limit, fmt.Sprintf("most users listed, 1 to %d", store.MaxPage))
	addAdminFlags(cmd, g, &opts.Store, false)
	addOutputFlag(cmd, g)
	return cmd
}

func runUsersList(ctx context.Context, opts *UsersOptions, ios *IOStreams) error {
	if err := between("limit", opts.Limit, 1, store.MaxPage); err != nil {
		return err
	}
	a, err := openAdmin(ctx, opts.Global, opts.Store, false)
	if err != nil {
		return err
	}
	defer a.Close()
	after := ""
	if opts.After != "" {
		u, err := a.user(ctx, opts.After, true)
		if err != nil {
			return fmt.Errorf("--after: %w", err)
		}
		after = u.Key
	}
	us, err := a.acc.Users(ctx, after, opts.Limit)
	if err != nil {
		return err
	}
	next := ""
	if len(us) == opts.Limit {
		next = us[len(us)-1].ID
	}
	if opts.Global.Output == "json" {
		list := usersList{Users: make([]userJSON, 0, len(us)), Next: next}
		for _, u := range us {
			list.Users = append(list.Users, newUserJSON(u))
		}
		return json.NewEncoder(ios.Out).Encode(list)
	}
	rows := make([][]string, 0, len(us))
	for _, u := range us {
		rows = append(rows, []string{u.ID, u.Name, stamp(u.Created), yesNo(u.Banned)})
	}
	if err := writeTable(ios.Out, ios.IsTerminal, []string{"ID", "NAME", "CREATED", "BANNED"}, rows); err != nil {
		return err
	}
	if next != "" {
		fmt.Fprintf(ios.ErrOut, "more users may follow: --after %s\n", next)
	}
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func newUsersAddCmd(ios *IOStreams, g *GlobalOptions) *cobra.Command {
	opts := &UsersOptions{Global: g}
	cmd := &cobra.Command{
		Use:   "add NAME",
		Short: "Create an account; the password is read from standard input",
		Long: fmt.Sprintf(`Create an account named NAME. The password is never a flag (the process list
shows flags): on a terminal it is asked twice without echo; otherwise the first
line of standard input is the password. It must be %d to %d characters.
Names are unique ignoring case. On a terminal the new id is shown; otherwise it
is printed alone, for scripts.`, auth.MinPasswordLen, auth.MaxPasswordLen),
		Example: `  livechat users add alice
  livechat users add alice < password.txt
  id=$(printf '%s\n' "$PW" | livechat users add alice)`,
		Args: nArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.User = args[0]
			return runUsersAdd(cmd.Context(), opts, ios)
		},
	}
	addAdminFlags(cmd, g, &opts.Store, false)
	addOutputFlag(cmd, g)
	return cmd
}

// passwordError is the usage error of a password the policy refuses.
func passwordError(err error) error {
	return usageErrorf("%s; nothing was created", strings.TrimPrefix(err.Error(), "auth: "))
}

// readPassword reads the password of a new account: on a terminal, asked
// twice without echo; otherwise the first line of In. It checks the
// password policy (a usage error naming the rule).
func readPassword(ios *IOStreams, name string) (string, error) {
	if ios.InTerminal && ios.ReadSecret != nil {
		fmt.Fprintf(ios.ErrOut, "Password for %s: ", name)
		pw, err := ios.ReadSecret()
		fmt.Fprintln(ios.ErrOut)
		if err != nil {
			return "", fmt.Errorf("reading the password: %w", err)
		}
		if err := auth.CheckPassword(pw); err != nil {
			return "", passwordError(err)
		}
		fmt.Fprint(ios.ErrOut, "Repeat the password: ")
		again, err := ios.ReadSecret()
		fmt.Fprintln(ios.ErrOut)
		if err != nil {
			return "", fmt.Errorf("reading the password: %w", err)
		}
		if again != pw {
			return "", usageErrorf("the two passwords differ; nothing was created")
		}
		return pw, nil
	}
	pw, err := readLine(ios.In, maxLine)
	if errors.Is(err, errLongLine) {
		return "", passwordError(auth.ErrPasswordTooLong)
	}
	if err != nil {
		return "", fmt.Errorf("reading the password from standard input: %w", err)
	}
	if pw == "" {
		return "", usageErrorf("no password: give it as the first line of standard input (livechat users add %s < file), or run on a terminal to be asked", name)
	}
	if err := auth.CheckPassword(pw); err != nil {
		return "", passwordError(err)
	}
	return pw, nil
}

func runUsersAdd(ctx context.Context, opts *UsersOptions, ios *IOStreams) error {
	name := strings.TrimSpace(opts.User)
	if _, err := auth.NameKey(name); err != nil {
		return usageErrorf("user name %q: %s", opts.User, strings.TrimPrefix(auth.ErrInvalidUserName.Error(), "auth: "))
	}
	pw, err := readPassword(ios, name)
	if err != nil {
		return err
	}
	a, err := openAdmin(ctx, opts.Global, opts.Store, false)
	if err != nil {
		return err
	}
	defer a.Close()
	u, err := a.acc.AddUser(ctx, name, pw)
	switch {
	case errors.Is(err, auth.ErrNameTaken):
		return fmt.Errorf("a user named %q exists already (names are unique ignoring case)", name)
	case errors.Is(err, auth.ErrPasswordTooShort), errors.Is(err, auth.ErrPasswordTooLong), errors.Is(err, auth.ErrPasswordInvalid):
		return passwordError(errors.Unwrap(err))
	case err != nil:
		return err
	}
	switch {
	case opts.Global.Output == "json":
		return json.NewEncoder(ios.Out).Encode(newUserJSON(u))
	case ios.IsTerminal:
		_, err = fmt.Fprintf(ios.Out, "created user %s with id %s\n", u.Name, u.ID)
	default:
		_, err = fmt.Fprintln(ios.Out, u.ID)
	}
	return err
}

// userArg registers --id on a command whose NAME argument names a user.
func userArg(cmd *cobra.Command, byID *bool) {
	cmd.Flags().BoolVar(byID, "id", false, "NAME is a user id (as users list shows), not a name")
}

func newUsersBanCmd(ios *IOStreams, g *GlobalOptions, ban bool) *cobra.Command {
	opts := &UsersOptions{Global: g}
	cmd := &cobra.Command{
		Use:   "ban NAME",
		Short: "Ban a user: end its sessions and close its connections on every server",
		Long: `Ban the user NAME: it can no longer sign in, its tokens are refused, its
sessions end, and a revocation published on the broker closes its connections
on every server (close code 4004). The ban is kept in the store even when the
publish fails; then servers may keep the user's connections until they
reconnect, and the command fails (exit 1) saying so.`,
		Example: `  livechat users ban alice
  livechat users ban --id u4x... --broker redis://redis:6379`,
		Args: nArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.User = args[0]
			return runUsersBan(cmd.Context(), opts, ios, ban)
		},
	}
	if !ban {
		cmd.Use = "unban NAME"
		cmd.Short = "Lift a user's ban"
		cmd.Long = `Lift the ban of the user NAME: it may sign in again.`
		cmd.Example = `  livechat users unban alice`
	}
	userArg(cmd, &opts.ByID)
	addAdminFlags(cmd, g, &opts.Store, ban)
	return cmd
}

func runUsersBan(ctx context.Context, opts *UsersOptions, ios *IOStreams, ban bool) error {
	a, err := openAdmin(ctx, opts.Global, opts.Store, ban)
	if err != nil {
		return err
	}
	defer a.Close()
	u, err := a.user(ctx, opts.User, opts.ByID)
	if err != nil {
		return err
	}
	if err := a.acc.SetBanned(ctx, u.ID, ban); err != nil {
		if a.publishFailed() {
			return fmt.Errorf("%s is banned, but the revocation could not be published: %w; "+
				"servers may keep the user's connections until they reconnect (check --broker and --prefix)", showUser(u), err)
		}
		return err
	}
	if ban {
		fmt.Fprintf(ios.ErrOut, "banned %s: sessions ended, revocation published (its connections close on every server)\n", showUser(u))
	} else {
		fmt.Fprintf(ios.ErrOut, "unbanned %s\n", showUser(u))
	}
	return nil
}

func newUsersDeleteCmd(ios *IOStreams, g *GlobalOptions) *cobra.Command {
	opts := &UsersOptions{Global: g}
	cmd := &cobra.Command{
		Use:   "delete NAME [--yes]",
		Short: "Delete a user with its sessions and memberships",
		Long: `Delete the user NAME with its sessions and room memberships (rooms it owns
stay), and publish a revocation that closes its connections on every server.
This cannot be undone. On a terminal it asks first; otherwise --yes is
required. When the publish fails the user is deleted all the same, and the
command fails (exit 1) saying that servers may keep its connections until
they reconnect.`,
		Example: `  livechat users delete alice
  livechat users delete alice --yes`,
		Args: nArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.User = args[0]
			return runUsersDelete(cmd.Context(), opts, ios)
		},
	}
	cmd.Flags().BoolVarP(&opts.Yes, "yes", "y", false, "delete without asking (required when standard input is not a terminal)")
	userArg(cmd, &opts.ByID)
	addAdminFlags(cmd, g, &opts.Store, true)
	return cmd
}

func runUsersDelete(ctx context.Context, opts *UsersOptions, ios *IOStreams) error {
	if !opts.Yes && !ios.InTerminal {
		return usageErrorf("users delete %s: --yes is required when standard input is not a terminal; nothing was deleted", opts.User)
	}
	a, err := openAdmin(ctx, opts.Global, opts.Store, true)
	if err != nil {
		return err
	}
	defer a.Close()
	u, err := a.user(ctx, opts.User, opts.ByID)
	if err != nil {
		return err
	}
	if !opts.Yes {
		ok, err := confirm(ios, fmt.Sprintf("Delete user %s with its sessions and memberships? This cannot be undone.", showUser(u)))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%s was not deleted", showUser(u))
		}
	}
	if err := a.acc.DeleteUser(ctx, u.ID); err != nil {
		if a.publishFailed() {
			return fmt.Errorf("%s is deleted, but the revocation could not be published: %w; "+
				"servers may keep the user's connections until they reconnect (check --broker and --prefix)", showUser(u), err)
		}
		return err
	}
	fmt.Fprintf(ios.ErrOut, "deleted %s: revocation published (its connections close on every server)\n", showUser(u))
	return nil
}
