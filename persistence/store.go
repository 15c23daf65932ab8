package persistence

import (
	"context"
	"errors"

	"google.golang.org/protobuf/proto"

	"github.com/flotilla-raft/flotilla/messages"
)

// Sentinel errors. Stores wrap them with %w; check them with errors.Is.
var (
	// ErrCompacted: the requested index is before the log's start (it was
	// discarded by a snapshot or a compaction).
	ErrCompacted = errors.New("persistence: requested index is compacted")
	// ErrUnavailable: the requested index is after the last stored entry.
	ErrUnavailable = errors.New("persistence: requested index is unavailable")
	// ErrClosed: the store (or the database behind it) is closed.
	ErrClosed = errors.New("persistence: closed")
	// ErrNoSnapshot: no snapshot is stored.
	ErrNoSnapshot = errors.New("persistence: no snapshot")
	// ErrInvalidUpdate: an Update (or a snapshot) breaks the log's rules,
	// see Plan. Nothing was written.
	ErrInvalidUpdate = errors.New("persistence: invalid update")
	// ErrSnapshotOutOfDate: a snapshot older than the log's start (or than
	// the stored snapshot) was offered. Nothing was written.
	ErrSnapshotOutOfDate = errors.New("persistence: snapshot out of date")
	// ErrCorrupt: a stored value cannot be decoded.
	ErrCorrupt = errors.New("persistence: corrupt stored value")
	// ErrAlreadyApplied: CommitApplied was asked to record an index at or
	// below the durable applied index. Nothing was written.
	ErrAlreadyApplied = errors.New("persistence: index already applied")
)

// Update is one atomic, durable write for one Raft group.
//
// Its parts take effect in this order: Snapshot, then Entries, then
// HardState. Either all of them are stored or none is. The rules (checked by
// PlanUpdate before anything is written) are:
//
//   - Snapshot, when set, must have Metadata with an index >= 1
//     (ErrInvalidUpdate), and its index must not be below FirstIndex-1 nor
//     below the stored snapshot's (ErrSnapshotOutOfDate). Every entry with
//     index <= Snapshot.Metadata.Index is discarded and the log restarts
//     after it. The entries after it are kept only when the stored entry at
//     the snapshot's index has the snapshot's term (Raft's InstallSnapshot
//     rule, Figure 13 steps 6-7); otherwise the whole log is discarded and
//     LastIndex becomes the snapshot's index. The snapshot replaces the
//     stored one, and StartTerm becomes its term.
//   - Entries, when set, must be non-nil, contiguous and ascending, with
//     Entries[0].Index >= 1 (ErrInvalidUpdate). Entries[0].Index must lie in
//     [FirstIndex, LastIndex+1] of the log as left by Snapshot: below it is
//     ErrCompacted (entries cannot be written before the log's start; the
//     caller trims them); above it is a gap, ErrInvalidUpdate, which is how
//     the case Entries[0].Index > LastIndex+1 is decided: it is accepted
//     only when a Snapshot in the same Update makes it contiguous (a
//     snapshot at Entries[0].Index-1). Every stored entry with index >=
//     Entries[0].Index is deleted (suffix overwrite), then Entries are
//     stored.
//   - HardState, when set, replaces the stored hard state.
type Update struct {
	HardState *messages.HardState // nil: unchanged
	Snapshot  *messages.Snapshot  // nil: none. Non-nil: stored, and every entry with index <= Snapshot.Metadata.Index is discarded (the log restarts after it)
	Entries   []*messages.Entry   // contiguous, ascending; first deletes every stored entry with index >= Entries[0].Index (suffix overwrite), then stores these
}

// Empty reports whether u writes nothing.
func (u Update) Empty() bool {
	return u.HardState == nil && u.Snapshot == nil && len(u.Entries) == 0
}

// State is what a store holds, without the entries themselves.
type State struct {
	HardState  *messages.HardState        // zero value when none stored (never nil)
	Snapshot   *messages.SnapshotMetadata // nil when none
	FirstIndex uint64                     // first stored entry index; 1 when nothing is stored; snapshot index+1 after Update.Snapshot, but at or below a snapshot saved with SaveSnapshot when Compact kept a tail of the log
	LastIndex  uint64                     // last stored entry index; FirstIndex-1 when no entries
	// StartTerm is the term of the entry at FirstIndex-1 (the last discarded
	// entry, or the snapshot's last included entry); 0 when FirstIndex is 1.
	StartTerm uint64
}

// LogStore keeps one Raft group's log and hard state.
//
// The node actor's persister child is its only writer (Save, Compact); the
// node actor reads it at start-up and, through RaftStorage, whenever the
// core needs a stable entry that its entry cache no longer holds.
// Every method answers ctx.Err() when ctx is done before it starts, and
// ErrClosed after Close.
type LogStore interface {
	// State returns the hard state, the stored snapshot's metadata and the
	// log's bounds (immutable values, see Ownership in the package doc).
	State(ctx context.Context) (State, error)

	// Entries returns the entries with index in [lo, hi), in order, in a
	// slice owned by the caller (see Ownership in the package doc). It returns ErrCompacted if lo < FirstIndex, ErrUnavailable
	// if hi > LastIndex+1, and ErrInvalidUpdate if lo > hi. lo == hi answers
	// no entries. maxBytes limits the total EntrySize of the answer (0 = no
	// limit), but at least one entry is always returned when lo < hi.
	Entries(ctx context.Context, lo, hi, maxBytes uint64) ([]*messages.Entry, error)

	// Term returns the term of the entry at index, for index in
	// [FirstIndex-1, LastIndex]. At FirstIndex-1 it answers State.StartTerm:
	// the snapshot's term when the log starts after a snapshot (0 for index 0
	// of an uncompacted log). It returns ErrCompacted below that range and
	// ErrUnavailable above it.
	Term(ctx context.Context, index uint64) (uint64, error)

	// Save writes u atomically: once it returns nil, u is durable (synced)
	// and survives power loss. It returns ErrInvalidUpdate,
	// ErrSnapshotOutOfDate or ErrCompacted (see Update, Plan) without writing
	// anything. Any other error leaves the outcome unknown: the store must be
	// considered failed and the node stops. An empty Update is a no-op.
	Save(ctx context.Context, u Update) error

	// Compact discards every entry with index <= index (prefix compaction),
	// remembering the term of the entry at index as StartTerm. The caller
	// must hold the state up to index elsewhere (a saved snapshot, or the
	// application's durable state with transactional apply). index <
	// FirstIndex is a no-op; index > LastIndex is ErrUnavailable. Durable
	// when it returns nil.
	Compact(ctx context.Context, index uint64) error

	// Close releases the store. Later calls answer ErrClosed; closing twice
	// is not an error.
	Close() error
}

// SnapshotStore keeps the latest snapshot of one Raft group. The node actor
// saves the snapshots it takes itself (InstallSnapshot from a leader arrives
// through Update.Snapshot instead, which also resets the log) and loads the
// latest one at start-up.
type SnapshotStore interface {
	// SaveSnapshot durably replaces the stored snapshot with s. It does not
	// touch the log (call LogStore.Compact afterwards). s must have Metadata
	// (ErrInvalidUpdate), and its index must not be below the stored
	// snapshot's index nor below FirstIndex-1 (ErrSnapshotOutOfDate). s is not
	// mutated and may be retained.
	SaveSnapshot(ctx context.Context, s *messages.Snapshot) error

	// LoadSnapshot returns the stored snapshot (immutable, see Ownership in
	// the package doc), or ErrNoSnapshot.
	LoadSnapshot(ctx context.Context) (*messages.Snapshot, error)
}

// AppWriter is the application's access to its own keys inside the atomic
// write of AppliedIndexStore.CommitApplied. Keys live in a namespace of their
// own per Raft group: they never collide with the store's keys nor with
// another group's. Keys and values passed in are copied.
type AppWriter interface {
	// Get reads a key, seeing the writes made earlier in the same
	// CommitApplied. The value is owned by the caller.
	Get(key []byte) (value []byte, found bool, err error)
	// Set writes a key.
	Set(key, value []byte) error
	// Delete removes a key; deleting a missing key is not an error.
	Delete(key []byte) error
}

// AppliedIndexStore is an optional capability of a LogStore: transactional
// apply. The application's Apply records the applied index in the same
// atomic write as its own state changes, so that after a crash both agree:
// entries after AppliedIndex are applied again (from the log), entries at or
// before it never are.
//
// The application's StateMachine calls CommitApplied from its Apply (on the
// node's applier child, one entry at a time; the library itself never
// does), and reads its state with AppGet.
type AppliedIndexStore interface {
	// AppliedIndex returns the durable applied index (0 when none).
	AppliedIndex(ctx context.Context) (uint64, error)

	// CommitApplied calls write, then atomically and durably stores what it
	// wrote together with the applied index index. index must be above
	// AppliedIndex (ErrAlreadyApplied otherwise, nothing written). If write
	// returns an error nothing is stored and that error is returned (wrapped).
	// write must not retain w.
	CommitApplied(ctx context.Context, index uint64, write func(w AppWriter) error) error

	// AppGet reads one of the application's keys as last committed by
	// CommitApplied. The value is owned by the caller.
	AppGet(ctx context.Context, key []byte) (value []byte, found bool, err error)
}

// VolatileStore is an optional capability of a LogStore: one that keeps
// everything in memory (memstore), so that Save waits on no disk. A node on
// such a store saves the core's updates in its own turn, instead of sending
// them to its persister child and waiting for the answer (two hops per
// update for nothing to wait on). Implement it only if Save is quick and
// safe to call from the node's goroutine.
type VolatileStore interface {
	// Volatile reports whether the store keeps its log in memory only.
	Volatile() bool
}

// EntrySize is the size of e as counted against the maxBytes budget of
// LogStore.Entries: its protobuf encoding's length.
func EntrySize(e *messages.Entry) uint64 {
	return uint64(proto.Size(e))
}
