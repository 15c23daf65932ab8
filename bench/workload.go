package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"time"

	"github.com/flotilla-raft/flotilla/bench/internal/cpuclock"
)

// Modes: durable means every acknowledged write is fsynced on a quorum
// before it counts as committed; memory means nothing touches the disk.
const (
	modeDurable = "durable"
	modeMemory  = "memory"
)

// payloadSize is the size of every proposal.
const payloadSize = 128

// proposalTimeout bounds one proposal; an expired proposal counts as an
// error (the cell's error column), not as a latency sample.
const proposalTimeout = 10 * time.Second

// cluster is a running 3-node cluster of one library, ready for
// proposals (a leader is elected).
type cluster interface {
	// propose submits data on the leader and returns once it is committed
	// and applied on the leader. data is owned by the cluster afterwards.
	propose(ctx context.Context, data []byte) error
	// close stops every node and releases the cluster's files.
	close() error
}

// driver starts clusters of one library.
type driver struct {
	name string
	// note describes what the row measures (store, transport).
	note func(mode string) string
	// start brings a 3-node cluster up in dir (one sub-directory per node)
	// and waits until it has a leader.
	start func(ctx context.Context, mode, dir string) (cluster, error)
	// inProcess: every node runs in this process, so process-wide counters
	// (allocations, CPU time) are the cluster's.
	inProcess bool
}

// cellSpec is one measurement: a library, a mode and a client count.
type cellSpec struct {
	Lib     string
	Mode    string
	Clients int
}

func (c cellSpec) String() string { return fmt.Sprintf("%s/%s/C=%d", c.Lib, c.Mode, c.Clients) }

// cellResult is what one cell measured.
type cellResult struct {
	cellSpec
	Note        string
	Ops         int           // proposals completed inside the window
	Errors      int           // proposals that failed inside the window
	Window      time.Duration // the measured window
	OpsPerSec   float64
	P50, P99    time.Duration
	Max         time.Duration
	AllocsPerOp float64       // process-wide mallocs per op (in-process rows only; -1 unknown)
	BytesPerOp  float64       // process-wide bytes allocated per op (-1 unknown)
	CPUPerOp    time.Duration // process CPU (user+sys) per op (in-process rows only; -1 unknown)
	Skipped     string        // why the cell did not run, if it did not
	Diag        string        // internal counters over the window (see diagnoser)
	// MsgsPerOp: Raft messages between the nodes (appends, their
	// acknowledgements, heartbeats...) per operation completed in the
	// window, for clusters that count them (-1 unknown).
	MsgsPerOp float64
	// Runs and RunOpsPerSec: for a median over several runs, how many ran
	// and each completed run's ops/s, in the order they ran.
	Runs         int       `json:",omitempty"`
	RunOpsPerSec []float64 `json:",omitempty"`
}

// runOptions are the knobs of one cell run.
type runOptions struct {
	warmup, window time.Duration
	dataDir        string // parent of the cell's directory
	profileDir     string // write CPU and alloc profiles of the window here ("" = none)
}

// payload returns a fresh proposal whose first 8 bytes are id (the etcd
// driver routes its apply notification by it; the others ignore it).
func payload(id uint64) []byte {
	b := make([]byte, payloadSize)
	binary.BigEndian.PutUint64(b, id)
	for i := 8; i < len(b); i++ {
		b[i] = byte(i)
	}
	return b
}

// runCell starts a cluster for the cell, runs C closed-loop clients
// through a warm-up and a measured window, and stops the cluster.
func runCell(ctx context.Context, d *driver, spec cellSpec, o runOptions) (res cellResult, err error) {
	res.cellSpec = spec
	res.Note = d.note(spec.Mode)
	res.Window = o.window
	res.AllocsPerOp, res.BytesPerOp, res.CPUPerOp, res.MsgsPerOp = -1, -1, -1, -1
	dir, err := os.MkdirTemp(o.dataDir, fmt.Sprintf("%s-%s-c%d-", spec.Lib, spec.Mode, spec.Clients))
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)

	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	cl, err := d.start(startCtx, spec.Mode, dir)
	cancel()
	if err != nil {
		return res, fmt.Errorf("%s: start: %w", spec, err)
	}
	defer func() {
		if cerr := cl.close(); cerr != nil && err == nil {
			err = fmt.Errorf("%s: close: %w", spec, cerr)
		}
	}()
	runtime.GC()

	// Every client records the proposals that complete inside
	// [winStart, winEnd) and stops at winEnd.
	begin := time.Now()
	winStart := begin.Add(o.warmup)
	winEnd := winStart.Add(o.window)
	type clientStats struct {
		lat    []time.Duration
		errs   int
		lastEr error
	}
	stats := make([]clientStats, spec.Clients)
	var wg sync.WaitGroup
	for c := range spec.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := &stats[c]
			st.lat = make([]time.Duration, 0, 1024)
			for seq := uint64(1); ; seq++ {
				data := payload(uint64(c)<<40 | seq)
				pctx, cancel := context.WithTimeout(ctx, proposalTimeout)
				t0 := time.Now()
				perr := cl.propose(pctx, data)
				t1 := time.Now()
				cancel()
				if !t1.Before(winEnd) || ctx.Err() != nil {
					return
				}
				if t1.Before(winStart) {
					continue
				}
				if perr != nil {
					st.errs++
					st.lastEr = perr
					continue
				}
				st.lat = append(st.lat, t1.Sub(t0))
			}
		}()
	}

	// The window's process-wide counters and profiles.
	var stopProfile func() error
	var ms0, ms1 runtime.MemStats
	var cpu0, cpu1 time.Duration
	timer := time.NewTimer(time.Until(winStart))
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
	dg, _ := cl.(diagnoser)
	var dg0, dg1 counters
	if dg != nil {
		dg0 = dg.counters()
	}
	runtime.ReadMemStats(&ms0)
	cpu0 = cpuclock.Process()
	if o.profileDir != "" {
		stopProfile, err = startProfiles(o.profileDir, spec)
		if err != nil {
			return res, err
		}
	}
	timer.Reset(time.Until(winEnd))
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
	runtime.ReadMemStats(&ms1)
	cpu1 = cpuclock.Process()
	if dg != nil {
		dg1 = dg.counters()
	}
	if stopProfile != nil {
		if err := stopProfile(); err != nil {
			return res, err
		}
	}
	wg.Wait()
	if ctx.Err() != nil {
		return res, ctx.Err()
	}

	var all []time.Duration
	var lastErr error
	for _, st := range stats {
		all = append(all, st.lat...)
		res.Errors += st.errs
		if st.lastEr != nil {
			lastErr = st.lastEr
		}
	}
	res.Ops = len(all)
	res.OpsPerSec = float64(res.Ops) / o.window.Seconds()
	if len(all) > 0 {
		slices.Sort(all)
		res.P50 = percentile(all, 0.50)
		res.P99 = percentile(all, 0.99)
		res.Max = all[len(all)-1]
	}
	res.Diag = diagnose(dg0, dg1, res.Ops, o.window)
	if m1, ok := dg1["msgs"]; ok && res.Ops > 0 {
		res.MsgsPerOp = (m1 - dg0["msgs"]) / float64(res.Ops)
	}
	if res.Ops > 0 && d.inProcess {
		res.AllocsPerOp = float64(ms1.Mallocs-ms0.Mallocs) / float64(res.Ops)
		res.BytesPerOp = float64(ms1.TotalAlloc-ms0.TotalAlloc) / float64(res.Ops)
		if cpu0 >= 0 && cpu1 >= 0 {
			res.CPUPerOp = (cpu1 - cpu0) / time.Duration(res.Ops)
		}
	}
	if res.Ops == 0 {
		return res, fmt.Errorf("%s: no proposal completed in the window (%d errors, last: %v)", spec, res.Errors, lastErr)
	}
	if lastErr != nil {
		fmt.Fprintf(os.Stderr, "  %s: %d errors, last: %v\n", spec, res.Errors, lastErr)
	}
	return res, nil
}

// percentile returns the q-quantile of sorted (nearest rank).
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// startProfiles starts a CPU profile and snapshots the allocation profile
// at the start of the window; the returned function stops the CPU profile
// and writes the allocation profile at the end (compare them with
// `go tool pprof -diff_base <start> <end>`).
func startProfiles(dir string, spec cellSpec) (func() error, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	base := filepath.Join(dir, fmt.Sprintf("%s-%s-c%d", spec.Lib, spec.Mode, spec.Clients))
	writeAllocs := func(path string) error {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	if err := writeAllocs(base + ".allocs-start.pprof"); err != nil {
		return nil, err
	}
	f, err := os.Create(base + ".cpu.pprof")
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() error {
		pprof.StopCPUProfile()
		return errors.Join(f.Close(), writeAllocs(base+".allocs.pprof"))
	}, nil
}
