package main

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestMain lets the test binary serve as a flotilla-3proc node server: the
// proc driver re-executes the running binary.
func TestMain(m *testing.M) {
	if spec, ok := os.LookupEnv(serverEnv); ok {
		if err := serverMain(spec); err != nil {
			fmt.Fprintln(os.Stderr, "bench server:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestSmoke runs every driver in every mode through a short cell: the
// cluster comes up, proposals are applied, and it shuts down cleanly.
func TestSmoke(t *testing.T) {
	window := 300 * time.Millisecond
	if !testing.Short() {
		window = time.Second
	}
	for _, d := range drivers() {
		for _, mode := range []string{modeMemory, modeDurable} {
			t.Run(d.name+"/"+mode, func(t *testing.T) {
				spec := cellSpec{Lib: d.name, Mode: mode, Clients: 4}
				res, err := runCell(context.Background(), d, spec, runOptions{window: window, dataDir: t.TempDir()})
				if err != nil {
					t.Fatal(err)
				}
				if res.Ops == 0 || res.OpsPerSec <= 0 {
					t.Fatalf("no operations: %+v", res)
				}
				if res.P50 <= 0 || res.P99 < res.P50 || res.Max < res.P99 {
					t.Fatalf("inconsistent latencies: p50 %v p99 %v max %v", res.P50, res.P99, res.Max)
				}
				if d.inProcess && (res.AllocsPerOp <= 0 || res.BytesPerOp <= 0) {
					t.Fatalf("allocation counters missing: %+v", res)
				}
				t.Logf("%s: %.0f ops/s, p50 %v, p99 %v, %d errors", spec, res.OpsPerSec, res.P50, res.P99, res.Errors)
			})
		}
	}
}

// TestReport renders a report: the markdown has every cell and the bars,
// and the chart is well-formed XML.
func TestReport(t *testing.T) {
	rep := &report{Command: "go run . -window 5s", Started: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), GoVersion: "go1.26", CPUs: 2,
		Warmup: time.Second, Window: 5 * time.Second, Fsync: fsyncResult{Dir: ".", N: 10, Elapsed: time.Second, PerSec: 10, Mean: 100 * time.Millisecond}}
	i := 0
	for _, mode := range []string{modeDurable, modeMemory} {
		for _, c := range []int{1, 64, 512} {
			for _, lib := range []string{"flotilla", "flotilla-3proc", "hashicorp", "etcd"} {
				i++
				rep.Cells = append(rep.Cells, cellResult{cellSpec: cellSpec{Lib: lib, Mode: mode, Clients: c}, Note: "note <&>",
					Ops: 1000 * i, OpsPerSec: float64(200 * i), P50: time.Duration(i) * time.Millisecond,
					P99: time.Duration(2*i) * time.Millisecond, Max: time.Duration(3*i) * time.Millisecond,
					AllocsPerOp: 50, BytesPerOp: 4096, CPUPerOp: 30 * time.Microsecond})
			}
		}
	}
	rep.Cells[1].Skipped = "start: remote transport | not ready"
	md := markdown(rep, "chart.svg")
	for _, want := range []string{"| durable | 64 | flotilla | ", "durable C=64: flotilla ≥ 2× hashicorp ops/s", "memory C=1: flotilla ≥ hashicorp ops/s",
		"failed: start: remote transport / not ready", "![ops/s per library and cell](chart.svg)"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	svg := chartSVG(rep)
	dec := xml.NewDecoder(strings.NewReader(svg))
	rects := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("chart is not well-formed XML: %v\n%s", err, svg)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			rects++
		}
	}
	// Background + legend (4) + one bar per cell that ran (23).
	if want := 1 + 4 + len(rep.Cells) - 1; rects != want {
		t.Errorf("chart has %d rects, want %d", rects, want)
	}
}

func TestNiceStep(t *testing.T) {
	for _, tc := range []struct{ v, want float64 }{{0, 1}, {10, 2.5}, {95, 25}, {1234, 500}, {40000, 10000}} {
		if got := niceStep(tc.v); got != tc.want {
			t.Errorf("niceStep(%v) = %v, want %v", tc.v, got, tc.want)
		}
	}
}

func TestParseFlags(t *testing.T) {
	c, err := parseFlags([]string{"-libs", "flotilla, etcd", "-clients", "1,64", "-modes", "durable", "-window", "2s"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.libs, ",") != "flotilla,etcd" || len(c.clients) != 2 || c.clients[1] != 64 || c.modes[0] != modeDurable || c.window != 2*time.Second {
		t.Fatalf("parsed %+v", c)
	}
	for _, bad := range [][]string{{"-libs", "zookeeper"}, {"-clients", "0"}, {"-modes", "fast"}, {"-libs", ""}, {"extra"}} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("parseFlags(%q) accepted", bad)
		}
	}
}

func TestPercentile(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 100; i++ {
		s = append(s, time.Duration(i))
	}
	if p := percentile(s, 0.5); p != 50 {
		t.Errorf("p50 = %v", p)
	}
	if p := percentile(s, 0.99); p != 99 {
		t.Errorf("p99 = %v", p)
	}
	if p := percentile(s[:1], 0.99); p != 1 {
		t.Errorf("p99 of one = %v", p)
	}
}

// BenchmarkFlotillaPropose measures Flotilla's hot path: a 3-node cluster
// in this process on the in-memory transport; each op is one proposal
// applied on the leader. allocs/op counts every allocation of the process
// (three nodes and the proposers) per proposal.
//
//	go test -run '^$' -bench FlotillaPropose -benchmem
func BenchmarkFlotillaPropose(b *testing.B) { benchPropose(b, flotillaDriver()) }

// BenchmarkHashicorpPropose is the same for hashicorp/raft.
func BenchmarkHashicorpPropose(b *testing.B) { benchPropose(b, hashicorpDriver()) }

// BenchmarkEtcdPropose is the same for the etcd raft driver.
func BenchmarkEtcdPropose(b *testing.B) { benchPropose(b, etcdDriver()) }

func benchPropose(b *testing.B, d *driver) {
	for _, mode := range []string{modeMemory, modeDurable} {
		for _, clients := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/C=%d", mode, clients), func(b *testing.B) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				cl, err := d.start(ctx, mode, b.TempDir())
				cancel()
				if err != nil {
					b.Fatal(err)
				}
				defer func() {
					if err := cl.close(); err != nil {
						b.Error(err)
					}
				}()
				b.ReportAllocs()
				var next atomic.Int64
				var failed atomic.Int64
				var lastErr atomic.Value
				var wg sync.WaitGroup
				b.ResetTimer()
				for c := range clients {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for n := next.Add(1); n <= int64(b.N); n = next.Add(1) {
							pctx, cancel := context.WithTimeout(context.Background(), proposalTimeout)
							if err := cl.propose(pctx, payload(uint64(c)<<40|uint64(n))); err != nil {
								failed.Add(1)
								lastErr.Store(err)
							}
							cancel()
						}
					}()
				}
				wg.Wait()
				b.StopTimer()
				// A failed proposal (leadership lost on a loaded machine) is
				// reported, not fatal: the benchmark measures the path.
				if f := failed.Load(); f > 0 {
					b.ReportMetric(float64(f)/float64(b.N), "errors/op")
					b.Logf("%d of %d proposals failed, last: %v", f, b.N, lastErr.Load())
				}
			})
		}
	}
}
