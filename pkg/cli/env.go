package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// envName is the environment variable that sets a flag: LIVECHAT_ and the
// flag name in upper snake case (--shutdown-timeout: LIVECHAT_SHUTDOWN_TIMEOUT).
func envName(flag string) string {
	return "LIVECHAT_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// documentEnv appends "(env LIVECHAT_X)" to the usage of every flag of cmd
// and its subcommands, so the help tells the whole layering.
func documentEnv(cmd *cobra.Command) {
	add := func(f *pflag.Flag) {
		if f.Name == "help" || noEnvFlags[f.Name] || strings.Contains(f.Usage, "(env ") {
			return
		}
		f.Usage += " (env " + envName(f.Name) + ")"
	}
	cmd.LocalFlags().VisitAll(add)
	cmd.PersistentFlags().VisitAll(add)
	for _, c := range cmd.Commands() {
		documentEnv(c)
	}
}

// manualEnv are flags whose variable the command reads itself, because
// another variable comes between the flag and it: --secret-file >
// LIVECHAT_SECRET > LIVECHAT_SECRET_FILE (tokenSecret).
var manualEnv = map[string]bool{"secret-file": true}

// applyEnv sets every flag the command line left unset from its LIVECHAT_*
// variable, so settings layer as flag > env > default. aliases names extra
// variables read when the LIVECHAT_ one is unset (APPID for --app-id).
func applyEnv(fs *pflag.FlagSet, aliases map[string]string) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || err != nil || manualEnv[f.Name] || noEnvFlags[f.Name] {
			return
		}
		name := envName(f.Name)
		v, ok := os.LookupEnv(name)
		if (!ok || v == "") && aliases[f.Name] != "" {
			name = aliases[f.Name]
			v, ok = os.LookupEnv(name)
		}
		if !ok || v == "" {
			return
		}
		if serr := fs.Set(f.Name, v); serr != nil {
			err = &UsageError{Err: fmt.Errorf("environment %s=%q: %w", name, v, serr)}
		}
	})
	return err
}
