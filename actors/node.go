package actors

import (
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/scheduler"
	"github.com/flotilla-raft/flotilla/actors/raft"
	"github.com/flotilla-raft/flotilla/cluster/transport"
	"github.com/flotilla-raft/flotilla/persistence"
	"github.com/flotilla-raft/flotilla/tracing"
)

// node is the node actor: one Raft node. It turns actor messages into
// inputs of the deterministic core (r) and the core's Ready into work for
// its children; it holds no Raft rule of its own. Its fields are grouped by
// concern, each group in the file that owns it.
type node struct {
	sh       *shared
	cfg      Config
	log      *slog.Logger
	r        *raft.Raft // the core; nil until started (lifecycle.go)
	behavior actor.Behavior
	self     *actor.PID
	root     *actor.RootContext
	applied  uint64 // applied index confirmed by the applier

	life  lifeState    // start, ticks, pause, stop and failure (lifecycle.go)
	kids  children     // persister, applier, replicators (ready.go, lifecycle.go)
	pend  pending      // requests waiting for an answer (requests.go, membership.go)
	snap  snapState    // snapshots and compaction (snapshot.go)
	ev    eventState   // subscribers and history (events.go)
	inbox inboxState   // the gate for inbound messages (ready.go)
	obs   observations // traces and metrics (trace*.go, metrics*.go)
}

// lifeState is the node actor's life: ticking, paused, stopping, failed.
type lifeState struct {
	gen        uint64 // generation of the tick timer; 0 once stopped
	cancelTick scheduler.CancelFunc
	ticks      uint64 // ticks since start (the membership catch-up's clock)
	// timerFires counts the tick timers handled; quiet: the core is
	// quiesced and the timer runs at its stride (adjustTickRate).
	timerFires  uint64
	quiet       bool
	stride      int  // ticks the armed timer stands for (armTick)
	flushQueued bool // a flushNode is in the mailbox
	paused      bool
	failed      bool
	failErr     error // ErrStopped wrapping the failure, once failed
	exiting     bool  // the actor is stopping or restarting
	panicking   bool  // failStop after a panic is under way
	childErr    error // why the persister or applier failed (a panic)
	stop        *stopState
}

// children are the node's child actors.
type children struct {
	persister, applier *actor.PID
	replicators        map[uint64]*actor.PID // leader: peer -> its replicator
	receiver           *actor.PID            // follower: snapshot chunks (snapshotrecv.go); nil until one comes
	// inline, with a persistence.VolatileStore (memstore), writes the core's
	// updates in the node's own turn: nothing waits on a disk, so the
	// round trip through the persister would only add two hops. The
	// persister still serves snapshots, compaction and the drain at stop.
	inline *persister
}

// pending holds the requests under way and what answers them.
type pending struct {
	proposals    map[uint64]waiter // index -> proposer
	reads        map[string]pendingRead
	readSeq      uint64
	readsByIndex []pendingRead  // read index known, waiting for the applier
	memberOps    []*memberOp    // membership changes under way (membership.go)
	transfer     *transferState // a TransferLeadership under way
	clientSeqs   *sessionTable  // client -> highest sequence in the log (accept.go)
	// applying holds, for each batch handed to the applier with waiters,
	// its last index and how many waiters it carries: with
	// len(proposals), the proposals waiting for their answer
	// (Config.MaxPendingProposals). applyingWaiters is their sum.
	applying        []applyingBatch
	applyingWaiters int
	overloaded      OverloadCounts // requests refused with ErrOverloaded
}

// applyingBatch is a batch of entries handed to the applier: its last
// index and its waiters.
type applyingBatch struct {
	upTo    uint64
	waiters int
}

// snapState is the node's snapshotting.
type snapState struct {
	snapshotting bool
	// bytesSince counts the command bytes of the entries handed to the
	// applier since the latest snapshot (Config.SnapshotBytes); bytesAsked
	// holds the count the snapshot being made covers, restored should it
	// fail.
	bytesSince, bytesAsked uint64
	lazyPending            map[uint64]bool // peers whose snapshot the applier is making (CompactTo), or the node reads from a file
	// files is the store's snapshot files; nil when the store keeps
	// snapshots as []byte only (persistence.SnapshotStore). With files,
	// the core holds no snapshot data: snapshots are streamed into files
	// and only their metadata is saved and compacted to.
	files persistence.SnapshotFileStore
	// corruptFiles counts snapshot files found damaged when read for a
	// lagging peer (Status.CorruptSnapshotFiles).
	corruptFiles uint64
	// sends is the latest progress of each chunked transfer since this
	// node became leader (Status.SnapshotSends).
	sends map[uint64]SnapshotSendProgress
	// receiving is the snapshot being received in chunks; nil if none.
	receiving *SnapshotReceiving
}

// eventState is who hears of the node's events, and its history.
type eventState struct {
	subs    []*actor.PID
	history *tracing.History // Config.HistorySize transitions
}

// inboxState filters inbound messages and counts what it refuses.
type inboxState struct {
	gate  *transport.Gate
	drops DropCounts
}

// observations are the node's traces and metrics.
type observations struct {
	tracer  *tracing.Tracer
	tr      traceState // spans that outlive one message (trace.go)
	metrics *nodeMetrics
}

func newNode(sh *shared) *node {
	n := &node{sh: sh, cfg: sh.cfg, log: sh.cfg.Logger.With("node", sh.cfg.ID)}
	n.ev.history = tracing.NewHistory(sh.cfg.HistorySize)
	n.behavior = actor.NewBehavior()
	n.behavior.Become(n.starting)
	return n
}

// Receive dispatches to the behavior of the current role. A panic in the
// node actor stops the node with the panic as the reason (see failStop):
// it is not handed to the supervisor, whose restart would drop the
// message and the pending requests' answers with the old instance.
func (n *node) Receive(ctx actor.Context) {
	defer func() {
		if r := recover(); r != nil {
			if n.life.panicking {
				panic(r) // failing failed: let the supervisor have it
			}
			n.life.panicking = true
			err := fmt.Errorf("actors: node actor panicked handling %T: %v", ctx.Message(), r)
			n.log.Error("node actor panicked", "err", err, "stack", string(debug.Stack()))
			n.failStop(ctx, "node actor panicked", err)
		}
	}()
	n.behavior.Receive(ctx)
}
