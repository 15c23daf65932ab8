// Package pebblestore is the durable store of Flotilla: one Pebble database
// per process, shared by any number of Raft groups, each seen through a
// [Group] that implements persistence.LogStore, persistence.SnapshotStore,
// persistence.SnapshotFileStore and persistence.AppliedIndexStore.
//
//	db, err := pebblestore.Open(dir, pebblestore.Options{Logger: logger})
//	...
//	defer db.Close()
//	g, err := db.Group(groupID) // hand g to the node actor
//
// # Layout and durability
//
// A group's keys start with its id (big-endian), so they are contiguous and
// ordered by group, then by kind, then by index (big-endian) for log
// entries; see keys.go for the whole layout. Entries, the hard state and the
// snapshot are protobuf-encoded (messages/raft.proto). Every write (Save,
// Compact, SaveSnapshot, CommitApplied) is one Pebble batch committed with
// pebble.Sync: a Save's entries, hard state, snapshot and the deletions of a
// discarded prefix or an overwritten suffix are atomic, and durable when it
// returns nil. Concurrent writes of different groups share fsyncs through
// Pebble's commit pipeline. Short deletions use point tombstones, long ones a
// range tombstone.
//
// # Snapshot files
//
// Snapshot data is not kept in Pebble: it lives in files of the directory
// "snapshots" inside the database's directory, on Options.FS, streamed in
// through a sink (written to a temporary name, synced, renamed, the
// directory synced) and read through a ReaderAt after its size and CRC-32C
// are checked (persistence.ErrCorrupt otherwise). Pebble keeps the
// snapshot's metadata and the record of its file (size, checksum), written
// in the batch that makes it current; older files are removed then, and a
// restart removes temporary files and files that never became current.
// Power loss at any step leaves the previous snapshot current and
// readable (the conformance suite checks each step). Snapshots stored
// inside Pebble by an earlier version are still read. See snapfiles.go.
//
// # Failures
//
// A failed commit (or any fatal error Pebble reports to its logger) fails the
// whole database: every later call answers [ErrFailed], because Pebble's
// commit pipeline is unusable afterwards and the outcome of the failed batch
// is unknown. The node stops; reopening the database recovers everything that
// was acknowledged. Pebble's default logger exits the process on a fatal
// error; this package hands Pebble an adapter over the application's
// *slog.Logger instead. A stored value that does not decode is
// persistence.ErrCorrupt.
//
// Power loss while Open creates a new database (before it first returns) can
// leave a directory that Pebble refuses to open ("could not open manifest
// file"); nothing was acknowledged yet, so removing the directory is safe.
// Once Open has returned, every power loss is recovered (the crash tests
// check it at every filesystem operation of a seeded workload).
//
// # Closing
//
// [Group.Close] closes one group's handle (later calls answer
// persistence.ErrClosed; [DB.Group] opens it again). [DB.Close] waits for the
// calls in flight, then closes every group and the database.
//
// # Transactional apply
//
// The application may keep its state in the same database and record the
// applied index in the same atomic batch as its own writes, so that after a
// crash the two always agree: the applier re-applies exactly the entries after
// AppliedIndex, never one twice, never one skipped. The application's keys
// live in a namespace of their own inside the group (they cannot collide with
// the log or another group); w.Get sees the batch's own earlier writes.
//
//	applied, _ := g.AppliedIndex(ctx)
//	ents, _ := g.Entries(ctx, applied+1, commitIndex+1, 0)
//	err := g.CommitApplied(ctx, ents[len(ents)-1].Index, func(w persistence.AppWriter) error {
//		for _, e := range ents {
//			t := decodeTransfer(e.Data)
//			from, _, err := w.Get(t.From) // sees the transfers before it in ents
//			if err != nil {
//				return err
//			}
//			to, _, err := w.Get(t.To)
//			if err != nil {
//				return err
//			}
//			if err := w.Set(t.From, encode(decode(from)-t.Amount)); err != nil {
//				return err
//			}
//			if err := w.Set(t.To, encode(decode(to)+t.Amount)); err != nil {
//				return err
//			}
//		}
//		return nil
//	})
//
// Example_transactionalApply is a complete program; the package's crash test
// runs a bank ledger this way through power losses at many seeded points.
//
// The application reads its committed state with [Group.AppGet] and
// [Group.AppScan]. Prefix compaction of the log (LogStore.Compact) is safe up
// to AppliedIndex without a snapshot, since the application's state is in the
// database.
package pebblestore
