package pebblestore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/protobuf/proto"

	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
)

func openMem(t *testing.T) *DB {
	t.Helper()
	db, err := Open("/db", Options{FS: vfs.NewMem(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), CacheSize: 1 << 20, MemTableSize: 1 << 20})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestKeyOrder(t *testing.T) {
	// Keys sort by group, then kind, then index, as byte strings.
	type gi struct{ group, index uint64 }
	order := []gi{{0, 0}, {0, 1}, {0, 255}, {0, 256}, {0, 1 << 40}, {1, 0}, {1, 7}, {256, 1}, {1 << 63, 0}, {^uint64(0), ^uint64(0)}}
	var prev []byte
	for i, k := range order {
		key := newKeys(k.group).entry(nil, k.index)
		if i > 0 && bytes.Compare(prev, key) >= 0 {
			t.Fatalf("entry key of group %d index %d does not sort after the previous one", k.group, k.index)
		}
		if idx, ok := newKeys(k.group).entryIndex(key); !ok || idx != k.index {
			t.Fatalf("entryIndex(%x) = %d, %v; want %d", key, idx, ok, k.index)
		}
		if _, ok := newKeys(k.group + 1).entryIndex(key); ok {
			t.Fatalf("entryIndex accepted a key of another group")
		}
		prev = key
	}
	k := newKeys(3)
	for _, kind := range []byte{kindHardState, kindLogStart, kindSnapMeta, kindSnapData, kindApplied} {
		if key := k.kind(kind); bytes.Compare(key, k.entry(nil, 0)) >= 0 {
			t.Fatalf("state key %x sorts inside the log", key)
		}
	}
	if bytes.Compare(k.entriesEnd(), k.app(nil, nil)) > 0 || bytes.Compare(k.appEnd(), newKeys(4).kind(kindHardState)) > 0 {
		t.Fatal("application keys overlap the log or the next group")
	}
}

func TestCorruptValues(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		key  func(k keys) []byte
		// check runs against the group reopened over the corrupt value.
		check func(t *testing.T, db *DB) error
	}{
		{"entry", func(k keys) []byte { return k.entry(nil, 2) }, func(t *testing.T, db *DB) error {
			g, err := db.Group(1)
			if err != nil {
				return err
			}
			if _, err := g.Term(ctx, 2); !errors.Is(err, persistence.ErrCorrupt) {
				t.Errorf("Term: %v, want ErrCorrupt", err)
			}
			_, err = g.Entries(ctx, 1, 4, 0)
			return err
		}},
		{"hard state", func(k keys) []byte { return k.kind(kindHardState) }, func(t *testing.T, db *DB) error {
			_, err := db.Group(1)
			return err
		}},
		{"log start", func(k keys) []byte { return k.kind(kindLogStart) }, func(t *testing.T, db *DB) error {
			_, err := db.Group(1)
			return err
		}},
		{"applied index", func(k keys) []byte { return k.kind(kindApplied) }, func(t *testing.T, db *DB) error {
			_, err := db.Group(1)
			return err
		}},
		{"snapshot metadata", func(k keys) []byte { return k.kind(kindSnapMeta) }, func(t *testing.T, db *DB) error {
			_, err := db.Group(1)
			return err
		}},
		{"stray entry below the log start", func(k keys) []byte { return k.entry(nil, 0) }, func(t *testing.T, db *DB) error {
			_, err := db.Group(1)
			return err
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			db := openMem(t)
			g, err := db.Group(1)
			if err != nil {
				t.Fatal(err)
			}
			es := []*messages.Entry{{Index: 1, Term: 1}, {Index: 2, Term: 1}, {Index: 3, Term: 1}}
			if err := g.Save(ctx, persistence.Update{Entries: es, HardState: &messages.HardState{Term: 1}}); err != nil {
				t.Fatal(err)
			}
			g.Close()
			if err := db.pdb.Set(c.key(g.keys), []byte{0xff, 0xff, 0xff}, pebble.Sync); err != nil {
				t.Fatal(err)
			}
			if err := c.check(t, db); !errors.Is(err, persistence.ErrCorrupt) {
				t.Fatalf("error %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestFatalFailsTheDatabase(t *testing.T) {
	db := openMem(t)
	g, err := db.Group(1)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := g.Save(ctx, persistence.Update{Entries: []*messages.Entry{{Index: 1, Term: 1}}}); err != nil {
		t.Fatal(err)
	}
	// What Pebble does on an unrecoverable error; the default logger would
	// exit the process here.
	db.logger.Fatalf("pebble: %s", "MANIFEST sync failed")
	for name, err := range map[string]error{
		"Save":          g.Save(ctx, persistence.Update{Entries: []*messages.Entry{{Index: 2, Term: 1}}}),
		"Compact":       g.Compact(ctx, 1),
		"SaveSnapshot":  g.SaveSnapshot(ctx, &messages.Snapshot{Metadata: &messages.SnapshotMetadata{Index: 1, Term: 1}}),
		"CommitApplied": g.CommitApplied(ctx, 1, nil),
		"State":         func() error { _, err := g.State(ctx); return err }(),
		"Group":         func() error { _, err := db.Group(2); return err }(),
	} {
		if !errors.Is(err, ErrFailed) {
			t.Errorf("%s after a fatal error: %v, want ErrFailed", name, err)
		}
	}
	if err := db.Close(); !errors.Is(err, ErrFailed) {
		t.Fatalf("Close after a fatal error: %v, want ErrFailed", err)
	}
}

func FuzzEntryTerm(f *testing.F) {
	for _, e := range []*messages.Entry{{}, {Term: 1, Index: 2}, {Term: 1 << 60, Index: 9, Data: []byte("x"), TraceParent: "00-ab"}} {
		b, _ := proto.Marshal(e)
		f.Add(b)
	}
	f.Add([]byte{0x08})
	f.Add([]byte{0x08, 0x01, 0x08, 0x02})
	f.Fuzz(func(t *testing.T, b []byte) {
		term, err := entryTerm(b)
		var e messages.Entry
		uerr := proto.Unmarshal(b, &e)
		if uerr == nil && (err != nil || term != e.Term) {
			t.Fatalf("entryTerm(%x) = %d, %v; proto.Unmarshal says term %d", b, term, err, e.Term)
		}
	})
}

func TestEntriesAreFreshCopies(t *testing.T) {
	db := openMem(t)
	g, _ := db.Group(1)
	ctx := context.Background()
	in := []*messages.Entry{{Index: 1, Term: 1, Data: []byte("abc")}}
	if err := g.Save(ctx, persistence.Update{Entries: in}); err != nil {
		t.Fatal(err)
	}
	got, _ := g.Entries(ctx, 1, 2, 0)
	got[0].Data[0] = 'X'
	got2, _ := g.Entries(ctx, 1, 2, 0)
	if !slices.Equal(got2[0].Data, []byte("abc")) || string(in[0].Data) != "abc" {
		t.Fatalf("mutating a returned entry reached the store: %q", got2[0].Data)
	}
}

func TestMissingEntryIsCorrupt(t *testing.T) {
	ctx := context.Background()
	for _, maxBytes := range []uint64{0, 1 << 20} {
		db := openMem(t)
		g, _ := db.Group(1)
		es := []*messages.Entry{{Index: 1, Term: 1}, {Index: 2, Term: 1}, {Index: 3, Term: 1}}
		if err := g.Save(ctx, persistence.Update{Entries: es}); err != nil {
			t.Fatal(err)
		}
		for _, idx := range []uint64{2, 3} {
			if err := db.pdb.Delete(g.keys.entry(nil, idx), pebble.Sync); err != nil {
				t.Fatal(err)
			}
			if _, err := g.Entries(ctx, 1, 4, maxBytes); !errors.Is(err, persistence.ErrCorrupt) {
				t.Fatalf("Entries(maxBytes=%d) with entry %d missing: %v, want ErrCorrupt", maxBytes, idx, err)
			}
			if _, err := g.Term(ctx, idx); !errors.Is(err, persistence.ErrCorrupt) {
				t.Fatalf("Term(%d) of a missing entry: %v, want ErrCorrupt", idx, err)
			}
		}
	}
}
