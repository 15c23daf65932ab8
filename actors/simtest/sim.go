package simtest

import (
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/cluster/transport/inmem"
	"github.com/flotilla-raft/flotilla/messages"
)

// This file holds what a run is given and returns (Options, Result), the
// simulator's state, and Run: the outline of one seed (start the founding
// voters and the clients, the fault schedule, heal, converge, the final
// checks, shut down).

// Options choose what one run does. The same Options give the same
// schedule of faults and client operations.
type Options struct {
	Seed uint64
	// Nodes is the number of founding voters (3 or 5).
	Nodes int
	// Clients is the number of concurrent clients. Default 3.
	Clients int
	// Chaos is how long (fake time) faults are injected. Default 3s.
	Chaos time.Duration
	// Membership adds learners, promotes them, removes voters and changes
	// several voters at once (joint consensus).
	Membership bool
	// LeaseReads makes every node serve reads with raft.ReadOnlyLeaseBased.
	LeaseReads bool
	// Settings changes PreVote and CheckQuorum through the log.
	Settings bool
	// SlowApply makes the application actors (the actor way of applying)
	// sometimes slow, rarely slower than the applier waits.
	SlowApply bool
	// ApplyWait is ActorStateMachine.Timeout. Default 500ms.
	ApplyWait time.Duration
	// Backpressure gives every node tiny caps (a few uncommitted bytes,
	// one or two pending proposals, one pending read), so that clients
	// are refused with ErrOverloaded and retry.
	Backpressure bool
	// SessionExpiry gives every node a session table smaller than the
	// number of clients and a short SessionTTL, so that sessions expire
	// and clients move to new ones (ErrSessionExpired).
	SessionExpiry bool
	// Quiesce turns quiescence on (raft.Config.QuiesceTicks 3,
	// QuiescedHeartbeatTicks 15): groups quiesce whenever clients pause,
	// and wake on the next operation or fault.
	Quiesce bool
	// Groups > 1 runs the simulator on multi-group hosts (hosts.go): every
	// machine is one actors.Host on one crashable disk running its node of
	// each of Groups groups; a crash takes down every group's node on the
	// machine at once. Every group has its own clients, history and
	// checks. Membership changes, settings changes, orderly stops, pauses
	// and stale-read probes are left out in this mode.
	Groups int
}

// DefaultOptions is what the sweep runs for a seed: 3 or 5 nodes, every
// fault kind on, membership changes included, lease reads on one seed in
// three, tiny backpressure caps on one in four, sessions that expire on
// one in five, quiescence on one in two (with lease reads on some).
func DefaultOptions(seed uint64) Options {
	n := 3
	if seed%2 == 0 {
		n = 5
	}
	return Options{Seed: seed, Nodes: n, Clients: 3, Chaos: 3 * time.Second,
		Membership: true, LeaseReads: seed%3 == 0, Settings: true, SlowApply: true, Backpressure: seed%4 == 1, SessionExpiry: seed%5 == 3,
		Quiesce: seed%4 <= 1}
}

func (o *Options) ensureDefaults() {
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Clients == 0 {
		o.Clients = 3
	}
	if o.Chaos == 0 {
		o.Chaos = 3 * time.Second
	}
	if o.ApplyWait == 0 {
		o.ApplyWait = 500 * time.Millisecond
	}
}

// Result is what Run returns. Violations is empty on success; the history
// is checked by CheckHistory, outside the synctest bubble.
type Result struct {
	Options    Options
	Violations []string
	Stats      Stats
	Trace      []string
	// Stacks: every goroutine's stack when the seed got stuck.
	Stacks string
	hist   *history
	// groupHists: with Groups > 1, the history of every group (hist is
	// then empty).
	groupHists []*history
}

const (
	tickInterval = 10 * time.Millisecond
	electionTick = 10
	// healBound bounds the time from heal to a committed proposal.
	healBound = 20 * time.Second
)

type sim struct {
	opt    Options
	rng    *rand.Rand // the schedule's
	sys    *actor.ActorSystem
	root   *actor.RootContext
	net    *inmem.Network
	boot   *messages.ClusterConfig
	keys   []string
	rec    *recorder
	hist   *history
	start  time.Time
	probes []*actor.PID
	// probeClient is the simulator's own client (stale-read probes).
	probeClient *client

	mu       sync.Mutex // guards nodes' pid/state, stats, trace, violations
	nodes    map[uint64]*simNode
	order    []uint64 // node ids in creation order
	nextID   uint64
	stats    Stats
	trace    []string
	failures []string
	stopped  map[uint64]error // node id → NodeStopped error not yet handled
	stacks   string
	// healed: the faults are over (application actors are no longer slow).
	healed atomic.Bool

	// With Options.Groups > 1 (hosts.go): the machine-level sim holds the
	// machines and the groups' sims; a group's sim has parent (the
	// machine-level one) and cluster (its cluster id).
	machines []*machine
	groups   []*sim
	parent   *sim
	cluster  uint64
}

// Run runs one seed. It must be called inside a testing/synctest bubble
// (synctest.Test): time is fake, so the run takes a few seconds of fake
// time and far less of real time.
func Run(opt Options) *Result {
	opt.ensureDefaults()
	if opt.Groups > 1 {
		return runHosts(opt)
	}
	s := &sim{opt: opt, rng: rand.New(rand.NewPCG(opt.Seed, 0x5348454c4c)), rec: newRecorder(), hist: newHistory(),
		nodes: map[uint64]*simNode{}, stopped: map[uint64]error{}, start: time.Now()}
	s.sys = actor.NewActorSystemWithConfig(actor.Configure(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) })))
	s.root = s.sys.Root
	s.net = inmem.NewNetwork(int64(opt.Seed))
	s.keys = []string{"a", "b", "c"}
	s.boot = &messages.ClusterConfig{Settings: &messages.Settings{PreVote: true, CheckQuorum: true, ElectionTicks: electionTick, HeartbeatTicks: 2}}
	s.stats.Seeds = 1
	for range opt.Nodes {
		n := s.newNode(true)
		s.boot.Voters = append(s.boot.Voters, &messages.Member{Id: n.id, Address: addr(n.id)})
	}
	s.tracef("seed %d: %d nodes, %d clients, lease reads %v, membership %v", opt.Seed, opt.Nodes, opt.Clients, opt.LeaseReads, opt.Membership)
	for _, id := range s.order {
		s.startNode(s.nodes[id], false)
	}

	s.probeClient = &client{s: s, idx: opt.Clients, id: uint64(1000 + opt.Clients), rng: rand.New(rand.NewPCG(opt.Seed, uint64(opt.Clients+1)))}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range opt.Clients {
		c := &client{s: s, idx: i, id: uint64(1000 + i), rng: rand.New(rand.NewPCG(opt.Seed, uint64(i+1)))}
		wg.Go(func() { c.run(stop) })
	}
	for time.Since(s.start) < opt.Chaos {
		time.Sleep(time.Duration(20+s.rng.IntN(130)) * time.Millisecond)
		s.handleStopped()
		s.step()
	}
	s.heal()
	close(stop)
	wg.Wait()
	s.converge()
	s.checkFinal()
	s.shutdown()
	res := &Result{Options: opt, hist: s.hist}
	s.mu.Lock()
	res.Stats, res.Trace, res.Stacks = s.stats, s.trace, s.stacks
	res.Violations = append(res.Violations, s.failures...)
	s.mu.Unlock()
	s.rec.mu.Lock()
	res.Violations = append(res.Violations, s.rec.violations...)
	s.rec.mu.Unlock()
	res.Violations = append(res.Violations, s.rec.checkGaps()...)
	s.hist.mu.Lock()
	res.Stats.ReadsChecked, res.Stats.OpsChecked = s.hist.reads, len(s.hist.ops)
	for _, v := range s.hist.maybe {
		res.Stats.Unknown += len(v)
	}
	s.hist.mu.Unlock()
	return res
}
