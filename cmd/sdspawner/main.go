// Command sdspawner runs JupyterHub users' servers as systemd transient services.
//
// `sdspawner serve` is the root daemon with the API on a Unix socket; the other
// subcommands are the admin's command-line interface to it.
package main

import (
	"fmt"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

const usage = `usage: sdspawner COMMAND [options]

commands:
  serve     run the daemon (as root)
  check     say whether this machine enforces memory and CPU limits (as root)
  ps        list every user server with its state and resource use
  logs      print the journal of one user's server (-f to follow)
  status    show the status of one user's server
  stop      stop one user's server
  version   print the version

Run "sdspawner COMMAND -h" for a command's options.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = runServe(os.Args[2:])
	case "check":
		err = runCheck(os.Args[2:])
	case "ps":
		err = runPs(os.Args[2:])
	case "logs":
		err = runLogs(os.Args[2:])
	case "status":
		err = runStatus(os.Args[2:])
	case "stop":
		err = runStop(os.Args[2:])
	case "version", "--version":
		fmt.Println(version)
	case "-h", "--help", "help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "sdspawner: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "sdspawner %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
