// Command bench runs Flotilla side by side with hashicorp/raft and etcd
// raft on one workload, in one run, on this machine:
//
//   - 3 nodes (in one process, each with its own data directory; the
//     flotilla-3proc row uses three processes over the gRPC transport);
//   - C concurrent clients, each proposing a 128-byte command to the
//     leader and waiting until it is committed and applied on the leader
//     before the next;
//   - durable mode (every library fsyncs its log) and memory mode;
//   - a warm-up, then a measured window per cell: ops/s and p50/p99/max
//     latency, plus process-wide allocations and CPU per op for the
//     in-process rows.
//
// The disk's raw fsync rate is measured in the same run. The results go to
// standard output (a markdown table) and to results/ (markdown, JSON and
// an SVG chart).
//
//	go run . -libs flotilla,etcd -clients 64 -modes durable -window 5s
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// drivers lists every library row, in table order.
func drivers() []*driver {
	return []*driver{flotillaDriver(), procDriver(), hashicorpDriver(), etcdDriver()}
}

func main() {
	if spec, ok := os.LookupEnv(serverEnv); ok {
		if err := serverMain(spec); err != nil {
			fmt.Fprintln(os.Stderr, "bench server:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type config struct {
	libs    []string
	clients []int
	modes   []string
	warmup  time.Duration
	window  time.Duration
	out     string
	dataDir string
	fsyncN  int
	profile bool
	publish bool
	cmdline string
}

func parseFlags(args []string) (*config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var names []string
	for _, d := range drivers() {
		names = append(names, d.name)
	}
	libs := fs.String("libs", strings.Join(names, ","), "libraries to run, comma-separated: "+strings.Join(names, ", "))
	clients := fs.String("clients", "1,64,512", "client counts, comma-separated")
	modes := fs.String("modes", modeDurable+","+modeMemory, "modes, comma-separated: durable, memory")
	c := &config{}
	fs.DurationVar(&c.warmup, "warmup", 2*time.Second, "warm-up before each measured window")
	fs.DurationVar(&c.window, "window", 5*time.Second, "measured window per cell")
	fs.StringVar(&c.out, "out", "results", "directory for the results (markdown, JSON, SVG, profiles)")
	fs.StringVar(&c.dataDir, "data", "", "directory for the nodes' data directories (default: <out>/data, on the local disk)")
	fs.IntVar(&c.fsyncN, "fsync-n", 2000, "appends+fsyncs of the raw disk measurement (stops after 3s)")
	fs.BoolVar(&c.profile, "profile", false, "write CPU and allocation profiles of each cell's window to <out>/profiles")
	fs.IntVar(&commitNewsTicks, "commit-news-ticks", 0, "Flotilla's raft.Config.CommitNewsTicks for the in-process flotilla rows (0: commit news rides the next append or heartbeat; -1: broadcast every commit advance, the behaviour before issue 20)")
	fs.BoolVar(&c.publish, "publish", false, "also write RESULTS.md and results.svg in the current directory (the committed copy)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	for _, l := range splitList(*libs) {
		if !slices.Contains(names, l) {
			return nil, fmt.Errorf("-libs: unknown library %q (have %s)", l, strings.Join(names, ", "))
		}
		c.libs = append(c.libs, l)
	}
	for _, s := range splitList(*clients) {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-clients: %q is not a positive number", s)
		}
		c.clients = append(c.clients, n)
	}
	for _, m := range splitList(*modes) {
		if m != modeDurable && m != modeMemory {
			return nil, fmt.Errorf("-modes: unknown mode %q (durable, memory)", m)
		}
		c.modes = append(c.modes, m)
	}
	if len(c.libs) == 0 || len(c.clients) == 0 || len(c.modes) == 0 {
		return nil, fmt.Errorf("nothing to run: -libs, -clients and -modes must not be empty")
	}
	if c.window <= 0 || c.warmup < 0 {
		return nil, fmt.Errorf("-window must be > 0 and -warmup >= 0")
	}
	if c.dataDir == "" {
		c.dataDir = filepath.Join(c.out, "data")
	}
	c.cmdline = "go run . " + strings.Join(args, " ")
	return c, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// report is one run: its settings, the disk's fsync rate and every cell.
type report struct {
	Command   string
	Started   time.Time
	Host      string
	GoVersion string
	CPUs      int
	Warmup    time.Duration
	Window    time.Duration
	Fsync     fsyncResult
	Cells     []cellResult
}

func run(args []string) error {
	cfg, err := parseFlags(args)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := measure(ctx, cfg, os.Stdout)
	if err != nil {
		return err
	}
	return writeReport(cfg, rep, os.Stdout)
}

// measure runs the fsync probe and every selected cell, printing progress
// to w.
func measure(ctx context.Context, cfg *config, w *os.File) (*report, error) {
	if err := os.MkdirAll(cfg.dataDir, 0o755); err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	rep := &report{Command: cfg.cmdline, Started: time.Now().UTC(), Host: host, GoVersion: runtime.Version(),
		CPUs: runtime.NumCPU(), Warmup: cfg.warmup, Window: cfg.window}
	fsync, err := measureFsync(cfg.dataDir, cfg.fsyncN, 3*time.Second)
	if err != nil {
		return nil, fmt.Errorf("fsync probe: %w", err)
	}
	rep.Fsync = fsync
	fmt.Fprintf(w, "disk: %s\n", fsync)
	byName := map[string]*driver{}
	for _, d := range drivers() {
		byName[d.name] = d
	}
	opts := runOptions{warmup: cfg.warmup, window: cfg.window, dataDir: cfg.dataDir}
	if cfg.profile {
		opts.profileDir = filepath.Join(cfg.out, "profiles")
	}
	for _, mode := range cfg.modes {
		for _, c := range cfg.clients {
			for _, lib := range cfg.libs {
				spec := cellSpec{Lib: lib, Mode: mode, Clients: c}
				fmt.Fprintf(w, "%-32s ", spec.String())
				res, err := runCell(ctx, byName[lib], spec, opts)
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				if err != nil {
					res.Skipped = err.Error()
					fmt.Fprintf(w, "FAILED: %v\n", err)
				} else {
					fmt.Fprintf(w, "%9.0f ops/s  p50 %-9v p99 %-9v max %v\n", res.OpsPerSec, round(res.P50), round(res.P99), round(res.Max))
					if res.Diag != "" {
						fmt.Fprintf(w, "%32s   %s\n", "", res.Diag)
					}
				}
				rep.Cells = append(rep.Cells, res)
			}
		}
	}
	return rep, nil
}

// writeReport prints the table and writes results/ (and the published
// copy with -publish).
func writeReport(cfg *config, rep *report, w *os.File) error {
	stamp := rep.Started.Format("20060102-150405")
	md := markdown(rep, "latest.svg")
	svg := chartSVG(rep)
	fmt.Fprintln(w)
	fmt.Fprint(w, md)
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"results-" + stamp + ".md":   []byte(markdown(rep, "results-"+stamp+".svg")),
		"results-" + stamp + ".svg":  []byte(svg),
		"results-" + stamp + ".json": js,
		"latest.md":                  []byte(md),
		"latest.svg":                 []byte(svg),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(cfg.out, name), b, 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "\nwrote %s/results-%s.{md,svg,json}\n", cfg.out, stamp)
	if cfg.publish {
		if err := os.WriteFile("RESULTS.md", []byte(markdown(rep, "results.svg")), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile("results.svg", []byte(svg), 0o644); err != nil {
			return err
		}
		fmt.Fprintln(w, "wrote RESULTS.md and results.svg")
	}
	return nil
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= 100*time.Millisecond:
		return d.Round(time.Millisecond)
	case d >= 100*time.Microsecond:
		return d.Round(10 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}
