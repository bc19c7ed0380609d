package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/livechat/livechat/pkg/rooms"
	"github.com/livechat/livechat/pkg/store"
)

// RoomsOptions are the inputs of the `livechat rooms` commands; each
// subcommand uses the fields its flags and arguments set.
type RoomsOptions struct {
	Global *GlobalOptions
	// Store is --store: the servers' store; "" means livechat.db in --data.
	Store string
	// Room is the ROOM argument (a room id), or create's NAME.
	Room string
	// User is the USERNAME argument: a user name, or with ByID a user id.
	User string
	// ByID says User is a user id (--id).
	ByID bool
	// Private makes create make a private room titled Room (--private).
	Private bool
	// Owner is the name of the user who owns the created room (--owner);
	// required for a private room.
	Owner string
	// Role is add's role: member, owner or invited. Default: member.
	Role string
	// After lists the public rooms after this id (--after).
	After string
	// Limit is the most rooms listed (--limit). Default: 100.
	Limit int
}

// roomJSON is a room in `rooms ... -o json`.
type roomJSON struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Kind       store.Kind `json:"kind"`
	Owner      string     `json:"owner"`
	Created    time.Time  `json:"created"`
	LastActive time.Time  `json:"last_active"`
}

func newRoomJSON(r store.Room) roomJSON {
	return roomJSON{ID: r.ID, Name: r.Name, Kind: r.Kind, Owner: r.Owner, Created: r.Created.UTC(), LastActive: r.LastActive.UTC()}
}

// roomsList is the output of `rooms list -o json`.
type roomsList struct {
	Rooms []roomJSON `json:"rooms"`
	Next  string     `json:"next,omitempty"`
}

// memberJSON is one member in `rooms members -o json`.
type memberJSON struct {
	ID   string     `json:"id"`
	Name string     `json:"name"`
	Role store.Role `json:"role"`
}

func newRoomsCmd(ios *IOStreams, g *GlobalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rooms",
		Short: "List and create rooms, and manage their members",
		Long: `Manage the rooms in the servers' store. Run it with the servers' --store (or
the --data of a single node); remove also publishes on the servers' broker
(--broker, --prefix), so that the user's connections on every server leave the
room at once. ROOM is a room id: a public room's name, or the "_p..." id of a
private room.`,
		Example: `  livechat rooms list
  livechat rooms create --private "Design team" --owner alice
  livechat rooms add _pxxxxxxxxxxxxxxxxxxxx bob
  livechat rooms remove _pxxxxxxxxxxxxxxxxxxxx bob`,
		Args:                       unknownCommand,
		SuggestionsMinimumDistance: 2,
		RunE:                       func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newRoomsListCmd(ios, g), newRoomsCreateCmd(ios, g), newRoomsMembersCmd(ios, g),
		newRoomsAddCmd(ios, g), newRoomsRemoveCmd(ios, g))
	return cmd
}

func newRoomsListCmd(ios *IOStreams, g *GlobalOptions) *cobra.Command {
	opts := &RoomsOptions{Global: g, Limit: defaultPage}
	cmd := &cobra.Command{
		Use:   "list [--after ID] [--limit N]",
		Short: "List the public rooms (the directory), by id",
		Long: `List the public rooms of the store, as the directory shows them, ordered by id.
Private rooms and direct chats are never listed. A full page ends with a hint
naming the --after of the next.`,
		Example: `  livechat rooms list
  livechat rooms list -o json | jq -r '.rooms[].id'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runRoomsList(cmd.Context(), opts, ios) },
	}
	cmd.Flags().StringVar(&opts.After, "after", "", "list the rooms after this id (the last of the previous page)")
	cmd.Flags().IntVar(&opts.Limit, "limit", opts.Limit, fmt.Sprintf("most rooms listed, 1 to %d", store.MaxPage))
	addAdminFlags(cmd, g, &opts.Store, false)
	addOutputFlag(cmd, g)
	return cmd
}

func runRoomsList(ctx context.Context, opts *RoomsOptions, ios *IOStreams) error {
	if err := between("limit", opts.Limit, 1, store.MaxPage); err != nil {
		return err
	}
	a, err := openAdmin(ctx, opts.Global, opts.Store, false)
	if err != nil {
		return err
	}
	defer a.Close()
	rs, err := a.rooms.List(ctx, opts.After, opts.Limit)
	if err != nil {
		return err
	}
	next := ""
	if len(rs) == opts.Limit {
		next = rs[len(rs)-1].ID
	}
	if opts.Global.Output == "json" {
		list := roomsList{Rooms: make([]roomJSON, 0, len(rs)), Next: next}
		for _, r := range rs {
			list.Rooms = append(list.Rooms, newRoomJSON(r))
		}
		return json.NewEncoder(ios.Out).Encode(list)
	}
	rows := make([][]string, 0, len(rs))
	for _, r := range rs {
		rows = append(rows, roomRow(r))
	}
	if err := writeTable(ios.Out, ios.IsTerminal, roomHeader, rows); err != nil {
		return err
	}
	if next != "" {
		fmt.Fprintf(ios.ErrOut, "more rooms may follow: --after %s\n", next)
	}
	return nil
}

var roomHeader = []string{"ID", "NAME", "KIND", "OWNER", "CREATED", "LAST ACTIVE"}

func roomRow(r store.Room) []string {
	return []string{r.ID, orDash(r.Name), string(r.Kind), orDash(r.Owner), stamp(r.Created), stamp(r.LastActive)}
}

func newRoomsCreateCmd(ios *IOStreams, g *GlobalOptions) *cobra.Command {
	opts := &RoomsOptions{Global: g}
	cmd := &cobra.Command{
		Use:   "create NAME [--private --owner USERNAME]",
		Short: "Create a public room, or a private room owned by a user",
		Long: fmt.Sprintf(`Create a public room named NAME (its id is NAME: letters, digits, '-' and '_',
not starting with '_'), listed in the directory; or with --private a private
room titled NAME (1 to %d characters) owned by --owner, whose id the server
makes ("_p" and 20 random characters). On a terminal the id is shown;
otherwise it is printed alone, for scripts.`, rooms.MaxTitleLen),
		Example: `  livechat rooms create general
  livechat rooms create --private "Design team" --owner alice
  room=$(livechat rooms create --private "Incident 42" --owner oncall)`,
		Args: nArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Room = args[0]
			return runRoomsCreate(cmd.Context(), opts, ios)
		},
	}
	cmd.Flags().BoolVar(&opts.Private, "private", false, "make a private room titled NAME, with a random id")
	cmd.Flags().StringVar(&opts.Owner, "owner", "", "name of the user who owns the room (required with --private)")
	addAdminFlags(cmd, g, &opts.Store, false)
	addOutputFlag(cmd, g)
	return cmd
}

func runRoomsCreate(ctx context.Context, opts *RoomsOptions, ios *IOStreams) error {
	kind := store.KindPublic
	if opts.Private {
		kind = store.KindPrivate
		if _, err := rooms.Title(opts.Room); err != nil {
			return usageErrorf("room title %q: %s", opts.Room, strings.TrimPrefix(err.Error(), rooms.ErrInvalid.Error()+": "))
		}
		if opts.Owner == "" {
			return usageErrorf("--owner is required with --private: a private room needs an owner")
		}
	} else if err := rooms.PublicName(opts.Room); err != nil {
		return usageErrorf("room name %q: %s (--private makes a private room with a title)", opts.Room, strings.TrimPrefix(err.Error(), rooms.ErrInvalid.Error()+": "))
	}
	a, err := openAdmin(ctx, opts.Global, opts.Store, false)
	if err != nil {
		return err
	}
	defer a.Close()
	owner := ""
	if opts.Owner != "" {
		u, err := a.user(ctx, opts.Owner, false)
		if err != nil {
			return fmt.Errorf("--owner: %w", err)
		}
		owner = u.ID
	}
	r, err := a.rooms.Create(ctx, opts.Room, kind, owner)
	if errors.Is(err, store.ErrExists) {
		return fmt.Errorf("a room %q exists already", opts.Room)
	}
	if err != nil {
		return err
	}
	switch {
	case opts.Global.Output == "json":
		return json.NewEncoder(ios.Out).Encode(newRoomJSON(r))
	case ios.IsTerminal:
		_, err = fmt.Fprintf(ios.Out, "created %s room %q with id %s\n", r.Kind, r.Name, r.ID)
	default:
		_, err = fmt.Fprintln(ios.Out, r.ID)
	}
	return err
}

func newRoomsMembersCmd(ios *IOStreams, g *GlobalOptions) *cobra.Command {
	opts := &RoomsOptions{Global: g}
	cmd := &cobra.Command{
		Use:   "members ROOM",
		Short: "List a room's members and invitations",
		Long:  `List the members of the room ROOM (an id) with their roles: owner, member or invited.`,
		Example: `  livechat rooms members _pxxxxxxxxxxxxxxxxxxxx
  livechat rooms members _pxxxxxxxxxxxxxxxxxxxx -o json`,
		Args: nArgs("ROOM"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Room = args[0]
			return runRoomsMembers(cmd.Context(), opts, ios)
		},
	}
	addAdminFlags(cmd, g, &opts.Store, false)
	addOutputFlag(cmd, g)
	return cmd
}

func runRoomsMembers(ctx context.Context, opts *RoomsOptions, ios *IOStreams) error {
	a, err := openAdmin(ctx, opts.Global, opts.Store, false)
	if err != nil {
		return err
	}
	defer a.Close()
	if _, err := a.room(ctx, opts.Room); err != nil {
		return err
	}
	ms, err := a.rooms.Members(ctx, opts.Room)
	if err != nil {
		return err
	}
	if opts.Global.Output == "json" {
		out := struct {
			Members []memberJSON `json:"members"`
		}{Members: make([]memberJSON, 0, len(ms))}
		for _, m := range ms {
			out.Members = append(out.Members, memberJSON{ID: m.UserID, Name: m.Name, Role: m.Role})
		}
		return json.NewEncoder(ios.Out).Encode(out)
	}
	rows := make([][]string, 0, len(ms))
	for _, m := range ms {
		rows = append(rows, []string{m.UserID, orDash(m.Name), string(m.Role)})
	}
	return writeTable(ios.Out, ios.IsTerminal, []string{"ID", "NAME", "ROLE"}, rows)
}

func newRoomsAddCmd(ios *IOStreams, g *GlobalOptions) *cobra.Command {
	opts := &RoomsOptions{Global: g, Role: string(store.RoleMember)}
	cmd := &cobra.Command{
		Use:   "add ROOM USERNAME [--role member|owner|invited]",
		Short: "Add a user to a room, or change its role there",
		Long: `Make the user USERNAME a member of the room ROOM (an id) with --role, or change
its role when it is one already. invited lets the user accept or decline.`,
		Example: `  livechat rooms add _pxxxxxxxxxxxxxxxxxxxx bob
  livechat rooms add _pxxxxxxxxxxxxxxxxxxxx bob --role owner`,
		Args: nArgs("ROOM", "USERNAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Room, opts.User = args[0], args[1]
			return runRoomsAdd(cmd.Context(), opts, ios)
		},
	}
	cmd.Flags().StringVar(&opts.Role, "role", opts.Role, "role in the room: member, owner or invited")
	cmd.Flags().BoolVar(&opts.ByID, "id", false, "USERNAME is a user id (as users list shows), not a name")
	addAdminFlags(cmd, g, &opts.Store, false)
	return cmd
}

func runRoomsAdd(ctx context.Context, opts *RoomsOptions, ios *IOStreams) error {
	role := store.Role(opts.Role)
	switch role {
	case store.RoleMember, store.RoleOwner, store.RoleInvited:
	default:
		return usageErrorf("--role %q: must be member, owner or invited", opts.Role)
	}
	a, err := openAdmin(ctx, opts.Global, opts.Store, false)
	if err != nil {
		return err
	}
	defer a.Close()
	r, err := a.room(ctx, opts.Room)
	if err != nil {
		return err
	}
	if r.Kind == store.KindDirect {
		return fmt.Errorf("room %q is a direct chat: its two members are fixed", r.ID)
	}
	u, err := a.user(ctx, opts.User, opts.ByID)
	if err != nil {
		return err
	}
	if err := a.rooms.Add(ctx, r.ID, u.ID, role); err != nil {
		return err
	}
	fmt.Fprintf(ios.ErrOut, "%s is %s room %s\n", showUser(u), roleIn[role], r.ID)
	return nil
}

// roleIn says a role in a sentence: "bob is <roleIn> room R".
var roleIn = map[store.Role]string{
	store.RoleOwner:   "an owner of",
	store.RoleMember:  "a member of",
	store.RoleInvited: "invited to",
}

func newRoomsRemoveCmd(ios *IOStreams, g *GlobalOptions) *cobra.Command {
	opts := &RoomsOptions{Global: g}
	cmd := &cobra.Command{
		Use:   "remove ROOM USERNAME",
		Short: "Remove a user from a room; its connections leave the room on every server",
		Long: `End the membership (or invitation) of USERNAME in the room ROOM (an id) and
publish the removal on the broker, so that the user's connections leave the
room on every server. When the publish fails the membership is gone all the
same, and the command fails (exit 1) saying that servers may keep the user's
connections in the room until they reconnect.`,
		Example: `  livechat rooms remove _pxxxxxxxxxxxxxxxxxxxx bob`,
		Args:    nArgs("ROOM", "USERNAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Room, opts.User = args[0], args[1]
			return runRoomsRemove(cmd.Context(), opts, ios)
		},
	}
	cmd.Flags().BoolVar(&opts.ByID, "id", false, "USERNAME is a user id (as members shows), not a name")
	addAdminFlags(cmd, g, &opts.Store, true)
	return cmd
}

func runRoomsRemove(ctx context.Context, opts *RoomsOptions, ios *IOStreams) error {
	a, err := openAdmin(ctx, opts.Global, opts.Store, true)
	if err != nil {
		return err
	}
	defer a.Close()
	r, err := a.room(ctx, opts.Room)
	if err != nil {
		return err
	}
	u, err := a.user(ctx, opts.User, opts.ByID)
	if err != nil {
		return err
	}
	err = a.rooms.Remove(ctx, r.ID, u.ID)
	switch {
	case a.publishFailed():
		return fmt.Errorf("%s is removed from room %s, but the removal could not be published: %w; "+
			"servers may keep the user's connections in the room until they reconnect (check --broker and --prefix)", showUser(u), r.ID, err)
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%s is not a member of room %s (`livechat rooms members %s` lists them)", showUser(u), r.ID, r.ID)
	case err != nil:
		return err
	}
	fmt.Fprintf(ios.ErrOut, "removed %s from room %s\n", showUser(u), r.ID)
	return nil
}
