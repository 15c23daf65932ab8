package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors/raft"
	"github.com/flotilla-raft/flotilla/cluster/transport"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
	"github.com/flotilla-raft/flotilla/tracing"
	"go.opentelemetry.io/otel/trace"
)

// ---- persister ----

type persistRequest struct {
	id    uint64
	trace string // parent span of the persist span, if any
	u     persistence.Update
}
type persistFlush struct{}
type drainRequest struct{}
type compactRequest struct {
	snapshot  *messages.Snapshot
	compactTo uint64
}

// persister owns the LogStore. Requests queue in its mailbox; a flush
// marker it sends itself is handled after all of them, so every write
// pending then goes into one Save: one sync for many (group commit).
type persister struct {
	tracer  *tracing.Tracer
	metrics *nodeMetrics
	store   persistence.LogStore
	node    *actor.PID
	buf     []persistRequest
	queued  bool
	failed  bool
}

func (p *persister) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *persistRequest:
		p.buf = append(p.buf, *msg)
		if !p.queued {
			p.queued = true
			ctx.Send(ctx.Self(), &persistFlush{})
		}
	case *persistFlush:
		p.queued = false
		p.flush(ctx)
	case *drainRequest:
		p.flush(ctx)
		ctx.Send(p.node, &drained{})
	case *compactRequest:
		p.flush(ctx)
		if p.failed {
			return
		}
		if ss, ok := p.store.(persistence.SnapshotStore); ok {
			if err := ss.SaveSnapshot(context.Background(), msg.snapshot); err != nil {
				if errors.Is(err, persistence.ErrSnapshotOutOfDate) {
					return // a newer snapshot (from the leader) is already stored
				}
				p.fail(ctx, fmt.Errorf("save snapshot: %w", err))
				return
			}
			if err := p.store.Compact(context.Background(), msg.compactTo); err != nil && !errors.Is(err, persistence.ErrCompacted) {
				p.fail(ctx, fmt.Errorf("compact: %w", err))
			}
		}
	}
}

func (p *persister) flush(ctx actor.Context) {
	if len(p.buf) == 0 || p.failed {
		return
	}
	u := mergeUpdates(p.buf)
	last := p.buf[len(p.buf)-1].id
	var span trace.Span
	if p.tracer.Enabled() {
		span = p.traceFlush(u)
	}
	clear(p.buf)
	p.buf = p.buf[:0]
	err := p.save(u)
	if span != nil {
		tracing.End(span, err)
	}
	if err != nil {
		p.fail(ctx, err)
		return
	}
	ctx.Send(p.node, &persisted{id: last})
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

func (p *persister) fail(ctx actor.Context, err error) {
	p.failed = true
	ctx.Send(p.node, &persistFailed{err: err})
}

// mergeUpdates folds consecutive updates into one with the same effect:
// the last hard state, the last snapshot, and the entries as the log would
// hold them after applying each update in turn (a later update that starts
// at or before an earlier one's entries overwrites that suffix). One slice,
// sized once, holds the entries.
func mergeUpdates(reqs []persistRequest) persistence.Update {
	if len(reqs) == 1 {
		return reqs[0].u
	}
	total := 0
	for _, r := range reqs {
		total += len(r.u.Entries)
	}
	var out persistence.Update
	ents := make([]*messages.Entry, 0, total)
	for _, r := range reqs {
		u := r.u
		if u.Snapshot != nil {
			out.Snapshot = u.Snapshot
			ents = ents[:0] // the log restarts after the snapshot
		}
		if len(u.Entries) > 0 && len(ents) > 0 {
			base, first := ents[0].Index, u.Entries[0].Index
			if first <= base {
				ents = ents[:0]
			} else if k := first - base; k < uint64(len(ents)) {
				ents = ents[:k] // overwrite the suffix from first
			}
		}
		ents = append(ents, u.Entries...)
		if u.HardState != nil {
			out.HardState = u.HardState
		}
	}
	if len(ents) > 0 {
		out.Entries = ents
	}
	return out
}

// ---- applier ----

type indexedWaiter struct {
	index uint64
	w     waiter
}

type applyBatch struct {
	snapshot *messages.Snapshot
	entries  []*messages.Entry
	waiters  []indexedWaiter
	trace    applyTrace
}

type readQuery struct {
	from  *actor.PID
	query any
	index uint64
	trace *readTrace
	start time.Time // the read's arrival at the node
}

type setSubscribers struct{ subs []*actor.PID }
type snapshotRequest struct {
	reply *actor.PID
	lazy  *messages.Message // a snapshot for a peer (CompactTo), see lazySnapshot
}

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
			ctx.Send(msg.from, &ReadResponse{Index: msg.index, Err: err})
			msg.trace.end(err)
			return
		}
		res, err := q.Query(msg.query)
		ctx.Send(msg.from, &ReadResponse{Index: msg.index, Result: res, Err: err})
		msg.trace.end(err)
		a.metrics.readDone(msg.start)
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

// rebuildSessions restores the session table at start for a state
// machine whose applied index is durable (entries up to it are not applied
// again, so the table would otherwise start empty and a retried command
// could apply twice): from the snapshot's table, then the stored entries up
// to the applied index. Their results are not known, so a retry of such a
// command is answered ErrDuplicate: applied once, never twice.
func (a *applier) rebuildSessions(st raft.InitialState) {
	if st.Applied == 0 {
		return // everything is applied again from the start: the table rebuilds itself
	}
	if s := st.Snapshot; s != nil && len(s.Data) > 0 {
		if sessions, _, err := decodeSessions(s.Data); err == nil {
			a.sessions = sessions
		}
	}
	for _, e := range st.Entries {
		if e.Index > st.Applied {
			break
		}
		if e.ClientId != 0 && e.Sequence > a.sessions[e.ClientId].seq {
			a.sessions[e.ClientId] = session{seq: e.Sequence}
		}
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

// ErrCorruptSnapshot: snapshot data the state machine cannot restore.
var ErrCorruptSnapshot = errors.New("actors: corrupt snapshot")

// checkSnapshot reports whether s's data can be restored into sm: the
// session table decodes, and sm (if it implements SnapshotValidator)
// accepts its bytes. It runs on the node actor, before the core installs
// a snapshot received from a member.
func checkSnapshot(sm StateMachine, s *messages.Snapshot) error {
	sn, ok := sm.(Snapshotter)
	if !ok {
		return fmt.Errorf("%w: the StateMachine does not implement Snapshotter", ErrCorruptSnapshot)
	}
	_, b, err := decodeSessions(s.GetData())
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCorruptSnapshot, err)
	}
	if v, ok := sn.(SnapshotValidator); ok {
		if err := v.ValidateSnapshot(b); err != nil {
			return fmt.Errorf("%w: %w", ErrCorruptSnapshot, err)
		}
	}
	return nil
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

// ---- replicator ----

// replicator hands the leader's traffic for one peer to the transport, off
// the node actor. Flow control (the in-flight window, probe and replicate
// modes) is decided by the core; the replicator only sends.
type replicator struct {
	peer    transport.Peer
	tr      transport.Transport
	log     *slog.Logger
	metrics *nodeMetrics
}

func (r *replicator) Receive(ctx actor.Context) {
	if m, ok := ctx.Message().(*messages.Message); ok {
		if err := r.tr.Send(r.peer, m); err != nil {
			r.log.Debug("send failed", "to", r.peer.ID, "type", m.Type, "err", err)
			r.metrics.drop(m, tracing.DropSendFailed)
		}
	}
}
