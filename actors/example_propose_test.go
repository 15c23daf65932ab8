package actors_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/cluster/transport/inmem"
	"github.com/flotilla-raft/flotilla/messages"
)

// Proposing and handling every answer: a one-voter cluster (it elects
// itself), and a client that numbers its commands so that retries are safe.
func ExampleProposeAndWait() {
	system := actor.NewActorSystem()
	defer system.Shutdown()
	cfg := actors.DefaultConfig()
	cfg.ID, cfg.Address = 1, "node-1"
	cfg.Bootstrap = &messages.ClusterConfig{Voters: []*messages.Member{{Id: 1, Address: "node-1"}}}
	cfg.Transport = inmem.NewNetwork(1).Transport(1)
	cfg.StateMachine = &adder{}
	cfg.TickInterval = 10 * time.Millisecond
	props, err := actors.Props(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	node := system.Root.Spawn(props)

	const client = 42 // one id per client; Sequence counts its commands
	for seq, n := range []string{"40", "2"} {
		p := &actors.Propose{Data: []byte(n), ClientID: client, Sequence: uint64(seq + 1)}
	retry:
		for {
			res, err := actors.ProposeAndWait(system.Root, node, p, time.Second)
			var notLeader *actors.NotLeaderError
			switch {
			case err == nil:
				fmt.Printf("applied %s: the state machine answered %v\n", n, res.Result)
				break retry
			case errors.Is(err, actors.ErrDuplicate):
				fmt.Printf("%s was applied before (its result is no longer known)\n", n)
				break retry
			case errors.As(err, &notLeader):
				// Send p to notLeader.Leader; 0 while an election runs: wait.
				time.Sleep(20 * time.Millisecond)
			case errors.Is(err, actors.ErrRetry), errors.Is(err, actors.ErrOutcomeUnknown):
				// Transient, or the wait expired: the same p again is safe.
				time.Sleep(20 * time.Millisecond)
			default: // ErrStopped, ErrPaused, raft.ErrProposalTooLarge
				fmt.Println("giving up:", err)
				return
			}
		}
	}
	_, _ = actors.Request[*actors.Stopped](system.Root, node, &actors.Stop{}, 5*time.Second)
	// Output:
	// applied 40: the state machine answered 40
	// applied 2: the state machine answered 42
}
