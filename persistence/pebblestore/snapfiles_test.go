package pebblestore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
)

// snapFiles lists the snapshot files of the database at dir.
func snapFiles(t *testing.T, fs vfs.FS) []string {
	t.Helper()
	names, err := fs.List(fs.PathJoin(dir, "snapshots"))
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return names
}

// TestSnapshotFileCorrupt: a snapshot file damaged on disk is
// persistence.ErrCorrupt when opened (checksum), and when loaded whole;
// the database keeps working.
func TestSnapshotFileCorrupt(t *testing.T) {
	ctx := context.Background()
	mem := vfs.NewMem()
	m := openMemDB(t, mem)
	g := m.group(t, 3)
	if err := g.Save(ctx, persistence.Update{Entries: []*messages.Entry{{Index: 1, Term: 1}, {Index: 2, Term: 1}}}); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("state "), 50000)
	sink, err := g.CreateSnapshot(ctx, &messages.SnapshotMetadata{Index: 2, Term: 1})
	if err != nil {
		t.Fatal(err)
	}
	sink.Write(data)
	if _, err := sink.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := g.SaveSnapshot(ctx, &messages.Snapshot{Metadata: &messages.SnapshotMetadata{Index: 2, Term: 1}}); err != nil {
		t.Fatal(err)
	}
	names := snapFiles(t, mem)
	if len(names) != 1 {
		t.Fatalf("snapshot files %v, want one", names)
	}
	// Flip one byte in the middle of the file.
	f, err := mem.OpenReadWrite(mem.PathJoin(dir, "snapshots", names[0]), vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{'X'}, 123456); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := g.OpenSnapshot(ctx, 2, 1); !errors.Is(err, persistence.ErrCorrupt) || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("OpenSnapshot of a damaged file: %v, want ErrCorrupt naming the checksum", err)
	}
	if _, err := g.LoadSnapshot(ctx); !errors.Is(err, persistence.ErrCorrupt) {
		t.Fatalf("LoadSnapshot of a damaged file: %v, want ErrCorrupt", err)
	}
	// A missing file is corrupt too.
	mem.Remove(mem.PathJoin(dir, "snapshots", names[0]))
	if _, err := g.OpenSnapshot(ctx, 2, 1); !errors.Is(err, persistence.ErrCorrupt) {
		t.Fatalf("OpenSnapshot of a missing file: %v, want ErrCorrupt", err)
	}
	if err := g.Save(ctx, persistence.Update{Entries: []*messages.Entry{{Index: 3, Term: 1}}}); err != nil {
		t.Fatalf("Save after a corrupt snapshot: %v", err)
	}
}

// TestSnapshotFileLeftovers: Open removes temporary files, and loading a
// group removes its files that never became current; an open snapshot
// stays readable after a newer one removed its file.
func TestSnapshotFileLeftovers(t *testing.T) {
	ctx := context.Background()
	mem := vfs.NewMem()
	m := openMemDB(t, mem)
	g := m.group(t, 3)
	if err := g.Save(ctx, persistence.Update{Entries: []*messages.Entry{{Index: 1, Term: 1}, {Index: 2, Term: 1}, {Index: 3, Term: 1}}}); err != nil {
		t.Fatal(err)
	}
	write := func(index uint64, data string) {
		sink, err := g.CreateSnapshot(ctx, &messages.SnapshotMetadata{Index: index, Term: 1})
		if err != nil {
			t.Fatal(err)
		}
		sink.Write([]byte(data))
		if _, err := sink.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	write(1, "one")
	if err := g.SaveSnapshot(ctx, &messages.Snapshot{Metadata: &messages.SnapshotMetadata{Index: 1, Term: 1}}); err != nil {
		t.Fatal(err)
	}
	open1, err := g.OpenSnapshot(ctx, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer open1.Close()
	write(2, "two")
	if err := g.SaveSnapshot(ctx, &messages.Snapshot{Metadata: &messages.SnapshotMetadata{Index: 2, Term: 1}}); err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(io.NewSectionReader(open1, 0, open1.Info().Size)); err != nil || string(got) != "one" {
		t.Fatalf("an open snapshot after a newer one became current: %q, %v", got, err)
	}
	write(3, "three") // committed, never current
	tmp, err := g.CreateSnapshot(ctx, &messages.SnapshotMetadata{Index: 3, Term: 1})
	if err != nil {
		t.Fatal(err)
	}
	tmp.Write([]byte("interrupted"))
	if n := len(snapFiles(t, mem)); n != 3 {
		t.Fatalf("%d snapshot files before the restart (%v), want 3: current, committed, temporary", n, snapFiles(t, mem))
	}
	if err := m.db.Close(); err != nil {
		t.Fatal(err)
	}
	m = openMemDB(t, mem)
	g = m.group(t, 3)
	names := snapFiles(t, mem)
	if len(names) != 1 || !strings.HasPrefix(names[0], "g3-i2-") {
		t.Fatalf("snapshot files after the restart: %v, want only the current one (index 2)", names)
	}
	d, err := g.OpenSnapshot(ctx, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
}
