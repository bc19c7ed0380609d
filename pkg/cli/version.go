package cli

import (
	"encoding/json"
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
)

func newVersionCmd(ios *IOStreams, g *GlobalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go version",
		Example: `  livechat version
  livechat version -o json`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			if g.Output == "json" {
				return json.NewEncoder(ios.Out).Encode(map[string]string{"version": version, "commit": commit, "go": runtime.Version()})
			}
			_, err := fmt.Fprintf(ios.Out, "livechat %s (commit %s, %s %s/%s)\n", version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return err
		},
	}
	addOutputFlag(cmd, g)
	return cmd
}
