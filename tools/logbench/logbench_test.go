package main

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"
)

// The smoke test starts real node processes: this test binary, re-run with
// runAsMain set, acts as the logbench program.
const runAsMain = "LOGBENCH_TEST_RUN_MAIN=1"

func TestMain(m *testing.M) {
	if os.Getenv("LOGBENCH_TEST_RUN_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestSmoke runs the benchmark end to end on a small count (`make
// bench-log` runs 10 M): three node processes on Pebble and gRPC, two
// checkpoints, a follower's and the leader's restart at each. It asserts
// that the run completes, that every node applied every command with the
// same state, and that every figure was measured; it asserts no timing.
func TestSmoke(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	n := uint64(20_000)
	if testing.Short() {
		n = 5_000
	}
	var out bytes.Buffer
	o := options{n: n, checkpoints: defaultCheckpoints(n), clients: 64, dir: t.TempDir(), pprofDir: t.TempDir(),
		snapEvery: -1, boundMiB: 256, exe: exe, env: []string{runAsMain, "GORACE=atexit_sleep_ms=0"}, out: &out}
	res, err := bench(o)
	t.Logf("output:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Checkpoints) != 2 {
		t.Fatalf("%d checkpoints, want 2 (n/10 and n)", len(res.Checkpoints))
	}
	for _, c := range res.Checkpoints {
		if len(c.Nodes) != 3 || len(c.Restarts) != 2 {
			t.Fatalf("checkpoint at %d: %d nodes and %d restarts, want 3 and 2", c.Written, len(c.Nodes), len(c.Restarts))
		}
		for _, f := range c.Nodes {
			if f.PeakRSS == 0 || f.RSS == 0 || f.GoHeap == 0 || f.GoMapped == 0 || f.DiskBytes == 0 || f.AppliedPS <= 0 {
				t.Errorf("checkpoint at %d: node %d has an unmeasured figure: %+v", c.Written, f.ID, f)
			}
		}
		for _, r := range c.Restarts {
			if r.Loaded <= 0 || r.CatchUp < r.Loaded || r.RunRSS == 0 || r.Target < c.Written {
				t.Errorf("checkpoint at %d: restart not measured: %+v", c.Written, r)
			}
			if r.WasRole == "leader" && r.Election <= 0 {
				t.Errorf("checkpoint at %d: leader restart without an election: %+v", c.Written, r)
			}
		}
	}
	for _, f := range res.Final {
		if f.Count != n {
			t.Errorf("node %d applied %d commands, want %d", f.ID, f.Count, n)
		}
	}
	heaps, err := os.ReadDir(o.pprofDir)
	if err != nil || len(heaps) != 6 {
		t.Errorf("heap profiles: %d files (%v), want 6 (3 nodes, 2 checkpoints)", len(heaps), err)
	}
	for _, want := range []string{"peak RSS bound 256 MiB per node", "restart of a follower", "restart of the leader"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the output lacks %q", want)
		}
	}
}

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		args        []string
		n           uint64
		checkpoints []uint64
		err         string
	}{
		{args: nil, n: 10_000_000, checkpoints: []uint64{1_000_000, 10_000_000}},
		{args: []string{"-n", "3M", "-restart-at", "1M"}, n: 3_000_000, checkpoints: []uint64{1_000_000, 3_000_000}},
		{args: []string{"-n", "20k", "-restart-at", "20k,2k,2k"}, n: 20_000, checkpoints: []uint64{2_000, 20_000}},
		{args: []string{"-n", "0"}, err: "-n \"0\""},
		{args: []string{"-n", "1k", "-restart-at", "2k"}, err: "not within 1..1000"},
		{args: []string{"-clients", "0"}, err: "-clients 0"},
	} {
		var stderr bytes.Buffer
		o, err := parseBenchFlags(tc.args, &stderr)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want one containing %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if o.n != tc.n || !slices.Equal(o.checkpoints, tc.checkpoints) {
			t.Errorf("%q: n %d checkpoints %v, want %d %v", tc.args, o.n, o.checkpoints, tc.n, tc.checkpoints)
		}
	}
}

func TestCheckBound(t *testing.T) {
	nodes := []nodeFigures{{ID: 1, PeakRSS: 100 << 20}, {ID: 2, PeakRSS: 300 << 20}, {ID: 3, PeakRSS: 256 << 20}}
	err := checkBound(nodes, 256)
	if err == nil || !strings.Contains(err.Error(), "node 2's peak RSS 300.0 MiB exceeds the bound of 256 MiB") ||
		strings.Contains(err.Error(), "node 1") || strings.Contains(err.Error(), "node 3") {
		t.Fatalf("checkBound: %v, want node 2 only named", err)
	}
	if err := checkBound(nodes[:1], 256); err != nil {
		t.Fatalf("checkBound under the bound: %v", err)
	}
}
