package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/tracing/otlp"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("topics", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data", "", "keep each server's Raft log in Pebble under `DIR`/node-N (DIR must not hold an earlier run); default: in memory")
	tick := fs.Duration("tick", 10*time.Millisecond, "Raft tick; an election takes 10 to 20 ticks")
	patience := fs.Duration("patience", 10*time.Second, "how long each step waits for the cluster before failing")
	endpoint := fs.String("otlp-endpoint", "", "export each server's spans over OTLP/gRPC to this collector, e.g. localhost:4317 for Jaeger (default: $OTEL_EXPORTER_OTLP_ENDPOINT, else off)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "topics: unexpected arguments %q\n", fs.Args())
		fs.Usage()
		return 2
	}
	if *dataDir != "" {
		if err := freshDir(*dataDir); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	}
	sys := actor.NewActorSystemWithConfig(actor.Configure(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	})))
	defer sys.Shutdown()
	o := options{Out: stdout, DataDir: *dataDir, Tick: *tick, Patience: *patience}
	if otlp.Configured(*endpoint) {
		nt := &nodeTracing{endpoint: *endpoint}
		o.TracerProvider = nt.provider
		defer func() {
			if err := nt.shutdown(); err != nil {
				fmt.Fprintf(stderr, "topics: tracing: %v\n", err)
			}
		}()
	}
	start := time.Now()
	if _, err := runScenario(sys, o); err != nil {
		fmt.Fprintf(stderr, "topics: scenario failed after %v: %v\n", time.Since(start).Round(time.Millisecond), err)
		return 1
	}
	fmt.Fprintf(stdout, "\nscenario passed in %v\n", time.Since(start).Round(time.Millisecond))
	return 0
}

// freshDir makes sure dir exists and holds nothing: the scenario bootstraps
// a new cluster, which a log from an earlier run would contradict.
func freshDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("topics: -data %s: %w", dir, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("topics: -data %s: %w", dir, err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("topics: -data %s is not empty (an earlier run?); remove it or choose another directory", dir)
	}
	return nil
}
