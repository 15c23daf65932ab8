package actors_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/cluster/transport"
	"github.com/flotilla-raft/flotilla/messages"
)

// hub routes messages between the chanTransport values of one process by node id.
// A real transport carries them over a network or a message queue instead;
// what the node needs of it is the same small contract.
type hub struct {
	mu    sync.Mutex
	nodes map[uint64]*chanTransport
}

// chanTransport is a custom transport.Transport: Send queues the message and
// returns at once (never waiting for the peer), and one goroutine per
// transport hands inbound messages to the node's handler, in order. A full
// queue drops the message: Raft resends what was lost. A transport of your
// own can prove itself with transporttest.Run.
type chanTransport struct {
	hub     *hub
	id      uint64
	inbox   chan *messages.Message
	done    chan struct{}
	mu      sync.Mutex
	started bool
	closed  bool
	wg      sync.WaitGroup
}

func (h *hub) transport(id uint64) *chanTransport {
	t := &chanTransport{hub: h, id: id, inbox: make(chan *messages.Message, 1024), done: make(chan struct{})}
	h.mu.Lock()
	h.nodes[id] = t
	h.mu.Unlock()
	return t
}

func (t *chanTransport) Start(_ context.Context, h transport.Handler) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.closed:
		return transport.ErrClosed
	case t.started:
		return transport.ErrAlreadyStarted
	}
	t.started = true
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		for {
			select {
			case m := <-t.inbox:
				h(m)
			case <-t.done:
				return
			}
		}
	}()
	return nil
}

func (t *chanTransport) Send(to transport.Peer, m *messages.Message) error {
	t.mu.Lock()
	closed := t.closed
	t.mu.Unlock()
	if closed {
		return transport.ErrClosed
	}
	t.hub.mu.Lock()
	peer := t.hub.nodes[to.ID]
	t.hub.mu.Unlock()
	if peer == nil {
		return transport.ErrUnknownPeer
	}
	select {
	case peer.inbox <- m: // messages are immutable: share, do not copy
	default: // full: dropped, as a network would
	}
	return nil
}

// Close stops delivery; no handler call starts after it returns.
func (t *chanTransport) Close() error {
	t.mu.Lock()
	if !t.closed {
		t.closed = true
		close(t.done)
	}
	t.mu.Unlock()
	t.wg.Wait()
	return nil
}

// A custom Transport in Config.Transport: three nodes over chanTransport.
func ExampleConfig_customTransport() {
	system := actor.NewActorSystem()
	defer system.Shutdown()
	h := &hub{nodes: map[uint64]*chanTransport{}}
	boot := &messages.ClusterConfig{Settings: &messages.Settings{PreVote: true, CheckQuorum: true, ElectionTicks: 10, HeartbeatTicks: 1}}
	for id := uint64(1); id <= 3; id++ {
		boot.Voters = append(boot.Voters, &messages.Member{Id: id, Address: fmt.Sprintf("chan-%d", id)})
	}
	nodes := map[uint64]*actor.PID{}
	for _, m := range boot.Voters {
		cfg := actors.DefaultConfig()
		cfg.ID, cfg.Address, cfg.Bootstrap = m.Id, m.Address, boot
		cfg.Transport = h.transport(m.Id) // the node starts it, and closes it when it stops
		cfg.StateMachine = &adder{}
		cfg.TickInterval = 20 * time.Millisecond
		props, err := actors.Props(cfg)
		if err != nil {
			fmt.Println(err)
			return
		}
		nodes[m.Id] = system.Root.Spawn(props)
	}
	leader := uint64(1) // a guess: propose follows the redirect
	if _, err := propose(system.Root, nodes, &leader, &actors.Propose{Data: []byte("5"), ClientID: 1, Sequence: 1}); err != nil {
		fmt.Println(err)
		return
	}
	for _, id := range []uint64{1, 2, 3} { // a linearizable read on every node
		rd, err := actors.Request[*actors.ReadResponse](system.Root, nodes[id], &actors.Read{}, time.Second)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("node %d reads %v\n", id, rd.Result)
	}
	for _, id := range []uint64{1, 2, 3} {
		_, _ = actors.Request[*actors.Stopped](system.Root, nodes[id], &actors.Stop{}, 5*time.Second)
	}
	// Output:
	// node 1 reads 5
	// node 2 reads 5
	// node 3 reads 5
}
