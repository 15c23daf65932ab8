package persistence

import (
	"bytes"
	"context"
	"fmt"
	"hash/crc32"
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
// leaves the previous current snapshot readable. After a restart only the
// current snapshot's data is sure to be there: a store may remove data that
// was committed but never made current.
//
// How the SnapshotStore methods of such a store treat data:
//
//   - A Snapshot without Data (SaveSnapshot, Update.Snapshot) whose (index,
//     term) has committed data makes that data current. Without committed
//     data it is a snapshot without data (CompactTo: the application's
//     state is durable elsewhere), as in any SnapshotStore.
//   - A Snapshot with Data (a store's user that knows no files, or a
//     snapshot received whole in one message) is committed as that
//     snapshot's data, then made current, in the same call.
//   - LoadSnapshot reads the current data whole into memory (for callers
//     that know only SnapshotStore); the node uses OpenSnapshot instead.
//
// A node whose store has no SnapshotFileStore keeps working with
// SnapshotStore alone: its snapshots are then whole []byte values in memory.
type SnapshotFileStore interface {
	// CreateSnapshot begins writing the data of a snapshot with metadata
	// md. Writing the same (index, term) again replaces uncommitted data.
	CreateSnapshot(ctx context.Context, md *messages.SnapshotMetadata) (SnapshotSink, error)

	// OpenSnapshot opens the committed data of the snapshot (index, term);
	// ErrNoSnapshot when there is none. Damaged data (a size or checksum
	// that does not match what Commit recorded) is ErrCorrupt.
	OpenSnapshot(ctx context.Context, index, term uint64) (SnapshotData, error)
}

// SnapshotSink receives a snapshot's data. It is used by one goroutine at
// a time (not necessarily the one that created it), and may be written
// while the store serves other calls.
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

// SnapshotData is committed snapshot data, open for reading. Its size and
// checksum were verified when it was opened. It stays readable until
// Close, even once a newer snapshot is current and the store removed the
// data. ReadAt may be called from several goroutines at once.
type SnapshotData interface {
	io.ReaderAt
	Info() SnapshotInfo
	Close() error
}

// castagnoli is the CRC-32C table of SnapshotInfo.Checksum.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// SnapshotChecksum returns the CRC-32C (Castagnoli) of b, as SnapshotInfo
// records it.
func SnapshotChecksum(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// UpdateSnapshotChecksum extends a CRC-32C (Castagnoli) crc with p: a store
// computes SnapshotInfo.Checksum while data is written.
func UpdateSnapshotChecksum(crc uint32, p []byte) uint32 { return crc32.Update(crc, castagnoli, p) }

// VerifySnapshot reads the size bytes of r from the start and checks them
// against want (size and checksum), with a bounded buffer. A mismatch is
// ErrCorrupt; a read error is returned wrapped.
func VerifySnapshot(r io.ReaderAt, size int64, want SnapshotInfo) error {
	if size != want.Size {
		return fmt.Errorf("%w: snapshot data is %d bytes, %d were committed", ErrCorrupt, size, want.Size)
	}
	h := crc32.New(castagnoli)
	if _, err := io.Copy(h, io.NewSectionReader(r, 0, size)); err != nil {
		return fmt.Errorf("persistence: read snapshot data: %w", err)
	}
	if got := h.Sum32(); got != want.Checksum {
		return fmt.Errorf("%w: snapshot data checksum %08x, %08x was committed", ErrCorrupt, got, want.Checksum)
	}
	return nil
}

// ReadSnapshotData reads the whole of d into memory: for the callers that
// need a snapshot as one []byte (SnapshotStore.LoadSnapshot of a store that
// keeps files).
func ReadSnapshotData(d SnapshotData) ([]byte, error) {
	size := d.Info().Size
	out := make([]byte, size)
	n, err := d.ReadAt(out, 0)
	if int64(n) == size {
		return out, nil // io.EOF at the end is allowed
	}
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return nil, fmt.Errorf("persistence: read snapshot data: %w", err)
}

// BytesSnapshotData serves data held in memory as SnapshotData (the
// checksum is computed once, here). b must not be modified afterwards.
func BytesSnapshotData(b []byte) SnapshotData {
	return bytesData{Reader: bytes.NewReader(b), info: SnapshotInfo{Size: int64(len(b)), Checksum: SnapshotChecksum(b)}}
}

type bytesData struct {
	*bytes.Reader
	info SnapshotInfo
}

func (d bytesData) Info() SnapshotInfo { return d.info }
func (d bytesData) Close() error       { return nil }
