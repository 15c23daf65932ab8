package actors

import (
	"errors"
	"fmt"
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

// SnapshotValidator is optionally implemented by a Snapshotter to check a
// snapshot received from a member before the node installs it. A snapshot
// it refuses is dropped and counted (Status.Dropped.CorruptSnapshot); the
// leader keeps trying. Without it, only the node's own framing is checked
// and a Restore error stops the node (NodeStopped with ErrCorruptSnapshot).
// ValidateSnapshot runs on the node actor, concurrently with Apply: it must
// only read data, never the state.
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
