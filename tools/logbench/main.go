// Command logbench measures a node's memory and restart time against the
// number of entries it has ever written (issue 14): it writes N entries of
// 128 B through a 3-node cluster run as users run it — each node in its own
// OS process, spawned by an application actor through actors.Props of
// DefaultConfig with a DataDir (Pebble), on the remote gRPC transport on
// 127.0.0.1 (plaintext), with a small snapshotting state machine (a count
// and a hash; 16 bytes of snapshot).
//
// The driver (this program without arguments) starts the three processes
// (`logbench node ...`, the same executable) and talks to each over its
// standard input and output. Proposals come from -clients goroutines in
// the leader's process, each a client (ClientID, increasing Sequence)
// calling ProposeAndWait. While it runs, the driver samples every node's
// VmHWM and VmRSS from /proc/PID/status. At each checkpoint (-restart-at,
// default N/10 and N) it prints per node: peak RSS, the Go heap and what
// the Go runtime maps (the rest of RSS is outside Go: Pebble's block cache
// and memtables), entries applied per second, data directory size and log
// length; then it restarts a follower and then the leader (SIGKILL, then
// the process started again) and prints the time from process start to
// the node's first answer (its state loaded) and to caught up (applied the
// leader's commit index). At the end it checks that every node applied N commands with the
// same state, and prints the verdict on the peak-RSS bound (-bound-mib,
// default 256); it exits with status 3 when a node's peak RSS exceeded it.
//
//	make bench-log             # N=10M
//	make bench-log N=1M ARGS='-pprof /tmp/heaps'
//	go run ./tools/logbench -n 20k -restart-at 2k
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "node" {
		return runNode(args[1:], os.Stdin, stdout, stderr)
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	o, err := parseBenchFlags(args, stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	o.exe, o.out = exe, stdout
	return runBench(o, stderr)
}

// runBench runs the benchmark in o.dir, or in a temporary directory
// removed afterwards when o.dir is empty.
func runBench(o options, stderr io.Writer) int {
	if o.dir == "" {
		dir, err := os.MkdirTemp("", "logbench-")
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		o.dir = dir
	}
	res, err := bench(o)
	if err != nil {
		fmt.Fprintf(stderr, "logbench: %v\n", err)
		return 1
	}
	if err := checkBound(res.Final, o.boundMiB); err != nil {
		fmt.Fprintln(stderr, err)
		return 3
	}
	return 0
}

// checkBound names every node whose peak RSS exceeded boundMiB.
func checkBound(nodes []nodeFigures, boundMiB uint64) error {
	var errs []error
	for _, f := range nodes {
		if f.PeakRSS > boundMiB<<20 {
			errs = append(errs, fmt.Errorf("logbench: node %d's peak RSS %s exceeds the bound of %d MiB", f.ID, mib(f.PeakRSS), boundMiB))
		}
	}
	return errors.Join(errs...)
}

func parseBenchFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("logbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		n         = fs.String("n", "10M", "entries to write (20000, 20k, 1M, 10M)")
		restartAt = fs.String("restart-at", "", "entries written at which a follower and the leader are restarted, comma-separated (default: n/10 and n)")
		clients   = fs.Int("clients", 512, "concurrent proposers (clients) in the leader's process")
		dir       = fs.String("dir", "", "directory for the nodes' data and logs, kept afterwards (default: a temporary directory, removed)")
		pprofDir  = fs.String("pprof", "", "write a heap profile of every node at every checkpoint into this directory")
		snapEvery = fs.Int64("snapshot-every", -1, "Config.SnapshotEvery of every node; 0: no automatic snapshots (NoAutoSnapshots); negative: the library's default")
		bound     = fs.Uint64("bound-mib", 256, "the peak-RSS bound per node to report on, MiB")
	)
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("logbench: unexpected arguments %q", fs.Args())
	}
	o := options{clients: *clients, dir: *dir, pprofDir: *pprofDir, snapEvery: *snapEvery, boundMiB: *bound}
	var err error
	if o.n, err = parseCount(*n); err != nil || o.n == 0 {
		return o, fmt.Errorf("logbench: -n %q: want a positive count such as 20000, 20k or 10M", *n)
	}
	if o.checkpoints, err = parseCheckpoints(*restartAt, o.n); err != nil {
		return o, fmt.Errorf("logbench: %w", err)
	}
	if o.clients < 1 {
		return o, fmt.Errorf("logbench: -clients %d: want at least 1", o.clients)
	}
	if o.pprofDir != "" {
		if err := os.MkdirAll(o.pprofDir, 0o755); err != nil {
			return o, fmt.Errorf("logbench: -pprof: %w", err)
		}
	}
	return o, nil
}
