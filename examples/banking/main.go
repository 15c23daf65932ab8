package main

import (
	"fmt"
	"io"
	"os"
)

const usage = `usage: banking COMMAND [flags]

commands:
  server   run one ledger node (Raft over gRPC, Pebble storage, HTTP client API)
  client   talk to the servers: open, deposit, withdraw, transfer, balance, status
  demo     start 3 servers on loopback, run clients, kill and restart the leader
  demo-membership
           (demo -membership) start 3 servers, add a 4th at run time (learner, then
           voter once caught up), remove the leader
  verify   record a concurrent history across leader kills and check it with porcupine
  certs    issue the CA and node certificates for mutual TLS (with node identities)

Run 'banking COMMAND -h' for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "server":
		return runServer(args[1:], stderr)
	case "client":
		return runClient(args[1:], stdout, stderr)
	case "demo":
		return runDemo(args[1:], stdout, stderr)
	case "demo-membership":
		return runDemo(append([]string{"-membership"}, args[1:]...), stdout, stderr)
	case "verify":
		return runVerify(args[1:], stdout, stderr)
	case "certs":
		return runCerts(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "banking: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
