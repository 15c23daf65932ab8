package memstore

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
)

// Store is an in-memory log store. The zero value is not usable: call New.
type Store struct {
	mu     sync.RWMutex
	closed bool
	// state.HardState is never nil.
	state persistence.State
	// Invariant: ents[i].Index == state.FirstIndex+i, len(ents) ==
	// state.LastIndex-state.FirstIndex+1.
	ents []*messages.Entry
	snap *messages.Snapshot
	// files is the committed snapshot data not yet current, by (index,
	// term) (SnapshotFileStore).
	files map[[2]uint64][]byte
	// Transactional apply.
	applied uint64
	app     map[string][]byte
}

var (
	_ persistence.LogStore          = (*Store)(nil)
	_ persistence.SnapshotFileStore = (*Store)(nil)
	_ persistence.SnapshotStore     = (*Store)(nil)
	_ persistence.AppliedIndexStore = (*Store)(nil)
)

// New returns an empty store.
func New() *Store {
	return &Store{
		state: persistence.State{HardState: &messages.HardState{}, FirstIndex: 1},
		app:   map[string][]byte{},
	}
}

// begin checks ctx and the closed flag; call with s.mu held.
func (s *Store) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed {
		return persistence.ErrClosed
	}
	return nil
}

// State implements persistence.LogStore.
func (s *Store) State(ctx context.Context) (persistence.State, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(ctx); err != nil {
		return persistence.State{}, err
	}
	return s.state, nil
}

// Entries implements persistence.LogStore.
func (s *Store) Entries(ctx context.Context, lo, hi, maxBytes uint64) ([]*messages.Entry, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if err := persistence.CheckEntriesRange(s.state, lo, hi); err != nil {
		return nil, fmt.Errorf("memstore: %w", err)
	}
	src := s.ents[lo-s.state.FirstIndex : hi-s.state.FirstIndex]
	return slices.Clone(src[:persistence.LimitSize(src, maxBytes)]), nil
}

// Term implements persistence.LogStore.
func (s *Store) Term(ctx context.Context, index uint64) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	return s.termLocked(index)
}

func (s *Store) termLocked(index uint64) (uint64, error) {
	t, ok, err := persistence.CheckTermIndex(s.state, index)
	if err != nil {
		return 0, fmt.Errorf("memstore: %w", err)
	}
	if ok {
		return t, nil
	}
	return s.ents[index-s.state.FirstIndex].Term, nil
}

// Save implements persistence.LogStore.
func (s *Store) Save(ctx context.Context, u persistence.Update) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return err
	}
	if u.Empty() {
		return nil
	}
	plan, err := persistence.PlanUpdate(s.state, u, s.termLocked)
	if err != nil {
		return fmt.Errorf("memstore: %w", err)
	}
	// Keep the old entries in [plan.Next.FirstIndex, plan.DiscardFrom).
	old := s.state
	ents := s.ents[:min(uint64(len(s.ents)), plan.DiscardFrom-old.FirstIndex)]
	if skip := plan.Next.FirstIndex - old.FirstIndex; skip > 0 {
		if skip >= uint64(len(ents)) {
			ents = s.ents[:0]
		} else {
			// Shift down rather than reslice so the backing array does not
			// grow forever; clear the tail so it releases the entries.
			n := copy(s.ents, ents[skip:])
			clear(s.ents[n:len(ents)])
			ents = s.ents[:n]
		}
	}
	if len(ents) < len(s.ents) {
		clear(s.ents[len(ents):])
	}
	ents = append(ents, u.Entries...)
	if u.Snapshot != nil {
		s.setSnapshot(u.Snapshot)
	}
	s.ents = ents
	s.state = plan.Next
	return nil
}

// Compact implements persistence.LogStore.
func (s *Store) Compact(ctx context.Context, index uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return err
	}
	noop, err := persistence.CheckCompact(s.state, index)
	if err != nil {
		return fmt.Errorf("memstore: %w", err)
	}
	if noop {
		return nil
	}
	skip := index + 1 - s.state.FirstIndex
	startTerm := s.ents[skip-1].Term
	n := copy(s.ents, s.ents[skip:])
	clear(s.ents[n:])
	s.ents = s.ents[:n]
	s.state.FirstIndex = index + 1
	s.state.StartTerm = startTerm
	return nil
}

// SaveSnapshot implements persistence.SnapshotStore.
func (s *Store) SaveSnapshot(ctx context.Context, snap *messages.Snapshot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return err
	}
	if err := persistence.CheckSnapshot(s.state, snap); err != nil {
		return fmt.Errorf("memstore: %w", err)
	}
	s.setSnapshot(snap)
	s.state.Snapshot = snap.Metadata
	return nil
}

// setSnapshot makes snap the current snapshot: without Data, with the
// committed data of its (index, term) if there is some. Committed data of
// older snapshots is dropped.
func (s *Store) setSnapshot(snap *messages.Snapshot) {
	md := snap.GetMetadata()
	if len(snap.Data) == 0 {
		if b, ok := s.files[[2]uint64{md.GetIndex(), md.GetTerm()}]; ok {
			snap = &messages.Snapshot{Metadata: md, Data: b}
		}
	}
	s.snap = snap
	for k := range s.files {
		if k[0] <= md.GetIndex() {
			delete(s.files, k)
		}
	}
}

// LoadSnapshot implements persistence.SnapshotStore.
func (s *Store) LoadSnapshot(ctx context.Context) (*messages.Snapshot, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if s.snap == nil {
		return nil, fmt.Errorf("memstore: %w", persistence.ErrNoSnapshot)
	}
	return s.snap, nil
}

// Close implements persistence.LogStore. Closing twice is not an error.
// Volatile implements persistence.VolatileStore: the log is in memory only.
func (s *Store) Volatile() bool { return true }

var _ persistence.VolatileStore = (*Store)(nil)

func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// AppliedIndex implements persistence.AppliedIndexStore.
func (s *Store) AppliedIndex(ctx context.Context) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	return s.applied, nil
}

// CommitApplied implements persistence.AppliedIndexStore: the writes are
// buffered and merged only when write returns nil.
func (s *Store) CommitApplied(ctx context.Context, index uint64, write func(w persistence.AppWriter) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return err
	}
	if index <= s.applied {
		return fmt.Errorf("memstore: %w: index %d, applied index %d", persistence.ErrAlreadyApplied, index, s.applied)
	}
	w := &appWriter{s: s, pending: map[string]*[]byte{}}
	if write != nil {
		if err := write(w); err != nil {
			return fmt.Errorf("memstore: apply write: %w", err)
		}
	}
	for k, v := range w.pending {
		if v == nil {
			delete(s.app, k)
		} else {
			s.app[k] = *v
		}
	}
	s.applied = index
	return nil
}

// AppGet implements persistence.AppliedIndexStore.
func (s *Store) AppGet(ctx context.Context, key []byte) ([]byte, bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(ctx); err != nil {
		return nil, false, err
	}
	v, ok := s.app[string(key)]
	return slices.Clone(v), ok, nil
}

// appWriter buffers one CommitApplied; a nil value is a delete.
type appWriter struct {
	s       *Store
	pending map[string]*[]byte
}

func (w *appWriter) Get(key []byte) ([]byte, bool, error) {
	if v, ok := w.pending[string(key)]; ok {
		if v == nil {
			return nil, false, nil
		}
		return slices.Clone(*v), true, nil
	}
	v, ok := w.s.app[string(key)]
	return slices.Clone(v), ok, nil
}

func (w *appWriter) Set(key, value []byte) error {
	v := slices.Clone(value)
	if v == nil {
		v = []byte{}
	}
	w.pending[string(key)] = &v
	return nil
}

func (w *appWriter) Delete(key []byte) error {
	w.pending[string(key)] = nil
	return nil
}

// CreateSnapshot implements persistence.SnapshotFileStore: the data is
// collected in memory.
func (s *Store) CreateSnapshot(ctx context.Context, md *messages.SnapshotMetadata) (persistence.SnapshotSink, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if md.GetIndex() == 0 {
		return nil, fmt.Errorf("memstore: %w: snapshot at index 0", persistence.ErrInvalidUpdate)
	}
	return &sink{s: s, key: [2]uint64{md.GetIndex(), md.GetTerm()}}, nil
}

// OpenSnapshot implements persistence.SnapshotFileStore.
func (s *Store) OpenSnapshot(ctx context.Context, index, term uint64) (persistence.SnapshotData, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if md := s.snap.GetMetadata(); md.GetIndex() == index && md.GetTerm() == term && len(s.snap.Data) > 0 {
		return persistence.BytesSnapshotData(s.snap.Data), nil
	}
	if b, ok := s.files[[2]uint64{index, term}]; ok {
		return persistence.BytesSnapshotData(b), nil
	}
	return nil, fmt.Errorf("memstore: snapshot %d@%d: %w", index, term, persistence.ErrNoSnapshot)
}

// sink collects a snapshot's data in memory.
type sink struct {
	s    *Store
	key  [2]uint64
	buf  []byte
	done bool
}

func (k *sink) Write(p []byte) (int, error) {
	if k.done {
		return 0, fmt.Errorf("memstore: write to a finished snapshot sink: %w", persistence.ErrClosed)
	}
	k.buf = append(k.buf, p...)
	return len(p), nil
}

func (k *sink) Commit() (persistence.SnapshotInfo, error) {
	if k.done {
		return persistence.SnapshotInfo{}, fmt.Errorf("memstore: commit of a finished snapshot sink: %w", persistence.ErrClosed)
	}
	k.done = true
	k.s.mu.Lock()
	defer k.s.mu.Unlock()
	if k.s.closed {
		return persistence.SnapshotInfo{}, fmt.Errorf("memstore: %w", persistence.ErrClosed)
	}
	if k.s.files == nil {
		k.s.files = map[[2]uint64][]byte{}
	}
	b := k.buf
	if b == nil {
		b = []byte{}
	}
	k.s.files[k.key] = b
	return persistence.SnapshotInfo{Size: int64(len(b)), Checksum: persistence.SnapshotChecksum(b)}, nil
}

func (k *sink) Abort() error {
	k.done = true
	k.buf = nil
	return nil
}
