package actors_test

import (
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors"
)

// A flood of proposals on a leader with small caps: the proposals over a
// cap are answered ErrOverloaded (wrapped with ErrRetry) and never
// applied, Status.Overloaded counts them, and every accepted one applies
// once on every node; retried with the same client id and sequence, the
// refused ones apply once too: nothing is lost, nothing doubles.
func TestProposalFloodIsRefusedAndNothingIsLost(t *testing.T) {
	for _, tc := range []struct {
		name  string
		set   func(*actors.Config)
		count func(actors.OverloadCounts) uint64
	}{
		{"pending proposals", func(cfg *actors.Config) { cfg.MaxPendingProposals = 16 },
			func(o actors.OverloadCounts) uint64 { return o.PendingProposals }},
		{"uncommitted bytes", func(cfg *actors.Config) { cfg.Raft.MaxUncommittedBytes = 2 << 10 },
			func(o actors.OverloadCounts) uint64 { return o.UncommittedBytes }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newClusterWith(t, 3, func(c *cluster) {
					c.configure = func(_ uint64, cfg *actors.Config) { tc.set(cfg) }
				})
				lead := c.waitLeader()
				// One client per proposal: a session allows one command
				// under way at a time (a retry of a sequence older than the
				// client's latest is a duplicate).
				const flood = 400
				data := func(seq int) []byte { return fmt.Appendf(nil, "%03d-%0100d", seq, 0) } // 104 bytes
				futures := make([]*actor.Future, flood)
				for i := range flood {
					futures[i] = c.sys.Root.RequestFuture(c.node(lead),
						&actors.Propose{Data: data(i), ClientID: uint64(i + 1), Sequence: 1}, 10*time.Second)
				}
				var refused []int
				accepted := map[string]bool{}
				for i, f := range futures {
					res, err := f.Result()
					if err != nil {
						t.Fatalf("proposal %d: %v", i, err)
					}
					switch err := res.(*actors.ProposeResponse).Err; {
					case err == nil:
						accepted[string(data(i))] = true
					case errors.Is(err, actors.ErrOverloaded) && errors.Is(err, actors.ErrRetry):
						refused = append(refused, i)
					default:
						t.Fatalf("proposal %d: %v, want success or ErrOverloaded", i, err)
					}
				}
				if len(refused) == 0 || len(accepted) == 0 {
					t.Fatalf("%d accepted, %d refused of a flood of %d: want both", len(accepted), len(refused), flood)
				}
				t.Logf("a flood of %d: %d accepted, %d refused", flood, len(accepted), len(refused))
				if got := tc.count(c.status(lead).Overloaded); got != uint64(len(refused)) {
					t.Fatalf("Status.Overloaded %+v: %d, want %d refusals", c.status(lead).Overloaded, got, len(refused))
				}
				c.waitApplied(len(accepted), c.ids...)
				for _, id := range c.ids {
					checkOnce(t, id, c.sm(id).list(), accepted)
				}

				// The refused ones, retried (a client backs off, then sends
				// the same client id and sequence), apply once each.
				for _, i := range refused {
					for try := 0; ; try++ {
						_, err := actors.ProposeAndWait(c.sys.Root, c.node(lead), &actors.Propose{Data: data(i), ClientID: uint64(i + 1), Sequence: 1}, 10*time.Second)
						if err == nil {
							break
						}
						if !errors.Is(err, actors.ErrRetry) || try == 10 {
							t.Fatalf("retry of proposal %d: %v", i, err)
						}
						time.Sleep(10 * time.Millisecond) // back off (fake time)
					}
					accepted[string(data(i))] = true
				}
				c.waitApplied(flood, c.ids...)
				for _, id := range c.ids {
					checkOnce(t, id, c.sm(id).list(), accepted)
				}
			})
		})
	}
}

// checkOnce fails unless node id applied exactly the commands of want,
// each once.
func checkOnce(t *testing.T, id uint64, applied []string, want map[string]bool) {
	t.Helper()
	seen := map[string]bool{}
	for _, a := range applied {
		if !want[a] {
			t.Fatalf("node %d applied %.3s…, which was refused", id, a)
		}
		if seen[a] {
			t.Fatalf("node %d applied %.3s… twice", id, a)
		}
		seen[a] = true
	}
	if len(seen) != len(want) {
		t.Fatalf("node %d applied %d commands, want %d", id, len(seen), len(want))
	}
}

// A leader cut off with a proposal pending, deposed, then caught up by a
// snapshot that covers the proposal's index answers it (its outcome is
// unknown: ErrOutcomeUnknown) instead of keeping its waiter, which would
// count against MaxPendingProposals for good.
func TestPendingProposalCoveredBySnapshotIsAnswered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newClusterWith(t, 3, func(c *cluster) {
			c.configure = func(_ uint64, cfg *actors.Config) { cfg.RetainEntries = -1 }
		})
		old := c.waitLeader()
		c.net.Isolate(old)
		start := time.Now()
		pending := c.sys.Root.RequestFuture(c.node(old), &actors.Propose{Data: []byte("cut off")}, time.Hour)
		lead := c.waitLeader(c.others(old)...)
		for i := range 5 {
			if _, err := c.propose(lead, fmt.Sprint("after ", i)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := actors.Request[*actors.TakeSnapshotResponse](c.sys.Root, c.node(lead), &actors.TakeSnapshot{}, 5*time.Second); err != nil {
			t.Fatalf("snapshot on %d: %v", lead, err)
		}
		c.net.Heal()
		res, err := pending.Result()
		if err != nil {
			t.Fatalf("the pending proposal: %v after %v", err, time.Since(start))
		}
		if err := res.(*actors.ProposeResponse).Err; !errors.Is(err, actors.ErrOutcomeUnknown) {
			t.Fatalf("the pending proposal: %v, want ErrOutcomeUnknown", err)
		}
		if d := time.Since(start); d > time.Minute {
			t.Fatalf("answered after %v (fake time)", d)
		}
	})
}
