package memstore_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"

	"github.com/flotilla-raft/flotilla/persistence/memstore"
	"github.com/flotilla-raft/flotilla/persistence/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) *storetest.Harness {
		return &storetest.Harness{Store: memstore.New()}
	})
}

// BenchmarkAppend shows the cost of Save: no allocation per entry beyond the
// growth of the log's slice (amortized), since entries are shared.
func BenchmarkAppend(b *testing.B) {
	for _, batch := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s := memstore.New()
			ctx := context.Background()
			es := make([][]*messages.Entry, 64)
			next := uint64(1)
			for i := range es {
				for range batch {
					es[i] = append(es[i], &messages.Entry{Index: next, Term: 1})
					next++
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				// Compact everything now and then so the log stays small;
				// the entries, no longer stored, are then renumbered for reuse.
				if i%len(es) == 0 && i > 0 {
					st, _ := s.State(ctx)
					if err := s.Compact(ctx, st.LastIndex); err != nil {
						b.Fatal(err)
					}
					for _, batchEs := range es {
						for _, e := range batchEs {
							e.Index += next - 1 // next-1 entries per round
						}
					}
				}
				if err := s.Save(ctx, persistence.Update{Entries: es[i%len(es)]}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

func TestSaveDoesNotAllocatePerEntry(t *testing.T) {
	s := memstore.New()
	ctx := context.Background()
	es := make([]*messages.Entry, 256)
	for i := range es {
		es[i] = &messages.Entry{Index: uint64(i + 1), Term: 1}
	}
	if err := s.Save(ctx, persistence.Update{Entries: es}); err != nil {
		t.Fatal(err)
	}
	// Overwriting the same suffix reuses the slice: no allocation at all.
	allocs := testing.AllocsPerRun(20, func() {
		if err := s.Save(ctx, persistence.Update{Entries: es}); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0 {
		t.Fatalf("Save of 256 entries over the same suffix allocated %.1f times", allocs)
	}
}
