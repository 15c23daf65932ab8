package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/cluster/transport"
	"github.com/flotilla-raft/flotilla/cluster/transport/inmem"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
	"github.com/flotilla-raft/flotilla/persistence/memstore"
	"github.com/flotilla-raft/flotilla/persistence/pebblestore"
)

// Timing shared by every library's cluster, so that no row wins by
// ticking less: 10 ms ticks, a 500 ms election timeout and a 50 ms
// heartbeat (hashicorp/raft: HeartbeatTimeout = ElectionTimeout = 500 ms,
// which also heartbeats every 50 ms).
const (
	tickInterval   = 10 * time.Millisecond
	electionTicks  = 50
	heartbeatTicks = 5
)

var discardLogger = slog.New(slog.DiscardHandler)

// countSM is the state machine of every Flotilla row: it counts what it
// applies and answers nil (no allocation for the result).
type countSM struct {
	n, bytes atomic.Uint64
}

func (s *countSM) Apply(e *messages.Entry) any {
	s.n.Add(1)
	s.bytes.Add(uint64(len(e.Data)))
	return nil
}

// flotillaDriver is the headline row: Flotilla as the README's tour sets
// it up, with nothing a user would not know of. DefaultConfig (100 ms
// ticks), the README's cluster settings (ElectionTicks 10, HeartbeatTicks
// 1, PreVote, CheckQuorum), DataDir for durable and the default memory
// store otherwise, the inmem transport, the default logger and tracer,
// no Campaign: the leader is found by polling GetStatus, and clients call
// ProposeAndWait from the root context.
func flotillaDriver() *driver {
	return &driver{
		name:      "flotilla",
		inProcess: true,
		note: func(mode string) string {
			if mode == modeDurable {
				return "README path: DefaultConfig (100 ms ticks), ElectionTicks 10, HeartbeatTicks 1, DataDir (Pebble), inmem transport, ProposeAndWait from the root context, leader found with GetStatus, no Campaign"
			}
			return "README path: DefaultConfig (100 ms ticks), ElectionTicks 10, HeartbeatTicks 1, default memory store, inmem transport, ProposeAndWait from the root context, leader found with GetStatus, no Campaign"
		},
		start: startFlotillaReadme,
	}
}

// flotillaTunedDriver is bench's own set-up, labelled as such: 10 ms
// ticks with the peers' timings, a Campaign on node 1, a LogStore opened
// by the driver (pebblestore.Open, group 1) behind a counting wrapper, a
// discarding logger.
func flotillaTunedDriver() *driver {
	return &driver{
		name:      "flotilla-tuned",
		inProcess: true,
		note: func(mode string) string {
			if mode == modeDurable {
				return "tuned: TickInterval 10 ms, ElectionTicks 50, HeartbeatTicks 5, Campaign on node 1, LogStore = pebblestore.Open(dir).Group(1) (pebble.Sync), discard logger, inmem transport"
			}
			return "tuned: TickInterval 10 ms, ElectionTicks 50, HeartbeatTicks 5, Campaign on node 1, LogStore = memstore.New(), discard logger, inmem transport"
		},
		start: startFlotilla,
	}
}

// startFlotillaReadme starts the README path's cluster (see flotillaDriver)
// and waits until GetStatus names a leader.
func startFlotillaReadme(ctx context.Context, mode, dir string) (cluster, error) {
	c := &flotillaCluster{sys: actor.NewActorSystem(), net: inmem.NewNetwork(1), nodes: map[uint64]*actor.PID{}}
	boot := &messages.ClusterConfig{
		Settings: &messages.Settings{PreVote: true, CheckQuorum: true, ElectionTicks: 10, HeartbeatTicks: 1},
	}
	for id := uint64(1); id <= 3; id++ {
		boot.Voters = append(boot.Voters, &messages.Member{Id: id, Address: fmt.Sprintf("node-%d", id)})
	}
	for id := uint64(1); id <= 3; id++ {
		cfg := actors.DefaultConfig()
		cfg.ID, cfg.Address, cfg.Bootstrap = id, boot.Voters[id-1].Address, boot
		cfg.Transport = c.net.Transport(id)
		cfg.StateMachine = &countSM{}
		if mode == modeDurable {
			cfg.DataDir = filepath.Join(dir, fmt.Sprintf("node-%d", id))
		}
		props, err := actors.Props(cfg)
		if err != nil {
			c.close()
			return nil, err
		}
		c.nodes[id] = c.sys.Root.Spawn(props)
	}
	for {
		for id, pid := range c.nodes {
			st, err := actors.Request[*actors.Status](c.sys.Root, pid, &actors.GetStatus{}, time.Second)
			if err == nil && st.Role == actors.Leader {
				c.leader.Store(pid)
				c.leadID.Store(id)
				return c, nil
			}
		}
		select {
		case <-ctx.Done():
			c.close()
			return nil, fmt.Errorf("flotilla: no leader: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// flotillaBoot is the founding configuration of a 3-node cluster whose
// member i has address addr(i).
func flotillaBoot(addr func(id uint64) string) *messages.ClusterConfig {
	boot := &messages.ClusterConfig{Settings: &messages.Settings{
		PreVote: true, CheckQuorum: true, ElectionTicks: electionTicks, HeartbeatTicks: heartbeatTicks,
	}}
	for id := uint64(1); id <= 3; id++ {
		boot.Voters = append(boot.Voters, &messages.Member{Id: id, Address: addr(id)})
	}
	return boot
}

// flotillaStore opens node id's LogStore for mode: a Pebble database of
// its own in dir (durable), or a memory store. close releases it.
func flotillaStore(mode, dir string, id uint64) (store persistence.LogStore, close func() error, err error) {
	if mode != modeDurable {
		return memstore.New(), func() error { return nil }, nil
	}
	db, err := pebblestore.Open(filepath.Join(dir, fmt.Sprintf("node-%d", id)), pebblestore.Options{Logger: discardLogger})
	if err != nil {
		return nil, nil, err
	}
	g, err := db.Group(1)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return g, db.Close, nil
}

// commitNewsTicks is the -commit-news-ticks flag (in-process rows only).
var commitNewsTicks int

// flotillaNodeConfig is the node configuration every Flotilla row uses.
func flotillaNodeConfig(id uint64, addr string, boot *messages.ClusterConfig, tr transport.Transport, store persistence.LogStore, subs ...*actor.PID) actors.Config {
	cfg := actors.DefaultConfig()
	cfg.ID = id
	cfg.Address = addr
	cfg.Bootstrap = boot
	cfg.Transport = tr
	cfg.LogStore = store
	cfg.StateMachine = &countSM{}
	cfg.TickInterval = tickInterval
	cfg.Raft.Seed = int64(id)
	cfg.Raft.CommitNewsTicks = commitNewsTicks
	cfg.Subscribers = subs
	return cfg
}

func newQuietActorSystem() *actor.ActorSystem {
	return actor.NewActorSystemWithConfig(actor.Configure(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return discardLogger })))
}

// leaderWatch is an actor that reports the first node to become leader.
// The nodes unsubscribe it once a leader is known (it would otherwise
// receive an EntryApplied event per entry per node).
func leaderWatch(sys *actor.ActorSystem) (*actor.PID, <-chan uint64) {
	ch := make(chan uint64, 16)
	pid := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if rc, ok := ctx.Message().(*actors.RoleChanged); ok && rc.To == actors.Leader {
			select {
			case ch <- rc.NodeID:
			default:
			}
		}
	}))
	return pid, ch
}

type flotillaCluster struct {
	sys     *actor.ActorSystem
	net     *inmem.Network
	nodes   map[uint64]*actor.PID
	leader  atomic.Pointer[actor.PID]
	leadID  atomic.Uint64
	stores  map[uint64]*countingStore
	closers []func() error
}

func startFlotilla(ctx context.Context, mode, dir string) (cluster, error) {
	c := &flotillaCluster{sys: newQuietActorSystem(), net: inmem.NewNetwork(1), nodes: map[uint64]*actor.PID{}, stores: map[uint64]*countingStore{}}
	watch, leaders := leaderWatch(c.sys)
	boot := flotillaBoot(func(id uint64) string { return fmt.Sprintf("node-%d", id) })
	for id := uint64(1); id <= 3; id++ {
		store, closeStore, err := flotillaStore(mode, dir, id)
		if err != nil {
			c.close()
			return nil, err
		}
		c.closers = append(c.closers, closeStore)
		cs := &countingStore{LogStore: store}
		c.stores[id] = cs
		props, err := actors.Props(flotillaNodeConfig(id, boot.Voters[id-1].Address, boot, c.net.Transport(id), cs, watch))
		if err != nil {
			c.close()
			return nil, err
		}
		c.nodes[id] = c.sys.Root.Spawn(props)
	}
	c.sys.Root.Send(c.nodes[1], &actors.Campaign{})
	select {
	case id := <-leaders:
		c.leader.Store(c.nodes[id])
		c.leadID.Store(id)
	case <-ctx.Done():
		c.close()
		return nil, fmt.Errorf("flotilla: no leader: %w", ctx.Err())
	}
	for _, pid := range c.nodes {
		c.sys.Root.Send(pid, &actors.Unsubscribe{PID: watch})
	}
	return c, nil
}

func (c *flotillaCluster) propose(ctx context.Context, data []byte) error {
	return flotillaPropose(ctx, c.sys.Root, &c.leader, c.nodes, data)
}

// flotillaPropose proposes on the known leader and follows a NotLeader
// answer to the new leader (the proposal still counts as an error).
func flotillaPropose(ctx context.Context, root *actor.RootContext, leader *atomic.Pointer[actor.PID], nodes map[uint64]*actor.PID, data []byte) error {
	timeout := proposalTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	_, err := actors.ProposeAndWait(root, leader.Load(), &actors.Propose{Data: data}, timeout)
	if err != nil {
		var nl *actors.NotLeaderError
		if errors.As(err, &nl) && nl.Leader != 0 {
			if pid := nodes[nl.Leader]; pid != nil {
				leader.Store(pid)
			}
		}
	}
	return err
}

// counters implements diagnoser: synced writes (LogStore.Saves) on the
// leader and per follower (the tuned row, whose stores the driver wraps),
// and messages on the network.
func (c *flotillaCluster) counters() counters {
	out := counters{}
	lead := c.leadID.Load()
	for id, s := range c.stores { // the tuned row's counting stores
		if id == lead {
			out["leader writes"] += float64(s.saves.Load())
			out["leader writes_ns"] += float64(s.nanos.Load())
		} else {
			out["follower writes"] += float64(s.saves.Load()) / 2
			out["follower writes_ns"] += float64(s.nanos.Load())
		}
	}
	out["follower writes_ns"] /= 2
	for _, st := range c.net.Stats() {
		out["msgs"] += float64(st.Sent)
	}
	return out
}

func (c *flotillaCluster) close() error {
	var wg sync.WaitGroup
	errs := make([]error, 0, len(c.nodes))
	var mu sync.Mutex
	for id, pid := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := actors.Request[*actors.Stopped](c.sys.Root, pid, &actors.Stop{}, 15*time.Second); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("stop node %d: %w", id, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	// Each node closed its transport when it stopped.
	for _, cl := range c.closers {
		errs = append(errs, cl())
	}
	c.sys.Shutdown()
	return errors.Join(errs...)
}
