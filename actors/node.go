package actors

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/scheduler"
	"github.com/flotilla-raft/flotilla/actors/raft"
	"github.com/flotilla-raft/flotilla/cluster/transport"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
	"github.com/flotilla-raft/flotilla/persistence/memstore"
	"github.com/flotilla-raft/flotilla/tracing"
)

// Props returns the props of a node actor for cfg, to spawn with the
// application's own context (the node becomes the application actor's
// child). cfg is validated; every problem is reported at once.
func Props(cfg Config) (*actor.Props, error) {
	cfg.ensureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sh := &shared{cfg: cfg, store: cfg.LogStore, pool: newWorkerPool()}
	switch {
	case sh.store != nil:
	case cfg.DataDir != "":
		store, release, err := openDataDir(cfg.DataDir, cfg.ClusterID, cfg.Logger)
		if err != nil {
			return nil, err
		}
		sh.store, sh.release = store, release
	default:
		store := memstore.New()
		sh.store, sh.release = store, store.Close
	}
	return sh.pool.props(func() actor.Actor { return newNode(sh) }), nil
}

// shared is what every instance made by the props' producer shares. The
// node recovers its own panics and stops (Receive), so its supervisor
// restarts it only if that stop itself panicked; the new instance then
// reloads its state from the store.
type shared struct {
	cfg              Config
	store            persistence.LogStore
	release          func() error // closes the store when the node opened it
	metrics          *nodeMetrics // created on the first start, see metrics.go
	transportStarted bool
	pool             *workerPool // the dispatcher of the node and its children
}

// Internal messages.
type (
	tick      struct{ gen uint64 }
	flushNode struct{}
	persisted struct{ id uint64 }
	// persistFailed: the persister could not write; the node stops.
	persistFailed struct{ err error }
	appliedUpTo   struct{ index uint64 }
	// applyFailed: the applier could not apply an entry or restore a
	// snapshot; the node stops.
	applyFailed  struct{ err error }
	snapshotMade struct {
		index uint64
		data  []byte
		err   error
		reply *actor.PID
	}
	drained struct{}
)

// tickGen numbers tick timers; only node actors touch it, one message at a
// time each, so it is guarded by an atomic.
var tickGen atomic.Uint64

type pendingRead struct {
	from  *actor.PID
	query any
	index uint64
	trace *readTrace
	start time.Time // arrival, for the read latency metric
}

type waiter struct {
	pid  *actor.PID
	term uint64
}

type node struct {
	sh       *shared
	cfg      Config
	log      *slog.Logger
	r        *raft.Raft
	behavior actor.Behavior
	self     *actor.PID
	root     *actor.RootContext

	persister, applier *actor.PID
	replicators        map[uint64]*actor.PID
	gate               *transport.Gate
	subs               []*actor.PID

	flushQueued bool
	gen         uint64
	cancelTick  scheduler.CancelFunc
	paused      bool
	failed      bool
	failErr     error // ErrStopped wrapping the failure, once failed
	exiting     bool  // the actor is stopping or restarting
	panicking   bool  // failStop after a panic is under way
	childErr    error // why the persister or applier failed (a panic)

	proposals    map[uint64]waiter // index -> proposer
	reads        map[string]pendingRead
	readSeq      uint64
	readsByIndex []pendingRead // waiting for the applier
	applied      uint64        // confirmed by the applier
	memberOps    []*memberOp   // membership changes under way (membership.go)
	transfer     *transferState
	stop         *stopState
	snapshotting bool
	lastSnapshot uint64
	lazyPending  map[uint64]bool   // peers whose snapshot the applier is making (CompactTo)
	clientSeqs   map[uint64]uint64 // client -> highest sequence in the log (accept.go)
	history      []Transition
	drops        DropCounts
	ticks        uint64            // ticks since start
	lastHeard    map[uint64]uint64 // peer -> tick of its last message

	tracer  *tracing.Tracer
	tr      traceState // spans that outlive one message (trace.go)
	metrics *nodeMetrics
}

type transferState struct {
	reply *actor.PID
	ticks int
	from  uint64 // leader term when it began
}

type stopState struct {
	reply        *actor.PID
	ticks        int
	transferring bool
	draining     bool
	finished     bool // answered and the store released: nothing may fail it now
}

func newNode(sh *shared) *node {
	n := &node{sh: sh, cfg: sh.cfg, log: sh.cfg.Logger.With("node", sh.cfg.ID)}
	n.behavior = actor.NewBehavior()
	n.behavior.Become(n.follower)
	return n
}

// Receive dispatches to the behavior of the current role. A panic in the
// node actor stops the node with the panic as the reason (see failStop):
// it is not handed to the supervisor, whose restart would drop the
// message and the pending requests' answers with the old instance.
func (n *node) Receive(ctx actor.Context) {
	defer func() {
		if r := recover(); r != nil {
			if n.panicking {
				panic(r) // failing failed: let the supervisor have it
			}
			n.panicking = true
			err := fmt.Errorf("actors: node actor panicked handling %T: %v", ctx.Message(), r)
			n.log.Error("node actor panicked", "err", err, "stack", string(debug.Stack()))
			n.failStop(ctx, "node actor panicked", err)
		}
	}()
	n.behavior.Receive(ctx)
}

// follower is the behavior of a follower: it redirects what needs the leader.
func (n *node) follower(ctx actor.Context) {
	if n.common(ctx) {
		return
	}
	n.notLeader(ctx)
}

// candidate is the behavior of a candidate or pre-candidate: no leader is
// known, so leader-only requests are refused with NotLeader{0}.
func (n *node) candidate(ctx actor.Context) {
	if n.common(ctx) {
		return
	}
	n.notLeader(ctx)
}

// leader is the behavior of the leader: proposals, configuration changes
// and transfers are served here.
func (n *node) leader(ctx actor.Context) {
	if n.common(ctx) {
		return
	}
	switch msg := ctx.Message().(type) {
	case *Propose:
		e := &messages.Entry{Data: msg.Data, ClientId: msg.ClientID, Sequence: msg.Sequence, TraceParent: msg.TraceParent}
		idx, term, err := n.r.Propose(e)
		if err != nil {
			n.respond(ctx, &ProposeResponse{Err: mapErr(err)})
			return
		}
		n.accepted(ctx, msg, idx, term)
		n.traceProposal(msg.TraceParent, e, idx, term)
		n.metrics.proposed(idx)
		if s := ctx.Sender(); s != nil {
			n.proposals[idx] = waiter{pid: s, term: term}
		}
		n.scheduleFlush(ctx)
	case *ChangeConfig, *AddMember, *RemoveMember, *PromoteLearner:
		n.changeMembership(ctx, msg)
	case *TransferLeadership:
		to := msg.To
		if to == 0 {
			to = n.mostUpToDatePeer()
		}
		if to == 0 {
			n.respond(ctx, &TransferLeadershipResponse{Err: fmt.Errorf("%w: no other voter to transfer to", ErrRetry)})
			return
		}
		if err := n.r.TransferLeadership(to); err != nil {
			n.respond(ctx, &TransferLeadershipResponse{Err: mapErr(err)})
			return
		}
		n.transfer = &transferState{reply: ctx.Sender(), from: n.r.Term()}
		n.traceTransfer(to)
		n.scheduleFlush(ctx)
	}
}

func (n *node) notLeader(ctx actor.Context) {
	nl := &NotLeaderError{Leader: n.r.Leader(), LeaderAddress: n.r.LeaderAddress()}
	switch ctx.Message().(type) {
	case *Propose:
		n.respond(ctx, &ProposeResponse{Err: nl})
	case *ChangeConfig:
		n.respond(ctx, &ChangeConfigResponse{Err: nl})
	case *AddMember, *RemoveMember, *PromoteLearner:
		n.respond(ctx, &MembershipResponse{Err: nl})
	case *TransferLeadership:
		n.respond(ctx, &TransferLeadershipResponse{Err: nl})
	}
}

func mapErr(err error) error {
	switch {
	case errors.Is(err, raft.ErrTransferInProgress), errors.Is(err, raft.ErrConfigChangePending), errors.Is(err, raft.ErrNoLeader):
		return fmt.Errorf("%w: %w", ErrRetry, err)
	}
	return err
}

func (n *node) respond(ctx actor.Context, msg any) {
	if ctx.Sender() != nil {
		ctx.Respond(msg)
	}
}

// common handles what every role handles alike; it reports whether the
// message was consumed.
func (n *node) common(ctx actor.Context) bool {
	if n.r == nil {
		switch ctx.Message().(type) {
		case *actor.Started:
		case *actor.Stopping, *actor.Stopped, *actor.Restarting:
			return true
		default:
			// Not started (a failed start): refuse.
			n.refuse(ctx, n.stoppedErr())
			return true
		}
	}
	if n.stop != nil || n.failed || n.exiting {
		switch ctx.Message().(type) {
		case *Read, *TakeSnapshot:
			n.refuse(ctx, n.stoppedErr())
			return true
		}
	}
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		if err := n.start(ctx); err != nil {
			n.log.Error("node failed to start", "err", err)
			n.failStop(ctx, "start failed", err)
		}
	case *actor.Restarting:
		n.exiting = true
		n.stopTicking()
	case *actor.Stopping:
		// Its children stop with it: their Terminated is no failure.
		n.exiting = true
		n.stopTicking()
	case *actor.Stopped:
		// Stopped by its parent (or a crash test): release what it holds.
		n.shutdown(ctx)
	case *actor.Terminated:
		if msg.Who.Equal(n.persister) || msg.Who.Equal(n.applier) {
			if n.stop == nil && !n.failed && !n.exiting {
				err := n.childErr
				if err == nil {
					err = fmt.Errorf("actors: %s terminated", msg.Who.Id)
				}
				n.failStop(ctx, "a child failed", err)
			}
		}
		for id, pid := range n.replicators {
			if msg.Who.Equal(pid) {
				delete(n.replicators, id)
			}
		}
	case *messages.Message:
		n.inbound(ctx, msg)
	case *tick:
		if msg.gen != n.gen {
			return true // a stale timer: ignore
		}
		if n.paused {
			n.armTick()
			return true
		}
		n.armTick()
		n.ticks++
		n.r.Tick()
		n.traceTick()
		n.metrics.tick(n.r)
		n.tickControl(ctx)
		n.tickMembership(ctx)
		n.scheduleFlush(ctx)
	case *flushNode:
		n.flushQueued = false
		n.processReady(ctx)
	case *persisted:
		n.r.Persisted(msg.id)
		n.scheduleFlush(ctx)
	case *persistFailed:
		n.failStop(ctx, "storage failure", msg.err)
	case *applyFailed:
		n.failStop(ctx, "apply failed", msg.err)
	case *appliedUpTo:
		n.applied = max(n.applied, msg.index)
		n.traceApplied(msg.index)
		n.metrics.appliedUpTo(msg.index)
		n.serveReads(ctx)
		n.maybeSnapshot(ctx)
	case *snapshotMade:
		n.snapshotMade(ctx, msg)
	case *drained:
		n.finishStop(ctx)
	case *Read:
		n.read(ctx, msg)
	case *Subscribe:
		pid := msg.PID
		if pid == nil {
			pid = ctx.Sender()
		}
		n.subscribe(ctx, pid)
	case *Unsubscribe:
		for i, p := range n.subs {
			if p.Equal(msg.PID) {
				n.subs = append(n.subs[:i:i], n.subs[i+1:]...)
				break
			}
		}
		ctx.Send(n.applier, &setSubscribers{subs: n.subs})
	case *GetStatus:
		n.respond(ctx, n.status())
	case *GetHistory:
		n.respond(ctx, &History{NodeID: n.cfg.ID, Transitions: append([]Transition(nil), n.history...)})
	case *Resume:
		if n.paused {
			n.paused = false
			n.addHistory(Transition{Kind: "resumed", Reason: "resume requested"})
		}
		n.respond(ctx, &Resumed{})
	case *SetLogLevel:
		if n.cfg.LogLevel == nil {
			n.respond(ctx, &SetLogLevelResponse{Err: errors.New("actors: Config.LogLevel is not set: the level is the application's handler's")})
			return true
		}
		prev := n.cfg.LogLevel.Level()
		n.cfg.LogLevel.Set(msg.Level)
		n.log.Info("log level changed", "from", prev, "to", msg.Level)
		n.respond(ctx, &SetLogLevelResponse{Previous: prev})
	case *Campaign:
		n.r.Campaign()
		n.scheduleFlush(ctx)
	case *TakeSnapshot:
		n.requestSnapshot(ctx, ctx.Sender())
	case *CompactTo:
		n.compactTo(ctx, msg)
	case *lazySnapshotMade:
		n.lazySnapshotDone(ctx, msg)
	case *Stop:
		n.beginStop(ctx)
	default:
		if n.stop != nil || n.failed || n.exiting {
			n.refuse(ctx, n.stoppedErr())
			return true
		}
		if n.paused {
			n.refuse(ctx, ErrPaused)
			return true
		}
		return false
	}
	return true
}

// refuse answers a request that cannot be served.
func (n *node) refuse(ctx actor.Context, err error) {
	switch ctx.Message().(type) {
	case *Propose:
		n.respond(ctx, &ProposeResponse{Err: err})
	case *ChangeConfig:
		n.respond(ctx, &ChangeConfigResponse{Err: err})
	case *AddMember, *RemoveMember, *PromoteLearner:
		n.respond(ctx, &MembershipResponse{Err: err})
	case *TransferLeadership:
		n.respond(ctx, &TransferLeadershipResponse{Err: err})
	case *Read:
		n.respond(ctx, &ReadResponse{Err: err})
	case *TakeSnapshot:
		n.respond(ctx, &TakeSnapshotResponse{Err: err})
	case *CompactTo:
		n.respond(ctx, &CompactToResponse{Err: err})
	}
}

func (n *node) start(ctx actor.Context) error {
	n.self = ctx.Self()
	n.root = ctx.ActorSystem().Root
	n.replicators = map[uint64]*actor.PID{}
	n.tracer = tracing.NewTracer(n.cfg.TracerProvider, n.cfg.ID)
	n.tr = newTraceState()
	n.metrics = n.sh.nodeMetrics()
	n.lastHeard = map[uint64]uint64{}
	n.proposals = map[uint64]waiter{}
	n.reads = map[string]pendingRead{}
	n.subs = append(n.subs, n.cfg.Subscribers...)
	st, err := loadState(n.sh.store, n.cfg.StateMachine)
	if err != nil {
		return err
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
	n.clientSeqs = map[uint64]uint64{}
	n.noteClientSeqs(st.Snapshot, st.Entries)
	n.gate = transport.NewGate(n.cfg.ClusterID, n.cfg.ID, n.admits)
	var err2 error
	n.persister, err2 = ctx.SpawnNamed(n.sh.pool.props(func() actor.Actor {
		return &persister{store: n.sh.store, node: n.self, tracer: n.tracer, metrics: n.metrics}
	}), "persister")
	if err2 != nil {
		return err2
	}
	n.applier, err2 = ctx.SpawnNamed(n.sh.pool.props(func() actor.Actor {
		a := newApplier(n.cfg.ID, n.cfg.StateMachine, n.self, n.subs, r.Applied(), n.tracer)
		a.metrics = n.metrics
		a.rebuildSessions(st)
		return a
	}), "applier")
	if err2 != nil {
		return err2
	}
	if st.Snapshot != nil && st.Applied < st.Snapshot.Metadata.Index {
		ctx.Send(n.applier, &applyBatch{snapshot: st.Snapshot})
	}
	if !n.sh.transportStarted {
		self, root := n.self, n.root
		if err := n.cfg.Transport.Start(context.Background(), func(m *messages.Message) { root.Send(self, m) }); err != nil {
			return fmt.Errorf("actors: start transport: %w", err)
		}
		n.sh.transportStarted = true
	}
	n.paused = n.cfg.StartPaused
	n.gen = tickGen.Add(1)
	n.armTick()
	n.become(r.Role())
	if n.paused {
		n.addHistory(Transition{Kind: "paused", Reason: "started paused"})
	}
	n.scheduleFlush(ctx)
	return nil
}

// admits is the gate's membership predicate: members of the configuration,
// and anyone while this node has no configuration yet (a node joining a
// running cluster is first contacted by a leader it does not know).
func (n *node) admits(id uint64) bool {
	return n.r.IsMember(id) || !n.r.IsMember(n.cfg.ID)
}

func (n *node) inbound(ctx actor.Context, m *messages.Message) {
	if n.paused || n.stop != nil && n.stop.draining || n.failed {
		n.drops.Paused++
		n.metrics.drop(m, tracing.DropPaused)
		return
	}
	if !n.metrics.admit(n.gate, m) {
		// A non-member campaigning is told so (it learns its removal).
		n.r.RefuseNonMember(m)
		n.scheduleFlush(ctx)
		return
	}
	if m.Type == messages.MessageType_MSG_SNAPSHOT {
		if err := checkSnapshot(n.cfg.StateMachine, m.GetSnapshot()); err != nil {
			n.drops.CorruptSnapshot++
			n.log.Warn("snapshot refused", "from", m.From, "index", m.GetSnapshot().GetMetadata().GetIndex(), "err", err)
			return
		}
	}
	if n.r.IsMember(m.From) {
		// Members only: the gate passes leaders' messages from any
		// sender, and this map must not grow with them.
		n.lastHeard[m.From] = n.ticks
	}
	n.traceInbound(m)
	if err := n.r.Step(m); err != nil {
		n.drops.Invalid++
		n.metrics.drop(m, tracing.DropInvalid)
		n.log.Warn("message refused", "from", m.From, "type", m.Type, "err", err)
		return
	}
	n.scheduleFlush(ctx)
}

func (n *node) scheduleFlush(ctx actor.Context) {
	if !n.flushQueued {
		n.flushQueued = true
		// Everything already in the mailbox is handled before this, so one
		// Ready covers all of it (batching without a timer).
		ctx.Send(n.self, &flushNode{})
	}
}

// armTick schedules the next tick. SendOnce, re-armed on every tick, is
// used rather than SendRepeatedly, whose cancel races with its timer in the
// pinned protoactor version.
func (n *node) armTick() {
	n.cancelTick = scheduler.NewTimerScheduler(n.root).SendOnce(n.cfg.TickInterval, n.self, &tick{gen: n.gen})
}

func (n *node) stopTicking() {
	if n.cancelTick != nil {
		n.cancelTick()
		n.cancelTick = nil
	}
	n.gen = 0
}

// processReady hands the core's outputs to the children and the transport.
func (n *node) processReady(ctx actor.Context) {
	if n.r == nil || n.failed {
		return
	}
	for n.r.HasReady() {
		rd := n.r.Ready()
		n.noteClientSeqs(rd.Snapshot, rd.Entries)
		if rd.PersistID != 0 {
			ctx.Send(n.persister, &persistRequest{id: rd.PersistID, trace: n.tr.takePersistParent(),
				u: persistence.Update{HardState: rd.HardState, Snapshot: rd.Snapshot, Entries: rd.Entries}})
		}
		// A won election's span ends before the winner's first message
		// leaves: a peer hearing it may end the span the election is a
		// child of (raft.transfer).
		traced := n.traceUntilWon(rd.Events)
		for _, m := range rd.Messages {
			n.send(ctx, m)
		}
		if rd.Snapshot != nil || len(rd.CommittedEntries) > 0 {
			b := &applyBatch{snapshot: rd.Snapshot, entries: rd.CommittedEntries, trace: n.applyTrace(rd.CommittedEntries, rd.Snapshot)}
			for _, e := range rd.CommittedEntries {
				if w, ok := n.proposals[e.Index]; ok {
					b.waiters = append(b.waiters, indexedWaiter{index: e.Index, w: w})
					delete(n.proposals, e.Index)
				}
			}
			ctx.Send(n.applier, b)
		}
		for _, rs := range rd.ReadStates {
			if pr, ok := n.reads[string(rs.Context)]; ok {
				delete(n.reads, string(rs.Context))
				pr.index = rs.Index
				pr.trace.indexKnown(rs.Index)
				n.readsByIndex = append(n.readsByIndex, pr)
			}
		}
		for i, ev := range rd.Events {
			n.onEvent(ctx, ev, i < traced)
		}
	}
	n.traceCommits()
	n.metrics.afterReady(n.r)
	n.serveReads(ctx)
}

// send hands m to the transport: leader traffic through the peer's
// replicator, the rest directly.
func (n *node) send(ctx actor.Context, m *messages.Message) {
	if n.lazySnapshot(ctx, m) {
		return
	}
	n.traceOutbound(m)
	n.metrics.sent(m)
	peer := transport.Peer{ID: m.To, Address: n.r.Address(m.To)}
	if n.r.Role() == raft.Leader {
		switch m.Type {
		case messages.MessageType_MSG_APPEND, messages.MessageType_MSG_SNAPSHOT, messages.MessageType_MSG_HEARTBEAT:
			ctx.Send(n.replicator(ctx, peer), m)
			return
		}
	}
	if err := n.cfg.Transport.Send(peer, m); err != nil {
		n.log.Debug("send failed", "to", m.To, "type", m.Type, "err", err)
		n.metrics.drop(m, tracing.DropSendFailed)
	}
}

func (n *node) replicator(ctx actor.Context, peer transport.Peer) *actor.PID {
	if pid, ok := n.replicators[peer.ID]; ok {
		return pid
	}
	tr := n.cfg.Transport
	pid := ctx.Spawn(n.sh.pool.props(func() actor.Actor { return &replicator{peer: peer, tr: tr, log: n.log, metrics: n.metrics} }))
	n.replicators[peer.ID] = pid
	return pid
}

func (n *node) stopReplicators(ctx actor.Context) {
	for id, pid := range n.replicators {
		ctx.Stop(pid)
		delete(n.replicators, id)
	}
}

// become switches the behavior to the role's.
func (n *node) become(role raft.Role) {
	switch role {
	case raft.Leader:
		n.behavior.Become(n.leader)
	case raft.Candidate, raft.PreCandidate:
		n.behavior.Become(n.candidate)
	default:
		n.behavior.Become(n.follower)
	}
}

// onEvent handles an event of the core; traced: its trace was recorded
// already (traceUntilWon).
func (n *node) onEvent(ctx actor.Context, ev raft.Event, traced bool) {
	if !traced {
		n.traceEvent(ev)
	}
	n.metrics.event(ev)
	t := Transition{Term: ev.Term, Kind: ev.Kind.String(), Leader: ev.Leader, Peer: ev.Peer, Reason: ev.Reason}
	id := n.cfg.ID
	switch ev.Kind {
	case raft.EventRoleChanged:
		t.From, t.To = ev.From.String(), ev.To.String()
		n.become(ev.To)
		if ev.From == raft.Leader {
			n.stopReplicators(ctx)
			n.failMemberOps(ctx, fmt.Errorf("%w: leadership lost before the configuration change completed", ErrOutcomeUnknown))
		}
		n.publish(ctx, &RoleChanged{NodeID: id, Term: ev.Term, From: ev.From, To: ev.To, Reason: ev.Reason})
	case raft.EventTermChanged:
		n.publish(ctx, &TermChanged{NodeID: id, Term: ev.Term, Reason: ev.Reason})
	case raft.EventLeaderChanged:
		n.publish(ctx, &LeaderChanged{NodeID: id, Term: ev.Term, Leader: ev.Leader, LeaderAddress: n.r.Address(ev.Leader)})
		// A read index asked of the old leader (or served by this node as
		// leader) will not be answered now: fail it so the caller retries.
		n.failReads(ctx, fmt.Errorf("%w: the leader changed while the read was pending", ErrRetry))
		if n.transfer != nil && ev.Leader != 0 && ev.Leader != id {
			n.endTransfer(ctx, ev.Leader, nil)
		}
	case raft.EventConfigChanged:
		n.membershipCommitted(ctx, ev)
		n.stopNonMemberReplicators(ctx)
		n.publish(ctx, &MembershipChanged{NodeID: id, Index: ev.Index, Config: ev.Config})
	case raft.EventMemberDeparted:
		n.stopNonMemberReplicators(ctx)
	case raft.EventRemoved:
		n.onRemoved(ctx, ev)
	case raft.EventSnapshotRestored:
		n.publish(ctx, &SnapshotInstalled{NodeID: id, Index: ev.Index})
	}
	n.addHistory(t)
}

func (n *node) addHistory(t Transition) {
	t.Time = time.Now()
	if t.Term == 0 && n.r != nil {
		t.Term = n.r.Term()
	}
	if len(n.history) >= n.cfg.HistorySize {
		copy(n.history, n.history[1:])
		n.history = n.history[:len(n.history)-1]
	}
	n.history = append(n.history, t)
	n.log.Info("transition", "kind", t.Kind, "term", t.Term, "from", t.From, "to", t.To, "leader", t.Leader, "reason", t.Reason)
}

func (n *node) publish(ctx actor.Context, ev any) {
	for _, s := range n.subs {
		ctx.Send(s, ev)
	}
}

func (n *node) subscribe(ctx actor.Context, pid *actor.PID) {
	if pid == nil {
		return
	}
	for _, s := range n.subs {
		if s.Equal(pid) {
			return
		}
	}
	n.subs = append(n.subs, pid)
	ctx.Send(n.applier, &setSubscribers{subs: append([]*actor.PID(nil), n.subs...)})
}

// ---- reads ----

func (n *node) read(ctx actor.Context, msg *Read) {
	n.readSeq++
	key := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, n.cfg.ID), n.readSeq)
	if err := n.r.ReadIndex(key); err != nil {
		n.respond(ctx, &ReadResponse{Err: mapErr(err)})
		return
	}
	n.reads[string(key)] = pendingRead{from: ctx.Sender(), query: msg.Query, trace: n.traceRead(), start: time.Now()}
	n.scheduleFlush(ctx)
}

// serveReads passes reads whose index is applied to the applier, which
// answers them after everything before in its mailbox.
func (n *node) serveReads(ctx actor.Context) {
	keep := n.readsByIndex[:0]
	for _, pr := range n.readsByIndex {
		// Entries up to the read index have been handed to the applier (it
		// runs them before this query) once the core handed them out.
		if pr.index <= n.r.Applied() {
			pr.trace.applied()
			ctx.Send(n.applier, &readQuery{from: pr.from, query: pr.query, index: pr.index, trace: pr.trace, start: pr.start})
		} else {
			keep = append(keep, pr)
		}
	}
	n.readsByIndex = keep
}

// ---- leadership transfer and stop ----

func (n *node) mostUpToDatePeer() uint64 {
	var best uint64
	var bestMatch uint64
	for _, p := range n.r.Status().Progress {
		if p.ID == n.cfg.ID || p.IsLearner || !n.heardRecently(p.ID) {
			continue // a peer not heard from lately cannot take over
		}
		if best == 0 || p.Match > bestMatch {
			best, bestMatch = p.ID, p.Match
		}
	}
	return best
}

// heardRecently reports whether a message from peer arrived within the
// last few heartbeat intervals.
func (n *node) heardRecently(peer uint64) bool {
	at, ok := n.lastHeard[peer]
	hb := uint64(max(n.r.ClusterConfig().GetSettings().GetHeartbeatTicks(), 1))
	return ok && n.ticks-at <= 2*hb+1
}

func (n *node) endTransfer(ctx actor.Context, leader uint64, err error) {
	n.traceTransferEnd(leader, err)
	if n.transfer.reply != nil {
		ctx.Send(n.transfer.reply, &TransferLeadershipResponse{Leader: leader, Err: err})
	}
	n.transfer = nil
}

// tickControl times out transfers and the hand-over of a stopping leader.
func (n *node) tickControl(ctx actor.Context) {
	et := int(n.r.ClusterConfig().GetSettings().GetElectionTicks())
	if n.transfer != nil {
		if n.transfer.ticks++; n.transfer.ticks > 2*et {
			n.endTransfer(ctx, n.r.Leader(), fmt.Errorf("%w: leadership transfer timed out", ErrRetry))
		}
	}
	if s := n.stop; s != nil && s.transferring {
		if s.ticks++; s.ticks > 2*et || n.r.Role() != raft.Leader {
			s.transferring = false
			n.drain(ctx)
		}
	}
}

func (n *node) beginStop(ctx actor.Context) {
	if n.stop != nil {
		n.respond(ctx, &Stopped{})
		return
	}
	n.stop = &stopState{reply: ctx.Sender()}
	n.addHistory(Transition{Kind: "stopping", Reason: "stop requested"})
	if n.r.Role() == raft.Leader && !n.paused {
		if to := n.mostUpToDatePeer(); to != 0 && n.r.TransferLeadership(to) == nil {
			n.stop.transferring = true
			n.scheduleFlush(ctx)
			return
		}
	}
	n.drain(ctx)
}

// drain asks the persister to finish every write queued so far.
func (n *node) drain(ctx actor.Context) {
	n.stop.draining = true
	n.processReady(ctx)
	ctx.Send(n.persister, &drainRequest{})
}

func (n *node) finishStop(ctx actor.Context) {
	n.answerPending(ctx, ErrStopped)
	n.publish(ctx, &NodeStopped{NodeID: n.cfg.ID, Reason: "stop requested"})
	n.shutdown(ctx)
	n.stop.finished = true
	if n.stop.reply != nil {
		ctx.Send(n.stop.reply, &Stopped{})
		n.stop.reply = nil
	}
	ctx.Stop(n.self)
}

// stoppedErr is the answer of a request the node cannot serve because it
// stops: ErrStopped, wrapping the failure when it stops on one.
func (n *node) stoppedErr() error {
	if n.failErr != nil {
		return n.failErr
	}
	return ErrStopped
}

// failStop stops the node on a failure: never a silent restart.
// A stop that finished (the store released, Stopped answered) is not
// turned into a failure by a child's late error about the released store.
func (n *node) failStop(ctx actor.Context, reason string, err error) {
	if n.failed || n.stop != nil && n.stop.finished {
		return
	}
	n.failed = true
	n.failErr = fmt.Errorf("%w: %s: %w", ErrStopped, reason, err)
	n.log.Error("node stopping on failure", "reason", reason, "err", err)
	n.answerPending(ctx, n.failErr)
	n.publish(ctx, &NodeStopped{NodeID: n.cfg.ID, Reason: reason, Err: err})
	n.shutdown(ctx)
	if n.stop != nil && n.stop.reply != nil {
		ctx.Send(n.stop.reply, &Stopped{})
	}
	ctx.Stop(ctx.Self())
}

func (n *node) shutdown(ctx actor.Context) {
	n.stopTicking()
	n.sh.pool.close()
	n.sh.closeMetrics()
	if n.cfg.Transport != nil {
		_ = n.cfg.Transport.Close()
	}
	if n.sh.release != nil {
		if err := n.sh.release(); err != nil {
			n.log.Error("closing the store", "err", err)
		}
		n.sh.release = nil
	}
}

// failReads answers every read still waiting for its read index.
func (n *node) failReads(ctx actor.Context, err error) {
	for key, pr := range n.reads {
		if pr.from != nil {
			ctx.Send(pr.from, &ReadResponse{Err: err})
		}
		pr.trace.end(err)
		delete(n.reads, key)
	}
}

func (n *node) answerPending(ctx actor.Context, err error) {
	for idx, w := range n.proposals {
		ctx.Send(w.pid, &ProposeResponse{Index: idx, Err: err})
	}
	clear(n.proposals)
	for _, pr := range n.reads {
		if pr.from != nil {
			ctx.Send(pr.from, &ReadResponse{Err: err})
		}
		pr.trace.end(err)
	}
	clear(n.reads)
	for _, pr := range n.readsByIndex {
		if pr.from != nil {
			ctx.Send(pr.from, &ReadResponse{Err: err})
		}
		pr.trace.end(err)
	}
	n.readsByIndex = nil
	n.failMemberOps(ctx, err)
	if n.transfer != nil {
		n.endTransfer(ctx, 0, err)
	}
	n.traceStop(err)
}

// ---- snapshots ----

func (n *node) maybeSnapshot(ctx actor.Context) {
	if n.cfg.SnapshotEvery == 0 || n.snapshotting || n.applied < n.lastSnapshot+n.cfg.SnapshotEvery {
		return
	}
	if _, ok := n.cfg.StateMachine.(Snapshotter); !ok {
		return
	}
	n.requestSnapshot(ctx, nil)
}

func (n *node) requestSnapshot(ctx actor.Context, reply *actor.PID) {
	if _, ok := n.cfg.StateMachine.(Snapshotter); !ok {
		if reply != nil {
			ctx.Send(reply, &TakeSnapshotResponse{Err: errors.New("actors: the StateMachine does not implement Snapshotter")})
		}
		return
	}
	n.snapshotting = true
	ctx.Send(n.applier, &snapshotRequest{reply: reply})
}

func (n *node) snapshotMade(ctx actor.Context, msg *snapshotMade) {
	n.snapshotting = false
	err := msg.err
	if err == nil && n.stop != nil && n.stop.draining {
		// The compaction would queue behind the drain, and reach a store
		// that the end of the stop releases: the log stays uncompacted.
		err = n.stoppedErr()
	}
	if err == nil && msg.index > n.r.FirstIndex()-1 {
		err = n.r.Compact(msg.index, msg.data, n.retention(msg.index))
		if err == nil {
			n.lastSnapshot = msg.index
			ctx.Send(n.persister, &compactRequest{snapshot: n.r.Snapshot(), compactTo: n.r.FirstIndex() - 1})
			n.publish(ctx, &SnapshotTaken{NodeID: n.cfg.ID, Index: msg.index})
		}
	}
	if msg.reply != nil {
		ctx.Send(msg.reply, &TakeSnapshotResponse{Index: msg.index, Err: err})
	}
}

// ---- status ----

func (n *node) status() *Status {
	rs := n.r.Status()
	s := &Status{ID: rs.ID, Role: rs.Role, Term: rs.Term, Leader: rs.Leader, LeaderAddress: n.r.LeaderAddress(),
		Commit: rs.Commit, Applied: n.applied, LastIndex: rs.LastIndex, FirstIndex: rs.FirstIndex,
		Config: rs.Config, ConfigIndex: rs.ConfigIndex, Removed: rs.Removed, Progress: rs.Progress, Paused: n.paused, Dropped: n.drops}
	gs := n.gate.Stats()
	s.Dropped.WrongCluster, s.Dropped.NonMember, s.Dropped.WrongTarget = gs.DroppedWrongCluster, gs.DroppedNotMember, gs.DroppedWrongTo
	if sr, ok := n.cfg.Transport.(transport.StatsReporter); ok {
		ts := sr.Stats()
		s.Transport = &ts
	}
	if ps, ok := n.cfg.Transport.(transport.PeerStatuser); ok {
		s.Peers = map[uint64]string{}
		for id, st := range ps.PeerStatus() {
			s.Peers[id] = st.State.String()
		}
	}
	return s
}

// loadState reads what the store holds.
func loadState(store persistence.LogStore, sm StateMachine) (raft.InitialState, error) {
	ctx := context.Background()
	var st raft.InitialState
	ps, err := store.State(ctx)
	if err != nil {
		return st, fmt.Errorf("actors: load state: %w", err)
	}
	st.HardState = ps.HardState
	// The store may keep entries at or below its snapshot's index (the
	// tail that Compact retains for lagging followers): the snapshot
	// covers them, so only what follows it is loaded.
	lo := ps.FirstIndex
	if ps.Snapshot != nil {
		lo = max(lo, ps.Snapshot.Index+1)
	}
	if ps.LastIndex >= lo {
		st.Entries, err = store.Entries(ctx, lo, ps.LastIndex+1, 0)
		if err != nil {
			return st, fmt.Errorf("actors: load entries: %w", err)
		}
	}
	if ss, ok := store.(persistence.SnapshotStore); ok && ps.Snapshot != nil {
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

// HandleFailure supervises the children: a replicator that fails restarts
// (it holds no state); the persister or applier failing stops the node.
func (n *node) HandleFailure(sys *actor.ActorSystem, sup actor.Supervisor, child *actor.PID, rs *actor.RestartStatistics, reason interface{}, message interface{}) {
	if child.Equal(n.persister) || child.Equal(n.applier) {
		n.log.Error("child failed; the node stops", "child", child.Id, "reason", fmt.Sprint(reason))
		if n.childErr == nil {
			// HandleFailure runs on the node actor's mailbox: the
			// Terminated that follows stops the node with this reason.
			n.childErr = fmt.Errorf("actors: %s panicked: %v", child.Id, reason)
		}
		sup.StopChildren(child)
		return
	}
	sup.RestartChildren(child)
}
