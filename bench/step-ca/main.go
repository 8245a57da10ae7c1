// step-ca's command for bench/peers.sh: Debian packages smallstep's
// certificates library (golang-github-smallstep-certificates-dev) but not its
// command, so this runs the library's own top-level action, as step-ca's
// cmd/step-ca does (without its plugin and version wiring).
package main

import (
	"fmt"
	"os"

	"github.com/smallstep/certificates/commands"
	"github.com/urfave/cli"
)

func main() {
	app := cli.NewApp()
	app.Name = "step-ca"
	app.Usage = "an online certificate authority"
	app.Flags = commands.AppCommand.Flags
	app.Action = commands.AppCommand.Action
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
