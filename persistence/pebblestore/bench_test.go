package pebblestore_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
	"github.com/flotilla-raft/flotilla/persistence/pebblestore"
)

const benchPayload = 256 // bytes of Data per entry

func openBenchDB(b *testing.B) *pebblestore.DB {
	b.Helper()
	db, err := pebblestore.Open(b.TempDir(), pebblestore.Options{Logger: quietLogger})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

func benchEntries(n int) []*messages.Entry {
	es := make([]*messages.Entry, n)
	for i := range es {
		es[i] = &messages.Entry{Term: 1, Data: make([]byte, benchPayload), TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	}
	return es
}

// appendLoop saves b.N batches of len(es) entries to g, each synced. The
// entries are reused (renumbered) between Saves: pebblestore encodes them and
// does not retain them.
func appendLoop(b *testing.B, g *pebblestore.Group, es []*messages.Entry, iters int) {
	ctx := context.Background()
	next := uint64(1)
	for range iters {
		for _, e := range es {
			e.Index = next
			next++
		}
		// A new hard state each time: the store keeps the last one.
		hs := &messages.HardState{Term: 1, Vote: 1, Commit: next - 1}
		if err := g.Save(ctx, persistence.Update{Entries: es, HardState: hs}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppend measures synced appends on a real directory: one Save of
// batch entries (256-byte payloads) plus the hard state per operation.
func BenchmarkAppend(b *testing.B) {
	for _, batch := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			db := openBenchDB(b)
			g, err := db.Group(1)
			if err != nil {
				b.Fatal(err)
			}
			es := benchEntries(batch)
			b.SetBytes(int64(batch) * int64(persistence.EntrySize(es[0])))
			b.ReportAllocs()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			b.ResetTimer()
			appendLoop(b, g, es, b.N)
			b.StopTimer()
			runtime.ReadMemStats(&after)
			entries := float64(b.N * batch)
			b.ReportMetric(entries/b.Elapsed().Seconds(), "entries/s")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/entries, "allocs/entry")
		})
	}
}

// BenchmarkAppendGroups measures several groups appending concurrently to
// one shared database (their commits share fsyncs).
func BenchmarkAppendGroups(b *testing.B) {
	const groups, batch = 8, 16
	db := openBenchDB(b)
	gs := make([]*pebblestore.Group, groups)
	for i := range gs {
		var err error
		if gs[i], err = db.Group(uint64(i + 1)); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(batch) * int64(persistence.EntrySize(benchEntries(1)[0])))
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for i, g := range gs {
		iters := b.N / groups
		if i < b.N%groups {
			iters++
		}
		wg.Go(func() { appendLoop(b, g, benchEntries(batch), iters) })
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "entries/s")
}
