package actors

import (
	"context"
	"errors"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
	"github.com/flotilla-raft/flotilla/tracing"
	"go.opentelemetry.io/otel/trace"
)

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
	last, err := p.write()
	if err != nil {
		p.fail(ctx, err)
		return
	}
	if last != 0 {
		ctx.Send(p.node, &persisted{id: last})
	}
}

// write saves every buffered request in one Save and returns the id of
// the last (0 when there was nothing to write).
func (p *persister) write() (uint64, error) {
	if len(p.buf) == 0 || p.failed {
		return 0, nil
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
		return 0, err
	}
	return last, nil
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
