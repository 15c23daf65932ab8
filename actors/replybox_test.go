package actors_test

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors"
)

// ProposeAndWait reuses its reply address between calls, and an answer
// that comes after its wait expired reaches no later caller.
func TestProposeAndWaitReplyAddress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := actor.NewActorSystem()
		senders := map[string]bool{}
		// A stand-in node: "slow" is answered (Index 1) after 2s, anything
		// else at once (Index 2).
		node := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
			p, ok := ctx.Message().(*actors.Propose)
			if !ok {
				return
			}
			senders[ctx.Sender().Id] = true
			if string(p.Data) == "slow" {
				sender := ctx.Sender()
				go func() {
					time.Sleep(2 * time.Second)
					sys.Root.Send(sender, &actors.ProposeResponse{Index: 1})
				}()
				return
			}
			ctx.Respond(&actors.ProposeResponse{Index: 2})
		}))
		for range 100 {
			res, err := actors.ProposeAndWait(sys.Root, node, &actors.Propose{Data: []byte("x")}, time.Second)
			if err != nil || res.Index != 2 {
				t.Fatalf("answer %+v %v, want index 2", res, err)
			}
		}
		if len(senders) != 1 {
			t.Errorf("100 calls in a row used %d reply addresses, want 1 (reused)", len(senders))
		}
		if _, err := actors.ProposeAndWait(sys.Root, node, &actors.Propose{Data: []byte("slow")}, time.Second); !errors.Is(err, actors.ErrOutcomeUnknown) {
			t.Fatalf("expired wait: %v, want ErrOutcomeUnknown", err)
		}
		for range 3 { // across the late answer's arrival at 2s
			res, err := actors.ProposeAndWait(sys.Root, node, &actors.Propose{Data: []byte("x")}, time.Second)
			if err != nil || res.Index != 2 {
				t.Fatalf("after an expired wait: %+v %v, want index 2 (the late answer is not ours)", res, err)
			}
			time.Sleep(time.Second)
		}
		// A node that is gone answers ErrStopped through the same address.
		if err := sys.Root.StopFuture(node).Wait(); err != nil {
			t.Fatal(err)
		}
		if _, err := actors.ProposeAndWait(sys.Root, node, &actors.Propose{Data: []byte("x")}, time.Second); !errors.Is(err, actors.ErrStopped) {
			t.Fatalf("node gone: %v, want ErrStopped", err)
		}
		// protoactor's dead-letter throttle waits this long before it ends.
		time.Sleep(sys.Config.DeadLetterThrottleInterval + time.Millisecond)
		sys.Shutdown()
	})
}

// A node that answered a proposal twice (a bug, but the kind a change to
// the answering paths could bring) must not hand the second answer to the
// next caller of the same reply address: each request is told apart, and
// an answer to an earlier one is dropped.
func TestProposeAndWaitDropsAnAnswerToAnEarlierRequest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := actor.NewActorSystem()
		// A stand-in node that answers each proposal with its data, and
		// "twice" a second time 1ms later; anything else after 5ms.
		node := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
			p, ok := ctx.Message().(*actors.Propose)
			if !ok {
				return
			}
			sender, data := ctx.Sender(), string(p.Data)
			if data == "twice" {
				ctx.Respond(&actors.ProposeResponse{Result: data})
				go func() {
					time.Sleep(time.Millisecond)
					sys.Root.Send(sender, &actors.ProposeResponse{Result: data})
				}()
				return
			}
			go func() {
				time.Sleep(5 * time.Millisecond)
				sys.Root.Send(sender, &actors.ProposeResponse{Result: data})
			}()
		}))
		res, err := actors.ProposeAndWait(sys.Root, node, &actors.Propose{Data: []byte("twice")}, time.Second)
		if err != nil || res.Result != "twice" {
			t.Fatalf("first call: %+v %v", res, err)
		}
		time.Sleep(2 * time.Millisecond) // the second answer arrives, nobody waits
		res, err = actors.ProposeAndWait(sys.Root, node, &actors.Propose{Data: []byte("mine")}, time.Second)
		if err != nil || res.Result != "mine" {
			t.Errorf("next call got %+v %v, want its own answer \"mine\" (the earlier request's second answer is not its)", res, err)
		}
		time.Sleep(sys.Config.DeadLetterThrottleInterval + time.Millisecond)
		sys.Shutdown()
	})
}
