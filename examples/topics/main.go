package main

import (
	"fmt"
	"io"
	"os"
)

const usage = `usage: topics COMMAND [flags]

commands:
  server    run one broker (Raft over gRPC for the assignment table, Pebble for messages, HTTP API)
  produce   append messages to a topic:      topics produce [--servers ...] TOPIC MSG...
  consume   read a topic's partitions:      topics consume [--servers ...] TOPIC [--from N] [--follow]
  table     print the assignment table (partition → owner, follower, epoch)
  move      give a partition to a broker:    topics move PARTITION BROKER
  add       add a broker started with --join: topics add --id N --raft HOST:PORT --api HOST:PORT
  remove    remove a broker:                 topics remove ID
  demo      3 broker processes, producers and consumers, a 4th broker joins, an owner is SIGKILLed; checks
  certs     issue the CA and broker certificates for mutual TLS (with broker identities)

Run 'topics COMMAND -h' for a command's flags.
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
	case "produce", "consume", "table", "move", "add", "remove":
		return runClient(args[0], args[1:], stdout, stderr)
	case "demo":
		return runDemo(args[1:], stdout, stderr)
	case "certs":
		return runCerts(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "topics: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
