package actors_test

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/cluster/transport/inmem"
	"github.com/flotilla-raft/flotilla/messages"
)

// adder is the replicated state of the example: the sum of the numbers
// proposed. The node's applier is its only caller (Apply for each committed
// command, Query for reads), one call at a time, so it needs no lock.
type adder struct{ sum int }

func (a *adder) Apply(e *messages.Entry) any {
	n, err := strconv.Atoi(string(e.Data))
	if err != nil {
		return err // a result like any other: answered to the proposer, not retried
	}
	a.sum += n
	return a.sum
}

func (a *adder) Query(any) (any, error) { return a.sum, nil }

// server is the application's actor on one node: it spawns its Raft node as
// a child and receives the node's events.
type server struct {
	cfg     actors.Config
	started chan<- *actor.PID // the node's PID, for the example's requests
	leaders chan<- uint64     // every leader this node learns of
}

func (s *server) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		s.cfg.Subscribers = []*actor.PID{ctx.Self()} // events from the node's first step on
		props, err := actors.Props(s.cfg)
		if err != nil {
			panic(err) // Validate names every bad field
		}
		s.started <- ctx.Spawn(props) // the node is this actor's child
	case *actors.LeaderChanged:
		if msg.Leader != 0 {
			select {
			case s.leaders <- msg.Leader:
			default:
			}
		}
	}
}

// propose sends p to the node believed to lead, follows NotLeader redirects
// and retries transient failures with the same ClientID and Sequence, so the
// command is applied once however often it is sent.
func propose(ctx actors.Requester, nodes map[uint64]*actor.PID, leader *uint64, p *actors.Propose) (*actors.ProposeResponse, error) {
	var err error
	for range 100 {
		var res *actors.ProposeResponse
		res, err = actors.ProposeAndWait(ctx, nodes[*leader], p, time.Second)
		var nl *actors.NotLeaderError
		switch {
		case err == nil:
			return res, nil
		case errors.As(err, &nl) && nl.Leader != 0:
			*leader = nl.Leader // retry at the leader
		case errors.As(err, &nl), errors.Is(err, actors.ErrRetry), errors.Is(err, actors.ErrOutcomeUnknown):
			time.Sleep(50 * time.Millisecond) // an election or a hand-over is under way
		default:
			return nil, err
		}
	}
	return nil, err
}

// A complete cluster of three nodes in one process: an actor system, one
// application actor per node that spawns its Raft node, one in-memory
// network that all nodes join, proposals, a linearizable read on a follower,
// and the leader's status.
func Example_threeNodes() {
	system := actor.NewActorSystem()
	defer system.Shutdown()
	network := inmem.NewNetwork(1) // one network for every node

	boot := &messages.ClusterConfig{ // the founding voters and the cluster-wide settings
		Settings: &messages.Settings{PreVote: true, CheckQuorum: true, ElectionTicks: 10, HeartbeatTicks: 1},
	}
	for id := uint64(1); id <= 3; id++ {
		boot.Voters = append(boot.Voters, &messages.Member{Id: id, Address: fmt.Sprintf("node-%d", id)})
	}
	leaders := make(chan uint64, 64)
	nodes := map[uint64]*actor.PID{}
	for _, m := range boot.Voters {
		cfg := actors.DefaultConfig()
		cfg.ID, cfg.Address, cfg.Bootstrap = m.Id, m.Address, boot
		cfg.Transport = network.Transport(m.Id)
		cfg.StateMachine = &adder{}
		cfg.TickInterval = 20 * time.Millisecond // elections after 200 to 400 ms
		started := make(chan *actor.PID, 1)
		system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor {
			return &server{cfg: cfg, started: started, leaders: leaders}
		}))
		nodes[m.Id] = <-started
	}

	// Requests come from any actor.Context; outside an actor, the root context.
	ctx := system.Root
	leader := <-leaders
	for i, n := range []string{"1", "2", "3"} {
		res, err := propose(ctx, nodes, &leader, &actors.Propose{Data: []byte(n), ClientID: 7, Sequence: uint64(i + 1)})
		if err != nil {
			fmt.Println("propose:", err)
			return
		}
		fmt.Println("proposed", n, "- the sum is now", res.Result)
	}

	follower := leader%3 + 1
	rd, err := actors.Request[*actors.ReadResponse](ctx, nodes[follower], &actors.Read{}, time.Second)
	for tries := 0; errors.Is(err, actors.ErrRetry) && tries < 100; tries++ {
		// The follower knows no leader yet, or the leader changed: again.
		time.Sleep(50 * time.Millisecond)
		rd, err = actors.Request[*actors.ReadResponse](ctx, nodes[follower], &actors.Read{}, time.Second)
	}
	if err != nil {
		fmt.Println("read:", err)
		return
	}
	fmt.Println("a linearizable read on a follower:", rd.Result)

	st, err := actors.Request[*actors.Status](ctx, nodes[leader], &actors.GetStatus{}, time.Second)
	if err != nil {
		fmt.Println("status:", err)
		return
	}
	fmt.Printf("the leader's status: %s of %d voters\n", st.Role, len(st.Config.GetVoters()))

	for _, id := range []uint64{1, 2, 3} {
		if _, err := actors.Request[*actors.Stopped](ctx, nodes[id], &actors.Stop{}, 5*time.Second); err != nil {
			fmt.Println("stop:", err)
		}
	}
	// Output:
	// proposed 1 - the sum is now 1
	// proposed 2 - the sum is now 3
	// proposed 3 - the sum is now 6
	// a linearizable read on a follower: 6
	// the leader's status: leader of 3 voters
}
