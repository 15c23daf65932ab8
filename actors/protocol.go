package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
)

// The node↔children protocol: every internal message between the node
// actor, its timer and its children (persister, applier, replicators) is
// defined here, so that no file defines another's messages. The public
// messages (requests, answers, events) are in api.go and api_events.go.

// ---- to the node actor ----

type (
	// tick is one Raft tick from the timer scheduler; gen tells a stale
	// timer (armed before a restart or a stop) from the current one.
	tick struct{ gen uint64 }
	// flushNode: hand the core's Ready out (scheduleFlush); everything
	// already in the mailbox is handled first.
	flushNode struct{}
	// persisted: the persister made the core's update id durable.
	persisted struct{ id uint64 }
	// persistFailed: the persister could not write; the node stops.
	persistFailed struct{ err error }
	// drained: the persister finished every write queued before the
	// drainRequest (an orderly stop).
	drained struct{}
	// appliedUpTo: the applier applied every entry up to index.
	appliedUpTo struct{ index uint64 }
	// applyFailed: the applier could not apply an entry or restore a
	// snapshot; the node stops.
	applyFailed struct{ err error }
	// snapshotMade: the applier's snapshot at index (or its error), for a
	// TakeSnapshot (reply) or an automatic snapshot (reply nil).
	snapshotMade struct {
		index uint64
		data  []byte // nil when file is set
		// file: the data is in a committed file of the store's
		// SnapshotFileStore (snapshotRequest.md was set).
		file  bool
		err   error
		reply *actor.PID
	}
	// lazySnapshotMade carries the data the applier produced for a peer
	// that needs a snapshot of a log compacted by CompactTo.
	lazySnapshotMade struct {
		msg   *messages.Message // the core's MSG_SNAPSHOT, without data
		index uint64
		data  []byte
		err   error
	}
)

// ---- to the persister ----

type (
	// persistRequest: write the core's update id (one Ready's).
	persistRequest struct {
		id    uint64
		trace string // parent span of the persist span, if any
		u     persistence.Update
	}
	// persistFlush is the marker the persister sends itself: every request
	// queued before it goes into one Save.
	persistFlush struct{}
	// drainRequest: write everything queued, then answer drained.
	drainRequest struct{}
	// compactRequest: store the snapshot and compact the log up to
	// compactTo, after the writes queued before it.
	compactRequest struct {
		snapshot  *messages.Snapshot
		compactTo uint64
	}
)

// ---- to the applier ----

type (
	// waiter is the proposer of an entry, answered once it is applied.
	waiter struct {
		pid  *actor.PID
		term uint64 // the entry's term when proposed: another term there means it was lost
	}
	indexedWaiter struct {
		index uint64
		w     waiter
	}
	// applyBatch: apply the snapshot (if any), then the committed entries,
	// answering the waiters.
	applyBatch struct {
		snapshot *messages.Snapshot
		// snapData is snapshot's data, opened by the node at start
		// (nil: the applier reads snapshot.Data, or opens the file).
		snapData persistence.SnapshotData
		entries  []*messages.Entry
		waiters  []indexedWaiter
		trace    applyTrace
		// one holds waiters when there is one (a batch of one proposal):
		// no slice allocated for it.
		one [1]indexedWaiter
	}
	// readQuery: answer a linearizable read once everything before it in
	// the mailbox is applied.
	readQuery struct {
		from  *actor.PID // nil: sent without a sender, nobody hears the answer
		query any
		index uint64
		trace *readTrace
		start time.Time // the read's arrival at the node
	}
	// setSubscribers replaces the subscribers of EntryApplied.
	setSubscribers struct{ subs []*actor.PID }
	// snapshotRequest: snapshot the state machine (for reply, or for a
	// lagging peer when lazy is set: see lazySnapshot).
	snapshotRequest struct {
		reply *actor.PID
		lazy  *messages.Message
		// md, when set, is the snapshot's metadata (the applied index):
		// the applier streams it into a file of the store's
		// SnapshotFileStore instead of answering bytes.
		md *messages.SnapshotMetadata
	}
)

// A replicator receives the leader's *messages.Message for its peer as
// they are: it has no protocol of its own.
