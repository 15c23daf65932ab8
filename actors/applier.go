package actors

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
	"github.com/flotilla-raft/flotilla/tracing"
	"go.opentelemetry.io/otel/trace"
)

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
	sessions *sessionTable
	// pending are the waiters of the batch being applied, not yet answered.
	pending []indexedWaiter
	// failed is set once applying failed (ErrStopped wrapping the cause):
	// nothing is applied after it.
	failed error
	// files is the store's snapshot files (nil when the store keeps
	// snapshots as []byte only): snapshots are streamed into them and
	// restored from them.
	files persistence.SnapshotFileStore
}

func newApplier(id uint64, sm StateMachine, node *actor.PID, subs []*actor.PID, applied uint64, sessions *sessionTable, t *tracing.Tracer) *applier {
	return &applier{id: id, sm: sm, node: node, subs: append([]*actor.PID(nil), subs...), applied: applied, sessions: sessions, tracer: t}
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
			if err := a.traceRestore(msg.snapshot, msg.snapData, msg.trace.snapshot); err != nil {
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
			msg.answer(ctx, &ReadResponse{Index: msg.index, Err: err})
			return
		}
		res, err := q.Query(msg.query)
		// Counted and traced before the answer: a client that reads, then
		// scrapes the metrics or the spans, finds its read.
		msg.trace.end(err)
		a.metrics.readDone(msg.start)
		msg.answer(ctx, &ReadResponse{Index: msg.index, Result: res, Err: err})
	case *setSubscribers:
		a.subs = msg.subs
	case *snapshotRequest:
		if msg.md != nil && a.files != nil {
			a.snapshotToFile(ctx, msg)
			return
		}
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
		msg.answer(ctx, &ReadResponse{Index: msg.index, Err: a.failed})
	case *snapshotRequest:
		if msg.lazy != nil {
			ctx.Send(a.node, &lazySnapshotMade{msg: msg.lazy, err: a.failed})
			return
		}
		ctx.Send(a.node, &snapshotMade{index: a.applied, file: msg.md != nil && a.files != nil, err: a.failed, reply: msg.reply})
	}
}

// answer sends the read's answer to whoever sent the Read; a Read sent
// without a sender is served and its answer dropped, as the node does
// with every request (node.respond).
func (q *readQuery) answer(ctx actor.Context, r *ReadResponse) {
	if q.from != nil {
		ctx.Send(q.from, r)
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
			switch result {
			case ErrDuplicate:
				resp.Result, resp.Err = nil, ErrDuplicate
			case ErrSessionExpired:
				resp.Result, resp.Err = nil, fmt.Errorf("%w: client %d has no session in this group at sequence %d "+
					"(it expired, or the client's sequence 1 was never applied here: sessions are per group); "+
					"continue with a new ClientID from Sequence 1", ErrSessionExpired, e.ClientId, e.Sequence)
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
	if answer, apply := a.sessions.observe(e); !apply {
		return answer, nil
	}
	res, err := a.applySM(e)
	if err != nil {
		return nil, err // not applied: nothing to remember
	}
	a.sessions.record(e, res)
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

// rebuildsSessions and rebuildSession restore the applier's session table
// at start for a state
// machine whose applied index is durable (entries up to it are not applied
// again, so the table would otherwise start empty and a retried command
// could apply twice): from the snapshot's table (loaded first), then the
// stored entries up to the applied index, which raft.New reads in pages
// and the node hands to rebuildSession one by one (InitialState.OnStoredEntry). Their results are not
// known, so a retry of such a command is answered ErrDuplicate: applied
// once, never twice.
//
// rebuildsSessions reports whether the table is rebuilt at all: not when
// nothing is applied yet (everything is applied again from the start, so
// the table rebuilds itself), nor for a state machine that deduplicates on
// its own.
func rebuildsSessions(sm StateMachine, applied uint64) bool {
	_, own := sm.(CommandDeduplicator)
	return applied != 0 && !own
}

// rebuildSession records one stored, applied entry in t, by the rules of
// applyNormal, so that the table (and what it expired) is the one the
// entries built before the restart.
func rebuildSession(t *sessionTable, e *messages.Entry) {
	if e.Type == messages.EntryType_ENTRY_NORMAL && e.ClientId != 0 && e.Sequence != 0 {
		if _, apply := t.observe(e); apply {
			t.record(e, nil)
		}
	}
}

// snapshotView asks the state machine for a view of its state, on the
// applier between Apply calls: a StreamSnapshotter's, or a Snapshotter's
// bytes.
func (a *applier) snapshotView() (SnapshotView, error) {
	switch sm := a.sm.(type) {
	case StreamSnapshotter:
		return sm.SnapshotView()
	case Snapshotter:
		data, err := sm.Snapshot()
		if err != nil {
			return nil, err
		}
		return bytesView(data), nil
	}
	return nil, errNotSnapshotter
}

// bytesView is a Snapshotter's bytes as a SnapshotView.
type bytesView []byte

func (b bytesView) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(b)
	return int64(n), err
}

func (bytesView) Release() {}

// snapshot is the node's snapshot data in memory: the session table and
// the state machine's bytes, framed as SplitSnapshot reads them.
func (a *applier) snapshot() ([]byte, error) {
	v, err := a.snapshotView()
	if err != nil {
		return nil, err
	}
	defer v.Release()
	if b, ok := v.(bytesView); ok {
		return encodeSnapshot(a.sessions, b), nil
	}
	buf := bytes.NewBuffer(snapshotHeaderBytes(a.sessions))
	if _, err := v.WriteTo(buf); err != nil {
		return nil, fmt.Errorf("actors: write snapshot: %w", err)
	}
	return buf.Bytes(), nil
}

// snapshotToFile takes the snapshot msg.md describes (the applied index)
// into a file of the store: the view and the session table are taken
// here, between Apply calls; the view is written on a goroutine of its own
// while the applier goes on, which tells the node (snapshotMade) when the
// file is committed.
func (a *applier) snapshotToFile(ctx actor.Context, msg *snapshotRequest) {
	md := msg.md
	if md.Index != a.applied {
		err := fmt.Errorf("actors: snapshot at %d asked of an applier at %d", md.Index, a.applied)
		ctx.Send(a.node, &snapshotMade{index: a.applied, file: true, err: err, reply: msg.reply})
		return
	}
	w := snapshotWrite{start: time.Now(), end: a.traceSnapshotFile(md.Index)}
	v, err := a.snapshotView()
	if err != nil {
		w.end(0, err)
		ctx.Send(a.node, &snapshotMade{index: md.Index, file: true, err: err, reply: msg.reply})
		return
	}
	header := snapshotHeaderBytes(a.sessions)
	root, node, files, metrics := ctx.ActorSystem().Root, a.node, a.files, a.metrics
	go func() {
		defer v.Release()
		size, err := writeSnapshotFile(files, md, header, v)
		w.end(size, err)
		if err == nil {
			metrics.snapshotTaken(w.start, size)
		}
		root.Send(node, &snapshotMade{index: md.Index, file: true, err: err, reply: msg.reply})
	}()
}

// snapshotWrite is a snapshot being written: when it started, and what
// ends its span.
type snapshotWrite struct {
	start time.Time
	end   func(size int64, err error)
}

// writeSnapshotFile streams header and the view into a new snapshot file
// of files and commits it; its size is returned.
func writeSnapshotFile(files persistence.SnapshotFileStore, md *messages.SnapshotMetadata, header []byte, v SnapshotView) (int64, error) {
	sink, err := files.CreateSnapshot(bg, md)
	if err != nil {
		return 0, fmt.Errorf("actors: create snapshot %d: %w", md.Index, err)
	}
	if _, err := sink.Write(header); err != nil {
		sink.Abort()
		return 0, fmt.Errorf("actors: write snapshot %d: %w", md.Index, err)
	}
	if _, err := v.WriteTo(sink); err != nil {
		sink.Abort()
		return 0, fmt.Errorf("actors: write snapshot %d: %w", md.Index, err)
	}
	info, err := sink.Commit()
	if err != nil {
		return 0, fmt.Errorf("actors: commit snapshot %d: %w", md.Index, err)
	}
	return info.Size, nil
}

// restore replaces the state machine's state and the session table with
// snapshot s's: from s.Data when it has some (a snapshot received whole),
// else from its data in the store's files (d when the node opened it
// already; d is closed). It returns the size of the data read.
func (a *applier) restore(s *messages.Snapshot, d persistence.SnapshotData) (int64, error) {
	if d != nil {
		defer d.Close()
	}
	if !snapshotCapable(a.sm) {
		return 0, errNotSnapshotter
	}
	md := s.GetMetadata()
	var src io.Reader
	var size int64
	switch {
	case len(s.Data) > 0:
		src, size = bytes.NewReader(s.Data), int64(len(s.Data))
	case d == nil && a.files != nil:
		var err error
		d, err = a.files.OpenSnapshot(bg, md.GetIndex(), md.GetTerm())
		if errors.Is(err, persistence.ErrNoSnapshot) {
			return 0, a.noSnapshotData(md)
		}
		if err != nil {
			return 0, fmt.Errorf("open snapshot %d: %w", md.GetIndex(), err)
		}
		defer d.Close()
		fallthrough
	case d != nil:
		size = d.Info().Size
		src = io.NewSectionReader(d, 0, size)
	default:
		return 0, a.noSnapshotData(md)
	}
	br := bufio.NewReaderSize(src, 64<<10)
	h, err := readSnapshotHeader(br)
	if err != nil {
		return size, err
	}
	app := io.Reader(br)
	if h.appLen >= 0 {
		app = io.LimitReader(br, h.appLen)
	}
	meta := SnapshotMeta{Index: md.GetIndex(), Term: md.GetTerm(), Config: md.GetConfig()}
	if ss, ok := a.sm.(StreamSnapshotter); ok {
		err = ss.RestoreFrom(meta, app)
	} else {
		var b []byte
		if b, err = io.ReadAll(app); err == nil {
			err = restoreApp(a.sm.(Snapshotter), s, b)
		}
	}
	if err != nil {
		return size, err
	}
	a.sessions.load(toSessions(h.sessions, h.lastUsed, md.GetIndex()))
	a.applied = md.GetIndex()
	return size, nil
}

// noSnapshotData is the error of a restore of a snapshot without data.
// Only CompactTo stores one: the state machine's own durable state must
// cover it.
func (a *applier) noSnapshotData(md *messages.SnapshotMetadata) error {
	return fmt.Errorf("the log was compacted to %d without a snapshot (CompactTo) and the state machine has applied only %d", md.GetIndex(), a.applied)
}
