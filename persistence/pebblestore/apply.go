package pebblestore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/flotilla-raft/flotilla/persistence"
)

// AppliedIndex implements persistence.AppliedIndexStore.
func (g *Group) AppliedIndex(ctx context.Context) (uint64, error) {
	release, err := g.begin(ctx, false)
	if err != nil {
		return 0, err
	}
	defer release()
	return g.applied, nil
}

// CommitApplied implements persistence.AppliedIndexStore: write's changes
// and the applied index go into one indexed Pebble batch (so w.Get sees the
// batch's own writes), committed with pebble.Sync.
func (g *Group) CommitApplied(ctx context.Context, index uint64, write func(w persistence.AppWriter) error) error {
	release, err := g.begin(ctx, true)
	if err != nil {
		return err
	}
	defer release()
	if index <= g.applied {
		return fmt.Errorf("pebblestore: group %d: %w: index %d, applied index %d", g.id, persistence.ErrAlreadyApplied, index, g.applied)
	}
	b := g.db.pdb.NewIndexedBatch()
	defer b.Close()
	if write != nil {
		w := &appWriter{b: b, keys: g.keys}
		err := write(w)
		w.b = nil // write must not retain w
		if err != nil {
			return fmt.Errorf("pebblestore: group %d: apply write: %w", g.id, err)
		}
	}
	if err := b.Set(g.keys.kind(kindApplied), binary.BigEndian.AppendUint64(nil, index), nil); err != nil {
		return g.batchErr(err)
	}
	if err := g.db.commit(b); err != nil {
		return fmt.Errorf("pebblestore: group %d: commit applied %d: %w", g.id, index, err)
	}
	g.applied = index
	return nil
}

// AppGet implements persistence.AppliedIndexStore.
func (g *Group) AppGet(ctx context.Context, key []byte) ([]byte, bool, error) {
	release, err := g.begin(ctx, false)
	if err != nil {
		return nil, false, err
	}
	defer release()
	return g.get(g.keys.app(nil, key))
}

// AppScan calls fn with every application key in [lo, hi) (hi nil: to the
// end) and its value, in key order, as last committed by CommitApplied. key
// and value are only valid during the call. An error from fn stops the scan
// and is returned.
func (g *Group) AppScan(ctx context.Context, lo, hi []byte, fn func(key, value []byte) error) error {
	release, err := g.begin(ctx, false)
	if err != nil {
		return err
	}
	defer release()
	upper := g.keys.appEnd()
	if hi != nil {
		upper = g.keys.app(nil, hi)
	}
	it, err := g.db.pdb.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: g.keys.app(nil, lo), UpperBound: upper})
	if err != nil {
		return fmt.Errorf("pebblestore: group %d: %w", g.id, err)
	}
	defer it.Close()
	skip := groupPrefixLen + 1
	for valid := it.First(); valid; valid = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("pebblestore: group %d: read application key: %w", g.id, err)
		}
		if err := fn(it.Key()[skip:], v); err != nil {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("pebblestore: group %d: scan application keys: %w", g.id, err)
	}
	return nil
}

// errWriterDone: an AppWriter used after its CommitApplied returned.
var errWriterDone = errors.New("pebblestore: AppWriter used after CommitApplied returned")

// appWriter puts the application's writes into the batch of one
// CommitApplied, under the group's application namespace.
type appWriter struct {
	b    *pebble.Batch
	keys keys
	buf  []byte
}

func (w *appWriter) key(k []byte) []byte {
	w.buf = w.keys.app(w.buf[:0], k)
	return w.buf
}

func (w *appWriter) Get(key []byte) ([]byte, bool, error) {
	if w.b == nil {
		return nil, false, errWriterDone
	}
	v, closer, err := w.b.Get(w.key(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := append([]byte(nil), v...)
	return out, true, closer.Close()
}

func (w *appWriter) Set(key, value []byte) error {
	if w.b == nil {
		return errWriterDone
	}
	return w.b.Set(w.key(key), value, nil)
}

func (w *appWriter) Delete(key []byte) error {
	if w.b == nil {
		return errWriterDone
	}
	return w.b.Delete(w.key(key), nil)
}
