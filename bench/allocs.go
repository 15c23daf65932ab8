package main

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// allocResult is the node side's allocations per committed proposal: every
// allocation of the process while clients proposed, except those made on a
// client's goroutine (building the proposal, ProposeAndWait's future and
// its wait), so the leader's and the followers' work in full: actors,
// mailboxes, transport, store, state machine, and answering the client.
type allocResult struct {
	Lib     string
	Mode    string
	Clients int
	Ops     int
	// NodeAllocsPerOp and ClientAllocsPerOp split the window's allocations
	// by the goroutine that made them.
	NodeAllocsPerOp, ClientAllocsPerOp float64
	NodeBytesPerOp                     float64
	// Top lists the node side's largest sources: the first frame outside
	// the runtime and the standard library's containers, with allocs/op.
	Top []allocSource
}

type allocSource struct {
	Func        string
	AllocsPerOp float64
}

func (r allocResult) String() string {
	var top []string
	for _, s := range r.Top {
		top = append(top, fmt.Sprintf("%.1f %s", s.AllocsPerOp, s.Func))
	}
	return fmt.Sprintf("%s/%s/C=%d: node side %.1f allocs/op (%.0f B/op), client %.1f allocs/op, over %d proposals; top: %s",
		r.Lib, r.Mode, r.Clients, r.NodeAllocsPerOp, r.NodeBytesPerOp, r.ClientAllocsPerOp, r.Ops, strings.Join(top, "; "))
}

// ownFunc reports whether fn (a frame's function, whose package is main
// in the command and .../bench in its tests) is this package's function
// name or a closure inside it.
func ownFunc(fn, name string) bool {
	return strings.HasSuffix(fn, "."+name) || strings.Contains(fn, "."+name+".")
}

// measureAllocs starts d's cluster in mode, warms it up, then records every
// allocation (runtime.MemProfileRate = 1) while clients propose n entries,
// and attributes each to the client or the node side by its stack.
// A benchmark passes itself as tm, so that its timer and -benchmem counters
// cover the window only.
func measureAllocs(ctx context.Context, d *driver, mode, dir string, clients, n int, tm benchTimer) (allocResult, error) {
	res := allocResult{Lib: d.name, Mode: mode, Clients: clients, Ops: n}
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	cl, err := d.start(startCtx, mode, dir)
	cancel()
	if err != nil {
		return res, err
	}
	defer cl.close()
	if err := runAllocClients(ctx, cl, clients, max(n/4, 100)); err != nil { // warm-up
		return res, err
	}
	old := runtime.MemProfileRate
	runtime.MemProfileRate = 1
	defer func() { runtime.MemProfileRate = old }()
	before := memProfile()
	if tm != nil {
		tm.ResetTimer()
	}
	err = runAllocClients(ctx, cl, clients, n)
	if tm != nil {
		tm.StopTimer()
	}
	if err != nil {
		return res, err
	}
	after := memProfile()

	bySource := map[string]int64{}
	var node, client, nodeBytes int64
	for key, a := range after {
		b := before[key]
		objs, bytes := a.objs-b.objs, a.bytes-b.bytes
		if objs <= 0 {
			continue
		}
		if a.measurement {
			continue
		}
		if a.client {
			client += objs
			continue
		}
		node += objs
		nodeBytes += bytes
		bySource[a.source] += objs
	}
	res.NodeAllocsPerOp = float64(node) / float64(n)
	res.ClientAllocsPerOp = float64(client) / float64(n)
	res.NodeBytesPerOp = float64(nodeBytes) / float64(n)
	for f, c := range bySource {
		res.Top = append(res.Top, allocSource{Func: f, AllocsPerOp: float64(c) / float64(n)})
	}
	slices.SortFunc(res.Top, func(a, b allocSource) int {
		if a.AllocsPerOp != b.AllocsPerOp {
			if a.AllocsPerOp > b.AllocsPerOp {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Func, b.Func)
	})
	res.Top = res.Top[:min(len(res.Top), 12)]
	return res, nil
}

// benchTimer is the part of *testing.B that measureAllocs drives.
type benchTimer interface {
	ResetTimer()
	StopTimer()
}

// runAllocClients has clients propose n entries in all and returns the
// first error.
func runAllocClients(ctx context.Context, cl cluster, clients, n int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, clients)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[c] = allocClient(ctx, cl, c, &next, int64(n))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// allocClient is one client's loop (its name marks the client's
// allocations, see memProfile).
//
//go:noinline
func allocClient(ctx context.Context, cl cluster, c int, next *atomic.Int64, n int64) error {
	for i := next.Add(1); i <= n; i = next.Add(1) {
		pctx, cancel := context.WithTimeout(ctx, proposalTimeout)
		err := cl.propose(pctx, payload(uint64(c)<<40|uint64(i)|1<<39))
		cancel()
		if err != nil {
			return fmt.Errorf("proposal %d: %w", i, err)
		}
	}
	return nil
}

type allocRecord struct {
	objs, bytes int64
	client      bool
	measurement bool // made by measureAllocs itself (its profile snapshots)
	source      string
}

// memProfile returns the process's cumulative allocation records by stack,
// current as of now (two GCs publish the latest cycle's records).
func memProfile() map[[32]uintptr]allocRecord {
	runtime.GC()
	runtime.GC()
	var recs []runtime.MemProfileRecord
	n, _ := runtime.MemProfile(nil, true)
	for {
		recs = make([]runtime.MemProfileRecord, n+64)
		var ok bool
		n, ok = runtime.MemProfile(recs, true)
		if ok {
			recs = recs[:n]
			break
		}
	}
	out := make(map[[32]uintptr]allocRecord, len(recs))
	for _, r := range recs {
		a := allocRecord{objs: r.AllocObjects, bytes: r.AllocBytes}
		frames := runtime.CallersFrames(r.Stack())
		for {
			f, more := frames.Next()
			// Every client goroutine runs allocClient, started by
			// runAllocClients.
			if ownFunc(f.Function, "allocClient") || ownFunc(f.Function, "runAllocClients") {
				a.client = true
			}
			if ownFunc(f.Function, "memProfile") || ownFunc(f.Function, "measureAllocs") {
				a.measurement = true
			}
			if a.source == "" && !allocInfra(f.Function) {
				a.source = f.Function
			}
			if !more {
				break
			}
		}
		if a.source == "" {
			a.source = "runtime"
		}
		out[r.Stack0] = a
	}
	return out
}

// allocInfra reports frames that allocate on someone else's behalf; the
// source of an allocation is the first frame below them.
func allocInfra(fn string) bool {
	for _, p := range []string{"runtime.", "internal/", "sync.", "slices.", "maps.", "reflect.", "strconv.", "fmt.", "errors.", "context."} {
		if strings.HasPrefix(fn, p) {
			return true
		}
	}
	return false
}
