package simtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/asynkron/protoactor-go/actor"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/actors/raft"
	"github.com/flotilla-raft/flotilla/cluster/transport/inmem"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence/pebblestore"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/protobuf/proto"
)

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
}

// DefaultOptions is what the sweep runs for a seed: 3 or 5 nodes, every
// fault kind on, membership changes included, lease reads on one seed in
// three.
func DefaultOptions(seed uint64) Options {
	n := 3
	if seed%2 == 0 {
		n = 5
	}
	return Options{Seed: seed, Nodes: n, Clients: 3, Chaos: 3 * time.Second,
		Membership: true, LeaseReads: seed%3 == 0, Settings: true, SlowApply: true}
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

// Stats counts what a run exercised.
type Stats struct {
	Seeds                 int
	Crashes               int // abrupt stops, unsynced data dropped
	Stops                 int // orderly stops
	Restarts              int
	RestartsAfterSnapshot int // restarts of a node whose store holds a snapshot
	CrashesAfterSnapshot  int // crashes right after a TakeSnapshot answered
	SnapshotsTaken        int
	SnapshotsInstalled    int
	MembershipChanges     int // committed ChangeConfig of members
	SettingsChanges       int // committed ChangeConfig of settings
	Transfers             int // leadership transfers that completed
	Pauses                int // starts paused, later resumed
	Partitions            int
	SlowBeyondWait        int // application actor answers slower than the applier waits
	NodeFailures          int // nodes that stopped themselves with an error (and were restarted)
	ReadsChecked          int
	OpsChecked            int // operations given to porcupine
	Unknown               int // appends whose outcome stayed unknown
	Acked                 int // acknowledged appends checked on every replica
	HealTicks             int // ticks from heal to the first committed proposal, summed
}

// Add adds o to s.
func (s *Stats) Add(o Stats) {
	s.Seeds += o.Seeds
	s.Crashes += o.Crashes
	s.Stops += o.Stops
	s.Restarts += o.Restarts
	s.RestartsAfterSnapshot += o.RestartsAfterSnapshot
	s.CrashesAfterSnapshot += o.CrashesAfterSnapshot
	s.SnapshotsTaken += o.SnapshotsTaken
	s.SnapshotsInstalled += o.SnapshotsInstalled
	s.MembershipChanges += o.MembershipChanges
	s.SettingsChanges += o.SettingsChanges
	s.Transfers += o.Transfers
	s.Pauses += o.Pauses
	s.Partitions += o.Partitions
	s.SlowBeyondWait += o.SlowBeyondWait
	s.NodeFailures += o.NodeFailures
	s.ReadsChecked += o.ReadsChecked
	s.OpsChecked += o.OpsChecked
	s.Unknown += o.Unknown
	s.Acked += o.Acked
	s.HealTicks += o.HealTicks
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
}

const (
	tickInterval = 10 * time.Millisecond
	electionTick = 10
	// healBound bounds the time from heal to a committed proposal.
	healBound = 20 * time.Second
)

type nodeState int

const (
	down nodeState = iota
	running
	paused
)

func (s nodeState) String() string { return [...]string{"down", "running", "paused"}[s] }

type simNode struct {
	id       uint64
	founder  bool
	member   bool // in the configuration as far as the simulator asked
	actorWay bool
	inc      int
	state    nodeState
	pid      *actor.PID
	app      *actor.PID
	rep      *replica
	// halted: the incarnation the simulator stopped (or crashed) last.
	halted int
	fs     *vfs.MemFS
	db     *pebblestore.DB
	group  *pebblestore.Group
	// snapshotted: the node's store may hold a snapshot.
	snapshotted bool
}

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
}

// Run runs one seed. It must be called inside a testing/synctest bubble
// (synctest.Test): time is fake, so the run takes a few seconds of fake
// time and far less of real time.
func Run(opt Options) *Result {
	opt.ensureDefaults()
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

// CheckHistory checks the client history for linearizability (porcupine,
// at most timeout of real time). Call it outside the synctest bubble. When
// the history is illegal and visualize is set, porcupine's HTML view of it
// is written to that path.
func (r *Result) CheckHistory(timeout time.Duration, visualize string) error {
	res, n, err := r.hist.check(timeout, visualize)
	if res == porcupine.Ok {
		return nil
	}
	if err != nil {
		return fmt.Errorf("porcupine: history of %d operations is %s (visualization: %v)", n, res, err)
	}
	if res == porcupine.Illegal && visualize != "" {
		return fmt.Errorf("porcupine: history of %d operations is %s; see %s", n, res, visualize)
	}
	return fmt.Errorf("porcupine: history of %d operations is %s", n, res)
}

func addr(id uint64) string { return fmt.Sprintf("node-%d", id) }

func (s *sim) tracef(format string, args ...any) {
	line := fmt.Sprintf("%7.3fs ", time.Since(s.start).Seconds()) + fmt.Sprintf(format, args...)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.trace = append(s.trace, line)
	if debugTrace {
		println(line)
	}
}

func (s *sim) violation(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.tracef("VIOLATION: %s", msg)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, msg)
}

func (s *sim) count(f func(*Stats)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.stats)
}

// newNode creates a node (not started) with its own crashable disk.
func (s *sim) newNode(founder bool) *simNode {
	s.nextID++
	n := &simNode{id: s.nextID, founder: founder, member: founder, fs: vfs.NewCrashableMem()}
	// The way of applying is chosen per node: both ways run in one cluster
	// and must agree.
	n.actorWay = s.rng.IntN(2) == 0
	s.mu.Lock()
	s.nodes[n.id] = n
	s.order = append(s.order, n.id)
	s.mu.Unlock()
	return n
}

func (s *sim) pidOf(id uint64) *actor.PID {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.nodes[id]; n != nil && n.state != down {
		return n.pid
	}
	return nil
}

func (s *sim) runningIDs() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []uint64
	for _, id := range s.order {
		if n := s.nodes[id]; n.state == running && n.member {
			out = append(out, id)
		}
	}
	return out
}

func (s *sim) openStore(n *simNode) error {
	db, err := pebblestore.Open("/data", pebblestore.Options{FS: n.fs, Logger: slog.New(slog.DiscardHandler),
		CacheSize: 1 << 20, MemTableSize: 1 << 20, MaxOpenFiles: 16})
	if err != nil {
		return err
	}
	g, err := db.Group(1)
	if err != nil {
		_ = db.Close()
		return err
	}
	n.db, n.group = db, g
	return nil
}

// startNode spawns a new node actor for n on its store (opened if needed).
func (s *sim) startNode(n *simNode, startPaused bool) {
	if n.db == nil {
		if err := s.openStore(n); err != nil {
			s.violation("node %d: open its store: %v", n.id, err)
			return
		}
	}
	n.inc++
	rep := newReplica(s.rec, n.id, n.inc)
	cfg := actors.DefaultConfig()
	cfg.ID, cfg.Address = n.id, addr(n.id)
	if n.founder {
		cfg.Bootstrap = s.boot
	}
	cfg.Transport = s.net.Transport(n.id)
	cfg.LogStore = n.group
	cfg.TickInterval = tickInterval
	cfg.Raft.Seed = int64(s.opt.Seed*1000 + n.id*31 + uint64(n.inc))
	if s.opt.LeaseReads {
		cfg.Raft.ReadOnly = raft.ReadOnlyLeaseBased
	}
	cfg.SnapshotEvery = uint64(10 + (s.opt.Seed+n.id)%30)
	cfg.StartPaused = startPaused
	inc := n.inc
	probe := s.root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) { s.onEvent(n, inc, ctx) }))
	s.probes = append(s.probes, probe)
	cfg.Subscribers = []*actor.PID{probe}
	cfg.TracerProvider = noop.NewTracerProvider()
	cfg.Logger = slog.New(&traceHandler{s: s, node: n.id})
	var app *actor.PID
	if n.actorWay {
		a := &appActor{r: rep, rng: rand.New(rand.NewPCG(s.opt.Seed, n.id*100+uint64(n.inc))), slow: s.opt.SlowApply,
			timeout: s.opt.ApplyWait, stats: &s.stats, statsMu: &s.mu, healed: &s.healed}
		app = s.root.Spawn(actor.PropsFromProducer(func() actor.Actor { return a }))
		cfg.StateMachine = &actorMachine{ActorStateMachine: &actors.ActorStateMachine{Sender: s.root, PID: app, Timeout: s.opt.ApplyWait}, r: rep}
	} else {
		cfg.StateMachine = &kvMachine{r: rep}
	}
	props, err := actors.Props(cfg)
	if err != nil {
		s.violation("node %d: props: %v", n.id, err)
		return
	}
	pid := s.root.Spawn(props)
	s.mu.Lock()
	n.pid, n.app, n.rep = pid, app, rep
	n.state = running
	if startPaused {
		n.state = paused
	}
	snapshotted := n.snapshotted // set by the probes
	s.mu.Unlock()
	way := "StateMachine"
	if n.actorWay {
		way = "application actor"
	}
	s.tracef("start node %d (incarnation %d, %s, paused %v, snapshot in store %v)", n.id, n.inc, way, startPaused, snapshotted)
	if n.inc > 1 {
		s.count(func(st *Stats) {
			st.Restarts++
			if snapshotted {
				st.RestartsAfterSnapshot++
			}
		})
	}
}

// halt ends n's actors: abruptly (crash) or in order (actors.Stop). A
// crash then keeps only what its disk synced (and a random part of the
// rest).
func (s *sim) halt(n *simNode, crash bool) {
	s.mu.Lock()
	pid, app := n.pid, n.app
	n.state = down
	n.halted = n.inc
	s.mu.Unlock()
	if crash {
		s.tracef("crash node %d", n.id)
		// No orderly Stop: the actor is stopped where it stands (its
		// children with it); pending requests get no answer.
		_ = s.root.StopFuture(pid).Wait()
	} else {
		s.tracef("stop node %d", n.id)
		if _, err := actors.Request[*actors.Stopped](s.root, pid, &actors.Stop{}, 10*time.Second); err != nil {
			s.tracef("stop node %d: %v", n.id, err)
		}
		_ = s.root.StopFuture(pid).Wait()
	}
	if app != nil {
		_ = s.root.StopFuture(app).Wait()
	}
	_ = s.net.Transport(n.id).Close()
	if crash {
		clone := n.fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: s.rng.IntN(101), RNG: rand.New(rand.NewPCG(s.rng.Uint64(), 1))})
		_ = n.db.Close() // the old process is gone; its files stay behind
		n.fs = clone
		n.db, n.group = nil, nil
		s.count(func(st *Stats) { st.Crashes++ })
	} else {
		if err := n.db.Close(); err != nil {
			s.violation("node %d: close its store after an orderly stop: %v", n.id, err)
		}
		n.db, n.group = nil, nil
		s.count(func(st *Stats) { st.Stops++ })
	}
}

// onEvent is the behaviour of the probe of one node incarnation: it counts
// events and notes the node if it stopped itself.
func (s *sim) onEvent(n *simNode, inc int, ctx actor.Context) {
	switch ev := ctx.Message().(type) {
	case *actors.SnapshotTaken:
		s.markSnapshot(ev.NodeID)
		s.count(func(st *Stats) { st.SnapshotsTaken++ })
	case *actors.SnapshotInstalled:
		s.markSnapshot(ev.NodeID)
		s.count(func(st *Stats) { st.SnapshotsInstalled++ })
	case *actors.NodeStopped:
		if ev.Err == nil {
			return
		}
		s.mu.Lock()
		halted := n.halted >= inc
		s.mu.Unlock()
		if halted {
			// Stopped by the simulator: its children's ends are reported.
			s.tracef("node %d (incarnation %d), halted: %s: %v", ev.NodeID, inc, ev.Reason, ev.Err)
			return
		}
		s.tracef("node %d (incarnation %d) stopped itself: %s: %v", ev.NodeID, inc, ev.Reason, ev.Err)
		s.mu.Lock()
		s.stopped[ev.NodeID] = fmt.Errorf("%s: %w", ev.Reason, ev.Err)
		s.mu.Unlock()
	}
}

func (s *sim) markSnapshot(id uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.nodes[id]; n != nil {
		n.snapshotted = true
	}
}

// handleStopped deals with nodes that stopped themselves: a failure to
// start is a violation; an apply that outlasted the applier's wait is the
// documented fail-stop, and the node is restarted.
func (s *sim) handleStopped() {
	s.mu.Lock()
	stopped := s.stopped
	s.stopped = map[uint64]error{}
	s.mu.Unlock()
	for id, err := range stopped {
		n := s.nodes[id]
		if !expectedFailure(err) {
			s.violation("node %d stopped itself: %v", id, err)
		}
		s.count(func(st *Stats) { st.NodeFailures++ })
		if n.state != down {
			s.halt(n, true)
			s.startNode(n, false)
		}
	}
}

// expectedFailure: a node stops itself, by design, when an entry cannot be
// applied (actors.ErrApplyFailed), here when the application actor does not
// answer within ActorStateMachine.Timeout; it is restarted.
func expectedFailure(err error) bool {
	return errors.Is(err, actors.ErrApplyFailed)
}

// status asks a node for its status (nil if it does not answer).
func (s *sim) status(id uint64) *actors.Status {
	pid := s.pidOf(id)
	if pid == nil {
		return nil
	}
	st, err := actors.Request[*actors.Status](s.root, pid, &actors.GetStatus{}, time.Second)
	if err != nil {
		return nil
	}
	return st
}

// leader returns the running node that believes it leads with the highest
// term, and its status.
func (s *sim) leader() (uint64, *actors.Status) {
	var best *actors.Status
	for _, id := range s.runningIDs() {
		if st := s.status(id); st != nil && st.Role == actors.Leader && (best == nil || st.Term > best.Term) {
			best = st
		}
	}
	if best == nil {
		return 0, nil
	}
	return best.ID, best
}

func (s *sim) downCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := 0
	for _, n := range s.nodes {
		if n.member && n.state != running {
			k++
		}
	}
	return k
}

// pick returns a random node among those in state st (members only).
func (s *sim) pick(st nodeState) *simNode {
	s.mu.Lock()
	var c []*simNode
	for _, id := range s.order {
		if n := s.nodes[id]; n.member && n.state == st {
			c = append(c, n)
		}
	}
	s.mu.Unlock()
	if len(c) == 0 {
		return nil
	}
	return c[s.rng.IntN(len(c))]
}

// step takes one action of the schedule.
func (s *sim) step() {
	// At most a minority of the founding voters is down or paused at once
	// (two of three in a 3-node cluster, which then loses its quorum at
	// times), so the cluster mostly makes progress between faults.
	canFail := s.downCount() < (s.opt.Nodes-1)/2+boolInt(s.opt.Nodes == 3)
	switch p := s.rng.IntN(100); {
	case p < 8:
		ids := s.runningIDs()
		s.rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		k := 1 + s.rng.IntN(max(1, len(ids)/2))
		if k < len(ids) {
			s.tracef("partition %v | %v", ids[:k], ids[k:])
			s.net.Partition(ids[:k], ids[k:])
			s.count(func(st *Stats) { st.Partitions++ })
		}
	case p < 18:
		s.tracef("heal partitions")
		s.net.Heal()
	case p < 24:
		f := inmem.Faults{Drop: s.rng.Float64() * 0.2, Duplicate: s.rng.Float64() * 0.1,
			MaxDelay: time.Duration(s.rng.IntN(30)) * time.Millisecond}
		s.tracef("network faults %+v", f)
		s.net.SetFaults(f)
	case p < 28:
		s.tracef("network faults cleared")
		s.net.ClearFaults()
	case p < 36:
		if n := s.pick(running); n != nil && canFail {
			s.halt(n, true)
		}
	case p < 40:
		if n := s.pick(running); n != nil && canFail {
			s.halt(n, false)
		}
	case p < 44:
		// Crash right after a snapshot.
		if n := s.pick(running); n != nil && canFail {
			if r, err := actors.Request[*actors.TakeSnapshotResponse](s.root, n.pid, &actors.TakeSnapshot{}, time.Second); err == nil {
				s.tracef("node %d took a snapshot at %d", n.id, r.Index)
				s.halt(n, true)
				s.count(func(st *Stats) { st.CrashesAfterSnapshot++ })
			}
		}
	case p < 58:
		if n := s.pick(down); n != nil {
			s.startNode(n, false)
		}
	case p < 62:
		if n := s.pick(running); n != nil {
			r, err := actors.Request[*actors.TakeSnapshotResponse](s.root, n.pid, &actors.TakeSnapshot{}, time.Second)
			if err == nil {
				s.tracef("snapshot on node %d at %d", n.id, r.Index)
			}
		}
	case p < 67:
		s.transfer()
	case p < 71:
		if s.opt.Settings {
			s.changeSettings()
		}
	case p < 74:
		// Pause: stop in order, start paused; a later step resumes it.
		if n := s.pick(running); n != nil && canFail {
			s.halt(n, false)
			s.startNode(n, true)
			s.count(func(st *Stats) { st.Pauses++ })
		}
	case p < 80:
		if n := s.pick(paused); n != nil {
			s.resume(n)
		}
	case p < 90:
		if s.opt.Membership {
			s.changeMembers()
		}
	case p < 94:
		s.staleReadProbe()
	}
}

// staleReadProbe cuts the leader off, has an append acknowledged by the
// rest, then reads on the cut-off node: a leader that still serves reads
// then (a broken lease) answers without the append, which porcupine flags.
func (s *sim) staleReadProbe() {
	lead, _ := s.leader()
	if lead == 0 {
		return
	}
	var rest []uint64
	for _, id := range s.runningIDs() {
		if id != lead {
			rest = append(rest, id)
		}
	}
	s.tracef("stale-read probe: partition [%d] | %v", lead, rest)
	s.net.Partition([]uint64{lead}, rest)
	s.count(func(st *Stats) { st.Partitions++ })
	time.Sleep(time.Duration(s.rng.IntN(3*electionTick)) * tickInterval)
	key := s.keys[s.rng.IntN(len(s.keys))]
	s.probeClient.avoid = lead
	s.probeClient.seq++
	acked := s.probeClient.append(key, fmt.Sprintf("probe.%d", s.probeClient.seq))
	s.probeClient.avoid = 0
	if acked {
		s.probeClient.readOn(lead, s.pidOf(lead), key)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (s *sim) resume(n *simNode) {
	if _, err := actors.Request[*actors.Resumed](s.root, n.pid, &actors.Resume{}, time.Second); err != nil {
		s.tracef("resume node %d: %v", n.id, err)
		return
	}
	s.tracef("resume node %d", n.id)
	s.mu.Lock()
	n.state = running
	s.mu.Unlock()
}

func (s *sim) transfer() {
	lead, st := s.leader()
	if lead == 0 {
		return
	}
	var to uint64
	if s.rng.IntN(2) == 0 {
		for _, v := range st.Config.GetVoters() {
			if v.Id != lead && s.rng.IntN(2) == 0 {
				to = v.Id
			}
		}
	}
	r, err := actors.Request[*actors.TransferLeadershipResponse](s.root, s.pidOf(lead), &actors.TransferLeadership{To: to}, 3*time.Second)
	if err != nil {
		s.tracef("transfer leadership from %d to %d: %v", lead, to, err)
		return
	}
	s.tracef("transfer leadership from %d to %d: leader %d", lead, to, r.Leader)
	{
		s.count(func(st *Stats) { st.Transfers++ })
	}
}

// changeConfig proposes cfg on the leader and waits for it to commit.
func (s *sim) changeConfig(lead uint64, cfg *messages.ClusterConfig, what string) bool {
	pid := s.pidOf(lead)
	if pid == nil {
		return false
	}
	r, err := actors.Request[*actors.ChangeConfigResponse](s.root, pid, &actors.ChangeConfig{Config: cfg}, 3*time.Second)
	if err != nil {
		s.tracef("%s on leader %d: %v", what, lead, err)
		return false
	}
	s.tracef("%s on leader %d: committed at %d", what, lead, r.Index)
	return true
}

func (s *sim) changeSettings() {
	lead, st := s.leader()
	if lead == 0 || st.Config == nil {
		return
	}
	cfg := proto.Clone(st.Config).(*messages.ClusterConfig)
	cfg.OutgoingVoters = nil
	if cfg.Settings == nil {
		cfg.Settings = &messages.Settings{}
	}
	if s.rng.IntN(2) == 0 {
		cfg.Settings.PreVote = !cfg.Settings.PreVote
	} else {
		cfg.Settings.CheckQuorum = !cfg.Settings.CheckQuorum
	}
	if s.changeConfig(lead, cfg, fmt.Sprintf("settings PreVote=%v CheckQuorum=%v", cfg.Settings.PreVote, cfg.Settings.CheckQuorum)) {
		s.count(func(st *Stats) { st.SettingsChanges++ })
	}
}

// changeMembers adds a learner, promotes one, removes a voter, or replaces
// a voter by a learner in one change (two voters changed: joint consensus).
func (s *sim) changeMembers() {
	lead, st := s.leader()
	if lead == 0 || st.Config == nil || len(st.Config.OutgoingVoters) > 0 {
		return
	}
	cfg := proto.Clone(st.Config).(*messages.ClusterConfig)
	var what string
	var added *simNode
	var removed uint64
	switch p := s.rng.IntN(4); {
	case p == 0 && len(cfg.Learners) == 0:
		added = s.newNode(false)
		added.member = true // maybe: the configuration decides at the end
		s.startNode(added, false)
		cfg.Learners = append(cfg.Learners, &messages.Member{Id: added.id, Address: addr(added.id)})
		what = fmt.Sprintf("add learner %d", added.id)
	case p == 1 && len(cfg.Learners) > 0:
		l := cfg.Learners[0]
		cfg.Learners = cfg.Learners[1:]
		cfg.Voters = append(cfg.Voters, l)
		what = fmt.Sprintf("promote learner %d", l.Id)
	case p == 2 && len(cfg.Voters) > 3:
		i := s.rng.IntN(len(cfg.Voters))
		removed = cfg.Voters[i].Id
		cfg.Voters = slices.Delete(cfg.Voters, i, i+1)
		what = fmt.Sprintf("remove voter %d", removed)
	case p == 3 && len(cfg.Learners) > 0:
		l := cfg.Learners[0]
		cfg.Learners = cfg.Learners[1:]
		i := s.rng.IntN(len(cfg.Voters))
		removed = cfg.Voters[i].Id
		cfg.Voters = append(slices.Delete(cfg.Voters, i, i+1), l)
		what = fmt.Sprintf("replace voter %d by learner %d (joint)", removed, l.Id)
	default:
		return
	}
	ok := s.changeConfig(lead, cfg, what)
	if ok {
		s.count(func(st *Stats) { st.MembershipChanges++ })
	}
	if removed != 0 && ok {
		s.mu.Lock()
		n := s.nodes[removed]
		n.member = false
		s.mu.Unlock()
		if n.state != down {
			s.halt(n, false)
		}
	}
}

// heal ends the faults: the network heals, every member is started and
// resumed.
func (s *sim) heal() {
	s.tracef("heal: network healed, every member started and resumed")
	s.healed.Store(true)
	s.net.Heal()
	s.net.ClearFaults()
	s.handleStopped()
	for _, id := range s.order {
		n := s.nodes[id]
		if !n.member {
			continue
		}
		switch n.state {
		case down:
			s.startNode(n, false)
		case paused:
			s.resume(n)
		}
	}
}

// converge checks liveness after the heal: within healBound a leader
// commits a proposal, and every member applies up to it.
func (s *sim) converge() {
	healed := time.Now()
	deadline := healed.Add(healBound)
	var index uint64
	for time.Now().Before(deadline) {
		s.handleStopped()
		lead, _ := s.leader()
		if lead != 0 {
			// One session: a retry does not append the marker twice.
			r, err := actors.ProposeAndWait(s.root, s.pidOf(lead), &actors.Propose{Data: encodeCommand("marker", "end"), ClientID: 999, Sequence: 1}, time.Second)
			if err == nil || errors.Is(err, actors.ErrDuplicate) && r != nil && r.Index > 0 {
				index = r.Index
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if index == 0 {
		s.violation("no leader committed a proposal within %v (%d ticks) after the faults healed", healBound, healBound/tickInterval)
		s.traceStatuses()
		s.saveStacks()
		return
	}
	if _, st := s.leader(); st != nil && st.Config != nil {
		s.syncMembers(st.Config)
	}
	ticks := int(time.Since(healed) / tickInterval)
	s.count(func(st *Stats) { st.HealTicks += ticks })
	s.tracef("progress after heal: marker committed at index %d after %d ticks", index, ticks)
	for {
		s.handleStopped()
		behind := ""
		for _, id := range s.runningIDs() {
			if st := s.status(id); st == nil || st.Applied < index {
				behind = fmt.Sprintf("node %d: %v", id, st)
				break
			}
		}
		if behind == "" {
			return
		}
		if time.Now().After(deadline) {
			s.violation("not every member applied index %d within %v after the heal: %s", index, healBound, behind)
			s.traceStatuses()
			s.saveStacks()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// syncMembers makes the simulator's idea of the members the leader's
// configuration: a change whose outcome the simulator did not learn may
// have committed or not. Members that are down are started; others are
// stopped.
func (s *sim) syncMembers(cfg *messages.ClusterConfig) {
	in := map[uint64]bool{}
	for _, m := range append(append(slices.Clone(cfg.Voters), cfg.Learners...), cfg.OutgoingVoters...) {
		in[m.Id] = true
	}
	for _, id := range s.order {
		n := s.nodes[id]
		s.mu.Lock()
		was := n.member
		n.member = in[id]
		s.mu.Unlock()
		switch {
		case in[id] && n.state == down:
			s.startNode(n, false)
		case !in[id] && n.state != down:
			s.halt(n, false)
		}
		if was != in[id] {
			s.tracef("node %d is a member: %v (the leader's configuration)", id, in[id])
		}
	}
}

// traceStatuses puts every running member's status in the trace.
func (s *sim) traceStatuses() {
	for _, id := range s.runningIDs() {
		if st := s.status(id); st != nil {
			s.tracef("status %v; config %v", st, st.Config)
		} else {
			s.tracef("status of node %d: no answer", id)
		}
	}
}

// saveStacks keeps every goroutine's stack (of the process: in a parallel
// sweep, other seeds' too) for the trace of a stuck seed.
func (s *sim) saveStacks() {
	buf := make([]byte, 1<<22)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stacks = string(buf[:runtime.Stack(buf, true)])
}

// checkFinal: every member holds every acknowledged append exactly once,
// and no append twice; all members have the same state.
func (s *sim) checkFinal() {
	s.hist.mu.Lock()
	acked := s.hist.acked
	s.hist.mu.Unlock()
	var refID uint64
	var ref map[string][]string
	var refLast, refChain uint64
	for _, id := range s.runningIDs() {
		n := s.nodes[id]
		last, chain, kv := n.rep.state()
		for key, vals := range acked {
			have := map[string]int{}
			for _, v := range kv[key] {
				have[v]++
			}
			for _, v := range vals {
				if have[v] != 1 {
					s.violation("node %d holds acknowledged append %s=%s %d times", id, key, v, have[v])
				}
			}
		}
		for key, list := range kv {
			seen := map[string]bool{}
			for _, v := range list {
				if seen[v] {
					s.violation("node %d holds append %s=%s twice", id, key, v)
				}
				seen[v] = true
			}
		}
		if ref == nil {
			refID, ref, refLast, refChain = id, kv, last, chain
			continue
		}
		if last != refLast || chain != refChain {
			s.violation("node %d applied up to command %d (chain %x), node %d up to %d (chain %x)", id, last, chain, refID, refLast, refChain)
		}
	}
	s.count(func(st *Stats) {
		for _, v := range acked {
			st.Acked += len(v)
		}
	})
}

func (s *sim) shutdown() {
	for _, id := range s.order {
		n := s.nodes[id]
		if n.state != down {
			s.halt(n, false)
		}
	}
	for _, p := range s.probes {
		s.root.Stop(p)
	}
	s.sys.Shutdown()
	// protoactor's dead-letter throttle parks a goroutine on a ticker for
	// DeadLetterThrottleInterval, and a future still waiting on a stopped
	// actor ends at its timeout: let fake time pass them.
	time.Sleep(max(s.sys.Config.DeadLetterThrottleInterval, 11*time.Second) + time.Millisecond)
}

// traceHandler puts the nodes' warnings and errors into the step trace.
type traceHandler struct {
	s     *sim
	node  uint64
	attrs []slog.Attr
}

func (h *traceHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h *traceHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	for _, a := range h.attrs {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	h.s.tracef("log %s: %s%s", r.Level, r.Message, b.String())
	return nil
}

func (h *traceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &traceHandler{s: h.s, node: h.node, attrs: append(slices.Clone(h.attrs), as...)}
}

func (h *traceHandler) WithGroup(string) slog.Handler { return h }

// String prints the counters a sweep reports.
func (s Stats) String() string {
	return fmt.Sprintf("%d seeds; %d crashes (%d right after a snapshot), %d orderly stops, %d restarts (%d with a snapshot in the store), "+
		"%d snapshots taken, %d installed; %d membership changes, %d settings changes, %d leadership transfers, %d pauses, %d partitions; "+
		"%d slow applies beyond the wait, %d nodes stopped themselves; %d operations checked by porcupine (%d reads, %d unknown outcomes), "+
		"%d acknowledged appends checked on every replica; %d ticks from heal to progress (total)",
		s.Seeds, s.Crashes, s.CrashesAfterSnapshot, s.Stops, s.Restarts, s.RestartsAfterSnapshot,
		s.SnapshotsTaken, s.SnapshotsInstalled, s.MembershipChanges, s.SettingsChanges, s.Transfers, s.Pauses, s.Partitions,
		s.SlowBeyondWait, s.NodeFailures, s.OpsChecked, s.ReadsChecked, s.Unknown, s.Acked, s.HealTicks)
}

// debugTrace (SIMSHELL_DEBUG=1) also prints the step trace as it grows, to
// see where a run that never ends is stuck.
var debugTrace = os.Getenv("SIMSHELL_DEBUG") != ""
