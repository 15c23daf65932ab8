package actors_test

import (
	"encoding/binary"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/cluster/transport/inmem"
	"github.com/flotilla-raft/flotilla/messages"
)

// The actor way of applying commands: the application's own actor keeps
// the state. It spawns its Raft node as a child, gives the node an
// ActorStateMachine that points back at itself, forwards clients' commands
// to the node without waiting (the node answers the client directly), and
// applies each committed command when the node's applier asks, in log
// order. It never blocks on the node, so the applier is never kept waiting.

// deposit is a client's command to the application actor.
type deposit struct{ amount uint64 }

// balanceQuery asks the application actor for its balance.
type balanceQuery struct{}

type bankActor struct {
	node    *actor.PID
	balance uint64
	cfg     actors.Config
}

func (b *bankActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		b.cfg.StateMachine = &actors.ActorStateMachine{Sender: ctx.ActorSystem().Root, PID: ctx.Self()}
		props, err := actors.Props(b.cfg)
		if err != nil {
			panic(err) // a test configuration error
		}
		b.node = ctx.Spawn(props) // the Raft node is this actor's child
	case *deposit:
		// Forward as a proposal; the node answers the client itself.
		data := binary.BigEndian.AppendUint64(nil, msg.amount)
		ctx.RequestWithCustomSender(b.node, &actors.Propose{Data: data}, ctx.Sender())
	case *actors.ApplyRequest:
		// Called once per committed entry, in log order, on every node.
		b.balance += binary.BigEndian.Uint64(msg.Entry.Data)
		ctx.Respond(&actors.ApplyResult{Result: b.balance})
	case *balanceQuery:
		ctx.Respond(b.balance)
	case *actors.Stop:
		ctx.RequestWithCustomSender(b.node, msg, ctx.Sender())
	}
}

func TestApplyThroughAnApplicationActor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := actor.NewActorSystem()
		net := inmem.NewNetwork(1)
		cfg := actors.DefaultConfig()
		cfg.ID, cfg.Transport = 1, net.Transport(1)
		cfg.Bootstrap = &messages.ClusterConfig{Voters: []*messages.Member{{Id: 1, Address: "n1"}}}
		cfg.TickInterval = 10 * time.Millisecond
		bank := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &bankActor{cfg: cfg} }))

		var res *actors.ProposeResponse
		deadline := time.Now().Add(5 * time.Second)
		for _, amount := range []uint64{10, 20, 12} {
			for {
				r, err := actors.Request[*actors.ProposeResponse](sys.Root, bank, &deposit{amount: amount}, time.Second)
				if err == nil {
					res = r
					break
				}
				if !errors.Is(err, actors.ErrNotLeader) || time.Now().After(deadline) {
					t.Fatalf("deposit %d: %v", amount, err)
				}
				time.Sleep(10 * time.Millisecond) // the node is still electing itself
			}
		}
		if res.Result != uint64(42) {
			t.Fatalf("the last deposit answered balance %v, want 42", res.Result)
		}
		bal, err := sys.Root.RequestFuture(bank, &balanceQuery{}, time.Second).Result()
		if err != nil || bal != uint64(42) {
			t.Fatalf("the application actor holds %v (%v), want 42", bal, err)
		}
		if _, err := actors.Request[*actors.Stopped](sys.Root, bank, &actors.Stop{}, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		_ = net.Transport(1).Close()
		sys.Shutdown()
		time.Sleep(sys.Config.DeadLetterThrottleInterval + time.Millisecond)
	})
}
