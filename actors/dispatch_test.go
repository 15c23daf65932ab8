package actors

import (
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
)

// TestWorkerPool: every scheduled run runs; the pool reuses its workers
// (never more than poolWorkers at once) instead of a goroutine per run;
// close lets the idle workers exit, and later runs still run.
func TestWorkerPool(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newWorkerPool()
		var ran atomic.Int64
		var wg sync.WaitGroup
		const runs = 1000
		for range runs {
			wg.Add(1)
			p.Schedule(func() { ran.Add(1); wg.Done() })
		}
		wg.Wait()
		synctest.Wait() // every worker idle
		if ran.Load() != runs {
			t.Fatalf("ran %d of %d", ran.Load(), runs)
		}
		p.mu.Lock()
		workers := p.workers
		p.mu.Unlock()
		if workers < 1 || workers > poolWorkers {
			t.Fatalf("%d workers after %d runs, want 1..%d", workers, runs, poolWorkers)
		}
		// One run at a time, as a mailbox schedules: one worker does them all.
		for range 100 {
			wg.Add(1)
			p.Schedule(func() { ran.Add(1); wg.Done() })
			wg.Wait()
			synctest.Wait()
		}
		p.mu.Lock()
		if p.workers != workers {
			t.Errorf("sequential runs changed the workers from %d to %d", workers, p.workers)
		}
		p.mu.Unlock()

		p.close()
		synctest.Wait()
		p.mu.Lock()
		if p.workers != 0 {
			t.Errorf("%d workers left after close", p.workers)
		}
		p.mu.Unlock()
		wg.Add(1)
		p.Schedule(func() { ran.Add(1); wg.Done() })
		wg.Wait()
		if ran.Load() != runs+101 {
			t.Errorf("ran %d, want %d", ran.Load(), runs+101)
		}
		// The bubble ends only when no goroutine is left: none lingers.
	})
}
