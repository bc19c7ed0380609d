package cli

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/livechat/livechat/pkg/auth"
	"github.com/livechat/livechat/pkg/protocol"
)

// TokenOptions are the inputs of `livechat token`.
type TokenOptions struct {
	Global *GlobalOptions
	// User is the token's subject, the user id. Required.
	User string
	// Name is the display name; empty leaves it to the server.
	Name string
	// Rooms restricts the rooms the token may join; none means no
	// restriction by the token.
	Rooms []string
	// TTL is how long the token is valid. Default: 1h.
	TTL time.Duration
	// Secret names the token secret, as for serve.
	Secret secretOptions
}

// defaultTokenTTL is --ttl's default.
const defaultTokenTTL = time.Hour

func newTokenCmd(ios *IOStreams, g *GlobalOptions) *cobra.Command {
	opts := &TokenOptions{Global: g, TTL: defaultTokenTTL}
	cmd := &cobra.Command{
		Use:   "token --user ID [--name NAME] [--room ROOM ...] [--ttl 1h]",
		Short: "Mint a connection token for a user, signed with the server's token secret",
		Long: `Print a connection token (an HS256 JWT) for the user ID, for an operator or a
script: a client presents it to the server to connect as that user. --room
restricts the rooms it may join (repeatable); without it the token does not
restrict rooms. The secret is the one serve uses: --secret-file, else
LIVECHAT_SECRET, else LIVECHAT_SECRET_FILE, else the file "secret" in --data.
The token is a credential: hand it only to its user.`,
		Example: `  livechat token --user u123 --name alice
  livechat token --user bot --room ops --room alerts --ttl 24h
  livechat token --user u123 -o json | jq -r .token`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Secret.FileSet = cmd.Flags().Changed("secret-file")
			return runToken(opts, ios)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.User, "user", "u", "", "user id: the token's subject (required)")
	f.StringVar(&opts.Name, "name", "", "display name of the user (default: chosen by the server)")
	f.StringArrayVarP(&opts.Rooms, "room", "r", nil, "room the token may join (repeatable; default: any)")
	f.DurationVar(&opts.TTL, "ttl", opts.TTL, "how long the token is valid")
	f.StringVar(&opts.Secret.File, "secret-file", "", "file holding the token secret (default: LIVECHAT_SECRET, then LIVECHAT_SECRET_FILE, then secret in --data)")
	addDataFlag(cmd, g)
	addOutputFlag(cmd, g)
	return cmd
}

// tokenResult is the output of `livechat token --output json`.
type tokenResult struct {
	Token   string `json:"token"`
	User    string `json:"user"`
	Expires string `json:"expires"` // RFC 3339, UTC
}

func (o *TokenOptions) validate() error {
	switch {
	case o.User == "":
		return usageErrorf("--user is required")
	case len(o.User) > auth.MaxSubjectLen || !utf8.ValidString(o.User) ||
		strings.IndexFunc(o.User, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }) >= 0:
		return usageErrorf("--user %q: must be at most %d bytes of text without control characters", o.User, auth.MaxSubjectLen)
	case o.TTL <= 0:
		return usageErrorf("--ttl %s: must be positive, such as 15m or 24h", show(o.TTL))
	}
	if o.Name != "" {
		if err := protocol.ValidName(o.Name); err != nil {
			return usageErrorf("--name %q: %v", o.Name, err)
		}
	}
	for _, r := range o.Rooms {
		if err := protocol.ValidRoom(r); err != nil {
			return usageErrorf("--room %q: %v", r, err)
		}
	}
	return nil
}

func runToken(opts *TokenOptions, ios *IOStreams) error {
	if err := opts.validate(); err != nil {
		return err
	}
	secret, _, err := tokenSecret(opts.Secret, opts.Global.Data, false)
	if err != nil {
		return err
	}
	c := auth.Claims{Name: opts.Name, Rooms: opts.Rooms}
	c.Subject = opts.User
	tok, err := auth.MintToken(secret, c, opts.TTL)
	if err != nil {
		return err
	}
	claims, err := auth.VerifyToken(secret, tok, time.Now())
	if err != nil {
		return fmt.Errorf("the minted token does not verify: %w", err)
	}
	if opts.Global.Output == "json" {
		return json.NewEncoder(ios.Out).Encode(tokenResult{
			Token: tok, User: opts.User, Expires: claims.ExpiresAt.UTC().Format(time.RFC3339),
		})
	}
	_, err = fmt.Fprintln(ios.Out, tok)
	return err
}
