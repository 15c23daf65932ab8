package simtest

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
	"testing/synctest"
	"time"
)

var (
	flagSeeds      = flag.Int("simshell.seeds", 0, "seeds of TestSweep (0: the bounded slice of make test)")
	flagStart      = flag.Uint64("simshell.start", 1, "first seed of TestSweep")
	flagSeed       = flag.Uint64("simshell.seed", 0, "the seed TestReplay runs, with its step trace")
	flagMembership = flag.Bool("simshell.membership", true, "membership changes (learners added and promoted, voters removed, joint changes); =false leaves them out")
	flagLease      = flag.String("simshell.lease", "some", "lease-based reads: some (one seed in three), all, none")
	flagSlow       = flag.Bool("simshell.slow", true, "slow application actors, rarely slower than the applier waits")
	flagHostSlow   = flag.Bool("simshell.hostslow", false, "TestHostSweep: slow application actors (see hostOptions)")
	flagGroups     = flag.Int("simshell.groups", 0, "TestHostSweep: groups per host (0: the bounded slice of make test, 4); with -simshell.seeds for a longer sweep")
)

// sliceSeeds is what make test runs: a bounded, seeded slice.
func sliceSeeds() int {
	if testing.Short() {
		return 40
	}
	return 100
}

func options(seed uint64) Options {
	o := DefaultOptions(seed)
	o.Membership = *flagMembership
	switch *flagLease {
	case "all":
		o.LeaseReads = true
	case "none":
		o.LeaseReads = false
	}
	o.SlowApply = *flagSlow
	return o
}

// runSeed runs one seed in its own synctest bubble and checks its history.
func runSeed(t *testing.T, opt Options) *Result {
	var res *Result
	synctest.Test(t, func(t *testing.T) { res = Run(opt) })
	if err := res.CheckHistory(30*time.Second, filepath.Join(traceDir(), fmt.Sprintf("flotilla-simshell-seed-%d.html", opt.Seed))); err != nil {
		res.Violations = append(res.Violations, err.Error())
	}
	return res
}

// hostOptions is a seed of TestHostSweep: groups on multi-group hosts
// (Options.Groups), without membership changes.
func hostOptions(seed uint64, groups int) Options {
	o := options(seed)
	o.Groups, o.Membership, o.Settings = groups, false, false
	// A node whose application actor outlasts the applier's wait while its
	// host crashes has been seen never to terminate (StopFuture times out,
	// its host never closes its database): off unless asked for.
	o.SlowApply = *flagHostSlow
	return o
}

// TestHostSweep runs the simulator on multi-group hosts: every machine an
// actors.Host on one crashable disk, every group with its own clients and
// checks. By default (make test) 3 seeds of 4 groups; -simshell.groups and
// -simshell.seeds for longer sweeps.
func TestHostSweep(t *testing.T) {
	groups, seeds := *flagGroups, *flagSeeds
	if groups == 0 {
		groups = 4
	}
	if seeds == 0 {
		seeds = 3
	}
	begin := time.Now()
	var total Stats
	var failed []*Result
	var mu sync.Mutex
	var wg sync.WaitGroup
	var next atomic.Uint64
	next.Store(*flagStart)
	end := *flagStart + uint64(seeds)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				seed := next.Add(1) - 1
				if seed >= end {
					return
				}
				res := runSeed(t, hostOptions(seed, groups))
				mu.Lock()
				total.Add(res.Stats)
				if len(res.Violations) > 0 {
					failed = append(failed, res)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Logf("%d seeds of %d groups in %v", seeds, groups, time.Since(begin).Round(time.Millisecond))
	t.Logf("exercised: %s", total.String())
	for i, res := range failed {
		if i == 5 {
			t.Errorf("... and %d more failing seeds", len(failed)-5)
			break
		}
		report(t, res)
	}
	if total.Crashes == 0 || total.Restarts == 0 || total.OpsChecked == 0 || total.ReadsChecked == 0 || total.Acked == 0 {
		t.Errorf("the sweep did not exercise what it claims: %s", total.String())
	}
}

// TestSweep runs seeds -simshell.start.. (-simshell.seeds of them; by
// default the slice of make test) and fails with every failing seed, its
// replay command and its saved step trace.
func TestSweep(t *testing.T) {
	seeds := *flagSeeds
	if seeds == 0 {
		seeds = sliceSeeds()
	}
	begin := time.Now()
	var next atomic.Uint64
	next.Store(*flagStart)
	end := *flagStart + uint64(seeds)
	var mu sync.Mutex
	var total Stats
	var failed []*Result
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				seed := next.Add(1) - 1
				if seed >= end {
					return
				}
				res := runSeed(t, options(seed))
				mu.Lock()
				total.Add(res.Stats)
				if len(res.Violations) > 0 {
					failed = append(failed, res)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Logf("%d seeds in %v", seeds, time.Since(begin).Round(time.Millisecond))
	t.Logf("exercised: %s", total.String())
	for i, res := range failed {
		if i == 5 {
			t.Errorf("... and %d more failing seeds", len(failed)-5)
			break
		}
		report(t, res)
	}
	if total.Crashes == 0 || total.Restarts == 0 || total.SnapshotsTaken == 0 || total.SnapshotsReceived == 0 || total.OpsChecked == 0 || total.ReadsChecked == 0 || total.Overloaded == 0 || total.SessionsExpired == 0 || total.Quiesced == 0 {
		t.Errorf("the sweep did not exercise what it claims: %s", total.String())
	}
}

// TestReplay runs one seed with its step trace: the command a failing seed
// prints.
func TestReplay(t *testing.T) {
	if *flagSeed == 0 {
		t.Skip("give -simshell.seed=N")
	}
	res := runSeed(t, options(*flagSeed))
	for _, line := range res.Trace {
		t.Log(line)
	}
	t.Logf("exercised: %s", res.Stats.String())
	if len(res.Violations) > 0 {
		report(t, res)
	}
}

// report fails t with a seed's violations and replay command, and saves
// its step trace to a file under $FLOTILLA_TRACE_DIR (or the temp dir).
func report(t *testing.T, res *Result) {
	t.Helper()
	seed := res.Options.Seed
	replay := fmt.Sprintf("go test ./actors/simtest/ -run TestReplay -simshell.seed=%d -v", seed)
	if res.Options.Groups > 1 {
		replay = fmt.Sprintf("go test ./actors/simtest/ -run TestHostSweep -simshell.start=%d -simshell.seeds=1 -simshell.groups=%d -v", seed, res.Options.Groups)
	} else if !res.Options.Membership {
		replay += " -simshell.membership=false"
	}
	path := filepath.Join(traceDir(), fmt.Sprintf("flotilla-simshell-seed-%d.txt", seed))
	body := fmt.Sprintf("seed %d %+v\n%s\n\n%s\n\n%s", seed, res.Options, strings.Join(res.Violations, "\n"), strings.Join(res.Trace, "\n"), res.Stacks)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Logf("saving the trace of seed %d: %v", seed, err)
		path = "(not saved)"
	}
	t.Errorf("seed %d: %s\nreplay: %s\nstep trace: %s", seed, strings.Join(res.Violations, "\n  "), replay, path)
}

func traceDir() string {
	if dir := os.Getenv("FLOTILLA_TRACE_DIR"); dir != "" {
		return dir
	}
	return os.TempDir()
}
