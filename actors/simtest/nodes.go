package simtest

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/actors/raft"
	"github.com/flotilla-raft/flotilla/persistence/pebblestore"
	"go.opentelemetry.io/otel/trace/noop"
)

// This file holds the simulated nodes' lifecycle: creating a node on its own
// crashable disk, starting it (paused or not), halting it (crash or orderly
// stop), resuming it, the probe that watches its events, restarting the
// nodes that stopped themselves, shutting every node down at the end, and
// the questions the schedule and the checks ask of the nodes (status,
// leader, which are running or down).

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

func addr(id uint64) string { return fmt.Sprintf("node-%d", id) }

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
	if s.parent == nil && n.db == nil {
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
	if s.parent == nil {
		cfg.Transport = s.net.Transport(n.id)
		cfg.LogStore = n.group
	} else {
		cfg.ClusterID = s.cluster // the host gives it its store and transport
	}
	cfg.TickInterval = tickInterval
	cfg.Raft.Seed = int64(s.opt.Seed*1000 + n.id*31 + uint64(n.inc))
	if s.opt.LeaseReads {
		cfg.Raft.ReadOnly = raft.ReadOnlyLeaseBased
	}
	cfg.SnapshotEvery = uint64(10 + (s.opt.Seed+n.id)%30)
	// Small entry caches (1 byte: none), apply batches and applier
	// queues: the cores read their log back from Pebble while it runs.
	cfg.Raft.EntryCacheBytes = []uint64{1, 512, 4096}[(s.opt.Seed+n.id)%3]
	cfg.Raft.MaxCommittedSizePerReady = 256
	cfg.Raft.MaxApplyingBytes = 1024
	if s.opt.Seed%3 == 2 {
		cfg.SnapshotBytes = 200 // a few commands: the byte trigger fires first
	}
	if s.opt.Backpressure {
		cfg.Raft.MaxUncommittedBytes = 40 // two or three commands
		cfg.MaxPendingProposals = 1 + int(s.opt.Seed/4%2)
		cfg.MaxPendingReads = 1
	}
	if s.opt.Quiesce {
		cfg.Raft.QuiesceTicks, cfg.Raft.QuiescedHeartbeatTicks = 3, 15
	}
	if s.opt.SessionExpiry {
		cfg.MaxSessions = 2 + int(s.opt.Seed%3) // fewer than the clients
		cfg.SessionTTL = 30 + s.opt.Seed%50     // entries
	}
	// A short retained tail sends lagging followers snapshots; these (a
	// few hundred bytes to a few KiB) go in chunks of 16 to 64 bytes with
	// a window of four, at 1 to 4 KiB/s: faults interrupt transfers.
	cfg.RetainEntries = int(2 + (s.opt.Seed+n.id)%8)
	cfg.SnapshotChunkBytes = 16 << (s.opt.Seed % 3)
	cfg.SnapshotWindowBytes = 4 * cfg.SnapshotChunkBytes
	cfg.SnapshotBandwidth = 1024 * (1 + (s.opt.Seed+n.id)%4)
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
	var pid *actor.PID
	if s.parent != nil {
		var err error
		if pid, err = s.parent.createGroup(cfg); err != nil {
			s.violation("node %d: CreateGroup on its host: %v", n.id, err)
			return
		}
	} else {
		props, err := actors.Props(cfg)
		if err != nil {
			s.violation("node %d: props: %v", n.id, err)
			return
		}
		pid = s.root.Spawn(props)
	}
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
	if s.parent != nil {
		// On a host (Options.Groups > 1) only after the node stopped
		// itself: its actors go; the host releases its group.
		s.tracef("stop node %d (its group only)", n.id)
		_ = s.root.StopFuture(pid).Wait()
		if app != nil {
			_ = s.root.StopFuture(app).Wait()
		}
		return
	}
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
	case *actors.QuiescenceChanged:
		if ev.Quiesced {
			s.count(func(st *Stats) { st.Quiesced++ })
		}
	case *actors.SnapshotReceived:
		s.count(func(st *Stats) { st.SnapshotsReceived++ })
	case *actors.SnapshotSendProgress:
		if ev.ResumedFrom > 0 && ev.Acked == ev.ResumedFrom {
			// The first answer of a transfer that resumed.
			s.tracef("node %d: snapshot %d to %d resumes at %d of %d bytes", ev.NodeID, ev.Index, ev.Peer, ev.ResumedFrom, ev.Size)
			s.count(func(st *Stats) { st.TransfersResumed++ })
		}
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
