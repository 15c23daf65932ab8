package storetest

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
)

var (
	crashSeeds = flag.Int("persist.crashseeds", 50, "number of seeded crash points the persistence crash tests run")
	onlySeed   = flag.Int64("persist.seed", -1, "run only this crash seed (replay a failure)")
)

// shortCrashSeeds is the number of crash seeds with -short, unless
// -persist.crashseeds is given.
const shortCrashSeeds = 10

// CrashSeeds returns the seeds the crash tests of this package (and of the
// stores that share its flags) run: 1..N for -persist.crashseeds=N (default
// 50, or 10 with -short), or the one seed of -persist.seed.
func CrashSeeds() []int64 {
	if *onlySeed >= 0 {
		return []int64{*onlySeed}
	}
	n := *crashSeeds
	if testing.Short() {
		explicit := false
		flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "persist.crashseeds" })
		if !explicit {
			n = min(n, shortCrashSeeds)
		}
	}
	seeds := make([]int64, n)
	for i := range seeds {
		seeds[i] = int64(i + 1)
	}
	return seeds
}

// Store is what the suite tests: a log store that also keeps snapshots.
type Store interface {
	persistence.LogStore
	persistence.SnapshotStore
}

// Harness gives the suite one fresh, empty store and the operations around
// its underlying storage. Only Store is required; a nil hook skips the cases
// that need it.
type Harness struct {
	// Store is empty when handed over. The suite closes the stores it is
	// handed (this one and those Reopen and Crash return) when it is done.
	Store Store

	// Reopen closes the current store and opens a new one over the same
	// underlying storage (a process restart without power loss).
	Reopen func(t *testing.T) Store

	// Crash captures the underlying storage as power loss would leave it at
	// this moment: everything synced, and an arbitrary part of what was not.
	// It may be called while a write is in progress on the current store.
	// The suite then stops using the current store and calls the returned
	// function, which disposes of the current store (it may be in any state,
	// including failed) and returns a new one opened over the captured image.
	Crash func(t *testing.T) (restart func(t *testing.T) Store)

	// FailWrites makes every later write to the current store's underlying
	// storage fail with an I/O error. Reads may keep working. The store
	// returned by a later Crash restart writes normally again.
	FailWrites func(t *testing.T)
}

// Run runs the conformance suite. newHarness is called once per case and
// must return a harness over fresh, empty storage.
func Run(t *testing.T, newHarness func(t *testing.T) *Harness) {
	cases := []struct {
		name string
		fn   func(t *testing.T, newHarness func(t *testing.T) *Harness)
	}{
		{"Empty", testEmpty},
		{"AppendAndRead", testAppendAndRead},
		{"SuffixOverwrite", testSuffixOverwrite},
		{"InvalidUpdate", testInvalidUpdate},
		{"Compact", testCompact},
		{"SnapshotInstall", testSnapshotInstall},
		{"SaveSnapshot", testSaveSnapshot},
		{"RangeErrors", testRangeErrors},
		{"MaxBytes", testMaxBytes},
		{"ReadsWhileWriting", testReadsWhileWriting},
		{"Ownership", testOwnership},
		{"ContextCancelled", testContextCancelled},
		{"Closed", testClosed},
		{"AppliedIndex", testAppliedIndex},
		{"Reopen", testReopen},
		{"PowerLoss", testPowerLoss},
		{"IOError", testIOError},
		{"SnapshotFiles", testSnapshotFiles},
		{"SnapshotFilesPowerLoss", testSnapshotFilesPowerLoss},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.fn(t, func(t *testing.T) *Harness {
				t.Helper()
				h := newHarness(t)
				if h == nil || h.Store == nil {
					t.Fatal("storetest: newHarness returned no store")
				}
				return h
			})
		})
	}
}

// closeAtEnd closes s when the test ends, reporting an error.
func closeAtEnd(t *testing.T, s Store) Store {
	t.Helper()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// ent returns an entry with a payload that identifies it.
func ent(index, term uint64) *messages.Entry {
	return &messages.Entry{Index: index, Term: term, Data: fmt.Appendf(nil, "entry %d@%d", index, term)}
}

// ents returns entries lo..hi (inclusive) with the given term.
func ents(lo, hi, term uint64) []*messages.Entry {
	var out []*messages.Entry
	for i := lo; i <= hi; i++ {
		out = append(out, ent(i, term))
	}
	return out
}

func snap(index, term uint64) *messages.Snapshot {
	return &messages.Snapshot{
		Metadata: &messages.SnapshotMetadata{Index: index, Term: term, Config: &messages.ClusterConfig{
			Voters: []*messages.Member{{Id: 1, Address: "a:1"}, {Id: 2, Address: "b:2"}},
		}},
		Data: fmt.Appendf(nil, "snapshot %d@%d", index, term),
	}
}

func mustSave(t *testing.T, s Store, u persistence.Update) {
	t.Helper()
	if err := s.Save(context.Background(), u); err != nil {
		t.Fatalf("Save: %v", err)
	}
}

// contents is everything a store holds, for comparisons.
type contents struct {
	state   persistence.State
	entries []*messages.Entry
	snap    *messages.Snapshot // nil when none
}

func dump(t *testing.T, s Store) contents {
	t.Helper()
	ctx := context.Background()
	st, err := s.State(ctx)
	if err != nil {
		t.Fatalf("State: %v", err)
	}
	es, err := s.Entries(ctx, st.FirstIndex, st.LastIndex+1, 0)
	if err != nil {
		t.Fatalf("Entries(%d, %d): %v", st.FirstIndex, st.LastIndex+1, err)
	}
	sn, err := s.LoadSnapshot(ctx)
	if err != nil && !errors.Is(err, persistence.ErrNoSnapshot) {
		t.Fatalf("LoadSnapshot: %v", err)
	}
	return contents{state: st, entries: es, snap: sn}
}

// diff describes how got differs from want ("" when equal).
func diff(got, want contents) string {
	g, w := got.state, want.state
	switch {
	case g.HardState == nil:
		return "State.HardState is nil"
	case !proto.Equal(g.HardState, w.HardState):
		return fmt.Sprintf("hard state %v, want %v", g.HardState, w.HardState)
	case (g.Snapshot == nil) != (w.Snapshot == nil) || (g.Snapshot != nil && !proto.Equal(g.Snapshot, w.Snapshot)):
		return fmt.Sprintf("State.Snapshot %v, want %v", g.Snapshot, w.Snapshot)
	case g.FirstIndex != w.FirstIndex || g.LastIndex != w.LastIndex || g.StartTerm != w.StartTerm:
		return fmt.Sprintf("bounds [%d, %d] start term %d, want [%d, %d] start term %d",
			g.FirstIndex, g.LastIndex, g.StartTerm, w.FirstIndex, w.LastIndex, w.StartTerm)
	case len(got.entries) != len(want.entries):
		return fmt.Sprintf("%d entries, want %d", len(got.entries), len(want.entries))
	case (got.snap == nil) != (want.snap == nil) || (got.snap != nil && !proto.Equal(got.snap, want.snap)):
		return fmt.Sprintf("snapshot %v, want %v", got.snap, want.snap)
	}
	for i := range got.entries {
		if !proto.Equal(got.entries[i], want.entries[i]) {
			return fmt.Sprintf("entry %d is %v, want %v", i, got.entries[i], want.entries[i])
		}
	}
	return ""
}

func wantState(t *testing.T, s Store, first, last, startTerm uint64) {
	t.Helper()
	st, err := s.State(context.Background())
	if err != nil {
		t.Fatalf("State: %v", err)
	}
	if st.FirstIndex != first || st.LastIndex != last || st.StartTerm != startTerm {
		t.Fatalf("State bounds [%d, %d] start term %d, want [%d, %d] start term %d",
			st.FirstIndex, st.LastIndex, st.StartTerm, first, last, startTerm)
	}
}

// wantTerms checks Term over [from, to] against want (want[i] is the term of from+i).
func wantTerms(t *testing.T, s Store, from uint64, want ...uint64) {
	t.Helper()
	for i, w := range want {
		idx := from + uint64(i)
		got, err := s.Term(context.Background(), idx)
		if err != nil {
			t.Fatalf("Term(%d): %v", idx, err)
		}
		if got != w {
			t.Fatalf("Term(%d) = %d, want %d", idx, got, w)
		}
	}
}

func wantEntries(t *testing.T, s Store, lo, hi uint64, want []*messages.Entry) {
	t.Helper()
	got, err := s.Entries(context.Background(), lo, hi, 0)
	if err != nil {
		t.Fatalf("Entries(%d, %d): %v", lo, hi, err)
	}
	if len(got) != len(want) {
		t.Fatalf("Entries(%d, %d) returned %d entries, want %d", lo, hi, len(got), len(want))
	}
	for i := range got {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("Entries(%d, %d)[%d] = %v, want %v", lo, hi, i, got[i], want[i])
		}
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: error %v, want %v", what, err, want)
	}
}
