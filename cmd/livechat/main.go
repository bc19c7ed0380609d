// Command livechat is the chat server and its operator tools.
package main

import (
	"os"

	"github.com/livechat/livechat/pkg/cli"
)

func main() { os.Exit(cli.Main()) }
