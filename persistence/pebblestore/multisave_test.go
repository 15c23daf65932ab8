package pebblestore_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
	"github.com/flotilla-raft/flotilla/persistence/pebblestore"
)

// SaveGroups: the groups' updates are saved together and synced (they
// survive a power loss); a refused update, a group given twice and a
// closed group each fail alone and leave their group unchanged.
func TestSaveGroups(t *testing.T) {
	ctx := context.Background()
	mem := vfs.NewCrashableMem()
	m := openMemDB(t, mem)
	ents := func(lo, hi, term uint64) []*messages.Entry {
		var es []*messages.Entry
		for i := lo; i <= hi; i++ {
			es = append(es, &messages.Entry{Index: i, Term: term, Data: []byte{byte(i)}})
		}
		return es
	}
	g1, g2, g3, g4 := m.group(t, 1), m.group(t, 2), m.group(t, 3), m.group(t, 4)
	if err := g4.Close(); err != nil {
		t.Fatal(err)
	}
	errs := m.db.SaveGroups(ctx, []pebblestore.GroupUpdate{
		{Group: g2, Update: persistence.Update{Entries: ents(1, 5, 1), HardState: &messages.HardState{Term: 1, Commit: 5}}},
		{Group: g1, Update: persistence.Update{Entries: ents(1, 3, 2), HardState: &messages.HardState{Term: 2}}},
		{Group: g3, Update: persistence.Update{Entries: ents(7, 8, 1)}}, // a gap: refused
		{Group: g1, Update: persistence.Update{Entries: ents(4, 4, 2)}}, // twice
		{Group: g4, Update: persistence.Update{Entries: ents(1, 1, 1)}}, // closed
	})
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("SaveGroups of two good updates: %v", errs)
	}
	if errs[2] == nil {
		t.Error("SaveGroups accepted an update that leaves a gap in the log")
	}
	if !errors.Is(errs[3], pebblestore.ErrDuplicateGroup) {
		t.Errorf("a group given twice: %v, want ErrDuplicateGroup", errs[3])
	}
	if !errors.Is(errs[4], persistence.ErrClosed) {
		t.Errorf("a closed group: %v, want ErrClosed", errs[4])
	}
	// Power loss: what SaveGroups answered is durable.
	clone := mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: rand.New(rand.NewPCG(1, 2))})
	m.db.Close()
	m = openMemDB(t, clone)
	for _, c := range []struct {
		id, last, term uint64
	}{{1, 3, 2}, {2, 5, 1}, {3, 0, 0}} {
		st, err := m.group(t, c.id).State(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.LastIndex != c.last || st.HardState.GetTerm() != c.term {
			t.Errorf("group %d after a power loss: last index %d term %d, want %d and %d", c.id, st.LastIndex, st.HardState.GetTerm(), c.last, c.term)
		}
	}
}
