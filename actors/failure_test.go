package actors_test

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/cluster/transport/inmem"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
	"github.com/flotilla-raft/flotilla/persistence/memstore"
)

// solo is one node on its own, with a probe that collects its events.
type solo struct {
	t      *testing.T
	sys    *actor.ActorSystem
	net    *inmem.Network
	node   *actor.PID
	events chan any
	cfg    actors.Config // the node's
	props  *actor.Props  // the node's
}

// newSolo starts a single-node cluster; adjust changes its Config.
func newSolo(t *testing.T, adjust func(*actors.Config)) *solo {
	t.Helper()
	s := &solo{t: t, sys: actor.NewActorSystemWithConfig(actor.Configure(actor.WithLoggerFactory(discardActorLogger))),
		net: inmem.NewNetwork(1), events: make(chan any, 1024)}
	probe := s.sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch ctx.Message().(type) {
		case *actor.Started, *actor.Stopping, *actor.Stopped:
			return
		}
		select {
		case s.events <- ctx.Message():
		default:
		}
	}))
	cfg := actors.DefaultConfig()
	cfg.ID, cfg.Transport, cfg.StateMachine = 1, s.net.Transport(1), &listSM{}
	cfg.Bootstrap = &messages.ClusterConfig{Voters: []*messages.Member{{Id: 1, Address: "n1"}}}
	cfg.TickInterval = 10 * time.Millisecond
	cfg.Logger = discardLogger()
	cfg.Subscribers = []*actor.PID{probe}
	if adjust != nil {
		adjust(&cfg)
	}
	props, err := actors.Props(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.cfg, s.props = cfg, props
	s.node = s.sys.Root.Spawn(props)
	t.Cleanup(func() {
		_, _ = actors.Request[*actors.Stopped](s.sys.Root, s.node, &actors.Stop{}, 5*time.Second)
		_ = s.net.Transport(1).Close()
		s.sys.Shutdown()
		time.Sleep(s.sys.Config.DeadLetterThrottleInterval + time.Millisecond)
	})
	return s
}

// propose proposes data, waiting while the node is not leader yet.
func (s *solo) propose(data string) (*actors.ProposeResponse, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		res, err := actors.ProposeAndWait(s.sys.Root, s.node, &actors.Propose{Data: []byte(data)}, 5*time.Second)
		if !errors.Is(err, actors.ErrNotLeader) || time.Now().After(deadline) {
			return res, err
		}
		time.Sleep(10 * time.Millisecond) // electing itself (fake time)
	}
}

// stopped waits for the node's NodeStopped event.
func (s *solo) stopped() *actors.NodeStopped {
	s.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case ev := <-s.events:
			if ns, ok := ev.(*actors.NodeStopped); ok {
				return ns
			}
		case <-deadline:
			s.t.Fatal("no NodeStopped within 30s (fake time)")
		}
	}
}

// waitGone waits until the node actor is gone from the process registry
// (a watcher is told earlier, as soon as the actor begins to stop).
func (s *solo) waitGone() {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, ok := s.sys.ProcessRegistry.Get(s.node); !ok {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatal("the node actor is still registered after 30s (fake time)")
		}
		time.Sleep(time.Millisecond) // fake time
	}
}

// After Stop, requests get ErrStopped, not a dead letter.
func TestRequestsToStoppedNodeGetErrStopped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSolo(t, nil)
		if _, err := s.propose("a"); err != nil {
			t.Fatal(err)
		}
		if _, err := actors.Request[*actors.Stopped](s.sys.Root, s.node, &actors.Stop{}, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if _, err := actors.ProposeAndWait(s.sys.Root, s.node, &actors.Propose{Data: []byte("b")}, time.Second); !errors.Is(err, actors.ErrStopped) {
			t.Fatalf("propose after Stop: %v, want ErrStopped", err)
		}
		// Once the actor is gone too.
		s.waitGone()
		if _, err := actors.ProposeAndWait(s.sys.Root, s.node, &actors.Propose{Data: []byte("c")}, time.Second); !errors.Is(err, actors.ErrStopped) {
			t.Fatalf("propose to the stopped actor: %v, want ErrStopped", err)
		}
		if _, err := actors.Request[*actors.Status](s.sys.Root, s.node, &actors.GetStatus{}, time.Second); !errors.Is(err, actors.ErrStopped) {
			t.Fatalf("status of the stopped actor: %v, want ErrStopped", err)
		}
	})
}

// failingStore cannot read its state.
type failingStore struct {
	*memstore.Store
	err error
}

func (f failingStore) State(context.Context) (persistence.State, error) {
	return persistence.State{}, f.err
}

// A node that cannot start says why in the log by default (Warn and above
// on stderr), publishes NodeStopped with the cause, and answers requests
// with ErrStopped.
func TestStartFailureIsLoggedAndAnswered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		stderr := os.Stderr
		os.Stderr = w // the default logger writes where os.Stderr points when Props runs
		cause := errors.New("disk on fire")
		s := newSolo(t, func(cfg *actors.Config) {
			cfg.Logger = nil // the default
			cfg.LogStore = failingStore{Store: memstore.New(), err: cause}
		})
		os.Stderr = stderr
		ns := s.stopped()
		if !errors.Is(ns.Err, cause) || !strings.Contains(ns.Reason, "start") {
			t.Fatalf("NodeStopped %q %v, want a start failure caused by %v", ns.Reason, ns.Err, cause)
		}
		_ = w.Close()
		logged, _ := io.ReadAll(r)
		if !strings.Contains(string(logged), "disk on fire") || !strings.Contains(string(logged), "ERROR") {
			t.Fatalf("stderr holds %q, want the start failure at ERROR", logged)
		}
		if _, err := actors.ProposeAndWait(s.sys.Root, s.node, &actors.Propose{Data: []byte("b")}, time.Second); !errors.Is(err, actors.ErrStopped) {
			t.Fatalf("propose to a node that failed to start: %v, want ErrStopped", err)
		}
	})
}
