package storetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/flotilla-raft/flotilla/persistence"
)

// testReadsWhileWriting checks what the node relies on when its core
// reads the stable log (persistence.RaftStorage) while the persister
// writes: entries that are saved and that no later Save rewrites read the
// same whatever the writes after them (appends, and overwrites of the
// suffix after them), through Entries with a byte budget and through Term.
func testReadsWhileWriting(t *testing.T, newHarness func(t *testing.T) *Harness) {
	s := closeAtEnd(t, newHarness(t).Store)
	ctx := context.Background()
	const batches = 300
	var (
		mu     sync.Mutex
		terms  = map[uint64]uint64{} // index -> term of the entries that stay
		stable atomic.Uint64         // entries up to it are saved and never rewritten
		done   atomic.Bool
	)
	errs := make(chan error, 2)
	go func() { // the reader: the core
		defer func() { errs <- nil }()
		for k := uint64(0); !done.Load(); k++ {
			hi := stable.Load()
			if hi == 0 {
				continue
			}
			lo := 1 + k%hi
			got, err := s.Entries(ctx, lo, hi+1, 1+k%300)
			if err != nil || len(got) == 0 {
				errs <- fmt.Errorf("Entries(%d, %d) while writing: %d entries, %v", lo, hi+1, len(got), err)
				return
			}
			mu.Lock()
			for j, e := range got {
				if want := ent(lo+uint64(j), terms[lo+uint64(j)]); e.Index != want.Index || e.Term != want.Term || string(e.Data) != string(want.Data) {
					mu.Unlock()
					errs <- fmt.Errorf("Entries(%d, %d)[%d] while writing = (%d, %d, %q), want (%d, %d, %q)", lo, hi+1, j, e.Index, e.Term, e.Data, want.Index, want.Term, want.Data)
					return
				}
			}
			wantTerm := terms[hi]
			mu.Unlock()
			if term, err := s.Term(ctx, hi); err != nil || term != wantTerm {
				errs <- fmt.Errorf("Term(%d) while writing = %d, %v; want %d", hi, term, err, wantTerm)
				return
			}
		}
	}()
	// The writer: the persister. Each batch rewrites the last two entries
	// with a new term (a suffix overwrite) and appends three.
	last := uint64(0)
	for b := uint64(1); b <= batches; b++ {
		from := uint64(1)
		if last >= 2 {
			from = last - 1
		}
		var u persistence.Update
		for i := from; i <= last+3; i++ {
			u.Entries = append(u.Entries, ent(i, b))
		}
		if err := s.Save(ctx, u); err != nil {
			done.Store(true)
			t.Fatalf("Save of batch %d: %v", b, err)
		}
		last += 3
		mu.Lock()
		for _, e := range u.Entries {
			terms[e.Index] = e.Term
		}
		mu.Unlock()
		stable.Store(last - 2) // the next batch rewrites from last-1
	}
	done.Store(true)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}
