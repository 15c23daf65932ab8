package actors_test

import (
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/cluster/transport/inmem"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence/memstore"
)

// durableCounter keeps its state and applied index "durably" (it outlives
// the node), as a transactional-apply state machine does.
type durableCounter struct {
	mu      sync.Mutex
	applies int
	applied uint64
}

func (d *durableCounter) Apply(e *messages.Entry) any {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.applies++
	d.applied = e.Index
	return d.applies
}

func (d *durableCounter) AppliedIndex() (uint64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.applied, nil
}

// A retried (client, sequence) is not applied again after a restart, even
// though a state machine with a durable applied index is not replayed; and
// the session table rebuilt from the log expires what it expired before
// the restart (MaxSessions), so a later sequence of an expired session is
// refused, not applied.
func TestSessionSurvivesRestartWithAppliedIndexer(t *testing.T) {
	type cmd struct{ client, seq uint64 }
	for _, tc := range []struct {
		name        string
		maxSessions int
		before      []cmd
		after       cmd
		want        error
		applies     int
	}{
		{"retry", 0, []cmd{{7, 1}}, cmd{7, 1}, actors.ErrDuplicate, 1},
		{"expired", 1, []cmd{{7, 1}, {8, 1}}, cmd{7, 2}, actors.ErrSessionExpired, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sys := actor.NewActorSystem()
				store, sm, net := memstore.New(), &durableCounter{}, inmem.NewNetwork(1)
				boot := &messages.ClusterConfig{Voters: []*messages.Member{{Id: 1, Address: "n1"}}}
				start := func() *actor.PID {
					cfg := actors.DefaultConfig()
					cfg.ID, cfg.Bootstrap, cfg.Transport, cfg.LogStore, cfg.StateMachine = 1, boot, net.Transport(1), store, sm
					cfg.TickInterval = 10 * time.Millisecond
					cfg.MaxSessions = tc.maxSessions
					props, err := actors.Props(cfg)
					if err != nil {
						t.Fatal(err)
					}
					return sys.Root.Spawn(props)
				}
				propose := func(pid *actor.PID, c cmd) (*actors.ProposeResponse, error) {
					deadline := time.Now().Add(5 * time.Second)
					for {
						res, err := actors.ProposeAndWait(sys.Root, pid, &actors.Propose{Data: []byte("x"), ClientID: c.client, Sequence: c.seq}, time.Second)
						if !errors.Is(err, actors.ErrNotLeader) || time.Now().After(deadline) {
							return res, err
						}
						time.Sleep(10 * time.Millisecond) // not leader yet
					}
				}
				node := start()
				for _, c := range tc.before {
					if _, err := propose(node, c); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := actors.Request[*actors.Stopped](sys.Root, node, &actors.Stop{}, 5*time.Second); err != nil {
					t.Fatal(err)
				}
				node = start()
				if _, err := propose(node, tc.after); !errors.Is(err, tc.want) {
					t.Fatalf("client %d seq %d after restart: %v, want %v", tc.after.client, tc.after.seq, err, tc.want)
				}
				if sm.applies != tc.applies {
					t.Fatalf("applied %d commands, want %d", sm.applies, tc.applies)
				}
				if _, err := actors.Request[*actors.Stopped](sys.Root, node, &actors.Stop{}, 5*time.Second); err != nil {
					t.Fatal(err)
				}
				_ = net.Transport(1).Close()
				sys.Shutdown()
				time.Sleep(sys.Config.DeadLetterThrottleInterval + time.Millisecond)
			})
		})
	}
}

// A read waiting on a leader that is cut off fails with ErrRetry once
// another leader is elected, instead of waiting out the caller's timeout.
func TestPendingReadFailsWhenLeaderChanges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 3)
		lead := c.waitLeader()
		follower := c.others(lead)[0]
		c.net.Isolate(lead)
		start := time.Now()
		_, err := actors.Request[*actors.ReadResponse](c.sys.Root, c.node(follower), &actors.Read{Query: "n"}, 30*time.Second)
		if !errors.Is(err, actors.ErrRetry) {
			t.Fatalf("read on a follower of a cut-off leader: %v, want ErrRetry", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("the read failed only after %v", d)
		}
		c.net.Heal()
	})
}
