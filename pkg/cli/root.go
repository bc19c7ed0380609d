// Package cli is livechat's command line: `serve`, `publish`, `tail`,
// `stats`, `bench`, `token`, `users`, `rooms` and `version`, built with
// Cobra. Every subcommand has an options struct and a run function that
// Cobra never reaches into, so tests call run directly with their own
// IOStreams.
package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/livechat/livechat/pkg/history"
	"github.com/livechat/livechat/pkg/protocol"
)

// Exit codes.
const (
	ExitOK    = 0
	ExitError = 1 // the command failed
	ExitUsage = 2 // bad flags or arguments
)

// IOStreams is where a command reads and writes; tests pass buffers.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
	// IsTerminal says Out is a terminal: tables and progress bars are drawn
	// for a person; otherwise output is plain for scripts.
	IsTerminal bool
	// InTerminal says In is a terminal: a command may ask the person there
	// (a confirmation, a password). Otherwise it reads In as data and never
	// asks.
	InTerminal bool
	// ReadSecret reads one line from the terminal In without echoing it (a
	// password), when InTerminal. SystemIO sets it; nil reads a line of In.
	ReadSecret func() (string, error)
}

// SystemIO returns the process's standard streams.
func SystemIO() *IOStreams {
	return &IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr, IsTerminal: isTerminal(os.Stdout),
		InTerminal: isTerminal(os.Stdin),
		ReadSecret: func() (string, error) {
			b, err := term.ReadPassword(int(os.Stdin.Fd()))
			return string(b), err
		},
	}
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// UsageError is a mistake in the command line (an unknown command or flag, a
// missing, extra or bad value): Run prints the error and a pointer to the
// command's --help, and the exit code is ExitUsage. Any other error is a
// failure: ExitError.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

func usageErrorf(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// GlobalOptions are the flags that several commands share. Each command
// registers only those it uses (addBrokerFlags, addOutputFlag,
// addDataFlag), so its help lists only flags that apply to it.
type GlobalOptions struct {
	// Broker is the broker URL. Default: $LIVECHAT_BROKER, else memory://
	// for serve (a single node) and the single node's operator API
	// (DefaultOpsBroker) for the operator commands.
	Broker string
	// Prefix is the subject namespace. Default: $LIVECHAT_PREFIX or "livechat".
	Prefix string
	// Output is "table" or "json" where a command supports it. Default: table.
	Output string
	// Data is the data directory of a single node (history, store, token
	// secret, operator key). Default: $LIVECHAT_DATA or DefaultDataDir.
	Data string
	// OperatorKeyFile holds the key of a node's operator API, for an
	// http:// broker. Default: "" (the data directory's operator.key).
	OperatorKeyFile string
	// Retention bounds what the history keeps (its MaxLen, MaxAge and
	// DedupWindow; the rest is unused), for the commands that append to
	// it (serve, publish; addRetentionFlags). Each append trims the room,
	// so every writer must use the same. Zero fields: history's defaults.
	Retention history.Options
}

// Defaults shared by several commands, read from here by the flags.
const (
	// DefaultServeBroker is serve's broker when neither flag nor env sets
	// one: the in-process broker of a single node.
	DefaultServeBroker = "memory://"
	// DefaultAddr is serve's listen address.
	DefaultAddr = ":8080"
	// DefaultOpsBroker is the broker of publish, tail and stats when
	// neither flag nor env sets one: the operator API of a single node
	// started with no flags on this machine.
	DefaultOpsBroker = "http://127.0.0.1" + DefaultAddr
	// DefaultDataDir is the data directory when neither --data nor
	// LIVECHAT_DATA sets one.
	DefaultDataDir = "./livechat-data"
)

// addBrokerFlags registers --broker (defaulting to def) and --prefix on a
// command that talks to the broker.
func addBrokerFlags(cmd *cobra.Command, g *GlobalOptions, def string) {
	cmd.Flags().StringVar(&g.Broker, "broker", def, "broker URL: redis://host:port/db, rediss://..., redis+cluster://host:port[,host:port...] (Redis Cluster; rediss+cluster:// for TLS), nats://[user:password@]host:port, tls://... (NATS over TLS), memory:// (in-process), or http://host:port (a single node's operator API)")
	cmd.Flags().StringVar(&g.Prefix, "prefix", protocol.DefaultPrefix, "subject namespace, so deployments can share a broker")
}

// addOpsFlags registers the flags of an operator command (publish, tail,
// stats): the broker flags, defaulting to the single node's operator API,
// --operator-key-file and --data.
func addOpsFlags(cmd *cobra.Command, g *GlobalOptions) {
	addBrokerFlags(cmd, g, DefaultOpsBroker)
	cmd.Flags().StringVar(&g.OperatorKeyFile, "operator-key-file", "", "file holding the operator key of an http:// broker (default: operator.key in --data)")
	addDataFlag(cmd, g)
}

// addDataFlag registers --data.
func addDataFlag(cmd *cobra.Command, g *GlobalOptions) {
	cmd.Flags().StringVar(&g.Data, "data", DefaultDataDir, "data directory of a single node: history and store (livechat.db), token secret (secret), operator key (operator.key)")
}

// addOutputFlag registers --output on a command that can print JSON.
func addOutputFlag(cmd *cobra.Command, g *GlobalOptions) {
	cmd.Flags().StringVarP(&g.Output, "output", "o", "table", "output format: table or json")
}

// Build information, set with -ldflags "-X github.com/livechat/livechat/pkg/cli.version=..." .
var (
	version = "dev"
	commit  = "none"
)

// Version returns the build version.
func Version() string { return version }

// Main runs the command line with the process's arguments and streams and
// returns the exit code.
func Main() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, os.Args[1:], SystemIO())
}

// Run executes the command line args with ios and returns the exit code.
// Cancelling ctx interrupts long-running commands (serve, tail, stats --watch).
// An error is printed as one "error: ..." line on ios.ErrOut; a UsageError
// adds one line naming the command's --help, never the whole usage.
func Run(ctx context.Context, args []string, ios *IOStreams) int {
	root := NewRootCmd(ios)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	var ue *UsageError
	if errors.As(err, &ue) {
		if cmd == nil {
			cmd = root
		}
		fmt.Fprintf(ios.ErrOut, "error: %v\nRun '%s --help' for usage.\n", err, cmd.CommandPath())
		return ExitUsage
	}
	fmt.Fprintf(ios.ErrOut, "error: %v\n", err)
	return ExitError
}

// flagError turns pflag's parse errors into UsageErrors, and a value that
// does not parse into a message that names the flag, the value and what is
// expected.
func flagError(cmd *cobra.Command, err error) error {
	if !cmd.HasParent() {
		// "livechat serv --addr :1": the root parsed the flags of a command
		// it does not know; the command is the mistake.
		if uerr := unknownCommand(cmd, cmd.Flags().Args()); uerr != nil {
			return uerr
		}
	}
	var bad *pflag.InvalidValueError
	if !errors.As(err, &bad) {
		return &UsageError{Err: err}
	}
	want := bad.Unwrap().Error()
	switch bad.GetFlag().Value.Type() {
	case "int", "int64", "uint64":
		want = "must be a whole number"
	case "float64":
		want = "must be a number"
	case "duration":
		want = "must be a duration with a unit, such as 500ms, 10s or 2m"
	case "bool":
		want = "must be true or false"
	}
	if errors.Is(err, strconv.ErrRange) {
		want = "out of range"
	}
	return usageErrorf("--%s %q: %s", bad.GetFlag().Name, bad.GetValue(), want)
}

// noArgs is cobra.NoArgs with a UsageError.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("unexpected argument %q: %s takes no arguments", args[0], cmd.CommandPath())
	}
	return nil
}

// unknownCommand refuses arguments to the root command: they name no
// command. It replaces Cobra's own check so that the error is a UsageError.
func unknownCommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf("; did you mean %q?", s[0])
	}
	return &UsageError{Err: errors.New(msg)}
}

// NewRootCmd builds the command tree.
func NewRootCmd(ios *IOStreams) *cobra.Command {
	g := &GlobalOptions{}
	root := &cobra.Command{
		Use:   "livechat",
		Short: "A horizontally scalable real-time chat server",
		Long: `livechat is a real-time chat server: browsers talk WebSocket to any number of
"livechat serve" processes, which share messages through a broker (Redis Pub/Sub,
or an in-process broker for a single node). The other commands work next to the
running servers over the same broker.

Settings layer as flag > LIVECHAT_* environment variable > default.

Exit status: 0 on success; 1 when the command failed (the broker cannot be
reached, the port is taken, bench lost or duplicated a delivery, ...); 2 for a
usage mistake: an unknown command or flag, a missing, extra or bad value.`,
		Example: `  # one node, no Redis needed; its data in ./livechat-data
  livechat serve

  # a cluster node sharing Redis
  APPID=1000 livechat serve --addr :8081 --broker redis://127.0.0.1:6379

  # operators
  livechat publish --room general "maintenance at 18:00"
  livechat tail --room general
  livechat stats --watch
  livechat users ban alice`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          unknownCommand,
		RunE:          func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			// The commands share g, and each wrote its own default of
			// --broker into it when it registered the flag: the running
			// command's default is the one that counts.
			if f := cmd.Flags().Lookup("broker"); f != nil && !f.Changed {
				if err := f.Value.Set(f.DefValue); err != nil {
					return err
				}
			}
			if err := applyEnv(cmd.Flags(), envAliases); err != nil {
				return err
			}
			if cmd.Flags().Lookup("output") != nil && g.Output != "table" && g.Output != "json" {
				return usageErrorf("--output must be table or json, not %q", g.Output)
			}
			if cmd.Flags().Lookup("prefix") != nil {
				if err := validPrefix(g.Prefix); err != nil {
					return &UsageError{Err: err}
				}
			}
			return nil
		},
	}
	root.SetIn(ios.In)
	root.SetOut(ios.Out)
	root.SetErr(ios.ErrOut)
	root.SetFlagErrorFunc(flagError)
	// The root runs only to refuse unknown commands (unknownCommand): its
	// usage shows "livechat [command]", not a "livechat [flags]" line.
	// Cobra's own usage function, filtered: a usage template would bring in
	// text/template, whose reflection keeps every method of every reachable
	// type in the binary (+12 MB).
	usage := root.UsageFunc()
	root.SetUsageFunc(func(c *cobra.Command) error {
		if c != root {
			return usage(c)
		}
		out := c.OutOrStderr()
		var buf bytes.Buffer
		c.SetOut(&buf)
		err := usage(c)
		c.SetOut(out)
		_, werr := io.WriteString(out, strings.Replace(buf.String(), "  "+c.UseLine()+"\n", "", 1))
		return errors.Join(err, werr)
	})

	root.AddCommand(
		newVersionCmd(ios, g),
		newServeCmd(ios, g),
		newPublishCmd(ios, g),
		newTailCmd(ios, g),
		newStatsCmd(ios, g),
		newBenchCmd(ios, g),
		newTokenCmd(ios, g),
		newUsersCmd(ios, g),
		newRoomsCmd(ios, g),
	)
	documentEnv(root)
	return root
}

// envAliases are environment variables read for a flag when its LIVECHAT_
// variable is unset.
var envAliases = map[string]string{"app-id": "APPID"}

func validPrefix(p string) error {
	if err := protocol.ValidRoom(p); err != nil {
		return fmt.Errorf("--prefix %q: must be 1-64 characters of letters, digits, '-' and '_'", p)
	}
	return nil
}
