package actors

import (
	"context"

	"github.com/flotilla-raft/flotilla/actors/raft"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/tracing"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Spans of the node actor (names in package tracing). The trace of one
// proposal:
//
//	raft.propose (leader; child of Propose.TraceParent when given)
//	├─ raft.leader.append
//	├─ raft.persist (leader; the batch is a child of its first traced entry, linked to the others)
//	├─ raft.replicate → peer (one AppendEntries; child of its first traced entry, linked to the others)
//	│  └─ raft.follower.append (on the follower; child of the message's traceparent)
//	│     ├─ raft.persist (follower)
//	│     └─ raft.ack (on the leader, when the acknowledgement arrives)
//	├─ raft.commit (leader)
//	└─ raft.apply (on every node)
//
// Elections: raft.election on a (pre-)candidate, from its first campaign to
// its win or loss, with role, term and leader changes as span events; the
// vote requests carry its traceparent, and each voter records raft.vote with
// its answer. Heartbeats are not traced unless Config.TraceHeartbeats.

var bg = context.Background()

// firstTraced returns the traceparent of the first entry that has one, and
// all of them.
func firstTraced(ents []*messages.Entry) (string, []string) {
	var first string
	var all []string
	for _, e := range ents {
		if e.TraceParent != "" {
			if first == "" {
				first = e.TraceParent
			}
			all = append(all, e.TraceParent)
		}
	}
	return first, all
}

func indexRange(ents []*messages.Entry) (uint64, uint64) {
	if len(ents) == 0 {
		return 0, 0
	}
	return ents[0].Index, ents[len(ents)-1].Index
}

// traceBatch starts a span for a step that handles many entries: a child of
// the first traced entry, linked to the others. It returns a nil span when
// no entry is traced.
func traceBatch(t *tracing.Tracer, name string, ents []*messages.Entry, a tracing.Attrs) (context.Context, trace.Span) {
	if !t.Enabled() {
		return bg, nil
	}
	first, all := firstTraced(ents)
	if first == "" {
		return bg, nil
	}
	a.First, a.Last = indexRange(ents)
	a.BatchSize = len(ents)
	ctx, span := t.StartLinked(tracing.Extract(bg, first), name, a, all[1:])
	return ctx, span
}

// traceProposal records the propose and leader-append spans and returns
// the traceparent to store in the entry.
func (n *node) traceProposal(parent string, e *messages.Entry, index, term uint64) {
	t := n.tracer
	if !t.Enabled() {
		return
	}
	ctx, span := t.StartRemote(bg, parent, tracing.SpanPropose, tracing.Attrs{Term: term, Index: index})
	e.TraceParent = tracing.Inject(ctx)
	_, app := t.Start(ctx, tracing.SpanLeaderAppend, tracing.Attrs{Term: term, Index: index})
	app.End()
	span.End()
}

// traceOutbound stamps trace context on an outbound message and records
// the span of its sending.
func (n *node) traceOutbound(m *messages.Message) {
	t := n.tracer
	switch m.Type {
	case messages.MessageType_MSG_APPEND:
		if len(m.Entries) == 0 {
			return // a heartbeat-like empty append
		}
		ctx, span := traceBatch(t, tracing.SpanReplicate, m.Entries, tracing.Attrs{Term: m.Term, Peer: m.To})
		if span != nil {
			m.TraceParent = tracing.Inject(ctx)
			span.End()
		}
	case messages.MessageType_MSG_APPEND_RESP:
		if tp, ok := n.appendTrace[m.To]; ok {
			m.TraceParent = tp
			delete(n.appendTrace, m.To)
		}
	case messages.MessageType_MSG_VOTE, messages.MessageType_MSG_PRE_VOTE:
		if n.election != nil {
			m.TraceParent = tracing.Inject(n.electionCtx)
		}
	case messages.MessageType_MSG_VOTE_RESP, messages.MessageType_MSG_PRE_VOTE_RESP:
		if !t.Enabled() {
			return
		}
		tp := n.voteTrace[m.To]
		delete(n.voteTrace, m.To)
		result := "granted"
		if m.Reject {
			result = "rejected"
		}
		name := tracing.SpanVote
		if m.Type == messages.MessageType_MSG_PRE_VOTE_RESP {
			name = tracing.SpanPreVote
		}
		_, span := t.StartRemote(bg, tp, name, tracing.Attrs{Term: m.Term, Peer: m.To, Result: result})
		span.End()
	}
}

// traceInbound records the spans of an inbound message before it is
// stepped.
func (n *node) traceInbound(m *messages.Message) {
	t := n.tracer
	if !t.Enabled() || m.TraceParent == "" {
		return
	}
	switch m.Type {
	case messages.MessageType_MSG_APPEND:
		lo, hi := indexRange(m.Entries)
		ctx, span := t.StartRemote(bg, m.TraceParent, tracing.SpanFollowerAppend,
			tracing.Attrs{Term: m.Term, Peer: m.From, First: lo, Last: hi, BatchSize: len(m.Entries)})
		tp := tracing.Inject(ctx)
		n.appendTrace[m.From] = tp
		n.persistTrace = tp
		span.End()
	case messages.MessageType_MSG_APPEND_RESP:
		_, span := t.StartRemote(bg, m.TraceParent, tracing.SpanAck, tracing.Attrs{Term: m.Term, Peer: m.From, Index: m.Index})
		span.End()
	case messages.MessageType_MSG_VOTE, messages.MessageType_MSG_PRE_VOTE:
		n.voteTrace[m.From] = m.TraceParent
	}
}

// traceCommits records a commit span for each newly committed traced entry
// (leader only).
func (n *node) traceCommits(from, to uint64) {
	if !n.tracer.Enabled() || n.r.Role() != raft.Leader || to <= from {
		return
	}
	ents, err := n.r.Entries(max(from+1, n.r.FirstIndex()), to+1)
	if err != nil {
		return
	}
	for _, e := range ents {
		if e.TraceParent != "" {
			_, span := n.tracer.StartRemote(bg, e.TraceParent, tracing.SpanCommit, tracing.Attrs{Term: e.Term, Index: e.Index})
			span.End()
		}
	}
}

// traceElection follows a campaign with one span, its steps as events.
func (n *node) traceElection(ev raft.Event) {
	t := n.tracer
	if !t.Enabled() {
		return
	}
	attrs := []attribute.KeyValue{tracing.AttrTerm.Int64(int64(ev.Term)), tracing.AttrReason.String(ev.Reason)}
	switch {
	case ev.Kind == raft.EventRoleChanged && (ev.To == raft.PreCandidate || ev.To == raft.Candidate) && n.election == nil:
		n.electionCtx, n.election = t.Start(bg, tracing.SpanElection, tracing.Attrs{Term: ev.Term, Role: ev.To.String(), Reason: ev.Reason})
	case ev.Kind == raft.EventRoleChanged && ev.To == raft.Leader && n.election != nil:
		n.election.AddEvent("became leader", trace.WithAttributes(attrs...))
		n.election.SetAttributes(tracing.AttrResult.String("won"))
		n.election.End()
		n.election = nil
		return
	case ev.Kind == raft.EventRoleChanged && ev.To == raft.Follower && n.election != nil:
		n.election.AddEvent("became follower", trace.WithAttributes(attrs...))
		n.election.SetAttributes(tracing.AttrResult.String("lost"))
		n.election.End()
		n.election = nil
		return
	}
	if n.election != nil {
		n.election.AddEvent(ev.Kind.String(), trace.WithAttributes(attrs...))
	}
}
