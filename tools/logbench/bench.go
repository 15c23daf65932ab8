package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flotilla-raft/flotilla/internal/testutil"
)

// options configure one benchmark run.
type options struct {
	n           uint64   // entries to write
	checkpoints []uint64 // entries written at which restarts are measured (ascending, the last = n)
	clients     int      // concurrent proposers in the leader's process
	dir         string   // where the nodes' data directories and logs go
	pprofDir    string   // "" = no heap profiles
	snapEvery   int64    // Config.SnapshotEvery of every node; < 0: the library's default
	boundMiB    uint64   // the documented peak-RSS bound, for the verdict
	exe         string   // the logbench executable (the test binary in tests)
	env         []string // added to the nodes' environment
	out         io.Writer
}

// nodeFigures is what one node showed at a checkpoint.
type nodeFigures struct {
	ID        uint64
	Leader    bool
	PeakRSS   uint64  // bytes: the largest VmHWM of this node so far, over all its runs
	RunRSS    uint64  // bytes: VmHWM of its current run
	RSS       uint64  // bytes: VmRSS at the checkpoint
	AppliedPS float64 // entries applied per second in the last load phase
	GoHeap    uint64  // bytes: Go heap objects at the checkpoint
	GoMapped  uint64  // bytes: what the Go runtime holds from the OS (the rest of RSS is outside it: Pebble's cache and memtables)
	DiskBytes uint64  // its data directory
	LogLen    uint64  // entries in its log (LastIndex - FirstIndex + 1)
	Count     uint64  // commands its state machine applied
	Hash      uint64
}

// restart is one measured restart.
type restart struct {
	Node     uint64
	WasRole  string        // "follower" or "leader"
	Election time.Duration // leader restarts: from the kill to a new leader's first commit
	Loaded   time.Duration // from process start to the node's first answer (its state loaded)
	CatchUp  time.Duration // from process start to applied >= the leader's commit
	Target   uint64        // that commit index
	RunRSS   uint64        // VmHWM of the restarted process when caught up, bytes
}

// checkpoint is the state after a load phase, with its restarts.
type checkpoint struct {
	Written  uint64
	Phase    uint64 // entries written in the phase
	Seconds  float64
	Retries  uint64
	Nodes    []nodeFigures
	Restarts []restart
}

// result is a whole run.
type result struct {
	Checkpoints []checkpoint
	Final       []nodeFigures
}

// bench runs the benchmark: 3 node processes on loopback, each with its own
// data directory under o.dir; load phases up to each checkpoint, then a
// follower's and the leader's restart.
func bench(o options) (*result, error) {
	ports, err := testutil.FreePorts(3)
	if err != nil {
		return nil, err
	}
	nodes := make([]*nodeProc, 3)
	for i := range nodes {
		id := uint64(i + 1)
		var peers []string
		for j, a := range ports {
			if j != i {
				peers = append(peers, fmt.Sprintf("%d=%s", j+1, a))
			}
		}
		data := filepath.Join(o.dir, fmt.Sprintf("node-%d", id))
		nodes[i] = &nodeProc{id: id, exe: o.exe, env: o.env, logFile: data + ".log",
			args: []string{"node", "-id", strconv.FormatUint(id, 10), "-listen", ports[i],
				"-peers", strings.Join(peers, ","), "-data", data,
				"-snapshot-every", strconv.FormatInt(o.snapEvery, 10)}}
	}
	for _, p := range nodes {
		if _, err := p.start(); err != nil {
			return nil, err
		}
	}
	defer func() {
		for _, p := range nodes {
			p.stop()
		}
	}()
	stopSampling := make(chan struct{})
	defer close(stopSampling)
	go func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-t.C:
				for _, p := range nodes {
					p.sample()
				}
			}
		}
	}()

	fmt.Fprintf(o.out, "logbench: %d entries of %d B through 3 node processes (Pebble in %s, gRPC on 127.0.0.1), %d clients in the leader's process; snapshots: %s\n",
		o.n, entrySize, o.dir, o.clients, snapshotSetting(o.snapEvery))
	fmt.Fprintf(o.out, "machine: %d CPUs, load average %s\n", runtime.NumCPU(), loadAvg())

	res := &result{}
	written := uint64(0)
	for phase, cp := range o.checkpoints {
		leader, _, err := waitLeader(nodes, 0, 60*time.Second)
		if err != nil {
			return res, err
		}
		before := statusAll(nodes)
		n := cp - written
		t0 := time.Now()
		lr, err := leader.call(request{Op: "load", N: n, Clients: o.clients, ClientBase: uint64(phase+1) << 32}, 6*time.Hour)
		if err != nil {
			return res, fmt.Errorf("load phase to %d entries: %w", cp, err)
		}
		written = cp
		// Every node applies up to the leader's commit: the applied rate of
		// each is its entries over the time from the phase's start.
		ls, err := leader.call(request{Op: "status"}, 10*time.Second)
		if err != nil {
			return res, err
		}
		c := checkpoint{Written: cp, Phase: n, Seconds: lr.Seconds, Retries: lr.Retries}
		rates := map[uint64]float64{}
		for _, p := range nodes {
			r, err := p.call(request{Op: "wait", Index: ls.Commit}, 30*time.Minute)
			if err != nil {
				return res, err
			}
			rates[p.id] = float64(r.Applied-before[p.id].Applied) / time.Since(t0).Seconds()
		}
		fmt.Fprintf(o.out, "\nwritten %d (this phase %d in %.1f s: %.0f entries/s, %d retries)\n",
			cp, n, lr.Seconds, float64(n)/lr.Seconds, lr.Retries)
		if o.pprofDir != "" {
			for _, p := range nodes {
				path := filepath.Join(o.pprofDir, fmt.Sprintf("node-%d-at-%d.heap", p.id, cp))
				if _, err := p.call(request{Op: "heap", Path: path}, time.Minute); err != nil {
					return res, err
				}
				fmt.Fprintf(o.out, "heap profile: %s\n", path)
			}
		}
		c.Nodes, err = figures(nodes, o.dir, rates)
		if err != nil {
			return res, err
		}
		printNodes(o.out, c.Nodes)
		for _, role := range []string{"follower", "leader"} {
			r, err := restartOne(nodes, role)
			if err != nil {
				return res, fmt.Errorf("%s restart at %d entries: %w", role, cp, err)
			}
			c.Restarts = append(c.Restarts, r)
			if r.WasRole == "leader" {
				fmt.Fprintf(o.out, "restart of the leader (node %d, SIGKILL): a new leader committed %.2f s after the kill; node %d answered %.2f s and caught up (applied %d) %.2f s after its process started; its peak RSS meanwhile %s\n",
					r.Node, r.Election.Seconds(), r.Node, r.Loaded.Seconds(), r.Target, r.CatchUp.Seconds(), mib(r.RunRSS))
			} else {
				fmt.Fprintf(o.out, "restart of a follower (node %d, SIGKILL): answered %.2f s and caught up (applied %d) %.2f s after its process started; its peak RSS meanwhile %s\n",
					r.Node, r.Loaded.Seconds(), r.Target, r.CatchUp.Seconds(), mib(r.RunRSS))
			}
		}
		res.Checkpoints = append(res.Checkpoints, c)
	}
	res.Final, err = figures(nodes, o.dir, nil)
	if err != nil {
		return res, err
	}
	if err := sameState(res.Final, o.n); err != nil {
		return res, err
	}
	summary(o, res)
	return res, nil
}

// statusAll returns every running node's status (a failed call: zero).
func statusAll(nodes []*nodeProc) map[uint64]response {
	out := map[uint64]response{}
	for _, p := range nodes {
		r, _ := p.call(request{Op: "status"}, 10*time.Second)
		out[p.id] = r
	}
	return out
}

// waitLeader waits for one node other than except to lead and to have
// committed an entry of its term (its commit reaches its last index).
func waitLeader(nodes []*nodeProc, except uint64, timeout time.Duration) (*nodeProc, response, error) {
	deadline := time.Now().Add(timeout)
	for {
		for _, p := range nodes {
			if p.id == except {
				continue
			}
			r, err := p.call(request{Op: "status"}, 5*time.Second)
			if err == nil && r.Leader && r.Commit == r.LastIndex {
				return p, r, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, response{}, fmt.Errorf("logbench: no leader within %v", timeout)
		}
		time.Sleep(20 * time.Millisecond) // polling the nodes' status, as an operator would
	}
}

// restartOne kills a node of the role (SIGKILL), starts it again and
// measures the time from its process start to applied >= the leader's
// commit. A killed leader is started once a new leader committed.
func restartOne(nodes []*nodeProc, role string) (restart, error) {
	leader, ls, err := waitLeader(nodes, 0, 60*time.Second)
	if err != nil {
		return restart{}, err
	}
	victim := leader
	if role == "follower" {
		victim = nodes[0]
		if victim == leader {
			victim = nodes[1]
		}
	}
	r := restart{Node: victim.id, WasRole: role, Target: ls.Commit}
	killed := time.Now()
	if err := victim.kill(); err != nil {
		return r, err
	}
	if role == "leader" {
		_, nls, err := waitLeader(nodes, victim.id, 60*time.Second)
		if err != nil {
			return r, err
		}
		r.Election, r.Target = time.Since(killed), nls.Commit
	}
	t0, err := victim.start()
	if err != nil {
		return r, err
	}
	if _, err := victim.call(request{Op: "status"}, 30*time.Minute); err != nil {
		return r, err
	}
	r.Loaded = time.Since(t0)
	if _, err := victim.call(request{Op: "wait", Index: r.Target}, 30*time.Minute); err != nil {
		return r, err
	}
	r.CatchUp = time.Since(t0)
	victim.sample()
	_, r.RunRSS, _ = victim.mem()
	return r, nil
}

// figures collects every node's figures; rates are the applied rates of
// the last phase (nil: none).
func figures(nodes []*nodeProc, dir string, rates map[uint64]float64) ([]nodeFigures, error) {
	var out []nodeFigures
	for _, p := range nodes {
		r, err := p.call(request{Op: "status"}, 10*time.Second)
		if err != nil {
			return nil, err
		}
		p.sample()
		peak, run, rss := p.mem()
		disk, err := dirSize(filepath.Join(dir, fmt.Sprintf("node-%d", p.id)))
		if err != nil {
			return nil, err
		}
		logLen := uint64(0)
		if r.LastIndex >= r.FirstIndex && r.LastIndex > 0 {
			logLen = r.LastIndex - r.FirstIndex + 1
		}
		out = append(out, nodeFigures{ID: p.id, Leader: r.Leader, PeakRSS: peak, RunRSS: run, RSS: rss,
			AppliedPS: rates[p.id], GoHeap: r.GoHeap, GoMapped: r.GoMapped, DiskBytes: disk, LogLen: logLen, Count: r.Count, Hash: r.Hash})
	}
	return out, nil
}

// sameState checks that every node applied n commands with the same hash.
func sameState(nodes []nodeFigures, n uint64) error {
	var errs []error
	for _, f := range nodes {
		if f.Count != n {
			errs = append(errs, fmt.Errorf("logbench: node %d applied %d commands, want %d", f.ID, f.Count, n))
		}
		if f.Hash != nodes[0].Hash {
			errs = append(errs, fmt.Errorf("logbench: node %d's state hash %x differs from node %d's %x", f.ID, f.Hash, nodes[0].ID, nodes[0].Hash))
		}
	}
	return errors.Join(errs...)
}

func printNodes(w io.Writer, nodes []nodeFigures) {
	fmt.Fprintf(w, "  %-4s %-8s %12s %12s %12s %12s %12s %12s %12s %12s\n", "node", "role", "peak RSS", "this run", "RSS now", "Go heap", "Go mapped", "applied/s", "data dir", "log entries")
	for _, f := range nodes {
		role := "follower"
		if f.Leader {
			role = "leader"
		}
		fmt.Fprintf(w, "  %-4d %-8s %12s %12s %12s %12s %12s %12.0f %12s %12d\n", f.ID, role, mib(f.PeakRSS), mib(f.RunRSS), mib(f.RSS), mib(f.GoHeap), mib(f.GoMapped), f.AppliedPS, mib(f.DiskBytes), f.LogLen)
	}
}

func summary(o options, res *result) {
	fmt.Fprintf(o.out, "\nsummary (%d entries of %d B; load average at the end %s)\n", o.n, entrySize, loadAvg())
	peak := uint64(0)
	for _, f := range res.Final {
		peak = max(peak, f.PeakRSS)
		fmt.Fprintf(o.out, "  node %d: peak RSS %s over all its runs, data dir %s, %d log entries\n", f.ID, mib(f.PeakRSS), mib(f.DiskBytes), f.LogLen)
	}
	fmt.Fprintf(o.out, "  restarts (process start to first answer / to caught up):\n")
	for _, c := range res.Checkpoints {
		for _, r := range c.Restarts {
			fmt.Fprintf(o.out, "    %-8s at %d entries written: %.2f s / %.2f s, peak RSS %s\n", r.WasRole, c.Written, r.Loaded.Seconds(), r.CatchUp.Seconds(), mib(r.RunRSS))
		}
	}
	verdict := "holds"
	if peak > o.boundMiB<<20 {
		verdict = "does not hold"
	}
	fmt.Fprintf(o.out, "  peak RSS bound %d MiB per node: %s (largest %s)\n", o.boundMiB, verdict, mib(peak))
}

// dirSize sums the sizes of the files under dir.
func dirSize(dir string) (uint64, error) {
	var total uint64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // a file Pebble removed meanwhile
			}
			return err
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				total += uint64(info.Size())
			}
		}
		return nil
	})
	return total, err
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

func snapshotSetting(every int64) string {
	if every < 0 {
		return "the library's default (DefaultConfig)"
	}
	if every == 0 {
		return "off (NoAutoSnapshots)"
	}
	return fmt.Sprintf("every %d entries", every)
}

// defaultCheckpoints returns n/10 and n (1 M and 10 M for the default n).
func defaultCheckpoints(n uint64) []uint64 {
	out := []uint64{n}
	if n >= 10 {
		out = []uint64{n / 10, n}
	}
	return out
}

// parseCheckpoints parses a comma-separated list of entry counts.
func parseCheckpoints(s string, n uint64) ([]uint64, error) {
	if s == "" {
		return defaultCheckpoints(n), nil
	}
	var out []uint64
	for _, f := range strings.Split(s, ",") {
		v, err := parseCount(f)
		if err != nil {
			return nil, fmt.Errorf("-restart-at %q: %w", s, err)
		}
		if v == 0 || v > n {
			return nil, fmt.Errorf("-restart-at %q: %d is not within 1..%d (-n)", s, v, n)
		}
		out = append(out, v)
	}
	slices.SortFunc(out, cmp.Compare)
	out = slices.Compact(out)
	if out[len(out)-1] != n {
		out = append(out, n)
	}
	return out, nil
}

// parseCount parses 20000, 20k, 1M or 10M.
func parseCount(s string) (uint64, error) {
	mult := uint64(1)
	switch {
	case strings.HasSuffix(s, "k"), strings.HasSuffix(s, "K"):
		mult, s = 1000, s[:len(s)-1]
	case strings.HasSuffix(s, "M"), strings.HasSuffix(s, "m"):
		mult, s = 1000_000, s[:len(s)-1]
	}
	v, err := strconv.ParseUint(strings.ReplaceAll(s, "_", ""), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("not a count: %q", s)
	}
	return v * mult, nil
}
