package actors_test

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors"
	"go.opentelemetry.io/otel/trace/noop"
)

func TestClusterElectsOneLeader(t *testing.T) {
	for _, n := range []int{3, 5} {
		t.Run(fmt.Sprintf("%d nodes", n), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newCluster(t, n)
				lead := c.waitLeader()
				leaders := 0
				for _, id := range c.ids {
					if s := c.status(id); s.Role.String() == "leader" {
						leaders++
						if s.ID != lead {
							t.Errorf("node %d leads but the others follow %d", s.ID, lead)
						}
					}
				}
				if leaders != 1 {
					t.Fatalf("%d leaders, want 1", leaders)
				}
			})
		})
	}
}

func TestProposalToFollowerGetsNotLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 3)
		lead := c.waitLeader()
		follower := c.others(lead)[0]
		_, err := c.propose(follower, "x")
		var nl *actors.NotLeaderError
		if !errors.As(err, &nl) || !errors.Is(err, actors.ErrNotLeader) {
			t.Fatalf("propose on follower: %v, want NotLeaderError", err)
		}
		if nl.Leader != lead || nl.LeaderAddress != fmt.Sprintf("node-%d", lead) {
			t.Fatalf("NotLeader names %d at %q, want %d at node-%d", nl.Leader, nl.LeaderAddress, lead, lead)
		}
	})
}

// 16 concurrent proposers, 10,000 proposals: every node applies the same
// commands in the same order.
func TestConcurrentProposalsAppliedInSameOrder(t *testing.T) {
	total, proposers := 10000, 16
	if testing.Short() {
		total = 2000
	}
	synctest.Test(t, func(t *testing.T) {
		// 10,000 proposals: no span recording (it would dominate the run).
		c := newClusterWith(t, 3, func(c *cluster) { c.tp = noop.NewTracerProvider() })
		lead := c.waitLeader()
		var wg sync.WaitGroup
		errs := make(chan error, proposers)
		for p := range proposers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := p; i < total; i += proposers {
					res, err := c.propose(lead, fmt.Sprintf("p%d-%d", p, i))
					if err != nil {
						errs <- fmt.Errorf("proposal %d: %w", i, err)
						return
					}
					if res.Index == 0 {
						errs <- fmt.Errorf("proposal %d: no index", i)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		c.waitApplied(total, c.ids...)
		want := c.sm(lead).list()
		for _, id := range c.ids {
			if got := c.sm(id).list(); !slices.Equal(got, want) {
				t.Fatalf("node %d applied a different sequence than the leader", id)
			}
		}
	})
}

// Status, history, pause/resume, log level and snapshots through messages.
func TestControlMessages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 3)
		lead := c.waitLeader()
		h, err := actors.Request[*actors.History](c.sys.Root, c.node(lead), &actors.GetHistory{}, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		won := false
		for _, tr := range h.Transitions {
			if tr.Kind == "role-changed" && tr.To == "leader" && tr.Reason != "" {
				won = true
			}
		}
		if !won {
			t.Fatalf("leader's history has no 'became leader' step with a reason: %+v", h.Transitions)
		}
		r, err := actors.Request[*actors.SetLogLevelResponse](c.sys.Root, c.node(lead), &actors.SetLogLevel{Level: slog.LevelDebug}, 5*time.Second)
		if err == nil || r == nil || r.Err != err {
			t.Fatalf("SetLogLevel without Config.LogLevel: %v %+v, want the answer's error", err, r)
		}
		s := c.status(lead)
		if len(s.Progress) != 3 || s.LeaderAddress != fmt.Sprintf("node-%d", lead) {
			t.Fatalf("leader status: %+v", s)
		}
	})
}

// A leader whose peers are all gone stops at once: there is no one to hand
// leadership to, so it does not wait for a transfer to time out.
func TestStopLastLeaderDoesNotWaitForHandover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// CheckQuorum off: the leader stays leader with its peers gone.
		c := newClusterWith(t, 3, func(c *cluster) { c.boot.Settings.CheckQuorum = false })
		lead := c.waitLeader()
		for _, id := range c.others(lead) {
			c.stop(id)
		}
		// A few heartbeat intervals pass without an answer from them.
		time.Sleep(50 * time.Millisecond)
		start := time.Now()
		c.stop(lead)
		if d := time.Since(start); d >= 100*time.Millisecond {
			t.Fatalf("stopping the last leader took %v (fake time): it waited for a hand-over", d)
		}
	})
}

// TestPauseResumeAndSubscriptions: a node started paused joins nothing and
// refuses requests with ErrPaused until Resume; a subscriber gets events
// until it unsubscribes.
func TestPauseResumeAndSubscriptions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newClusterWith(t, 3, func(c *cluster) {
			c.configure = func(id uint64, cfg *actors.Config) { cfg.StartPaused = id == 3 }
		})
		lead := c.waitLeader(1, 2)
		if s := c.status(3); !s.Paused || s.Leader != 0 {
			t.Fatalf("paused node: %+v", s)
		}
		if _, err := c.propose(3, "x"); !errors.Is(err, actors.ErrPaused) {
			t.Fatalf("proposal to a paused node: %v, want ErrPaused", err)
		}
		if _, err := actors.Request[*actors.Resumed](c.sys.Root, c.node(3), &actors.Resume{}, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if got := c.waitLeader(); got != lead {
			t.Fatalf("leader %d after resume, want %d", got, lead)
		}

		events := make(chan any, 1024)
		sub := c.sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
			switch ctx.Message().(type) {
			case *actor.Started, *actor.Stopping, *actor.Stopped:
				return
			}
			events <- ctx.Message()
		}))
		c.sys.Root.Send(c.node(3), &actors.Subscribe{PID: sub})
		if _, err := c.propose(lead, "seen"); err != nil {
			t.Fatal(err)
		}
		applied := func(data string) bool {
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				select {
				case ev := <-events:
					if ea, ok := ev.(*actors.EntryApplied); ok && string(ea.Entry.Data) == data {
						return true
					}
				case <-time.After(time.Second):
				}
			}
			return false
		}
		if !applied("seen") {
			t.Fatal("the subscriber got no EntryApplied for a command")
		}
		c.sys.Root.Send(c.node(3), &actors.Unsubscribe{PID: sub})
		c.status(3) // the unsubscription is handled before this answer
		if _, err := c.propose(lead, "unseen"); err != nil {
			t.Fatal(err)
		}
		c.waitApplied(2, 3)
		if applied("unseen") {
			t.Fatal("an unsubscribed actor still gets events")
		}
	})
}
