package actors

import (
	"context"

	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
	"github.com/flotilla-raft/flotilla/tracing"
	"go.opentelemetry.io/otel/trace"
)

// readTrace follows one linearizable read: raft.read until it is answered,
// raft.read.index until its read index is known, then raft.read.wait until
// that index is applied. Methods on a nil *readTrace do nothing.
type readTrace struct {
	span, step trace.Span
	ctx        context.Context // the read.index step's: a follower's request carries it
	t          *tracing.Tracer
}

// traceRead starts the spans of a read (nil when tracing is off).
func (n *node) traceRead() *readTrace {
	if !n.obs.tracer.Enabled() {
		return nil
	}
	rt := &readTrace{t: n.obs.tracer}
	var ctx context.Context
	ctx, rt.span = n.obs.tracer.Start(bg, tracing.SpanRead, tracing.Attrs{Term: n.r.Term()})
	rt.ctx, rt.step = n.obs.tracer.Start(ctx, tracing.SpanReadIndex, tracing.Attrs{Leader: n.r.Leader()})
	return rt
}

// indexKnown ends the ReadIndex round and starts the wait for apply.
func (rt *readTrace) indexKnown(index uint64) {
	if rt == nil {
		return
	}
	rt.step.SetAttributes(tracing.AttrIndex.Int64(int64(index)))
	rt.step.End()
	rt.span.SetAttributes(tracing.AttrIndex.Int64(int64(index)))
	_, rt.step = rt.t.Start(trace.ContextWithSpan(bg, rt.span), tracing.SpanReadWait, tracing.Attrs{Index: index})
}

// applied ends the wait: the state machine has applied the read index.
func (rt *readTrace) applied() {
	if rt == nil || rt.step == nil {
		return
	}
	rt.step.End()
	rt.step = nil
}

// end ends the read when it is answered (err: the answer's error).
func (rt *readTrace) end(err error) {
	if rt == nil {
		return
	}
	if rt.step != nil {
		tracing.End(rt.step, err)
		rt.step = nil
	}
	tracing.End(rt.span, err)
}

// traceFlush starts the span of one group commit: a child of the first
// request's parent (a follower's append) or of the first traced entry,
// linked to every traced entry written.
func (p *persister) traceFlush(u persistence.Update) trace.Span {
	parent := ""
	for _, r := range p.buf {
		if r.trace != "" {
			parent = r.trace
			break
		}
	}
	_, all := firstTraced(u.Entries)
	if parent == "" && len(all) > 0 {
		parent, all = all[0], all[1:]
	}
	if parent == "" {
		return nil
	}
	lo, hi := indexRange(u.Entries)
	_, span := p.tracer.StartLinked(tracing.Extract(bg, parent), tracing.SpanPersist,
		tracing.Attrs{First: lo, Last: hi, BatchSize: len(u.Entries)}, all)
	return span
}

// traceSnapshot takes a snapshot of the state machine inside
// raft.snapshot.take (a trace of its own).
func (a *applier) traceSnapshot() ([]byte, error) {
	if !a.tracer.Enabled() {
		return a.timedSnapshot()
	}
	_, span := a.tracer.Start(bg, tracing.SpanSnapshotTake, tracing.Attrs{Index: a.applied})
	data, err := a.timedSnapshot()
	span.SetAttributes(tracing.AttrSnapshotBytes.Int(len(data)))
	tracing.End(span, err)
	return data, err
}

// traceSnapshotFile starts raft.snapshot.take for a snapshot written to a
// file at index, and returns what ends it (on the goroutine that writes).
func (a *applier) traceSnapshotFile(index uint64) func(size int64, err error) {
	if !a.tracer.Enabled() {
		return func(int64, error) {}
	}
	_, span := a.tracer.Start(bg, tracing.SpanSnapshotTake, tracing.Attrs{Index: index})
	return func(size int64, err error) {
		span.SetAttributes(tracing.AttrSnapshotBytes.Int64(size))
		tracing.End(span, err)
	}
}

// traceRestore restores the state machine from s inside
// raft.snapshot.restore, a child of the raft.snapshot.install that brought
// it (parent; no span when empty: a snapshot loaded at start).
func (a *applier) traceRestore(s *messages.Snapshot, d persistence.SnapshotData, parent string) error {
	if parent == "" || !a.tracer.Enabled() {
		return a.timedRestore(s, d)
	}
	_, span := a.tracer.StartRemote(bg, parent, tracing.SpanSnapshotRestore, tracing.Attrs{Index: s.GetMetadata().GetIndex()})
	err := a.timedRestore(s, d)
	tracing.End(span, err)
	return err
}
