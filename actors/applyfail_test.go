package actors_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence/memstore"
)

// appActor applies commands for an ActorStateMachine; while stalled it
// does not answer (a slow application).
type appActor struct {
	stall *atomic.Bool
	mu    *sync.Mutex
	cmds  *[]string
}

func (a *appActor) Receive(ctx actor.Context) {
	if req, ok := ctx.Message().(*actors.ApplyRequest); ok {
		if a.stall.Load() {
			return
		}
		a.mu.Lock()
		*a.cmds = append(*a.cmds, string(req.Entry.Data))
		n := len(*a.cmds)
		a.mu.Unlock()
		ctx.Respond(&actors.ApplyResult{Result: n})
	}
}

// An application actor that does not answer in time stops the node: the
// entry is not recorded as applied with an error for a result, its
// proposer is answered ErrStopped with the reason, and a retry after the
// restart is applied (the failure was not cached in the session table).
func TestSlowApplicationActorStopsTheNode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := memstore.New()
		var stall atomic.Bool
		var mu sync.Mutex
		var cmds []string
		start := func() *solo {
			return newSolo(t, func(cfg *actors.Config) {
				cfg.LogStore = store
				sys := actor.NewActorSystem()
				app := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &appActor{stall: &stall, mu: &mu, cmds: &cmds} }))
				t.Cleanup(sys.Shutdown)
				cfg.StateMachine = &actors.ActorStateMachine{Sender: sys.Root, PID: app, Timeout: time.Second}
			})
		}
		s := start()
		propose := func(s *solo, data string, seq uint64) (*actors.ProposeResponse, error) {
			deadline := time.Now().Add(5 * time.Second)
			for {
				res, err := actors.ProposeAndWait(s.sys.Root, s.node, &actors.Propose{Data: []byte(data), ClientID: 7, Sequence: seq}, 5*time.Second)
				if !errors.Is(err, actors.ErrNotLeader) || time.Now().After(deadline) {
					return res, err
				}
				time.Sleep(10 * time.Millisecond) // electing itself (fake time)
			}
		}
		if res, err := propose(s, "a", 1); err != nil || res.Result != 1 {
			t.Fatalf("first command: %v %v", res, err)
		}
		stall.Store(true)
		res, err := propose(s, "b", 2)
		if !errors.Is(err, actors.ErrStopped) {
			t.Fatalf("a command the application never answered: %+v, %v; want ErrStopped", res, err)
		}
		ns := s.stopped()
		if ns.Err == nil || !strings.Contains(ns.Err.Error(), "did not answer") {
			t.Fatalf("NodeStopped %q %v, want the application's silence as the cause", ns.Reason, ns.Err)
		}
		s.waitGone()

		// Restart with a responsive application: "b" is applied now.
		stall.Store(false)
		mu.Lock()
		cmds = nil // the application restarts empty and is given the log again
		mu.Unlock()
		s = start()
		res, err = propose(s, "b", 2)
		if err != nil || res.Result != 2 {
			t.Fatalf("retry of the unapplied command after restart: %+v, %v; want it applied (result 2)", res, err)
		}
		mu.Lock()
		defer mu.Unlock()
		if fmt.Sprint(cmds) != "[a b]" {
			t.Fatalf("the application applied %v, want [a b]", cmds)
		}
	})
}

// panicSM panics on the command "boom".
type panicSM struct{ listSM }

func (p *panicSM) Apply(e *messages.Entry) any {
	if string(e.Data) == "boom" {
		panic("the application broke on boom")
	}
	return p.listSM.Apply(e)
}

// failSM fails the command "bad" (an error wrapping ErrApplyFailed).
type failSM struct{ listSM }

func (f *failSM) Apply(e *messages.Entry) any {
	if string(e.Data) == "bad" {
		return fmt.Errorf("%w: cannot write %q", actors.ErrApplyFailed, e.Data)
	}
	return f.listSM.Apply(e)
}

// A StateMachine that panics, or fails an entry, stops the node with the
// true reason, and the entry's proposer is answered.
func TestApplyFailureStopsTheNodeAndAnswersTheProposer(t *testing.T) {
	for _, tc := range []struct {
		name, cmd, cause string
		sm               actors.StateMachine
	}{
		{"panic", "boom", "the application broke on boom", &panicSM{}},
		{"failure", "bad", `cannot write "bad"`, &failSM{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newSolo(t, func(cfg *actors.Config) { cfg.StateMachine = tc.sm })
				if _, err := s.propose("ok"); err != nil {
					t.Fatal(err)
				}
				_, err := actors.ProposeAndWait(s.sys.Root, s.node, &actors.Propose{Data: []byte(tc.cmd)}, 5*time.Second)
				if !errors.Is(err, actors.ErrStopped) || !strings.Contains(err.Error(), tc.cause) {
					t.Fatalf("proposer of the failing entry got %v, want ErrStopped with %q", err, tc.cause)
				}
				ns := s.stopped()
				if ns.Err == nil || !strings.Contains(ns.Err.Error(), tc.cause) {
					t.Fatalf("NodeStopped %q %v, want the cause %q", ns.Reason, ns.Err, tc.cause)
				}
			})
		})
	}
}
