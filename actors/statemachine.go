package actors

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/messages"
)

// StateMachine is the application's replicated state. The applier actor is
// the only caller, one call at a time, in log order: no locking is needed
// for calls made through this interface.
type StateMachine interface {
	// Apply applies one committed ENTRY_NORMAL entry and returns the result
	// answered to its proposer (on the node that proposed it). It must be
	// deterministic: every node applies the same entries in the same order.
	// An error result is a result: it is answered, not retried; but an
	// error wrapping ErrApplyFailed, or a panic, means the entry could not
	// be applied, and the node stops (see ErrApplyFailed).
	Apply(e *messages.Entry) any
}

// Querier is implemented by state machines that serve linearizable reads
// (the Read message).
type Querier interface {
	Query(q any) (any, error)
}

// Snapshotter is implemented by state machines that can snapshot and
// restore their state (to compact the log and catch up slow followers).
// Both run on the applier, between Apply calls. The node frames the bytes
// with its own session table (see SplitSnapshot); the state machine sees
// only its own. A Snapshotter that also implements SnapshotRestorer is
// restored with the snapshot's metadata instead of through Restore.
type Snapshotter interface {
	// Snapshot returns the state as of the last applied entry.
	Snapshot() ([]byte, error)
	// Restore replaces the state with a snapshot's.
	Restore(data []byte) error
}

// StreamSnapshotter is implemented by state machines whose snapshots are
// too large to hold in one []byte, or that should not block Apply while
// one is written. It is the streaming counterpart of Snapshotter (in the
// manner of hashicorp/raft's FSM.Snapshot and FSMSnapshot.Persist): when
// a state machine implements both, the node uses StreamSnapshotter.
//
// Who calls what, on which goroutine:
//
//   - SnapshotView is called by the applier, between Apply calls (never
//     concurrently with Apply, Query or RestoreFrom). It must be quick: it
//     returns a consistent, point-in-time view of the state as of the last
//     applied entry (a copy-on-write reference, an immutable version, a
//     database snapshot), not the data itself.
//   - The view's WriteTo is then called once, on a goroutine of its own,
//     while the applier goes on calling Apply and Query: it may read only
//     what the view captured, never the live state without the state
//     machine's own synchronization. It streams the state into the node's
//     snapshot (a file of a persistence.SnapshotFileStore; with a store
//     that has no files, the node collects the bytes in memory instead,
//     and WriteTo runs on the applier).
//   - Release is called once when the node is done with the view, whether
//     WriteTo ran, succeeded or failed; it may be called on either
//     goroutine.
//   - RestoreFrom is called by the applier, between Apply calls, to
//     replace the whole state with a snapshot's (a snapshot installed from
//     the leader, or the node starting on one). r yields exactly the bytes
//     WriteTo wrote; a read error from r (a damaged file) must be
//     returned. meta says which snapshot it is.
//
// At most one view is outstanding at a time per node.
type StreamSnapshotter interface {
	SnapshotView() (SnapshotView, error)
	RestoreFrom(meta SnapshotMeta, r io.Reader) error
}

// SnapshotView is a consistent view of a StreamSnapshotter's state, being
// written into a snapshot (see StreamSnapshotter for who calls what).
type SnapshotView interface {
	// WriteTo writes the state as of the view to w and returns the number
	// of bytes written. It runs concurrently with Apply.
	WriteTo(w io.Writer) (int64, error)
	// Release frees what the view holds.
	Release()
}

// snapshotCapable reports whether sm can snapshot and restore: it
// implements Snapshotter or StreamSnapshotter.
func snapshotCapable(sm StateMachine) bool {
	_, b := sm.(Snapshotter)
	_, s := sm.(StreamSnapshotter)
	return b || s
}

// errNotSnapshotter answers a snapshot asked of a state machine that
// cannot take one.
var errNotSnapshotter = errors.New("actors: the StateMachine implements neither Snapshotter nor StreamSnapshotter")

// SnapshotValidator is optionally implemented by a Snapshotter to check a
// snapshot received from a member before the node installs it. A snapshot
// it refuses is dropped and counted (Status.Dropped.CorruptSnapshot); the
// leader keeps trying. Without it, only the node's own framing is checked
// and a Restore error stops the node (NodeStopped with ErrCorruptSnapshot).
// ValidateSnapshot runs on the node actor (a snapshot sent whole, or
// received in chunks in memory) or on the snapshot receiver (received in
// chunks into the store's snapshot files, read whole into memory for the
// call), concurrently with Apply: it must only read data, never the state.
type SnapshotValidator interface {
	ValidateSnapshot(data []byte) error
}

// AppliedIndexer is implemented by state machines whose state and applied
// index are durable together (transactional apply): entries up to
// AppliedIndex are not applied again after a restart.
type AppliedIndexer interface {
	AppliedIndex() (uint64, error)
}

// CommandDeduplicator is implemented by state machines that keep their own
// durable session table (client id → last sequence and its result), usually
// in the same atomic batch as their state (transactional apply). The
// applier then hands them every committed command, retries included, and
// does no deduplication of its own. Without it, the applier deduplicates
// by (ClientID, Sequence) itself: in memory, in snapshots, and rebuilt from
// the log at start.
type CommandDeduplicator interface {
	DeduplicatesCommands()
}

// ApplyRequest is what ActorStateMachine sends the application actor for
// each entry; the actor must Respond with *ApplyResult.
type ApplyRequest struct {
	Entry *messages.Entry
}

// ApplyResult answers ApplyRequest.
type ApplyResult struct {
	Result any
}

// ActorStateMachine applies entries by asking an application actor: each
// entry is sent as *ApplyRequest and the applier waits (up to Timeout,
// default 10s) for its *ApplyResult before the next one, so order is kept.
// This is the "actor way" of applying commands. An actor that does not
// answer in time (or answers anything but *ApplyResult) has not applied
// the entry: Apply returns an error wrapping ErrApplyFailed and the node
// stops, rather than skip the entry.
type ActorStateMachine struct {
	Sender  actor.SenderContext // usually the actor system's Root
	PID     *actor.PID
	Timeout time.Duration
}

// Apply implements StateMachine.
func (a *ActorStateMachine) Apply(e *messages.Entry) any {
	t := a.Timeout
	if t == 0 {
		t = 10 * time.Second
	}
	res, err := a.Sender.RequestFuture(a.PID, &ApplyRequest{Entry: e}, t).Result()
	if err != nil {
		return fmt.Errorf("%w: the application actor did not answer entry %d: %w", ErrApplyFailed, e.Index, err)
	}
	if r, ok := res.(*ApplyResult); ok {
		return r.Result
	}
	return fmt.Errorf("%w: the application actor answered entry %d with %T, want *ApplyResult", ErrApplyFailed, e.Index, res)
}

// StateMachineFunc adapts a function to StateMachine.
type StateMachineFunc func(e *messages.Entry) any

// Apply implements StateMachine.
func (f StateMachineFunc) Apply(e *messages.Entry) any { return f(e) }

// ErrApplyFailed marks an Apply result that is a failure, not a result: an
// Apply that returns an error wrapping it (or panics) did not apply the
// entry. The node cannot skip an entry other replicas apply, so it stops:
// NodeStopped carries the cause, the entry's proposer is answered
// ErrStopped wrapping it, and nothing is recorded for the entry (not in
// the session table, not as applied). Restarted, the node applies the
// entry again.
var ErrApplyFailed = errors.New("actors: apply failed")
