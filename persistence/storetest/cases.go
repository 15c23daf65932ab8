package storetest

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
)

func testEmpty(t *testing.T, newHarness func(t *testing.T) *Harness) {
	s := closeAtEnd(t, newHarness(t).Store)
	ctx := context.Background()
	st, err := s.State(ctx)
	if err != nil {
		t.Fatalf("State: %v", err)
	}
	if st.HardState == nil || !proto.Equal(st.HardState, &messages.HardState{}) {
		t.Fatalf("State.HardState = %v, want the zero value", st.HardState)
	}
	if st.Snapshot != nil {
		t.Fatalf("State.Snapshot = %v, want nil", st.Snapshot)
	}
	wantState(t, s, 1, 0, 0)
	wantTerms(t, s, 0, 0)
	wantEntries(t, s, 1, 1, nil)
	_, err = s.Term(ctx, 1)
	wantErr(t, "Term(1)", err, persistence.ErrUnavailable)
	_, err = s.Entries(ctx, 1, 2, 0)
	wantErr(t, "Entries(1, 2)", err, persistence.ErrUnavailable)
	_, err = s.LoadSnapshot(ctx)
	wantErr(t, "LoadSnapshot", err, persistence.ErrNoSnapshot)
	if err := s.Save(ctx, persistence.Update{}); err != nil {
		t.Fatalf("Save(empty update): %v", err)
	}
	wantState(t, s, 1, 0, 0)
}

func testAppendAndRead(t *testing.T, newHarness func(t *testing.T) *Harness) {
	s := closeAtEnd(t, newHarness(t).Store)
	hs := &messages.HardState{Term: 3, Vote: 2, Commit: 4}
	all := append(ents(1, 4, 1), ents(5, 10, 3)...)
	mustSave(t, s, persistence.Update{HardState: hs, Entries: all[:4]})
	mustSave(t, s, persistence.Update{Entries: all[4:7]})
	mustSave(t, s, persistence.Update{Entries: all[7:]})
	st, err := s.State(context.Background())
	if err != nil {
		t.Fatalf("State: %v", err)
	}
	if !proto.Equal(st.HardState, hs) {
		t.Fatalf("HardState = %v, want %v", st.HardState, hs)
	}
	wantState(t, s, 1, 10, 0)
	wantTerms(t, s, 0, 0, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3)
	for _, r := range []struct{ lo, hi uint64 }{{1, 11}, {1, 2}, {3, 7}, {10, 11}, {5, 5}} {
		wantEntries(t, s, r.lo, r.hi, all[r.lo-1:r.hi-1])
	}
	// A hard state alone leaves the log alone.
	hs2 := &messages.HardState{Term: 4, Vote: 0, Commit: 9}
	mustSave(t, s, persistence.Update{HardState: hs2})
	st, _ = s.State(context.Background())
	if !proto.Equal(st.HardState, hs2) {
		t.Fatalf("HardState = %v, want %v", st.HardState, hs2)
	}
	wantState(t, s, 1, 10, 0)
}

func testSuffixOverwrite(t *testing.T, newHarness func(t *testing.T) *Harness) {
	// One store, cases applied in turn over a log 1..10 at term 1 that each
	// case restores first.
	s := closeAtEnd(t, newHarness(t).Store)
	base := ents(1, 10, 1)
	mustSave(t, s, persistence.Update{Entries: base})
	cases := []struct {
		name     string
		entries  []*messages.Entry
		wantLast uint64
	}{
		{"overwrite the middle", ents(5, 6, 2), 6},
		{"overwrite from the first", ents(1, 3, 2), 3},
		{"overwrite the last", ents(10, 10, 2), 10},
		{"overwrite and extend", ents(8, 14, 2), 14},
		{"append at last+1", ents(11, 12, 1), 12},
		{"rewrite identical", ents(4, 10, 1), 10},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mustSave(t, s, persistence.Update{Entries: base})
			mustSave(t, s, persistence.Update{Entries: c.entries})
			wantState(t, s, 1, c.wantLast, 0)
			first := c.entries[0].Index
			want := append(append([]*messages.Entry{}, base[:first-1]...), c.entries...)
			wantEntries(t, s, 1, c.wantLast+1, want)
		})
	}
}

func testInvalidUpdate(t *testing.T, newHarness func(t *testing.T) *Harness) {
	s := closeAtEnd(t, newHarness(t).Store)
	mustSave(t, s, persistence.Update{Entries: ents(1, 10, 1)})
	if err := s.Compact(context.Background(), 3); err != nil {
		t.Fatalf("Compact(3): %v", err)
	}
	before := dump(t, s)
	cases := []struct {
		name string
		u    persistence.Update
		want error
	}{
		{"gap after the last index", persistence.Update{Entries: ents(12, 13, 1)}, persistence.ErrInvalidUpdate},
		{"not contiguous", persistence.Update{Entries: []*messages.Entry{ent(5, 1), ent(7, 1)}}, persistence.ErrInvalidUpdate},
		{"descending", persistence.Update{Entries: []*messages.Entry{ent(6, 1), ent(5, 1)}}, persistence.ErrInvalidUpdate},
		{"nil entry", persistence.Update{Entries: []*messages.Entry{ent(5, 1), nil}}, persistence.ErrInvalidUpdate},
		{"index 0", persistence.Update{Entries: []*messages.Entry{ent(0, 1)}}, persistence.ErrInvalidUpdate},
		{"before the log start", persistence.Update{Entries: ents(2, 5, 2)}, persistence.ErrCompacted},
		{"snapshot without metadata", persistence.Update{Snapshot: &messages.Snapshot{Data: []byte("x")}}, persistence.ErrInvalidUpdate},
		{"stale snapshot", persistence.Update{Snapshot: snap(2, 1)}, persistence.ErrSnapshotOutOfDate},
		{"snapshot then a gap", persistence.Update{Snapshot: snap(20, 3), Entries: ents(22, 23, 3)}, persistence.ErrInvalidUpdate},
		{"snapshot then entries it covers", persistence.Update{Snapshot: snap(20, 3), Entries: ents(20, 23, 3)}, persistence.ErrCompacted},
		{"bad entries with a valid hard state", persistence.Update{
			HardState: &messages.HardState{Term: 9}, Entries: ents(30, 31, 1)}, persistence.ErrInvalidUpdate},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := s.Save(context.Background(), c.u)
			wantErr(t, "Save", err, c.want)
			if d := diff(dump(t, s), before); d != "" {
				t.Fatalf("a rejected Save changed the store: %s", d)
			}
		})
	}
}

func testCompact(t *testing.T, newHarness func(t *testing.T) *Harness) {
	s := closeAtEnd(t, newHarness(t).Store)
	ctx := context.Background()
	all := append(ents(1, 5, 1), ents(6, 10, 2)...)
	mustSave(t, s, persistence.Update{Entries: all})
	if err := s.Compact(ctx, 6); err != nil {
		t.Fatalf("Compact(6): %v", err)
	}
	wantState(t, s, 7, 10, 2)
	wantTerms(t, s, 6, 2, 2, 2, 2, 2)
	wantEntries(t, s, 7, 11, all[6:])
	_, err := s.Term(ctx, 5)
	wantErr(t, "Term(5)", err, persistence.ErrCompacted)
	_, err = s.Entries(ctx, 6, 8, 0)
	wantErr(t, "Entries(6, 8)", err, persistence.ErrCompacted)
	// Below the start: nothing to do.
	for _, i := range []uint64{0, 3, 6} {
		if err := s.Compact(ctx, i); err != nil {
			t.Fatalf("Compact(%d) (already compacted): %v", i, err)
		}
	}
	wantState(t, s, 7, 10, 2)
	wantErr(t, "Compact(11)", s.Compact(ctx, 11), persistence.ErrUnavailable)
	// Appending after compaction, then compacting everything.
	mustSave(t, s, persistence.Update{Entries: ents(9, 12, 3)})
	wantState(t, s, 7, 12, 2)
	if err := s.Compact(ctx, 12); err != nil {
		t.Fatalf("Compact(12): %v", err)
	}
	wantState(t, s, 13, 12, 3)
	wantTerms(t, s, 12, 3)
	wantEntries(t, s, 13, 13, nil)
	mustSave(t, s, persistence.Update{Entries: ents(13, 13, 4)})
	wantState(t, s, 13, 13, 3)
	wantTerms(t, s, 12, 3, 4)
}

func testSnapshotInstall(t *testing.T, newHarness func(t *testing.T) *Harness) {
	base := append(ents(1, 5, 1), ents(6, 10, 2)...)
	cases := []struct {
		name                   string
		u                      persistence.Update
		first, last, startTerm uint64
		keptTo                 uint64 // base entries [first, keptTo] survive, then u.Entries
	}{
		{"matching term keeps the entries after it", persistence.Update{Snapshot: snap(7, 2)}, 8, 10, 2, 10},
		{"conflicting term discards the log", persistence.Update{Snapshot: snap(7, 3)}, 8, 7, 3, 7},
		{"at the last entry", persistence.Update{Snapshot: snap(10, 2)}, 11, 10, 2, 10},
		{"beyond the log", persistence.Update{Snapshot: snap(15, 4)}, 16, 15, 4, 15},
		{"with entries right after it", persistence.Update{Snapshot: snap(15, 4), Entries: ents(16, 18, 4)}, 16, 18, 4, 15},
		{"with entries overwriting kept ones", persistence.Update{Snapshot: snap(4, 1), Entries: ents(8, 9, 5)}, 5, 9, 1, 7},
		{"with a hard state", persistence.Update{Snapshot: snap(3, 1), HardState: &messages.HardState{Term: 5, Commit: 3}}, 4, 10, 1, 10},
		{"at the log start after compaction", persistence.Update{Snapshot: snap(2, 1)}, 3, 10, 1, 10},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := closeAtEnd(t, newHarness(t).Store)
			ctx := context.Background()
			mustSave(t, s, persistence.Update{Entries: base, HardState: &messages.HardState{Term: 2, Commit: 1}})
			if err := s.Compact(ctx, 2); err != nil {
				t.Fatalf("Compact(2): %v", err)
			}
			mustSave(t, s, c.u)
			wantState(t, s, c.first, c.last, c.startTerm)
			var want []*messages.Entry
			for i := c.first; i <= c.keptTo && i <= 10; i++ {
				want = append(want, base[i-1])
			}
			want = append(want, c.u.Entries...)
			wantEntries(t, s, c.first, c.last+1, want)
			wantTerms(t, s, c.first-1, c.startTerm)
			st, err := s.State(ctx)
			if err != nil {
				t.Fatalf("State: %v", err)
			}
			if !proto.Equal(st.Snapshot, c.u.Snapshot.Metadata) {
				t.Fatalf("State.Snapshot = %v, want %v", st.Snapshot, c.u.Snapshot.Metadata)
			}
			wantHS := &messages.HardState{Term: 2, Commit: 1}
			if c.u.HardState != nil {
				wantHS = c.u.HardState
			}
			if !proto.Equal(st.HardState, wantHS) {
				t.Fatalf("State.HardState = %v, want %v", st.HardState, wantHS)
			}
			got, err := s.LoadSnapshot(ctx)
			if err != nil {
				t.Fatalf("LoadSnapshot: %v", err)
			}
			if !proto.Equal(got, c.u.Snapshot) {
				t.Fatalf("LoadSnapshot = %v, want %v", got, c.u.Snapshot)
			}
			// A snapshot older than the installed one is refused.
			err = s.Save(ctx, persistence.Update{Snapshot: snap(c.first-2, c.startTerm)})
			wantErr(t, "Save(older snapshot)", err, persistence.ErrSnapshotOutOfDate)
		})
	}
}

func testSaveSnapshot(t *testing.T, newHarness func(t *testing.T) *Harness) {
	s := closeAtEnd(t, newHarness(t).Store)
	ctx := context.Background()
	mustSave(t, s, persistence.Update{Entries: ents(1, 10, 1)})
	if err := s.SaveSnapshot(ctx, snap(6, 1)); err != nil {
		t.Fatalf("SaveSnapshot(6): %v", err)
	}
	// The log is untouched until Compact.
	wantState(t, s, 1, 10, 0)
	if err := s.Compact(ctx, 6); err != nil {
		t.Fatalf("Compact(6): %v", err)
	}
	wantState(t, s, 7, 10, 1)
	got, err := s.LoadSnapshot(ctx)
	if err != nil || !proto.Equal(got, snap(6, 1)) {
		t.Fatalf("LoadSnapshot = %v, %v; want %v", got, err, snap(6, 1))
	}
	st, _ := s.State(ctx)
	if !proto.Equal(st.Snapshot, snap(6, 1).Metadata) {
		t.Fatalf("State.Snapshot = %v, want %v", st.Snapshot, snap(6, 1).Metadata)
	}
	wantErr(t, "SaveSnapshot(older)", s.SaveSnapshot(ctx, snap(5, 1)), persistence.ErrSnapshotOutOfDate)
	wantErr(t, "SaveSnapshot(no metadata)", s.SaveSnapshot(ctx, &messages.Snapshot{}), persistence.ErrInvalidUpdate)
	wantErr(t, "SaveSnapshot(nil)", s.SaveSnapshot(ctx, nil), persistence.ErrInvalidUpdate)
	if err := s.SaveSnapshot(ctx, snap(9, 1)); err != nil {
		t.Fatalf("SaveSnapshot(9): %v", err)
	}
	got, _ = s.LoadSnapshot(ctx)
	if !proto.Equal(got, snap(9, 1)) {
		t.Fatalf("LoadSnapshot = %v, want %v", got, snap(9, 1))
	}
}

func testRangeErrors(t *testing.T, newHarness func(t *testing.T) *Harness) {
	s := closeAtEnd(t, newHarness(t).Store)
	ctx := context.Background()
	mustSave(t, s, persistence.Update{Entries: ents(1, 10, 1)})
	if err := s.Compact(ctx, 4); err != nil {
		t.Fatalf("Compact(4): %v", err)
	}
	// The log is [5, 10], start term 1.
	for _, c := range []struct {
		lo, hi uint64
		want   error // nil: success
		n      int
	}{
		{5, 11, nil, 6},
		{5, 5, nil, 0},
		{11, 11, nil, 0},
		{4, 6, persistence.ErrCompacted, 0},
		{1, 11, persistence.ErrCompacted, 0},
		{5, 12, persistence.ErrUnavailable, 0},
		{11, 12, persistence.ErrUnavailable, 0},
		{8, 6, persistence.ErrInvalidUpdate, 0},
	} {
		got, err := s.Entries(ctx, c.lo, c.hi, 0)
		if c.want != nil {
			wantErr(t, "Entries", err, c.want)
			continue
		}
		if err != nil || len(got) != c.n {
			t.Fatalf("Entries(%d, %d) = %d entries, %v; want %d", c.lo, c.hi, len(got), err, c.n)
		}
	}
	for _, c := range []struct {
		index uint64
		want  error
	}{
		{4, nil}, {5, nil}, {10, nil},
		{3, persistence.ErrCompacted}, {0, persistence.ErrCompacted},
		{11, persistence.ErrUnavailable}, {1 << 62, persistence.ErrUnavailable},
	} {
		_, err := s.Term(ctx, c.index)
		if c.want == nil && err != nil {
			t.Fatalf("Term(%d): %v", c.index, err)
		}
		if c.want != nil {
			wantErr(t, "Term", err, c.want)
		}
	}
}

func testMaxBytes(t *testing.T, newHarness func(t *testing.T) *Harness) {
	s := closeAtEnd(t, newHarness(t).Store)
	all := ents(1, 10, 1)
	mustSave(t, s, persistence.Update{Entries: all})
	sz := persistence.EntrySize(all[0]) // every entry has the same size here
	for _, c := range []struct {
		maxBytes uint64
		want     int
	}{
		{0, 10}, {1, 1}, {sz - 1, 1}, {sz, 1}, {2*sz - 1, 1}, {2 * sz, 2}, {3*sz + 1, 3}, {100 * sz, 10},
	} {
		got, err := s.Entries(context.Background(), 1, 11, c.maxBytes)
		if err != nil {
			t.Fatalf("Entries(maxBytes=%d): %v", c.maxBytes, err)
		}
		if len(got) != c.want {
			t.Fatalf("Entries(1, 11, maxBytes=%d) returned %d entries, want %d (entry size %d)", c.maxBytes, len(got), c.want, sz)
		}
		for i, e := range got {
			if !proto.Equal(e, all[i]) {
				t.Fatalf("Entries(maxBytes=%d)[%d] = %v, want %v", c.maxBytes, i, e, all[i])
			}
		}
	}
}

func testOwnership(t *testing.T, newHarness func(t *testing.T) *Harness) {
	s := closeAtEnd(t, newHarness(t).Store)
	ctx := context.Background()
	in := ents(1, 10, 1)
	want := ents(1, 10, 1)
	mustSave(t, s, persistence.Update{Entries: in})
	// The caller's slice is the caller's: overwriting it after Save does not
	// reach the store.
	for i := range in {
		in[i] = ent(uint64(i+1), 99)
	}
	wantEntries(t, s, 1, 11, want)
	// Returned slices are the caller's too.
	got, err := s.Entries(ctx, 1, 11, 0)
	if err != nil {
		t.Fatalf("Entries: %v", err)
	}
	for i := range got {
		got[i] = nil
	}
	got2, err := s.Entries(ctx, 1, 5, 0)
	if err != nil {
		t.Fatalf("Entries: %v", err)
	}
	_ = append(got2, ent(99, 99), ent(100, 99)) // may write past len into the capacity
	got2[0] = ent(1, 77)
	wantEntries(t, s, 1, 11, want)
	// A later Save does not touch slices returned before.
	got3, _ := s.Entries(ctx, 3, 6, 0)
	mustSave(t, s, persistence.Update{Entries: ents(2, 12, 2)})
	for i, e := range got3 {
		if !proto.Equal(e, want[i+2]) {
			t.Fatalf("an entry returned before a Save changed to %v, want %v", e, want[i+2])
		}
	}
	// Snapshots passed in and returned.
	sn := snap(4, 2)
	mustSave(t, s, persistence.Update{Snapshot: sn})
	sn2, err := s.LoadSnapshot(ctx)
	if err != nil || !proto.Equal(sn2, snap(4, 2)) {
		t.Fatalf("LoadSnapshot = %v, %v", sn2, err)
	}
}

func testContextCancelled(t *testing.T, newHarness func(t *testing.T) *Harness) {
	s := closeAtEnd(t, newHarness(t).Store)
	mustSave(t, s, persistence.Update{Entries: ents(1, 5, 1)})
	before := dump(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := map[string]error{}
	_, calls["State"] = s.State(ctx)
	_, calls["Entries"] = s.Entries(ctx, 1, 3, 0)
	_, calls["Term"] = s.Term(ctx, 2)
	calls["Save"] = s.Save(ctx, persistence.Update{Entries: ents(3, 8, 2), HardState: &messages.HardState{Term: 2}})
	calls["Compact"] = s.Compact(ctx, 3)
	calls["SaveSnapshot"] = s.SaveSnapshot(ctx, snap(3, 1))
	_, calls["LoadSnapshot"] = s.LoadSnapshot(ctx)
	if a, ok := s.(persistence.AppliedIndexStore); ok {
		_, calls["AppliedIndex"] = a.AppliedIndex(ctx)
		calls["CommitApplied"] = a.CommitApplied(ctx, 1, nil)
		_, _, calls["AppGet"] = a.AppGet(ctx, []byte("k"))
	}
	for name, err := range calls {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: error %v, want context.Canceled", name, err)
		}
	}
	if d := diff(dump(t, s), before); d != "" {
		t.Fatalf("calls with a cancelled context changed the store: %s", d)
	}
}

func testClosed(t *testing.T, newHarness func(t *testing.T) *Harness) {
	s := newHarness(t).Store
	mustSave(t, s, persistence.Update{Entries: ents(1, 5, 1)})
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx := context.Background()
	calls := map[string]error{}
	_, calls["State"] = s.State(ctx)
	_, calls["Entries"] = s.Entries(ctx, 1, 3, 0)
	_, calls["Term"] = s.Term(ctx, 2)
	calls["Save"] = s.Save(ctx, persistence.Update{Entries: ents(3, 8, 2)})
	calls["Compact"] = s.Compact(ctx, 3)
	calls["SaveSnapshot"] = s.SaveSnapshot(ctx, snap(3, 1))
	_, calls["LoadSnapshot"] = s.LoadSnapshot(ctx)
	if a, ok := s.(persistence.AppliedIndexStore); ok {
		_, calls["AppliedIndex"] = a.AppliedIndex(ctx)
		calls["CommitApplied"] = a.CommitApplied(ctx, 1, nil)
		_, _, calls["AppGet"] = a.AppGet(ctx, []byte("k"))
	}
	for name, err := range calls {
		if !errors.Is(err, persistence.ErrClosed) {
			t.Errorf("%s after Close: error %v, want ErrClosed", name, err)
		}
	}
}

// testAppliedIndex runs when the store implements the optional
// AppliedIndexStore.
func testAppliedIndex(t *testing.T, newHarness func(t *testing.T) *Harness) {
	h := newHarness(t)
	a, ok := h.Store.(persistence.AppliedIndexStore)
	if !ok {
		h.Store.Close()
		t.Skip("the store does not implement persistence.AppliedIndexStore")
	}
	s := closeAtEnd(t, newHarness(t).Store)
	ctx := context.Background()
	if got, err := a.AppliedIndex(ctx); err != nil || got != 0 {
		t.Fatalf("AppliedIndex = %d, %v; want 0", got, err)
	}
	err := a.CommitApplied(ctx, 3, func(w persistence.AppWriter) error {
		if err := w.Set([]byte("a"), []byte("1")); err != nil {
			return err
		}
		if err := w.Set([]byte("b"), []byte("2")); err != nil {
			return err
		}
		if v, ok, err := w.Get([]byte("a")); err != nil || !ok || string(v) != "1" {
			t.Errorf("Get(a) inside the write = %q, %v, %v; want 1 (read your writes)", v, ok, err)
		}
		return w.Delete([]byte("b"))
	})
	if err != nil {
		t.Fatalf("CommitApplied(3): %v", err)
	}
	check := func(key, want string, wantFound bool) {
		t.Helper()
		v, found, err := a.AppGet(ctx, []byte(key))
		if err != nil || found != wantFound || string(v) != want {
			t.Fatalf("AppGet(%s) = %q, %v, %v; want %q, %v", key, v, found, err, want, wantFound)
		}
	}
	check("a", "1", true)
	check("b", "", false)
	wantErr(t, "CommitApplied(3) again", a.CommitApplied(ctx, 3, nil), persistence.ErrAlreadyApplied)
	boom := errors.New("boom")
	err = a.CommitApplied(ctx, 4, func(w persistence.AppWriter) error {
		w.Set([]byte("a"), []byte("lost"))
		return boom
	})
	wantErr(t, "CommitApplied with a failing write", err, boom)
	check("a", "1", true)
	if got, _ := a.AppliedIndex(ctx); got != 3 {
		t.Fatalf("AppliedIndex after a failed write = %d, want 3", got)
	}
	// The application's keys do not disturb the log.
	mustSave(t, s, persistence.Update{Entries: ents(1, 3, 1)})
	wantEntries(t, s, 1, 4, ents(1, 3, 1))
}

func testReopen(t *testing.T, newHarness func(t *testing.T) *Harness) {
	h := newHarness(t)
	if h.Reopen == nil {
		h.Store.Close()
		t.Skip("the harness cannot reopen its storage")
	}
	s := h.Store
	ctx := context.Background()
	mustSave(t, s, persistence.Update{Entries: ents(1, 10, 1), HardState: &messages.HardState{Term: 1, Vote: 1, Commit: 2}})
	mustSave(t, s, persistence.Update{Entries: ents(8, 12, 2), HardState: &messages.HardState{Term: 2, Vote: 3, Commit: 9}})
	if err := s.SaveSnapshot(ctx, snap(5, 1)); err != nil {
		t.Fatalf("SaveSnapshot: %v", err)
	}
	if err := s.Compact(ctx, 5); err != nil {
		t.Fatalf("Compact: %v", err)
	}
	want := dump(t, s)
	s = closeAtEnd(t, h.Reopen(t))
	if d := diff(dump(t, s), want); d != "" {
		t.Fatalf("after reopen: %s", d)
	}
	wantTerms(t, s, 5, 1, 1, 1, 2, 2, 2, 2, 2)
	// Still writable, and the next reopen sees it.
	mustSave(t, s, persistence.Update{Entries: ents(13, 13, 2)})
	want = dump(t, s)
	h.Store = s
	s = h.Reopen(t)
	t.Cleanup(func() { s.Close() })
	if d := diff(dump(t, s), want); d != "" {
		t.Fatalf("after the second reopen: %s", d)
	}
}
