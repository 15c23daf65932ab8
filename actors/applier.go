package actors

import (
	"errors"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/tracing"
	"go.opentelemetry.io/otel/trace"
)

type session struct {
	seq    uint64
	result any
}

// ErrDuplicate answers a proposal whose (client, sequence) was already
// applied and whose result is no longer known (older than the client's
// latest, or from before a restart or snapshot). The command was applied
// once: for the caller, this is success without a result.
var ErrDuplicate = errors.New("actors: duplicate command, already applied")

// applier owns the StateMachine and applies committed entries in order.
type applier struct {
	tracer   *tracing.Tracer
	metrics  *nodeMetrics
	id       uint64
	sm       StateMachine
	node     *actor.PID
	subs     []*actor.PID
	applied  uint64
	sessions map[uint64]session
	// pending are the waiters of the batch being applied, not yet answered.
	pending []indexedWaiter
	// failed is set once applying failed (ErrStopped wrapping the cause):
	// nothing is applied after it.
	failed error
}

func newApplier(id uint64, sm StateMachine, node *actor.PID, subs []*actor.PID, applied uint64, t *tracing.Tracer) *applier {
	return &applier{id: id, sm: sm, node: node, subs: append([]*actor.PID(nil), subs...), applied: applied, sessions: map[uint64]session{}, tracer: t}
}

func (a *applier) Receive(ctx actor.Context) {
	defer func() {
		if r := recover(); r != nil {
			a.fail(ctx, fmt.Errorf("%w: panic: %v", ErrApplyFailed, r))
		}
	}()
	if a.failed != nil {
		a.refuse(ctx)
		return
	}
	switch msg := ctx.Message().(type) {
	case *applyBatch:
		a.pending = msg.waiters
		if msg.snapshot != nil {
			if err := a.traceRestore(msg.snapshot, msg.trace.snapshot); err != nil {
				// The node checked the data before installing the snapshot
				// (checkSnapshot); a Restore failing now leaves the state
				// machine behind the log: stop the node, never apply on.
				a.fail(ctx, fmt.Errorf("%w: %w: restore snapshot %d: %w", ErrApplyFailed, ErrCorruptSnapshot, msg.snapshot.GetMetadata().GetIndex(), err))
				return
			}
		}
		for _, e := range msg.entries {
			var w *waiter
			for len(a.pending) > 0 && a.pending[0].index < e.Index {
				a.pending = a.pending[1:]
			}
			if len(a.pending) > 0 && a.pending[0].index == e.Index {
				w = &a.pending[0].w
			}
			if err := a.apply(ctx, e, w, msg.trace.parents[e.Index]); err != nil {
				a.fail(ctx, err)
				return
			}
		}
		a.pending = nil
		ctx.Send(a.node, &appliedUpTo{index: a.applied})
	case *readQuery:
		q, ok := a.sm.(Querier)
		if !ok {
			err := errors.New("actors: the StateMachine does not implement Querier")
			msg.trace.end(err)
			ctx.Send(msg.from, &ReadResponse{Index: msg.index, Err: err})
			return
		}
		res, err := q.Query(msg.query)
		// Counted and traced before the answer: a client that reads, then
		// scrapes the metrics or the spans, finds its read.
		msg.trace.end(err)
		a.metrics.readDone(msg.start)
		ctx.Send(msg.from, &ReadResponse{Index: msg.index, Result: res, Err: err})
	case *setSubscribers:
		a.subs = msg.subs
	case *snapshotRequest:
		data, err := a.traceSnapshot()
		if msg.lazy != nil {
			ctx.Send(a.node, &lazySnapshotMade{msg: msg.lazy, index: a.applied, data: data, err: err})
			return
		}
		ctx.Send(a.node, &snapshotMade{index: a.applied, data: data, err: err, reply: msg.reply})
	}
}

// fail stops applying for good: the entry that failed is not recorded as
// applied (nor its result in the session table), the proposers of the
// entries not applied are answered ErrStopped with the cause, and the node
// is told, which stops.
func (a *applier) fail(ctx actor.Context, err error) {
	if a.failed != nil {
		return
	}
	a.failed = fmt.Errorf("%w: %w", ErrStopped, err)
	for _, iw := range a.pending {
		ctx.Send(iw.w.pid, &ProposeResponse{Index: iw.index, Err: a.failed})
	}
	a.pending = nil
	ctx.Send(a.node, &appliedUpTo{index: a.applied})
	ctx.Send(a.node, &applyFailed{err: err})
}

// refuse answers what arrives after a failure.
func (a *applier) refuse(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *applyBatch:
		for _, iw := range msg.waiters {
			ctx.Send(iw.w.pid, &ProposeResponse{Index: iw.index, Err: a.failed})
		}
	case *readQuery:
		ctx.Send(msg.from, &ReadResponse{Index: msg.index, Err: a.failed})
	case *snapshotRequest:
		if msg.lazy != nil {
			ctx.Send(a.node, &lazySnapshotMade{msg: msg.lazy, err: a.failed})
			return
		}
		ctx.Send(a.node, &snapshotMade{index: a.applied, err: a.failed, reply: msg.reply})
	}
}

// apply applies one committed entry and answers its proposer (w, if this
// node proposed it). An error is an apply failure (see ErrApplyFailed):
// the entry is not applied. parent, when set, is the parent of its apply
// span (none when empty; see node.applyTrace).
func (a *applier) apply(ctx actor.Context, e *messages.Entry, w *waiter, parent string) error {
	if e.Index <= a.applied {
		// Already in the state machine (durable applied index): not again.
		if w != nil {
			ctx.Send(w.pid, &ProposeResponse{Index: e.Index, Term: e.Term, Err: ErrDuplicate})
		}
		return nil
	}
	var span trace.Span
	if parent != "" && a.tracer.Enabled() {
		_, span = a.tracer.StartRemote(bg, parent, tracing.SpanApply, tracing.Attrs{Term: e.Term, Index: e.Index})
	}
	var result any
	var err error
	if e.Type == messages.EntryType_ENTRY_NORMAL {
		result, err = a.applyNormal(e)
	}
	if span != nil {
		tracing.End(span, err)
	}
	if err != nil {
		return err
	}
	a.applied = e.Index
	if w != nil {
		if w.term == e.Term {
			resp := &ProposeResponse{Index: e.Index, Term: e.Term, Result: result}
			if result == ErrDuplicate {
				resp.Result, resp.Err = nil, ErrDuplicate
			}
			ctx.Send(w.pid, resp)
		} else {
			// Another leader's entry took the slot: the proposal was lost.
			ctx.Send(w.pid, &ProposeResponse{Err: &NotLeaderError{}})
		}
	}
	for _, s := range a.subs {
		ctx.Send(s, &EntryApplied{NodeID: a.id, Entry: e, Result: result})
	}
	return nil
}

func (a *applier) applyNormal(e *messages.Entry) (any, error) {
	if _, own := a.sm.(CommandDeduplicator); own || e.ClientId == 0 || e.Sequence == 0 {
		return a.applySM(e)
	}
	s, ok := a.sessions[e.ClientId]
	if ok && e.Sequence <= s.seq {
		if e.Sequence == s.seq && s.result != nil {
			return s.result, nil
		}
		return ErrDuplicate, nil
	}
	res, err := a.applySM(e)
	if err != nil {
		return nil, err // not applied: nothing to remember
	}
	a.sessions[e.ClientId] = session{seq: e.Sequence, result: res}
	return res, nil
}

// applySM calls the StateMachine; a panic, or a result that is an error
// wrapping ErrApplyFailed, is a failure.
func (a *applier) applySM(e *messages.Entry) (res any, err error) {
	defer func() {
		if r := recover(); r != nil {
			res, err = nil, fmt.Errorf("%w: entry %d: panic: %v", ErrApplyFailed, e.Index, r)
		}
	}()
	res = a.sm.Apply(e)
	if rerr, ok := res.(error); ok && errors.Is(rerr, ErrApplyFailed) {
		return nil, fmt.Errorf("entry %d: %w", e.Index, rerr)
	}
	return res, nil
}

// rebuildSessions starts restoring the session table at start for a
// state machine whose applied index is durable (entries up to it are not
// applied again, so the table would otherwise start empty and a retried
// command could apply twice): from the snapshot's table; then
// rebuildFromEntry sees the stored entries up to the applied index, in
// order, as raft.New reads the log in pages. Their results are not known,
// so a retry of such a command is answered ErrDuplicate: applied once,
// never twice.
func (a *applier) rebuildSessions(snap *messages.Snapshot, applied uint64) {
	if applied == 0 {
		return // everything is applied again from the start: the table rebuilds itself
	}
	if s := snap; s != nil && len(s.Data) > 0 {
		if sessions, _, err := decodeSessions(s.Data); err == nil {
			a.sessions = sessions
		}
	}
}

// rebuildFromEntry is rebuildSessions's step for stored entry e.
func (a *applier) rebuildFromEntry(e *messages.Entry, applied uint64) {
	if e.Index > applied {
		return
	}
	if e.ClientId != 0 && e.Sequence > a.sessions[e.ClientId].seq {
		a.sessions[e.ClientId] = session{seq: e.Sequence}
	}
}

// snapshot is the node's snapshot data: the session table and the state
// machine's bytes, framed as SplitSnapshot reads them.
func (a *applier) snapshot() ([]byte, error) {
	sn, ok := a.sm.(Snapshotter)
	if !ok {
		return nil, errors.New("actors: the StateMachine does not implement Snapshotter")
	}
	data, err := sn.Snapshot()
	if err != nil {
		return nil, err
	}
	return encodeSnapshot(a.sessions, data), nil
}

func (a *applier) restore(s *messages.Snapshot) error {
	sn, ok := a.sm.(Snapshotter)
	if !ok {
		return errors.New("the StateMachine does not implement Snapshotter")
	}
	if len(s.Data) == 0 {
		// Only CompactTo stores a snapshot without data: the state
		// machine's own durable state must cover it.
		return fmt.Errorf("the log was compacted to %d without a snapshot (CompactTo) and the state machine has applied only %d", s.Metadata.GetIndex(), a.applied)
	}
	sessions, b, err := decodeSessions(s.Data)
	if err != nil {
		return err
	}
	if err := restoreApp(sn, s, b); err != nil {
		return err
	}
	a.sessions = sessions
	a.applied = s.Metadata.Index
	return nil
}
