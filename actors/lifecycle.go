package actors

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/scheduler"
	"github.com/flotilla-raft/flotilla/actors/raft"
	"github.com/flotilla-raft/flotilla/cluster/transport"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
	"github.com/flotilla-raft/flotilla/tracing"
)

// The node actor's life: start, ticks, pause, orderly stop and stop on a
// failure, and the supervision of its children.

// start loads the node's state from its store and spawns its children.
func (n *node) start(ctx actor.Context) error {
	n.self = ctx.Self()
	n.root = ctx.ActorSystem().Root
	n.ev.subs = append(n.ev.subs, n.cfg.Subscribers...) // they hear of a failed start too
	store, err := n.sh.acquire(n.self)
	if err != nil {
		return err
	}
	n.sh.pool.open() // a node spawned again from these Props after a stop
	n.kids.replicators = map[uint64]*actor.PID{}
	n.obs.tracer = tracing.NewTracer(n.cfg.TracerProvider, n.cfg.ID)
	n.obs.tr = newTraceState()
	n.obs.metrics = n.sh.nodeMetrics()
	n.pend.proposals = map[uint64]waiter{}
	n.pend.reads = map[string]pendingRead{}
	st, err := loadState(store, n.cfg.StateMachine)
	if err != nil {
		return err
	}
	n.snap.files, _ = store.(persistence.SnapshotFileStore)
	snapData, snapSessions, err := openStartSnapshot(n.snap.files, st, n.cfg.StateMachine)
	if err != nil {
		return err
	}
	defer func() {
		if snapData != nil { // not handed to the applier
			snapData.Close()
		}
	}()
	// raft.New reads the stored log after the snapshot once, in pages, and
	// shows each entry here: the clients' sequences among them (the
	// node's duplicate check at accept), and, for a state machine whose
	// applied index is durable, the session table the entries up to it
	// built (the applier's, see rebuildsSessions).
	n.pend.clientSeqs = newSessionTable(n.cfg.MaxSessions, 0)
	n.noteSessions(snapSessions)
	appSessions := newSessionTable(n.cfg.MaxSessions, n.cfg.SessionTTL)
	rebuild := rebuildsSessions(n.cfg.StateMachine, st.Applied)
	if rebuild && snapSessions != nil {
		appSessions.load(snapSessions)
	}
	st.OnStoredEntry = func(e *messages.Entry) {
		if e.ClientId == 0 {
			return
		}
		n.noteClientSeq(e.ClientId, e.Sequence, e.Index)
		if rebuild && e.Index <= st.Applied {
			rebuildSession(appSessions, e)
		}
	}
	rc := n.cfg.raftConfig()
	if rc.Seed == 0 {
		rc.Seed = time.Now().UnixNano()
	}
	r, err := raft.New(rc, st)
	if err != nil {
		return err
	}
	n.r = r
	n.applied = r.Applied()
	n.inbox.gate = transport.NewGate(n.cfg.ClusterID, n.cfg.ID, r.Admits)
	var err2 error
	n.kids.persister, err2 = ctx.SpawnNamed(n.sh.pool.props(func() actor.Actor {
		return &persister{store: store, node: n.self, tracer: n.obs.tracer, metrics: n.obs.metrics}
	}), "persister")
	if err2 != nil {
		return err2
	}
	if v, ok := store.(persistence.VolatileStore); ok && v.Volatile() {
		n.kids.inline = &persister{store: store, node: n.self, tracer: n.obs.tracer, metrics: n.obs.metrics}
	}
	n.kids.applier, err2 = ctx.SpawnNamed(n.sh.pool.props(func() actor.Actor {
		a := newApplier(n.cfg.ID, n.cfg.StateMachine, n.self, n.ev.subs, r.Applied(), appSessions, n.obs.tracer)
		a.metrics = n.obs.metrics
		a.files = n.snap.files
		return a
	}), "applier")
	if err2 != nil {
		return err2
	}
	if st.Snapshot != nil && st.Applied < st.Snapshot.Metadata.Index {
		ctx.Send(n.kids.applier, &applyBatch{snapshot: st.Snapshot, snapData: snapData})
		snapData = nil // the applier closes it
	}
	if !n.sh.transportStarted {
		self, root := n.self, n.root
		if err := n.cfg.Transport.Start(context.Background(), func(m *messages.Message) { root.Send(self, m) }); err != nil {
			return fmt.Errorf("actors: start transport: %w", err)
		}
		n.sh.transportStarted = true
	}
	if !snapshotCapable(n.cfg.StateMachine) && !n.cfg.NoAutoSnapshots {
		n.log.Warn("the StateMachine does not implement Snapshotter or StreamSnapshotter: no automatic snapshots, the log grows until CompactTo (set Config.NoAutoSnapshots to silence this)")
	}
	n.life.paused = n.cfg.StartPaused
	n.life.gen = tickGen.Add(1)
	n.armTick()
	n.become(r.Role())
	if n.life.paused {
		n.addHistory(Transition{Kind: "paused", Reason: "started paused"})
	}
	n.scheduleFlush(ctx)
	return nil
}

// loadState reads what the store holds but the log: the hard state, the
// snapshot and the state machine's applied index.
func loadState(store persistence.LogStore, sm StateMachine) (raft.InitialState, error) {
	ctx := context.Background()
	var st raft.InitialState
	ps, err := store.State(ctx)
	if err != nil {
		return st, fmt.Errorf("actors: load state: %w", err)
	}
	st.HardState = ps.HardState
	// The core reads the log itself, through the store: New finds its
	// bounds and configurations in it, then keeps only what is not yet
	// durable and its entry cache in memory.
	st.Storage = persistence.NewRaftStorage(store)
	_, files := store.(persistence.SnapshotFileStore)
	if ss, ok := store.(persistence.SnapshotStore); ok && ps.Snapshot != nil && !files {
		snap, err := ss.LoadSnapshot(ctx)
		if err != nil && !errors.Is(err, persistence.ErrNoSnapshot) {
			return st, fmt.Errorf("actors: load snapshot: %w", err)
		}
		st.Snapshot = snap
	}
	if st.Snapshot == nil && ps.Snapshot != nil {
		st.Snapshot = &messages.Snapshot{Metadata: ps.Snapshot}
	}
	if ai, ok := sm.(AppliedIndexer); ok {
		st.Applied, err = ai.AppliedIndex()
		if err != nil {
			return st, fmt.Errorf("actors: state machine applied index: %w", err)
		}
	}
	return st, nil
}

// scanLogPageBytes is the page size of the node's paged reads of the log
// (retention, traceCommits).
const scanLogPageBytes = 1 << 20

// openStartSnapshot opens the data of the snapshot the node starts on,
// when it is in the store's files and is needed: to restore the state
// machine (its applied index is below the snapshot's), or for the session
// table (the applier's table is rebuilt, see rebuildsSessions). The data's
// checksum is checked as it opens: damaged data stops the start with an
// error wrapping ErrCorruptSnapshot, rather than a node that runs on
// without the state it covers. It returns the opened data (for the
// restore; nil when not needed) and the session table.
func openStartSnapshot(files persistence.SnapshotFileStore, st raft.InitialState, sm StateMachine) (persistence.SnapshotData, []sessionEntry, error) {
	md := st.Snapshot.GetMetadata()
	if files == nil || md == nil || len(st.Snapshot.GetData()) > 0 {
		if s := st.Snapshot; s != nil && len(s.Data) > 0 {
			if sessions, _, err := decodeSessions(s.Data, md.GetIndex()); err == nil {
				return nil, sessions, nil
			}
		}
		return nil, nil, nil
	}
	restore := st.Applied < md.Index
	_, dedup := sm.(CommandDeduplicator)
	if !restore && (st.Applied == 0 || dedup) {
		return nil, nil, nil
	}
	d, err := files.OpenSnapshot(context.Background(), md.Index, md.Term)
	if errors.Is(err, persistence.ErrNoSnapshot) {
		return nil, nil, nil // a snapshot without data (CompactTo)
	}
	if errors.Is(err, persistence.ErrCorrupt) {
		return nil, nil, fmt.Errorf("%w: snapshot %d: %w", ErrCorruptSnapshot, md.Index, err)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("actors: open snapshot %d: %w", md.Index, err)
	}
	h, err := readSnapshotHeader(bufio.NewReader(io.NewSectionReader(d, 0, d.Info().Size)))
	if err != nil {
		d.Close()
		return nil, nil, fmt.Errorf("snapshot %d: %w", md.Index, err)
	}
	sessions := toSessions(h.sessions, h.lastUsed, md.Index)
	if !restore {
		d.Close()
		return nil, sessions, nil
	}
	return d, sessions, nil
}

// onTick handles a tick of the timer: the core's clock advances, and a
// stopping leader's hand-over ends when it is no leader any more or the
// core gave up. It reports whether the tick was a live one (not stale, not
// paused); the leader's behavior then does its own part (roles.go).
func (n *node) onTick(ctx actor.Context, t *tick) bool {
	if t.gen != n.life.gen {
		return false // a stale timer: ignore
	}
	steps := n.life.stride
	n.armTick()
	if n.life.paused {
		return false
	}
	n.life.timerFires++
	// A quiesced core is ticked in strides: the ticks the timer stood for
	// (armTick), until it wakes.
	for i := 0; i < steps && (i == 0 || n.r.Quiesced()); i++ {
		n.life.ticks++
		n.r.Tick()
	}
	n.adjustTickRate()
	n.traceTick()
	n.obs.metrics.tick(n.r)
	if s := n.life.stop; s != nil && s.transferring && (s.handOverEnded || n.r.Role() != raft.Leader) {
		s.transferring = false
		n.drain(ctx)
	}
	n.scheduleFlush(ctx)
	return true
}

// resume serves Resume.
func (n *node) resume(ctx actor.Context) {
	if n.life.paused {
		n.life.paused = false
		n.addHistory(Transition{Kind: "resumed", Reason: "resume requested"})
	}
	n.respond(ctx, &Resumed{})
}

// stopping reports whether the node stops (or failed, or its actor exits).
func (n *node) stopping() bool {
	return n.life.stop != nil || n.life.failed || n.life.exiting
}

// tickGen numbers tick timers; only node actors touch it, one message at a
// time each, so it is guarded by an atomic.
var tickGen atomic.Uint64

// armTick schedules the next tick. SendOnce, re-armed on every tick, is
// used rather than SendRepeatedly, whose cancel races with its timer in the
// pinned protoactor version.
func (n *node) armTick() {
	n.life.stride = 1
	if n.life.quiet {
		n.life.stride = max(n.r.QuiesceStride(), 1)
	}
	d := n.cfg.TickInterval * time.Duration(n.life.stride)
	n.life.cancelTick = scheduler.NewTimerScheduler(n.root).SendOnce(d, n.self, &tick{gen: n.life.gen})
}

// adjustTickRate follows the core's quiescence (raft package doc,
// "Quiescence"): a quiesced core's timer fires once per QuiesceStride
// ticks (the next arming takes the stride), and a core that woke (a
// message, a proposal, a read) is ticked at every TickInterval from now:
// the slow timer is replaced at once.
func (n *node) adjustTickRate() {
	q := n.r.Quiesced()
	if q == n.life.quiet || n.life.gen == 0 {
		return
	}
	n.life.quiet = q
	if q {
		return
	}
	if n.life.cancelTick != nil {
		n.life.cancelTick()
	}
	n.life.gen = tickGen.Add(1)
	n.armTick()
}

func (n *node) stopTicking() {
	if n.life.cancelTick != nil {
		n.life.cancelTick()
		n.life.cancelTick = nil
	}
	n.life.gen = 0
}

type stopState struct {
	reply         *actor.PID
	transferring  bool // a leader hands over first
	handOverEnded bool // the core aborted the hand-over (EventTransferAborted)
	draining      bool
	finished      bool // answered and the store released: nothing may fail it now
}

func (n *node) beginStop(ctx actor.Context) {
	if n.life.stop != nil {
		n.respond(ctx, &Stopped{})
		return
	}
	n.life.stop = &stopState{reply: ctx.Sender()}
	n.addHistory(Transition{Kind: "stopping", Reason: "stop requested"})
	if n.r.Role() == raft.Leader && !n.life.paused {
		if to := n.r.TransferTarget(); to != 0 && n.r.TransferLeadership(to) == nil {
			n.life.stop.transferring = true
			n.scheduleFlush(ctx)
			return
		}
	}
	n.drain(ctx)
}

// drain asks the persister to finish every write queued so far.
func (n *node) drain(ctx actor.Context) {
	n.life.stop.draining = true
	n.processReady(ctx)
	ctx.Send(n.kids.persister, &drainRequest{})
}

func (n *node) finishStop(ctx actor.Context) {
	n.answerPending(ctx, ErrStopped)
	n.publish(ctx, &NodeStopped{NodeID: n.cfg.ID, Reason: "stop requested"})
	n.shutdown(ctx)
	n.life.stop.finished = true
	if n.life.stop.reply != nil {
		ctx.Send(n.life.stop.reply, &Stopped{})
		n.life.stop.reply = nil
	}
	ctx.Stop(n.self)
}

// stoppedErr is the answer of a request the node cannot serve because it
// stops: ErrStopped, wrapping the failure when it stops on one.
func (n *node) stoppedErr() error {
	if n.life.failErr != nil {
		return n.life.failErr
	}
	return ErrStopped
}

// failStop stops the node on a failure: never a silent restart.
// A stop that finished (the store released, Stopped answered) is not
// turned into a failure by a child's late error about the released store.
func (n *node) failStop(ctx actor.Context, reason string, err error) {
	if n.life.failed || n.life.stop != nil && n.life.stop.finished {
		return
	}
	n.life.failed = true
	n.life.failErr = fmt.Errorf("%w: %s: %w", ErrStopped, reason, err)
	n.log.Error("node stopping on failure", "reason", reason, "err", err)
	n.answerPending(ctx, n.life.failErr)
	n.publish(ctx, &NodeStopped{NodeID: n.cfg.ID, Reason: reason, Err: err})
	n.shutdown(ctx)
	if n.life.stop != nil && n.life.stop.reply != nil {
		ctx.Send(n.life.stop.reply, &Stopped{})
	}
	ctx.Stop(ctx.Self())
}

// shutdown releases what the node holds: its timer, metrics, transport
// and store. A node that never got its store (ErrStoreInUse) holds only
// its timer: the rest is the running node's.
func (n *node) shutdown(ctx actor.Context) {
	n.stopTicking()
	n.sh.closePool(n.self)
	if n.self == nil || !n.sh.holds(n.self) {
		return
	}
	n.sh.closeMetrics()
	if n.cfg.Transport != nil {
		_ = n.cfg.Transport.Close()
	}
	if err := n.sh.releaseStore(n.self); err != nil {
		n.log.Error("closing the store", "err", err)
	}
}

// childTerminated handles the end of a child: the persister or applier
// ending while the node runs is a failure; a replicator is forgotten.
func (n *node) childTerminated(ctx actor.Context, who *actor.PID) {
	if who.Equal(n.kids.persister) || who.Equal(n.kids.applier) {
		if !n.stopping() {
			err := n.life.childErr
			if err == nil {
				err = fmt.Errorf("actors: %s terminated", who.Id)
			}
			n.failStop(ctx, "a child failed", err)
		}
	}
	if who.Equal(n.kids.receiver) {
		n.kids.receiver = nil
	}
	for id, pid := range n.kids.replicators {
		if who.Equal(pid) {
			delete(n.kids.replicators, id)
		}
	}
}

// HandleFailure supervises the children: a replicator that fails restarts
// (it holds no state); the persister or applier failing stops the node.
func (n *node) HandleFailure(sys *actor.ActorSystem, sup actor.Supervisor, child *actor.PID, rs *actor.RestartStatistics, reason interface{}, message interface{}) {
	if child.Equal(n.kids.persister) || child.Equal(n.kids.applier) {
		n.log.Error("child failed; the node stops", "child", child.Id, "reason", fmt.Sprint(reason))
		if n.life.childErr == nil {
			// HandleFailure runs on the node actor's mailbox: the
			// Terminated that follows stops the node with this reason.
			n.life.childErr = fmt.Errorf("actors: %s panicked: %v", child.Id, reason)
		}
		sup.StopChildren(child)
		return
	}
	sup.RestartChildren(child)
}
