package cli

import (
	"encoding/json"
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
)

func newVersionCmd(ios *IOStreams) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go version",
		Example: `  livechat version
  livechat version -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out, _ := cmd.Flags().GetString("output"); out == "json" {
				return json.NewEncoder(ios.Out).Encode(map[string]string{"version": version, "commit": commit, "go": runtime.Version()})
			}
			_, err := fmt.Fprintf(ios.Out, "livechat %s (commit %s, %s %s/%s)\n", version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return err
		},
	}
}
