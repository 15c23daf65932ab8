package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"testing"

	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
)

// The cases of persistence.SnapshotFileStore: they skip a store that does
// not implement it.

// fileStore returns h's store as a SnapshotFileStore, or skips the test.
func fileStore(t *testing.T, s Store) persistence.SnapshotFileStore {
	t.Helper()
	fs, ok := s.(persistence.SnapshotFileStore)
	if !ok {
		s.Close()
		t.Skip("the store does not implement persistence.SnapshotFileStore")
	}
	return fs
}

// snapData is a snapshot's data of n bytes, different for each seed.
func snapData(seed int64, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// writeSnapshot streams data into a new sink for md in pieces of up to
// 64 KiB and commits it.
func writeSnapshot(t *testing.T, fs persistence.SnapshotFileStore, md *messages.SnapshotMetadata, data []byte) persistence.SnapshotInfo {
	t.Helper()
	sink, err := fs.CreateSnapshot(context.Background(), md)
	if err != nil {
		t.Fatalf("CreateSnapshot(%d@%d): %v", md.Index, md.Term, err)
	}
	for rest := data; len(rest) > 0; {
		n := min(len(rest), 64<<10)
		if _, err := sink.Write(rest[:n]); err != nil {
			t.Fatalf("sink Write: %v", err)
		}
		rest = rest[n:]
	}
	info, err := sink.Commit()
	if err != nil {
		t.Fatalf("sink Commit(%d@%d): %v", md.Index, md.Term, err)
	}
	want := persistence.SnapshotInfo{Size: int64(len(data)), Checksum: persistence.SnapshotChecksum(data)}
	if info != want {
		t.Fatalf("Commit(%d@%d) = %+v, want %+v", md.Index, md.Term, info, want)
	}
	return info
}

// wantSnapshotData checks that (index, term) opens with exactly data.
func wantSnapshotData(t *testing.T, fs persistence.SnapshotFileStore, index, term uint64, data []byte) {
	t.Helper()
	d, err := fs.OpenSnapshot(context.Background(), index, term)
	if err != nil {
		t.Fatalf("OpenSnapshot(%d@%d): %v", index, term, err)
	}
	defer d.Close()
	if got := d.Info(); got.Size != int64(len(data)) || got.Checksum != persistence.SnapshotChecksum(data) {
		t.Fatalf("OpenSnapshot(%d@%d).Info() = %+v, want size %d checksum %08x", index, term, got, len(data), persistence.SnapshotChecksum(data))
	}
	got, err := io.ReadAll(io.NewSectionReader(d, 0, d.Info().Size))
	if err != nil {
		t.Fatalf("read snapshot %d@%d: %v", index, term, err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("snapshot %d@%d: the data read back differs from the data written (%d bytes, want %d)", index, term, len(got), len(data))
	}
}

func wantNoSnapshotData(t *testing.T, fs persistence.SnapshotFileStore, index, term uint64) {
	t.Helper()
	d, err := fs.OpenSnapshot(context.Background(), index, term)
	if err == nil {
		d.Close()
		t.Fatalf("OpenSnapshot(%d@%d) succeeded, want ErrNoSnapshot", index, term)
	}
	wantErr(t, fmt.Sprintf("OpenSnapshot(%d@%d)", index, term), err, persistence.ErrNoSnapshot)
}

func metaOnly(index, term uint64) *messages.Snapshot {
	s := snap(index, term)
	s.Data = nil
	return s
}

// testSnapshotFiles: the two steps (commit, then make current), reads,
// replacement and removal of older data, Abort, the SnapshotStore view of
// the same data, and installing a committed snapshot through Save.
func testSnapshotFiles(t *testing.T, newHarness func(t *testing.T) *Harness) {
	h := newHarness(t)
	s := closeAtEnd(t, h.Store)
	fs := fileStore(t, s)
	ctx := context.Background()
	mustSave(t, s, persistence.Update{Entries: ents(1, 20, 1), HardState: &messages.HardState{Term: 1, Commit: 20}})

	wantNoSnapshotData(t, fs, 5, 1)
	big := snapData(1, 3<<20+17) // several sink buffers, not a round size
	writeSnapshot(t, fs, snap(5, 1).Metadata, big)
	// Committed: readable, but not current yet.
	wantSnapshotData(t, fs, 5, 1, big)
	if st, _ := s.State(ctx); st.Snapshot != nil {
		t.Fatalf("a committed snapshot is current before its metadata is saved: State.Snapshot = %v", st.Snapshot)
	}
	if err := s.SaveSnapshot(ctx, metaOnly(5, 1)); err != nil {
		t.Fatalf("SaveSnapshot(metadata of 5@1): %v", err)
	}
	if st, _ := s.State(ctx); st.Snapshot.GetIndex() != 5 || st.Snapshot.GetTerm() != 1 {
		t.Fatalf("State.Snapshot = %v after SaveSnapshot, want 5@1", st.Snapshot)
	}
	wantSnapshotData(t, fs, 5, 1, big)
	// The SnapshotStore view: the data whole.
	if got, err := s.LoadSnapshot(ctx); err != nil || !bytes.Equal(got.Data, big) || got.Metadata.GetIndex() != 5 {
		t.Fatalf("LoadSnapshot after a file snapshot: index %d, %d bytes, err %v; want 5, %d bytes", got.GetMetadata().GetIndex(), len(got.GetData()), err, len(big))
	}

	// Abort leaves nothing; a sink for an index is independent of others.
	sink, err := fs.CreateSnapshot(ctx, snap(8, 1).Metadata)
	if err != nil {
		t.Fatalf("CreateSnapshot(8@1): %v", err)
	}
	sink.Write([]byte("half a snapshot"))
	if err := sink.Abort(); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	wantNoSnapshotData(t, fs, 8, 1)
	wantSnapshotData(t, fs, 5, 1, big)

	// A newer snapshot made current: the older data is gone.
	second := snapData(2, 100<<10)
	writeSnapshot(t, fs, snap(10, 1).Metadata, second)
	if err := s.SaveSnapshot(ctx, metaOnly(10, 1)); err != nil {
		t.Fatalf("SaveSnapshot(metadata of 10@1): %v", err)
	}
	if err := s.Compact(ctx, 10); err != nil {
		t.Fatalf("Compact(10): %v", err)
	}
	wantSnapshotData(t, fs, 10, 1, second)
	wantNoSnapshotData(t, fs, 5, 1)

	// A snapshot saved with Data (a store user that knows no files) is
	// readable as a file too.
	withData := snap(12, 1)
	if err := s.SaveSnapshot(ctx, withData); err != nil {
		t.Fatalf("SaveSnapshot(12@1 with data): %v", err)
	}
	wantSnapshotData(t, fs, 12, 1, withData.Data)
	wantNoSnapshotData(t, fs, 10, 1)

	// A snapshot without committed data (CompactTo) has no data.
	if err := s.SaveSnapshot(ctx, metaOnly(15, 1)); err != nil {
		t.Fatalf("SaveSnapshot(15@1 without data): %v", err)
	}
	wantNoSnapshotData(t, fs, 15, 1)
	if got, err := s.LoadSnapshot(ctx); err != nil || len(got.Data) != 0 || got.Metadata.GetIndex() != 15 {
		t.Fatalf("LoadSnapshot of a snapshot without data: index %d, %d bytes, err %v", got.GetMetadata().GetIndex(), len(got.GetData()), err)
	}

	// InstallSnapshot: the data committed first (as chunks arrive), then
	// Update.Snapshot with the metadata only, in a new term.
	third := snapData(3, 200<<10)
	writeSnapshot(t, fs, snap(30, 2).Metadata, third)
	mustSave(t, s, persistence.Update{Snapshot: metaOnly(30, 2), HardState: &messages.HardState{Term: 2, Commit: 30}})
	wantState(t, s, 31, 30, 2)
	wantSnapshotData(t, fs, 30, 2, third)

	if h.Reopen != nil {
		s = closeAtEnd(t, h.Reopen(t))
		fs = fileStore(t, s)
		wantSnapshotData(t, fs, 30, 2, third)
		if st, _ := s.State(ctx); st.Snapshot.GetIndex() != 30 {
			t.Fatalf("State.Snapshot = %v after reopening, want 30@2", st.Snapshot)
		}
	}
	if _, err := fs.CreateSnapshot(ctx, &messages.SnapshotMetadata{}); !errors.Is(err, persistence.ErrInvalidUpdate) {
		t.Fatalf("CreateSnapshot at index 0: %v, want ErrInvalidUpdate", err)
	}
}

// testSnapshotFilesPowerLoss: power loss at each step of writing a newer
// snapshot. Before its metadata is saved, the previous snapshot stays
// current and readable; after, the new one is, and its data is whole.
func testSnapshotFilesPowerLoss(t *testing.T, newHarness func(t *testing.T) *Harness) {
	if h := newHarness(t); h.Crash == nil {
		h.Store.Close()
		t.Skip("the harness cannot simulate power loss")
	} else {
		fileStore(t, h.Store)
		h.Store.Close()
	}
	for _, step := range []string{"mid-write", "before-commit", "after-commit", "after-current"} {
		t.Run(step, func(t *testing.T) {
			h := newHarness(t)
			s := h.Store
			fs := fileStore(t, s)
			ctx := context.Background()
			mustSave(t, s, persistence.Update{Entries: ents(1, 20, 1), HardState: &messages.HardState{Term: 1, Commit: 20}})
			prev := snapData(10, 1<<20)
			writeSnapshot(t, fs, snap(10, 1).Metadata, prev)
			if err := s.SaveSnapshot(ctx, metaOnly(10, 1)); err != nil {
				t.Fatalf("SaveSnapshot(10@1): %v", err)
			}
			next := snapData(20, 2<<20)
			sink, err := fs.CreateSnapshot(ctx, snap(20, 1).Metadata)
			if err != nil {
				t.Fatalf("CreateSnapshot(20@1): %v", err)
			}
			newCurrent := false
			var restart func(t *testing.T) Store
			switch step {
			case "mid-write": // the crash lands while the data is written
				done := make(chan error, 1)
				go func() {
					_, err := sink.Write(next[:1<<20])
					if err == nil {
						_, err = sink.Write(next[1<<20:])
					}
					done <- err
				}()
				restart = h.Crash(t)
				<-done
			case "before-commit":
				if _, err := sink.Write(next); err != nil {
					t.Fatalf("sink Write: %v", err)
				}
				restart = h.Crash(t)
			case "after-commit":
				if _, err := sink.Write(next); err != nil {
					t.Fatalf("sink Write: %v", err)
				}
				if _, err := sink.Commit(); err != nil {
					t.Fatalf("Commit: %v", err)
				}
				restart = h.Crash(t)
			case "after-current":
				if _, err := sink.Write(next); err != nil {
					t.Fatalf("sink Write: %v", err)
				}
				if _, err := sink.Commit(); err != nil {
					t.Fatalf("Commit: %v", err)
				}
				if err := s.SaveSnapshot(ctx, metaOnly(20, 1)); err != nil {
					t.Fatalf("SaveSnapshot(20@1): %v", err)
				}
				newCurrent = true
				restart = h.Crash(t)
			}
			s = closeAtEnd(t, restart(t))
			fs = fileStore(t, s)
			st, err := s.State(ctx)
			if err != nil {
				t.Fatalf("State after power loss: %v", err)
			}
			if newCurrent {
				if st.Snapshot.GetIndex() != 20 {
					t.Fatalf("power loss %s: State.Snapshot = %v, want 20@1 (saved before the crash)", step, st.Snapshot)
				}
				wantSnapshotData(t, fs, 20, 1, next)
				return
			}
			if st.Snapshot.GetIndex() != 10 {
				t.Fatalf("power loss %s: State.Snapshot = %v, want the previous one, 10@1", step, st.Snapshot)
			}
			wantSnapshotData(t, fs, 10, 1, prev)
			// The store works on: the interrupted snapshot is written again.
			writeSnapshot(t, fs, snap(20, 1).Metadata, next)
			if err := s.SaveSnapshot(ctx, metaOnly(20, 1)); err != nil {
				t.Fatalf("SaveSnapshot(20@1) after recovery: %v", err)
			}
			wantSnapshotData(t, fs, 20, 1, next)
			wantNoSnapshotData(t, fs, 10, 1)
		})
	}
}
