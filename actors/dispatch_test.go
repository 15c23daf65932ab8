package actors

import (
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// TestWorkerPool: every scheduled run runs; the pool reuses its workers
// (never more than poolWorkers at once) instead of a goroutine per run;
// close lets the idle workers exit, later runs still run, and open starts
// it again.
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
		workers := p.count()
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
		if n := p.count(); n != workers {
			t.Errorf("sequential runs changed the workers from %d to %d", workers, n)
		}

		p.close()
		synctest.Wait()
		if n := p.count(); n != 0 {
			t.Errorf("%d workers left after close", n)
		}
		wg.Add(1)
		p.Schedule(func() { ran.Add(1); wg.Done() })
		wg.Wait()
		if ran.Load() != runs+101 {
			t.Errorf("ran %d, want %d", ran.Load(), runs+101)
		}
		// Opened again (a node started again from the same Props): workers
		// again, gone at the next close.
		p.open()
		wg.Add(1)
		p.Schedule(func() { wg.Done() })
		wg.Wait()
		synctest.Wait()
		if n := p.count(); n != 1 {
			t.Errorf("%d workers after open and one run, want 1", n)
		}
		p.close()
		synctest.Wait()
		// The bubble ends only when no goroutine is left: none lingers.
	})
}

// TestPoolMailbox runs an actor as the node's are (pool.props): messages
// arrive in order from many senders, a panic reaches the supervisor (the
// actor restarts and goes on), and Stop stops it.
func TestPoolMailbox(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := actor.NewActorSystem()
		p := newWorkerPool()
		got := make(chan int, 10000)
		restarted := make(chan struct{}, 1)
		pid := sys.Root.Spawn(p.props(func() actor.Actor {
			return actor.ReceiveFunc(func(ctx actor.Context) {
				switch m := ctx.Message().(type) {
				case *actor.Restarting:
					restarted <- struct{}{}
				case int:
					if m < 0 {
						panic("boom")
					}
					got <- m
				}
			})
		}))
		const senders, each = 4, 500
		var wg sync.WaitGroup
		for s := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					sys.Root.Send(pid, s*each+i)
				}
			}()
		}
		wg.Wait()
		last := map[int]int{}
		for range senders * each {
			v := <-got
			s := v / each
			if prev, ok := last[s]; ok && v <= prev {
				t.Fatalf("sender %d: %d after %d", s, v, prev)
			}
			last[s] = v
		}
		sys.Root.Send(pid, -1) // panics: the supervisor restarts the actor
		<-restarted
		sys.Root.Send(pid, 7)
		if v := <-got; v != 7 {
			t.Fatalf("after the restart got %d, want 7", v)
		}
		if err := sys.Root.StopFuture(pid).Wait(); err != nil {
			t.Fatal(err)
		}
		p.close()
		sys.Shutdown()
	})
}

// TestWorkerPoolIdleWorkersExit: a pool never closed (a node a test leaves
// running) keeps no goroutine once idle for two workerIdle periods; the
// bubble could not end otherwise.
func TestWorkerPoolIdleWorkersExit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newWorkerPool()
		var wg sync.WaitGroup
		for range 50 {
			wg.Add(1)
			p.Schedule(func() { wg.Done() })
		}
		wg.Wait()
		time.Sleep(3 * workerIdle) // fake time: the pool idles past its reaps
		synctest.Wait()
		if n := p.count(); n != 0 {
			t.Errorf("%d workers after %v idle, want 0", n, workerIdle)
		}
	})
}

// count is the pool's number of workers.
func (p *workerPool) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.workers
}
