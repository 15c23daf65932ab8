package storetest

import (
	"context"
	"fmt"
	"math/rand"
	"testing"

	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
	"github.com/flotilla-raft/flotilla/persistence/memstore"
)

// op is one write of a randomized history.
type op struct {
	u         persistence.Update // kind "save"
	compactTo uint64             // kind "compact"
	snap      *messages.Snapshot // kind "snapshot"
	kind      string
}

func (o op) String() string {
	switch o.kind {
	case "compact":
		return fmt.Sprintf("Compact(%d)", o.compactTo)
	case "snapshot":
		return fmt.Sprintf("SaveSnapshot(%d@%d)", o.snap.Metadata.Index, o.snap.Metadata.Term)
	case "filesnapshot":
		return fmt.Sprintf("CreateSnapshot+Commit+SaveSnapshot(%d@%d, metadata only)", o.snap.Metadata.Index, o.snap.Metadata.Term)
	}
	s := "Save("
	if o.u.Snapshot != nil {
		s += fmt.Sprintf("snapshot %d@%d ", o.u.Snapshot.Metadata.Index, o.u.Snapshot.Metadata.Term)
	}
	if n := len(o.u.Entries); n > 0 {
		s += fmt.Sprintf("entries [%d, %d] ", o.u.Entries[0].Index, o.u.Entries[n-1].Index)
	}
	if o.u.HardState != nil {
		s += fmt.Sprintf("hard state %v", o.u.HardState)
	}
	return s + ")"
}

func (o op) apply(ctx context.Context, s Store) error {
	switch o.kind {
	case "compact":
		return s.Compact(ctx, o.compactTo)
	case "snapshot":
		return s.SaveSnapshot(ctx, o.snap)
	case "filesnapshot":
		return saveFileSnapshot(ctx, s, o.snap)
	}
	return s.Save(ctx, o.u)
}

// saveFileSnapshot stores snap the way a node does with snapshot files:
// the data streamed into a sink and committed, then the metadata saved
// alone. A store without SnapshotFileStore saves snap whole instead.
func saveFileSnapshot(ctx context.Context, s Store, snap *messages.Snapshot) error {
	fs, ok := s.(persistence.SnapshotFileStore)
	if !ok {
		return s.SaveSnapshot(ctx, snap)
	}
	sink, err := fs.CreateSnapshot(ctx, snap.Metadata)
	if err != nil {
		return err
	}
	for rest := snap.Data; len(rest) > 0; {
		n := min(len(rest), 700)
		if _, err := sink.Write(rest[:n]); err != nil {
			sink.Abort()
			return err
		}
		rest = rest[n:]
	}
	if _, err := sink.Commit(); err != nil {
		return err
	}
	return s.SaveSnapshot(ctx, &messages.Snapshot{Metadata: snap.Metadata})
}

// history generates valid writes against a model store.
type history struct {
	rng   *rand.Rand
	term  uint64
	model *memstore.Store
	ops   []op
}

func newHistory(seed int64) *history {
	return &history{rng: rand.New(rand.NewSource(seed)), term: 1, model: memstore.New()}
}

func (h *history) entries(lo, n uint64) []*messages.Entry {
	out := make([]*messages.Entry, n)
	for i := range out {
		data := make([]byte, h.rng.Intn(300))
		h.rng.Read(data)
		out[i] = &messages.Entry{Index: lo + uint64(i), Term: h.term, Data: data, ClientId: h.rng.Uint64() % 4, Sequence: uint64(i)}
	}
	return out
}

func (h *history) hardState() *messages.HardState {
	st, _ := h.model.State(context.Background())
	return &messages.HardState{Term: h.term, Vote: uint64(h.rng.Intn(4)), Commit: st.LastIndex}
}

// next returns a new write, valid for the model, and applies it to the model.
func (h *history) next(t *testing.T) op {
	t.Helper()
	ctx := context.Background()
	st, err := h.model.State(ctx)
	if err != nil {
		t.Fatalf("model State: %v", err)
	}
	if h.rng.Intn(5) == 0 {
		h.term++
	}
	var o op
	switch r := h.rng.Intn(100); {
	case r < 55: // append, often overwriting a short suffix
		lo := st.LastIndex + 1
		if back := uint64(h.rng.Intn(4)); back > 0 && back <= lo-st.FirstIndex {
			lo -= back
		}
		o = op{kind: "save", u: persistence.Update{Entries: h.entries(lo, uint64(1+h.rng.Intn(8)))}}
		if h.rng.Intn(2) == 0 {
			o.u.HardState = h.hardState()
		}
	case r < 68:
		o = op{kind: "save", u: persistence.Update{HardState: h.hardState()}}
	case r < 80:
		to := st.FirstIndex - 1 + uint64(h.rng.Int63n(int64(st.LastIndex-st.FirstIndex+2)))
		o = op{kind: "compact", compactTo: to}
	case r < 92: // InstallSnapshot, sometimes matching the log
		idx := st.FirstIndex - 1 + uint64(h.rng.Int63n(int64(st.LastIndex-st.FirstIndex+5)))
		if st.Snapshot != nil && idx < st.Snapshot.Index {
			idx = st.Snapshot.Index
		}
		idx = max(idx, 1)
		term := h.term
		if t2, err := h.model.Term(ctx, idx); err == nil && h.rng.Intn(2) == 0 {
			term = t2
		}
		o = op{kind: "save", u: persistence.Update{Snapshot: snapshotAt(idx, term, h.rng)}}
		if h.rng.Intn(2) == 0 {
			o.u.Entries = h.entries(idx+1, uint64(1+h.rng.Intn(4)))
		}
	default: // the node's own snapshot
		lo := max(st.FirstIndex-1, 1)
		if st.Snapshot != nil && st.Snapshot.Index > lo {
			lo = st.Snapshot.Index
		}
		if lo > st.LastIndex {
			o = op{kind: "save", u: persistence.Update{HardState: h.hardState()}}
			break
		}
		idx := lo + uint64(h.rng.Int63n(int64(st.LastIndex-lo+1)))
		term, err := h.model.Term(ctx, idx)
		if err != nil {
			t.Fatalf("model Term(%d): %v", idx, err)
		}
		o = op{kind: "snapshot", snap: snapshotAt(idx, term, h.rng)}
		if h.rng.Intn(2) == 0 {
			o.kind = "filesnapshot"
		}
	}
	if err := o.apply(ctx, h.model); err != nil {
		t.Fatalf("the model refused generated write %v: %v", o, err)
	}
	h.ops = append(h.ops, o)
	return o
}

func snapshotAt(index, term uint64, rng *rand.Rand) *messages.Snapshot {
	s := snap(index, term)
	s.Data = make([]byte, rng.Intn(2000))
	rng.Read(s.Data)
	return s
}

// modelAfter returns a model holding the first n writes of ops.
func modelAfter(t *testing.T, ops []op, n int) *memstore.Store {
	t.Helper()
	m := memstore.New()
	for _, o := range ops[:n] {
		if err := o.apply(context.Background(), m); err != nil {
			t.Fatalf("replaying %v on the model: %v", o, err)
		}
	}
	return m
}

// matchOne returns which of the candidates got equals, or -1 and the
// differences.
func matchOne(got contents, candidates ...contents) (int, string) {
	msg := ""
	for i, c := range candidates {
		d := diff(got, c)
		if d == "" {
			return i, ""
		}
		msg += fmt.Sprintf("\n\tcandidate %d: %s", i, d)
	}
	return -1, msg
}

func testPowerLoss(t *testing.T, newHarness func(t *testing.T) *Harness) {
	if h := newHarness(t); h.Crash == nil {
		h.Store.Close()
		t.Skip("the harness cannot simulate power loss")
	} else {
		h.Store.Close()
	}
	for _, seed := range CrashSeeds() {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			powerLoss(t, newHarness(t), seed)
		})
	}
}

func powerLoss(t *testing.T, h *Harness, seed int64) {
	ctx := context.Background()
	hist := newHistory(seed)
	nOps := 5 + hist.rng.Intn(40)
	crashAt := hist.rng.Intn(nOps + 1)
	midWrite := crashAt < nOps && hist.rng.Intn(2) == 0
	s := h.Store
	for i := 0; i < crashAt; i++ {
		o := hist.next(t)
		if err := o.apply(ctx, s); err != nil {
			t.Fatalf("seed %d: write %d %v: %v", seed, i, o, err)
		}
	}
	acked := len(hist.ops)
	var restart func(t *testing.T) Store
	if midWrite {
		o := hist.next(t)
		done := make(chan error, 1)
		go func() { done <- o.apply(ctx, s) }()
		restart = h.Crash(t)
		if err := <-done; err != nil {
			t.Logf("seed %d: the write in flight at the crash failed: %v", seed, err)
		}
	} else {
		restart = h.Crash(t)
	}
	s = restart(t)
	t.Cleanup(func() { s.Close() })
	candidates := []contents{dump(t, modelAfter(t, hist.ops, acked))}
	if midWrite {
		candidates = append(candidates, dump(t, hist.model))
	}
	got := dump(t, s)
	which, msg := matchOne(got, candidates...)
	if which < 0 {
		t.Fatalf("seed %d: after power loss at write %d (in the middle of it: %v) of %v, the store holds none of the allowed states:%s",
			seed, crashAt, midWrite, hist.ops, msg)
	}
	// The store keeps working after recovery, and agrees with the model.
	hist.model = modelAfter(t, hist.ops, acked+which)
	hist.ops = hist.ops[:acked+which]
	for i := 0; i < 5; i++ {
		o := hist.next(t)
		if err := o.apply(ctx, s); err != nil {
			t.Fatalf("seed %d: write %v after recovery: %v", seed, o, err)
		}
	}
	if d := diff(dump(t, s), dump(t, hist.model)); d != "" {
		t.Fatalf("seed %d: after recovery and more writes: %s", seed, d)
	}
}

func testIOError(t *testing.T, newHarness func(t *testing.T) *Harness) {
	if h := newHarness(t); h.Crash == nil || h.FailWrites == nil {
		h.Store.Close()
		t.Skip("the harness cannot inject I/O errors and simulate power loss")
	} else {
		h.Store.Close()
	}
	for _, seed := range CrashSeeds() {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			ioError(t, newHarness(t), seed)
		})
	}
}

func ioError(t *testing.T, h *Harness, seed int64) {
	ctx := context.Background()
	hist := newHistory(seed)
	s := h.Store
	for i, n := 0, 1+hist.rng.Intn(15); i < n; i++ {
		o := hist.next(t)
		if err := o.apply(ctx, s); err != nil {
			t.Fatalf("seed %d: write %d %v: %v", seed, i, o, err)
		}
	}
	acked := len(hist.ops)
	h.FailWrites(t)
	// A write that must reach the storage: new entries and a hard state.
	st, err := s.State(ctx)
	if err != nil {
		t.Fatalf("seed %d: State: %v", seed, err)
	}
	failing := persistence.Update{Entries: hist.entries(st.LastIndex+1, 3), HardState: hist.hardState()}
	if err := s.Save(ctx, failing); err == nil {
		t.Fatalf("seed %d: Save returned nil while every write to the storage fails: the store pretends success", seed)
	} else {
		t.Logf("seed %d: Save with failing storage: %v", seed, err)
	}
	if err := s.Save(ctx, persistence.Update{Entries: hist.entries(st.LastIndex+1, 1)}); err == nil {
		t.Fatalf("seed %d: a second Save returned nil while every write to the storage fails", seed)
	}
	restart := h.Crash(t)
	s = restart(t)
	t.Cleanup(func() { s.Close() })
	// Either the failed write is entirely lost or it is entirely there; what
	// was acknowledged before is there.
	before := dump(t, hist.model)
	after := modelAfter(t, hist.ops, acked)
	if err := after.Save(ctx, failing); err != nil {
		t.Fatalf("seed %d: model Save: %v", seed, err)
	}
	if which, msg := matchOne(dump(t, s), before, dump(t, after)); which < 0 {
		t.Fatalf("seed %d: after an I/O error and power loss the store holds none of the allowed states:%s", seed, msg)
	}
	if err := s.Save(ctx, persistence.Update{HardState: &messages.HardState{Term: hist.term + 1}}); err != nil {
		t.Fatalf("seed %d: Save after recovery: %v", seed, err)
	}
}
