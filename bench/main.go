// Command bench runs Flotilla side by side with hashicorp/raft and etcd
// raft on one workload, in one run, on this machine:
//
//   - rows: Flotilla as the README sets it up (the headline), Flotilla
//     tuned (labelled with its settings), etcd raft as a plain RawNode loop
//     and with AsyncStorageWrites, hashicorp/raft plain and with
//     BatchApplyCh as Vault sets it;
//   - 3 nodes (in one process, each with its own data directory; the
//     flotilla-3proc row, run when named in -libs, uses three processes
//     over the gRPC transport);
//   - C concurrent clients, each proposing a 128-byte command to the
//     leader and waiting until it is committed and applied on the leader
//     before the next;
//   - durable mode (every library fsyncs its log) and memory mode;
//   - a warm-up, then a measured window per cell: ops/s and p50/p99/max
//     latency, plus process-wide allocations and CPU per op for the
//     in-process rows; with -runs N each cell runs N times, the rows in
//     alternating order (forward, reversed, forward...), and the table
//     shows each figure's median;
//   - the node side's allocations per committed proposal of the README
//     path (memory mode, C=1 and C=64), every allocation recorded;
//   - the bars, computed from the medians.
//
// The disk's raw fsync rate is measured in the same run. The results go to
// standard output (a markdown table) and to results/ (markdown, JSON and
// an SVG chart). The defaults are a quick smoke run (one run, 1 s
// windows); the published figures come from
//
//	go run . -runs 3 -warmup 2s -window 5s -publish    (make bench-full)
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
	return []*driver{flotillaDriver(), flotillaTunedDriver(), procDriver(), etcdDriver(), etcdAsyncDriver(), hashicorpDriver(), hashicorpBatchDriver()}
}

// defaultLibs are the rows a plain `make bench` runs: the README path, the
// tuned row, and the plain and strongest configuration of each peer.
// flotilla-3proc (three processes over gRPC) runs when named in -libs.
var defaultLibs = []string{"flotilla", "flotilla-tuned", "etcd", "etcd-async", "hashicorp", "hashicorp-batch"}

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
	runs    int
	allocN  int
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
	libs := fs.String("libs", strings.Join(defaultLibs, ","), "libraries to run, comma-separated: "+strings.Join(names, ", "))
	clients := fs.String("clients", "1,64,512", "client counts, comma-separated")
	modes := fs.String("modes", modeDurable+","+modeMemory, "modes, comma-separated: durable, memory")
	c := &config{}
	fs.IntVar(&c.runs, "runs", 1, "runs of every cell, rows in alternating order; the table shows medians (the published run: 3)")
	fs.DurationVar(&c.warmup, "warmup", 500*time.Millisecond, "warm-up before each measured window (the published run: 2s)")
	fs.DurationVar(&c.window, "window", time.Second, "measured window per cell (the published run: 5s)")
	fs.IntVar(&c.allocN, "allocs", 2000, "proposals of the node-side allocation measurement (README path, memory, C=1 and C=64); 0 skips it")
	fs.StringVar(&c.out, "out", "results", "directory for the results (markdown, JSON, SVG, profiles)")
	fs.StringVar(&c.dataDir, "data", "", "directory for the nodes' data directories (default: <out>/data, on the local disk)")
	fs.IntVar(&c.fsyncN, "fsync-n", 2000, "appends+fsyncs of the raw disk measurement (stops after 3s)")
	fs.BoolVar(&c.profile, "profile", false, "write CPU and allocation profiles of each cell's window to <out>/profiles")
	fs.IntVar(&commitNewsTicks, "commit-news-ticks", 0, "Flotilla's raft.Config.CommitNewsTicks for the in-process flotilla rows (0: commit news rides the next append or heartbeat; -1: broadcast every commit advance, the behaviour before issue 20)")
	fs.BoolVar(&c.publish, "publish", false, "also write RESULTS.md and results.svg in the current directory and the table of ../README.md (the committed copy)")
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
	if c.runs < 1 {
		return nil, fmt.Errorf("-runs = %d, must be >= 1", c.runs)
	}
	if c.allocN < 0 {
		return nil, fmt.Errorf("-allocs = %d, must be >= 0", c.allocN)
	}
	if c.dataDir == "" {
		c.dataDir = filepath.Join(c.out, "data")
	}
	c.cmdline = strings.TrimSpace("go run . " + strings.Join(args, " "))
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
	Runs      int
	Fsync     fsyncResult
	// Cells holds one result per cell: the median of its runs.
	Cells []cellResult
	// RunCells holds every run of every cell, in the order they ran.
	RunCells []cellResult
	// Allocs is the node side's allocations per proposal (README path).
	Allocs []allocResult
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
		CPUs: runtime.NumCPU(), Warmup: cfg.warmup, Window: cfg.window, Runs: cfg.runs}
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
			runs := map[string][]cellResult{}
			for r := range cfg.runs {
				libs := slices.Clone(cfg.libs)
				if r%2 == 1 {
					slices.Reverse(libs)
				}
				for _, lib := range libs {
					spec := cellSpec{Lib: lib, Mode: mode, Clients: c}
					res, err := runCell(ctx, byName[lib], spec, opts)
					if ctx.Err() != nil {
						return nil, ctx.Err()
					}
					fmt.Fprintf(w, "%-36s ", fmt.Sprintf("%s run %d/%d", spec, r+1, cfg.runs))
					if err != nil {
						res.Skipped = err.Error()
						fmt.Fprintf(w, "FAILED: %v\n", err)
					} else {
						fmt.Fprintf(w, "%9.0f ops/s  p50 %-9v p99 %-9v max %v\n", res.OpsPerSec, round(res.P50), round(res.P99), round(res.Max))
						if res.Diag != "" {
							fmt.Fprintf(w, "%36s   %s\n", "", res.Diag)
						}
					}
					rep.RunCells = append(rep.RunCells, res)
					runs[lib] = append(runs[lib], res)
				}
			}
			for _, lib := range cfg.libs {
				rep.Cells = append(rep.Cells, medianCell(runs[lib]))
			}
		}
	}
	if cfg.allocN > 0 {
		for _, c := range []int{1, 64} {
			dir, err := os.MkdirTemp(cfg.dataDir, "allocs-")
			if err != nil {
				return nil, err
			}
			ar, err := measureAllocs(ctx, flotillaDriver(), modeMemory, dir, c, cfg.allocN, nil)
			os.RemoveAll(dir)
			if err != nil {
				return nil, fmt.Errorf("node-side allocations: %w", err)
			}
			fmt.Fprintf(w, "allocs %s\n", ar)
			rep.Allocs = append(rep.Allocs, ar)
		}
	}
	return rep, nil
}

// medianCell folds the runs of one cell into one result: the median of
// each figure over the runs that completed (a cell fails only when every
// run failed).
func medianCell(runs []cellResult) cellResult {
	var ok []cellResult
	for _, r := range runs {
		if r.Skipped == "" {
			ok = append(ok, r)
		}
	}
	if len(ok) == 0 {
		return runs[0]
	}
	out := ok[0]
	out.Runs = len(runs)
	out.RunOpsPerSec = nil
	for _, r := range ok {
		out.RunOpsPerSec = append(out.RunOpsPerSec, r.OpsPerSec)
	}
	medF := func(get func(cellResult) float64) float64 {
		v := make([]float64, len(ok))
		for i, r := range ok {
			v[i] = get(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	medD := func(get func(cellResult) time.Duration) time.Duration {
		return time.Duration(medF(func(r cellResult) float64 { return float64(get(r)) }))
	}
	out.OpsPerSec = medF(func(r cellResult) float64 { return r.OpsPerSec })
	out.Ops = int(medF(func(r cellResult) float64 { return float64(r.Ops) }))
	out.Errors = int(medF(func(r cellResult) float64 { return float64(r.Errors) }))
	out.P50 = medD(func(r cellResult) time.Duration { return r.P50 })
	out.P99 = medD(func(r cellResult) time.Duration { return r.P99 })
	out.Max = medD(func(r cellResult) time.Duration { return r.Max })
	out.CPUPerOp = medD(func(r cellResult) time.Duration { return r.CPUPerOp })
	out.AllocsPerOp = medF(func(r cellResult) float64 { return r.AllocsPerOp })
	out.BytesPerOp = medF(func(r cellResult) float64 { return r.BytesPerOp })
	out.MsgsPerOp = medF(func(r cellResult) float64 { return r.MsgsPerOp })
	// The internals of the run whose ops/s is the median.
	for _, r := range ok {
		if r.OpsPerSec == out.OpsPerSec {
			out.Diag = r.Diag
		}
	}
	return out
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
		readme, err := os.ReadFile("../README.md")
		if err != nil {
			return err
		}
		out, err := replaceReadmeSection(string(readme), readmeSection(rep))
		if err != nil {
			return err
		}
		if err := os.WriteFile("../README.md", []byte(out), 0o644); err != nil {
			return err
		}
		fmt.Fprintln(w, "wrote RESULTS.md, results.svg and the table in ../README.md")
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
