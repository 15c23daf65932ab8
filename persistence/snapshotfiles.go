package persistence

import (
	"context"
	"io"

	"github.com/flotilla-raft/flotilla/messages"
)

// SnapshotFileStore is an optional capability of a LogStore: snapshot data
// kept as files (streamed in and out, never held whole in memory), with only
// the metadata in the log store.
//
// Writing a snapshot has two steps. CreateSnapshot and the sink's Commit
// make the data durable and readable with OpenSnapshot; the snapshot becomes
// the store's current one only when its metadata is saved (SaveSnapshot
// with a metadata-only Snapshot, or Update.Snapshot for one installed from a
// leader). Data that is not current is removed once a newer snapshot is
// current. A crash before Commit leaves no trace, and a crash at any point
// leaves the previous current snapshot readable.
type SnapshotFileStore interface {
	// CreateSnapshot begins writing the data of a snapshot with metadata
	// md. Writing the same (index, term) again replaces uncommitted data.
	CreateSnapshot(ctx context.Context, md *messages.SnapshotMetadata) (SnapshotSink, error)

	// OpenSnapshot opens the committed data of the snapshot (index, term);
	// ErrNoSnapshot when there is none. Damaged data (a size or checksum
	// that does not match what Commit recorded) is ErrCorrupt.
	OpenSnapshot(ctx context.Context, index, term uint64) (SnapshotData, error)
}

// SnapshotSink receives a snapshot's data.
type SnapshotSink interface {
	io.Writer
	// Commit syncs the data and records its size and checksum.
	Commit() (SnapshotInfo, error)
	// Abort discards the data. Abort after Commit is a no-op.
	Abort() error
}

// SnapshotInfo describes committed snapshot data.
type SnapshotInfo struct {
	Size     int64
	Checksum uint32 // CRC-32C (Castagnoli) of the data
}

// SnapshotData is committed snapshot data, open for reading.
type SnapshotData interface {
	io.ReaderAt
	Info() SnapshotInfo
	Close() error
}
