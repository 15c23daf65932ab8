package sim

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var (
	flagSeeds = flag.Int("sim.seeds", 2000, "number of seeds in TestSweep")
	flagStart = flag.Uint64("sim.start", 1, "first seed of TestSweep")
	flagSeed  = flag.Uint64("sim.seed", 0, "the seed TestReplay runs (with a step trace)")
	flagNodes = flag.Int("sim.nodes", 0, "cluster size for TestReplay (0: the size the sweep used for that seed)")
)

func sizeFor(seed uint64) int {
	if seed%2 == 0 {
		return 5
	}
	return 3
}

// TestSweep runs -sim.seeds seeds (3- and 5-node clusters alternately, all
// faults on) and fails on the first violation, naming its seed.
func TestSweep(t *testing.T) {
	seeds := *flagSeeds
	if testing.Short() {
		seeds = min(seeds, 300)
	}
	start := time.Now()
	var next atomic.Uint64
	next.Store(*flagStart)
	end := *flagStart + uint64(seeds)
	var mu sync.Mutex
	var total Stats
	var failures []*Violation
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				seed := next.Add(1) - 1
				if seed >= end {
					return
				}
				v, st, _ := Run(AllFaults(seed, sizeFor(seed)))
				mu.Lock()
				total.add(st)
				if v != nil {
					failures = append(failures, v)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("%d seeds in %v: %+v", seeds, time.Since(start).Round(time.Millisecond), total)
	for i, v := range failures {
		if i == 0 {
			saveTrace(t, v.Seed)
		}
		if i == 5 {
			t.Errorf("... and %d more failing seeds", len(failures)-5)
			break
		}
		t.Error(v)
	}
	// The sweep must really exercise the faults it claims to.
	if total.Crashes == 0 || total.Partitions == 0 || total.Snapshots == 0 || total.Duplicated == 0 || total.Elections < seeds || total.ConfChanges < seeds || total.Quiesced == 0 || total.Woke == 0 {
		t.Errorf("faults not exercised: %+v", total)
	}
}

// TestReplay replays one seed with its step trace: the command a failing
// sweep prints.
func TestReplay(t *testing.T) {
	if *flagSeed == 0 {
		t.Skip("give -sim.seed=N")
	}
	n := *flagNodes
	if n == 0 {
		n = sizeFor(*flagSeed)
	}
	opt := AllFaults(*flagSeed, n)
	opt.Trace = true
	v, st, trace := Run(opt)
	for _, line := range trace {
		t.Log(line)
	}
	t.Logf("stats: %+v", st)
	if v != nil {
		t.Fatal(v)
	}
}

// TestDeterministic: the same seed gives the same run.
func TestDeterministic(t *testing.T) {
	for _, seed := range []uint64{3, 4} {
		a := AllFaults(seed, sizeFor(seed))
		a.Trace = true
		_, s1, t1 := Run(a)
		_, s2, t2 := Run(a)
		if s1 != s2 || len(t1) != len(t2) {
			t.Fatalf("seed %d: two runs differ: %+v vs %+v", seed, s1, s2)
		}
		for i := range t1 {
			if t1[i] != t2[i] {
				t.Fatalf("seed %d: traces differ at line %d: %q vs %q", seed, i, t1[i], t2[i])
			}
		}
	}
}

func (s *Stats) add(o Stats) {
	s.Elections += o.Elections
	s.Crashes += o.Crashes
	s.Restarts += o.Restarts
	s.Partitions += o.Partitions
	s.Compactions += o.Compactions
	s.Snapshots += o.Snapshots
	s.Proposals += o.Proposals
	s.Applied += o.Applied
	s.Dropped += o.Dropped
	s.Duplicated += o.Duplicated
	s.Delivered += o.Delivered
	s.ConfChanges += o.ConfChanges
	s.StorageReads += o.StorageReads
	s.Quiesced += o.Quiesced
	s.Woke += o.Woke
}

// saveTrace replays seed with its step trace and writes the trace to a file
// under $FLOTILLA_TRACE_DIR (or the temp dir), so a failing sweep can be
// read, not guessed.
func saveTrace(t *testing.T, seed uint64) {
	opt := AllFaults(seed, sizeFor(seed))
	opt.Trace = true
	v, st, trace := Run(opt)
	dir := os.Getenv("FLOTILLA_TRACE_DIR")
	if dir == "" {
		dir = os.TempDir()
	}
	path := filepath.Join(dir, fmt.Sprintf("flotilla-sim-seed-%d.txt", seed))
	body := fmt.Sprintf("%v\nstats: %+v\n\n%s\n", v, st, strings.Join(trace, "\n"))
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Logf("saving the trace of seed %d: %v", seed, err)
		return
	}
	t.Logf("step trace of seed %d: %s", seed, path)
}
