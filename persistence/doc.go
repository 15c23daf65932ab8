// Package persistence holds the storage contracts of a Raft node: the
// [LogStore] that keeps the replicated log, the hard state and the log's
// starting point, and the [SnapshotStore] that keeps the latest snapshot.
// A store that also implements [SnapshotFileStore] keeps snapshot data as
// checksummed files streamed in through a [SnapshotSink] and read through
// [SnapshotData] (only the metadata stays in the log store): the node then
// never holds a snapshot whole in memory. A store with SnapshotStore alone
// keeps working, with snapshots as []byte.
//
// # Who calls what
//
// The node actor's persister child is the only writer of a store: it drains
// every pending append of its mailbox into one [Update] and calls
// [LogStore.Save] once (group commit), then reports back that everything up to
// the last entry is durable. Nothing is sent to a peer before what it promises
// (a vote, an append acknowledgement) has been saved. The node actor reads the
// store at start-up ([LogStore.State], [SnapshotStore.LoadSnapshot], and the
// log in pages of at most 1 MiB) to rebuild its Raft state, and the core reads
// the stable log through [RaftStorage] while it runs ([LogStore.Entries],
// [LogStore.Term]) whenever an entry has left its memory: it keeps only the
// entries not yet durable and a bounded cache of recent ones. The replicators
// send the messages the core built. With a [SnapshotFileStore], the node
// does not call LoadSnapshot: the applier child streams each snapshot's
// data into [SnapshotFileStore.CreateSnapshot]'s sink (on a goroutine of
// its own), and a follower's snapshot receiver child writes the chunks of
// a snapshot sent by the leader into one; the persister saves the
// metadata (which makes the data current), and the data is read through
// [SnapshotFileStore.OpenSnapshot] to check a received snapshot, to
// restore the state machine (at start-up, or a snapshot installed from the
// leader) and, by a replicator, to send it to a lagging peer in chunks. A store is safe for concurrent use (the
// node reads while the persister writes), but its log writes are meant to
// come from one goroutine at a time.
//
// # The log model
//
// A store keeps a contiguous log of entries with indexes FirstIndex through
// LastIndex, plus the index and term of the last discarded entry
// (FirstIndex-1), so that [LogStore.Term] can still answer the term of the
// entry just before the log, which Raft needs as the previous log term of the
// first AppendEntries it sends. Entries are discarded from the front by a
// snapshot ([Update.Snapshot]) or by [LogStore.Compact], and from the back by a
// conflicting append (suffix overwrite). [PlanUpdate] states the rules of an
// [Update] in one place, so that every store (including stores written by
// users) applies them alike; persistence/storetest checks a store against
// them.
//
// # Ownership
//
// The wire types follow the convention of messages/raft.proto: once an
// Entry, HardState or Snapshot has been handed to another component it is
// never mutated, so it is shared, not copied. Entries, hard states and
// snapshots passed to a store are never mutated by it and may be retained. A
// store returns slices that belong to the caller (the caller may reorder,
// truncate, append to or overwrite them without affecting the store) whose
// elements the store never mutates afterwards; the elements may be shared with
// the store (memstore) or freshly decoded (pebblestore), so callers treat them
// as immutable too.
// A [SnapshotSink] and a [SnapshotData] belong to their caller, who ends
// them (Commit or Abort, Close); an open SnapshotData stays readable after
// a newer snapshot replaced its data.
//
// # Errors
//
// Errors are prefixed sentinels ([ErrCompacted], [ErrUnavailable],
// [ErrClosed], [ErrNoSnapshot], [ErrInvalidUpdate], [ErrSnapshotOutOfDate],
// [ErrCorrupt], [ErrAlreadyApplied]), wrapped with %w and checked with
// errors.Is. A cancelled context is answered with the context's error, before
// anything is done. A write that breaks the rules is rejected before anything
// is written (ErrInvalidUpdate, ErrSnapshotOutOfDate, ErrCompacted,
// ErrAlreadyApplied); any other error from a write means its outcome is
// unknown and the store must be considered failed: the node stops
// (fail-stop), it never retries silently.
//
// # Optional capabilities
//
// Like database/sql/driver, extra features arrive as optional interfaces that a
// store may implement and a caller discovers with a type assertion:
// [AppliedIndexStore] lets the application put its own writes into the same
// atomic write that records the applied index ("transactional apply"), so
// that after a crash the application state and the applied index always agree
// and every entry is applied exactly once across restarts. [SnapshotFileStore]
// keeps snapshot data as files (see above).
package persistence
