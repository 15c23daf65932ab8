package pebblestore_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/protobuf/proto"

	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
	"github.com/flotilla-raft/flotilla/persistence/pebblestore"
)

func TestOptionsValidate(t *testing.T) {
	cases := []struct {
		name  string
		opts  pebblestore.Options
		wants []string // substrings of the error; none: valid
	}{
		{"defaults", pebblestore.Options{}, nil},
		{"small cache", pebblestore.Options{CacheSize: 10}, []string{"CacheSize is 10"}},
		{"everything wrong", pebblestore.Options{CacheSize: -1, MemTableSize: 2 << 30, MaxOpenFiles: 3},
			[]string{"CacheSize is -1", "MemTableSize is 2147483648", "MaxOpenFiles is 3"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := c.opts
			o.EnsureDefaults()
			err := o.Validate()
			if len(c.wants) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted %+v", c.opts)
			}
			for _, w := range c.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate error %q does not mention %q", err, w)
				}
			}
			if _, err := pebblestore.Open(t.TempDir(), c.opts); err == nil {
				t.Fatal("Open accepted invalid options")
			}
		})
	}
}

func TestCloseSemantics(t *testing.T) {
	ctx := context.Background()
	m := openMemDB(t, vfs.NewCrashableMem())
	g1, g2 := m.group(t, 1), m.group(t, 2)
	if again := m.group(t, 1); again != g1 {
		t.Fatal("Group(1) returned a second handle while the first is open")
	}
	if err := g1.Save(ctx, persistence.Update{Entries: []*messages.Entry{{Index: 1, Term: 1}}}); err != nil {
		t.Fatal(err)
	}
	if err := g1.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := g1.State(ctx); !errors.Is(err, persistence.ErrClosed) {
		t.Fatalf("State on a closed group: %v, want ErrClosed", err)
	}
	if _, err := g2.State(ctx); err != nil {
		t.Fatalf("closing group 1 closed group 2: %v", err)
	}
	g1b := m.group(t, 1)
	if g1b == g1 {
		t.Fatal("Group(1) after Close returned the closed handle")
	}
	if st, err := g1b.State(ctx); err != nil || st.LastIndex != 1 {
		t.Fatalf("reopened group 1: %+v, %v", st, err)
	}
	if err := m.db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.db.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, g := range []*pebblestore.Group{g1b, g2} {
		if _, err := g.Entries(ctx, 1, 2, 0); !errors.Is(err, persistence.ErrClosed) {
			t.Fatalf("Entries after DB.Close: %v, want ErrClosed", err)
		}
		if err := g.Close(); err != nil {
			t.Fatalf("Group.Close after DB.Close: %v", err)
		}
	}
	if _, err := m.db.Group(3); !errors.Is(err, persistence.ErrClosed) {
		t.Fatalf("Group after DB.Close: %v, want ErrClosed", err)
	}
}

func TestGroupsAreIsolated(t *testing.T) {
	ctx := context.Background()
	m := openMemDB(t, vfs.NewCrashableMem())
	ids := []uint64{0, 1, 2, 255, 256, 1 << 63}
	for n, id := range ids {
		g := m.group(t, id)
		var es []*messages.Entry
		for i := uint64(1); i <= uint64(10+n); i++ {
			es = append(es, &messages.Entry{Index: i, Term: id + 1, Data: []byte{byte(id), byte(i)}})
		}
		if err := g.Save(ctx, persistence.Update{Entries: es, HardState: &messages.HardState{Term: id + 1}}); err != nil {
			t.Fatal(err)
		}
		if err := g.CommitApplied(ctx, 3, func(w persistence.AppWriter) error { return w.Set([]byte("k"), []byte{byte(id)}) }); err != nil {
			t.Fatal(err)
		}
	}
	// Overwrite and compact group 1: nobody else notices.
	g1 := m.group(t, 1)
	if err := g1.Save(ctx, persistence.Update{Entries: []*messages.Entry{{Index: 3, Term: 9}}}); err != nil {
		t.Fatal(err)
	}
	if err := g1.Compact(ctx, 2); err != nil {
		t.Fatal(err)
	}
	m.db.Close()
	m = openMemDB(t, m.mem)
	for n, id := range ids {
		g := m.group(t, id)
		st, err := g.State(ctx)
		if err != nil {
			t.Fatal(err)
		}
		wantFirst, wantLast := uint64(1), uint64(10+n)
		if id == 1 {
			wantFirst, wantLast = 3, 3
		}
		if st.FirstIndex != wantFirst || st.LastIndex != wantLast || !proto.Equal(st.HardState, &messages.HardState{Term: id + 1}) {
			t.Fatalf("group %d: state %+v, want [%d, %d] term %d", id, st, wantFirst, wantLast, id+1)
		}
		es, err := g.Entries(ctx, st.FirstIndex, st.LastIndex+1, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if id != 1 && (e.Term != id+1 || e.Data[0] != byte(id)) {
				t.Fatalf("group %d holds entry %v", id, e)
			}
		}
		v, ok, err := g.AppGet(ctx, []byte("k"))
		if err != nil || !ok || v[0] != byte(id) {
			t.Fatalf("group %d: AppGet = %v, %v, %v", id, v, ok, err)
		}
		var keys []string
		if err := g.AppScan(ctx, nil, nil, func(k, v []byte) error { keys = append(keys, string(k)); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(keys) != 1 || keys[0] != "k" {
			t.Fatalf("group %d: AppScan saw %q", id, keys)
		}
	}
}

func TestRealDirectoryWithWALDir(t *testing.T) {
	ctx := context.Background()
	dir, wal := t.TempDir(), filepath.Join(t.TempDir(), "wal")
	opts := pebblestore.Options{WALDir: wal, Logger: quietLogger}
	db, err := pebblestore.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	g, err := db.Group(42)
	if err != nil {
		t.Fatal(err)
	}
	snap := &messages.Snapshot{Metadata: &messages.SnapshotMetadata{Index: 5, Term: 2}, Data: []byte("state")}
	if err := g.Save(ctx, persistence.Update{Snapshot: snap, Entries: []*messages.Entry{{Index: 6, Term: 2, Data: []byte("x")}}}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = pebblestore.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	g, err = db.Group(42)
	if err != nil {
		t.Fatal(err)
	}
	got, err := g.LoadSnapshot(ctx)
	if err != nil || !proto.Equal(got, snap) {
		t.Fatalf("LoadSnapshot = %v, %v", got, err)
	}
	if term, err := g.Term(ctx, 5); err != nil || term != 2 {
		t.Fatalf("Term(5) = %d, %v", term, err)
	}
	if es, err := g.Entries(ctx, 6, 7, 0); err != nil || len(es) != 1 || string(es[0].Data) != "x" {
		t.Fatalf("Entries = %v, %v", es, err)
	}
}
