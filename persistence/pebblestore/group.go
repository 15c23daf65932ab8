package pebblestore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
)

// Group is the store of one Raft group inside a DB: a persistence.LogStore,
// persistence.SnapshotStore and persistence.AppliedIndexStore. It keeps the
// group's State in memory (it is the only writer of its keys), so State is
// answered without I/O.
type Group struct {
	db   *DB
	id   uint64
	keys keys

	// mu is held for writing by Save, Compact, SaveSnapshot, CommitApplied
	// and Close, and for reading by every other call.
	mu     sync.RWMutex
	closed bool
	// Invariant: state is what the committed keys say. state.HardState is
	// never nil, and neither it nor state.Snapshot is mutated once set.
	state   persistence.State
	applied uint64
	// cur is the file of the current snapshot's data (nil: none, or the
	// data is inside Pebble); committed are the files committed by a sink
	// and not yet current, by (index, term). See snapfiles.go.
	cur       *snapFile
	committed map[[2]uint64]snapFile

	// Reused by Save under mu (write lock) to build keys and values.
	keyBuf, valBuf []byte
}

var (
	_ persistence.LogStore          = (*Group)(nil)
	_ persistence.SnapshotStore     = (*Group)(nil)
	_ persistence.AppliedIndexStore = (*Group)(nil)
	_ persistence.SnapshotFileStore = (*Group)(nil)
)

// ID returns the group's id.
func (g *Group) ID() uint64 { return g.id }

// get reads a key; found is false when it is missing. The value is a copy.
func (g *Group) get(key []byte) (value []byte, found bool, err error) {
	v, closer, err := g.db.pdb.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("pebblestore: group %d: read: %w", g.id, err)
	}
	out := append([]byte(nil), v...)
	return out, true, closer.Close()
}

func (g *Group) corrupt(what string, err error) error {
	return fmt.Errorf("pebblestore: group %d: %s: %w: %v", g.id, what, persistence.ErrCorrupt, err)
}

// load reads the group's state (called once, by DB.Group, under db.mu).
func (g *Group) load() error {
	st := persistence.State{HardState: &messages.HardState{}, FirstIndex: 1}
	if v, ok, err := g.get(g.keys.kind(kindHardState)); err != nil {
		return err
	} else if ok {
		if err := proto.Unmarshal(v, st.HardState); err != nil {
			return g.corrupt("hard state", err)
		}
	}
	if v, ok, err := g.get(g.keys.kind(kindLogStart)); err != nil {
		return err
	} else if ok {
		if len(v) != 16 {
			return g.corrupt("log start", fmt.Errorf("%d bytes, want 16", len(v)))
		}
		st.FirstIndex = binary.BigEndian.Uint64(v) + 1
		st.StartTerm = binary.BigEndian.Uint64(v[8:])
	}
	if v, ok, err := g.get(g.keys.kind(kindSnapMeta)); err != nil {
		return err
	} else if ok {
		st.Snapshot = &messages.SnapshotMetadata{}
		if err := proto.Unmarshal(v, st.Snapshot); err != nil {
			return g.corrupt("snapshot metadata", err)
		}
	}
	if err := g.loadSnapFiles(st.Snapshot); err != nil {
		return err
	}
	if v, ok, err := g.get(g.keys.kind(kindApplied)); err != nil {
		return err
	} else if ok {
		if len(v) != 8 {
			return g.corrupt("applied index", fmt.Errorf("%d bytes, want 8", len(v)))
		}
		g.applied = binary.BigEndian.Uint64(v)
	}
	// The log's bounds: the first and last entry keys.
	it, err := g.db.pdb.NewIter(&pebble.IterOptions{
		LowerBound: g.keys.entry(nil, 0),
		UpperBound: g.keys.entriesEnd(),
	})
	if err != nil {
		return fmt.Errorf("pebblestore: group %d: %w", g.id, err)
	}
	defer it.Close()
	st.LastIndex = st.FirstIndex - 1
	if it.First() {
		first, ok := g.keys.entryIndex(it.Key())
		if !ok || first != st.FirstIndex {
			return g.corrupt("log", fmt.Errorf("first entry key %x, want index %d", it.Key(), st.FirstIndex))
		}
		it.Last()
		last, ok := g.keys.entryIndex(it.Key())
		if !ok || last < first {
			return g.corrupt("log", fmt.Errorf("last entry key %x", it.Key()))
		}
		st.LastIndex = last
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("pebblestore: group %d: scan the log: %w", g.id, err)
	}
	g.state = st
	return nil
}

// begin checks ctx, the group and the database, and holds the database open
// until the returned release. write selects the write lock.
func (g *Group) begin(ctx context.Context, write bool) (release func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if write {
		g.mu.Lock()
	} else {
		g.mu.RLock()
	}
	unlock := g.mu.RUnlock
	if write {
		unlock = g.mu.Unlock
	}
	if g.closed {
		unlock()
		return nil, fmt.Errorf("pebblestore: group %d: %w", g.id, persistence.ErrClosed)
	}
	if err := g.db.acquire(); err != nil {
		unlock()
		return nil, err
	}
	return func() { g.db.release(); unlock() }, nil
}

// State implements persistence.LogStore.
func (g *Group) State(ctx context.Context) (persistence.State, error) {
	release, err := g.begin(ctx, false)
	if err != nil {
		return persistence.State{}, err
	}
	defer release()
	return g.state, nil
}

// Entries implements persistence.LogStore. The entries are freshly decoded:
// the caller may even mutate them.
func (g *Group) Entries(ctx context.Context, lo, hi, maxBytes uint64) ([]*messages.Entry, error) {
	release, err := g.begin(ctx, false)
	if err != nil {
		return nil, err
	}
	defer release()
	if err := persistence.CheckEntriesRange(g.state, lo, hi); err != nil {
		return nil, fmt.Errorf("pebblestore: group %d: %w", g.id, err)
	}
	if lo == hi {
		return nil, nil
	}
	it, err := g.db.pdb.NewIterWithContext(ctx, &pebble.IterOptions{
		LowerBound: g.keys.entry(nil, lo),
		UpperBound: g.keys.entry(nil, hi),
	})
	if err != nil {
		return nil, fmt.Errorf("pebblestore: group %d: %w", g.id, err)
	}
	defer it.Close()
	out := make([]*messages.Entry, 0, min(hi-lo, 1024))
	var size uint64
	want := lo
	limited := false
	for valid := it.First(); valid; valid = it.Next() {
		if idx, ok := g.keys.entryIndex(it.Key()); !ok || idx != want {
			return nil, g.corrupt("log", fmt.Errorf("found key %x where entry %d belongs", it.Key(), want))
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, fmt.Errorf("pebblestore: group %d: read entry %d: %w", g.id, want, err)
		}
		size += uint64(len(v))
		if maxBytes > 0 && size > maxBytes && len(out) > 0 {
			limited = true
			break
		}
		e := &messages.Entry{}
		if err := proto.Unmarshal(v, e); err != nil {
			return nil, g.corrupt(fmt.Sprintf("entry %d", want), err)
		}
		if e.Index != want {
			return nil, g.corrupt(fmt.Sprintf("entry %d", want), fmt.Errorf("it says index %d", e.Index))
		}
		out = append(out, e)
		want++
		if want%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("pebblestore: group %d: read entries: %w", g.id, err)
	}
	if want < hi && !limited {
		return nil, g.corrupt("log", fmt.Errorf("entry %d is missing", want))
	}
	return out, nil
}

// Term implements persistence.LogStore.
func (g *Group) Term(ctx context.Context, index uint64) (uint64, error) {
	release, err := g.begin(ctx, false)
	if err != nil {
		return 0, err
	}
	defer release()
	return g.termLocked(index)
}

func (g *Group) termLocked(index uint64) (uint64, error) {
	t, ok, err := persistence.CheckTermIndex(g.state, index)
	if err != nil {
		return 0, fmt.Errorf("pebblestore: group %d: %w", g.id, err)
	}
	if ok {
		return t, nil
	}
	var kb [entryKeyLen]byte
	v, closer, err := g.db.pdb.Get(g.keys.entry(kb[:0], index))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, g.corrupt("log", fmt.Errorf("entry %d is missing", index))
	}
	if err != nil {
		return 0, fmt.Errorf("pebblestore: group %d: read entry %d: %w", g.id, index, err)
	}
	defer closer.Close()
	term, err := entryTerm(v)
	if err != nil {
		return 0, g.corrupt(fmt.Sprintf("entry %d", index), err)
	}
	return term, nil
}

// entryTerm reads the term field of an encoded messages.Entry without
// decoding the rest.
func entryTerm(b []byte) (uint64, error) {
	var term uint64
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, protowire.ParseError(n)
		}
		b = b[n:]
		if num == 1 && typ == protowire.VarintType {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return 0, protowire.ParseError(n)
			}
			term = v // the last occurrence wins, as in proto.Unmarshal
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return 0, protowire.ParseError(n)
		}
		b = b[n:]
	}
	return term, nil
}

var marshal = proto.MarshalOptions{Deterministic: true}

// Save implements persistence.LogStore: the whole Update is one Pebble
// batch committed with pebble.Sync.
func (g *Group) Save(ctx context.Context, u persistence.Update) error {
	release, err := g.begin(ctx, true)
	if err != nil {
		return err
	}
	defer release()
	if u.Empty() {
		return nil
	}
	b := g.db.pdb.NewBatch()
	defer b.Close()
	op, err := g.prepareSave(b, u)
	if err != nil {
		return err
	}
	// Once the commit is tried, a file it may reference stays (load
	// removes it if the batch did not make it current).
	op.committing = true
	if err := g.db.commit(b); err != nil {
		return fmt.Errorf("pebblestore: group %d: save: %w", g.id, err)
	}
	op.saved()
	return nil
}

// saveOp is an Update of one group written into a batch and not yet
// committed (prepareSave). Once the batch committed, saved makes it the
// group's state; if the batch is dropped instead, dropped removes the
// snapshot file it wrote. The group's write lock is held throughout.
type saveOp struct {
	g          *Group
	u          persistence.Update
	next       persistence.State
	snapNext   *snapFile
	fresh      bool
	committing bool // the commit was tried: a file it references stays
}

// saved records the committed update as the group's state.
func (op *saveOp) saved() {
	op.g.state = op.next
	if op.u.Snapshot != nil {
		op.g.madeCurrent(op.snapNext, op.u.Snapshot.Metadata)
	}
}

// dropped undoes what prepareSave did outside the batch, unless the
// commit was tried.
func (op *saveOp) dropped() {
	if !op.committing {
		op.g.dropFresh(op.snapNext, op.fresh)
	}
}

// prepareSave writes u into b: the entries, the hard state, the snapshot
// and the deletions of the log's discarded prefix and suffix. On an error
// b holds part of u: drop it. The caller holds the write lock and u is not
// empty.
func (g *Group) prepareSave(b *pebble.Batch, u persistence.Update) (op *saveOp, err error) {
	plan, err := persistence.PlanUpdate(g.state, u, g.termLocked)
	if err != nil {
		return nil, fmt.Errorf("pebblestore: group %d: %w", g.id, err)
	}
	cur, next := g.state, plan.Next
	op = &saveOp{g: g, u: u, next: next}
	defer func() {
		if err != nil {
			op.dropped()
		}
	}()
	// Discard the prefix below the new log start.
	if err := g.deleteEntries(b, cur.FirstIndex, min(next.FirstIndex, cur.LastIndex+1)); err != nil {
		return nil, err
	}
	if next.FirstIndex != cur.FirstIndex || next.StartTerm != cur.StartTerm {
		var v [16]byte
		binary.BigEndian.PutUint64(v[:], next.FirstIndex-1)
		binary.BigEndian.PutUint64(v[8:], next.StartTerm)
		if err := b.Set(g.keys.kind(kindLogStart), v[:], nil); err != nil {
			return nil, g.batchErr(err)
		}
	}
	// Discard the suffix that is not rewritten: entries in
	// [max(DiscardFrom, next.LastIndex+1), cur.LastIndex]. Rewritten
	// entries are simply overwritten by their new value.
	if from := max(plan.DiscardFrom, next.LastIndex+1, next.FirstIndex); from <= cur.LastIndex {
		if err := g.deleteEntries(b, from, cur.LastIndex+1); err != nil {
			return nil, err
		}
	}
	if u.Snapshot != nil {
		op.snapNext, op.fresh, err = g.setSnapshot(b, u.Snapshot)
		if err != nil {
			return nil, err
		}
	}
	for _, e := range u.Entries {
		g.keyBuf = g.keys.entry(g.keyBuf[:0], e.Index)
		g.valBuf, err = marshal.MarshalAppend(g.valBuf[:0], e)
		if err != nil {
			return nil, fmt.Errorf("pebblestore: group %d: encode entry %d: %w", g.id, e.Index, err)
		}
		if err := b.Set(g.keyBuf, g.valBuf, nil); err != nil {
			return nil, g.batchErr(err)
		}
	}
	if u.HardState != nil {
		g.valBuf, err = marshal.MarshalAppend(g.valBuf[:0], u.HardState)
		if err != nil {
			return nil, fmt.Errorf("pebblestore: group %d: encode hard state: %w", g.id, err)
		}
		if err := b.Set(g.keys.kind(kindHardState), g.valBuf, nil); err != nil {
			return nil, g.batchErr(err)
		}
	}
	return op, nil
}

func (g *Group) batchErr(err error) error {
	return fmt.Errorf("pebblestore: group %d: build batch: %w", g.id, err)
}

// pointDeleteMax: ranges up to this many entries are deleted with point
// tombstones (cheap to read past), longer ones with one range tombstone.
const pointDeleteMax = 64

// deleteEntries deletes the entries in [lo, hi).
func (g *Group) deleteEntries(b *pebble.Batch, lo, hi uint64) error {
	if lo >= hi {
		return nil
	}
	if hi-lo <= pointDeleteMax {
		for i := lo; i < hi; i++ {
			g.keyBuf = g.keys.entry(g.keyBuf[:0], i)
			if err := b.Delete(g.keyBuf, nil); err != nil {
				return g.batchErr(err)
			}
		}
		return nil
	}
	if err := b.DeleteRange(g.keys.entry(nil, lo), g.keys.entry(nil, hi), nil); err != nil {
		return g.batchErr(err)
	}
	return nil
}

// Compact implements persistence.LogStore.
func (g *Group) Compact(ctx context.Context, index uint64) error {
	release, err := g.begin(ctx, true)
	if err != nil {
		return err
	}
	defer release()
	noop, err := persistence.CheckCompact(g.state, index)
	if err != nil {
		return fmt.Errorf("pebblestore: group %d: %w", g.id, err)
	}
	if noop {
		return nil
	}
	term, err := g.termLocked(index)
	if err != nil {
		return err
	}
	b := g.db.pdb.NewBatch()
	defer b.Close()
	if err := g.deleteEntries(b, g.state.FirstIndex, index+1); err != nil {
		return err
	}
	var v [16]byte
	binary.BigEndian.PutUint64(v[:], index)
	binary.BigEndian.PutUint64(v[8:], term)
	if err := b.Set(g.keys.kind(kindLogStart), v[:], nil); err != nil {
		return g.batchErr(err)
	}
	if err := g.db.commit(b); err != nil {
		return fmt.Errorf("pebblestore: group %d: compact: %w", g.id, err)
	}
	g.state.FirstIndex = index + 1
	g.state.StartTerm = term
	return nil
}

// SaveSnapshot implements persistence.SnapshotStore.
func (g *Group) SaveSnapshot(ctx context.Context, s *messages.Snapshot) error {
	release, err := g.begin(ctx, true)
	if err != nil {
		return err
	}
	defer release()
	if err := persistence.CheckSnapshot(g.state, s); err != nil {
		return fmt.Errorf("pebblestore: group %d: %w", g.id, err)
	}
	b := g.db.pdb.NewBatch()
	defer b.Close()
	next, fresh, err := g.setSnapshot(b, s)
	if err != nil {
		g.dropFresh(next, fresh)
		return err
	}
	if err := g.db.commit(b); err != nil {
		return fmt.Errorf("pebblestore: group %d: save snapshot: %w", g.id, err)
	}
	g.state.Snapshot = s.Metadata
	g.madeCurrent(next, s.Metadata)
	return nil
}

// LoadSnapshot implements persistence.SnapshotStore. The snapshot is freshly
// decoded; data kept in a file is read whole (and its checksum checked).
func (g *Group) LoadSnapshot(ctx context.Context) (*messages.Snapshot, error) {
	md, cur, data, err := g.loadSnapshot(ctx)
	if err != nil {
		return nil, err
	}
	if cur == nil {
		return &messages.Snapshot{Metadata: md, Data: data}, nil
	}
	d, err := g.OpenSnapshot(ctx, cur.index, cur.term)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	if data, err = persistence.ReadSnapshotData(d); err != nil {
		return nil, fmt.Errorf("pebblestore: group %d: %w", g.id, err)
	}
	return &messages.Snapshot{Metadata: md, Data: data}, nil
}

// loadSnapshot reads, under the lock, the current snapshot's metadata and
// either its file or the data stored inside Pebble.
func (g *Group) loadSnapshot(ctx context.Context) (*messages.SnapshotMetadata, *snapFile, []byte, error) {
	release, err := g.begin(ctx, false)
	if err != nil {
		return nil, nil, nil, err
	}
	defer release()
	if g.state.Snapshot == nil {
		return nil, nil, nil, fmt.Errorf("pebblestore: group %d: %w", g.id, persistence.ErrNoSnapshot)
	}
	md := proto.Clone(g.state.Snapshot).(*messages.SnapshotMetadata)
	if g.cur != nil {
		return md, g.cur, nil, nil
	}
	data, ok, err := g.get(g.keys.kind(kindSnapData))
	if err != nil {
		return nil, nil, nil, err
	}
	if !ok {
		return nil, nil, nil, g.corrupt("snapshot", io.ErrUnexpectedEOF)
	}
	return md, nil, data, nil
}

// Close implements persistence.LogStore: it closes this group only (the
// database stays open for the other groups; DB.Group opens it again).
// Closing twice is not an error.
func (g *Group) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil
	}
	g.closed = true
	g.db.forget(g)
	return nil
}
