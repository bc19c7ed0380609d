// Package cli is livechat's command line: `serve`, `publish`, `tail`,
// `stats`, `bench` and `version`, built with Cobra. Every subcommand has an
// options struct and a run function that Cobra never reaches into, so tests
// call run directly with their own IOStreams.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

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
}

// SystemIO returns the process's standard streams.
func SystemIO() *IOStreams {
	return &IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr, IsTerminal: isTerminal(os.Stdout)}
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// UsageError is a mistake in flags or arguments: usage is printed and the
// exit code is ExitUsage.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

func usageErrorf(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// GlobalOptions are the persistent flags shared by every subcommand.
type GlobalOptions struct {
	// Broker is the broker URL. Default: $LIVECHAT_BROKER or redis://127.0.0.1:6379.
	Broker string
	// Prefix is the subject namespace. Default: $LIVECHAT_PREFIX or "livechat".
	Prefix string
	// Output is "table" or "json" where a command supports it. Default: table.
	Output string
}

// DefaultBroker is the broker URL used when neither flag nor env sets one.
const DefaultBroker = "redis://127.0.0.1:6379"

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
func Run(ctx context.Context, args []string, ios *IOStreams) int {
	root := NewRootCmd(ios)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ue *UsageError
	if errors.As(err, &ue) {
		fmt.Fprintf(ios.ErrOut, "error: %v\n\n%s", err, usageOf(root, args))
		return ExitUsage
	}
	fmt.Fprintf(ios.ErrOut, "error: %v\n", err)
	return ExitError
}

// usageOf returns the usage text of the subcommand args names.
func usageOf(root *cobra.Command, args []string) string {
	cmd, _, err := root.Find(args)
	if err != nil || cmd == nil {
		cmd = root
	}
	return cmd.UsageString()
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

Settings layer as flag > LIVECHAT_* environment variable > default.`,
		Example: `  # one node, no Redis needed
  livechat serve --broker memory://

  # a cluster node sharing Redis
  APPID=1000 livechat serve --addr :8081 --broker redis://127.0.0.1:6379

  # operators
  livechat publish --room general "maintenance at 18:00"
  livechat tail --room general
  livechat stats --watch`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnv(cmd.Flags(), envAliases); err != nil {
				return err
			}
			if g.Output != "table" && g.Output != "json" {
				return usageErrorf("--output must be table or json, not %q", g.Output)
			}
			if err := validPrefix(g.Prefix); err != nil {
				return &UsageError{Err: err}
			}
			return nil
		},
	}
	root.SetIn(ios.In)
	root.SetOut(ios.Out)
	root.SetErr(ios.ErrOut)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &UsageError{Err: err} })

	pf := root.PersistentFlags()
	pf.StringVar(&g.Broker, "broker", DefaultBroker, "broker URL: redis://host:port/db, rediss://..., or memory://")
	pf.StringVar(&g.Prefix, "prefix", protocol.DefaultPrefix, "subject namespace, so deployments can share a broker")
	pf.StringVarP(&g.Output, "output", "o", "table", "output format where it applies: table or json")

	root.AddCommand(
		newVersionCmd(ios),
		newServeCmd(ios, g),
		newPublishCmd(ios, g),
		newTailCmd(ios, g),
		newStatsCmd(ios, g),
		newBenchCmd(ios, g),
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
