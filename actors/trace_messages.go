package actors

import (
	"fmt"
	"time"

	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/tracing"
)

// traceOutbound stamps trace context on an outbound message and starts or
// ends the spans of its sending.
func (n *node) traceOutbound(m *messages.Message) {
	t := n.obs.tracer
	if !t.Enabled() {
		return
	}
	ts := &n.obs.tr
	switch m.Type {
	case messages.MessageType_MSG_APPEND:
		if len(m.Entries) == 0 {
			return // a probe or a commit update: not traced
		}
		ctx, span := traceBatch(t, tracing.SpanReplicate, m.Entries, tracing.Attrs{Term: m.Term, Peer: m.To})
		if span != nil {
			m.TraceParent = tracing.Inject(ctx)
			ts.sending[m.To] = pushOpen(ts.sending[m.To], openSpan{span: span, prev: m.Index, last: m.Entries[len(m.Entries)-1].Index})
		}
	case messages.MessageType_MSG_SNAPSHOT:
		idx := m.GetSnapshot().GetMetadata().GetIndex()
		ctx, span := t.Start(bg, tracing.SpanSnapshotSend, tracing.Attrs{Term: m.Term, Peer: m.To, Index: idx})
		m.TraceParent = tracing.Inject(ctx)
		ts.sending[m.To] = pushOpen(ts.sending[m.To], openSpan{span: span, last: idx, snapshot: true})
	case messages.MessageType_MSG_APPEND_RESP:
		ts.serving[m.To] = endAnswered(ts.serving[m.To], m)
	case messages.MessageType_MSG_VOTE, messages.MessageType_MSG_PRE_VOTE:
		n.ensureElection()
		name, resp := tracing.SpanVote, messages.MessageType_MSG_VOTE_RESP
		if m.Type == messages.MessageType_MSG_PRE_VOTE {
			name, resp = tracing.SpanPreVote, messages.MessageType_MSG_PRE_VOTE_RESP
		}
		if len(ts.votes) >= maxOpen {
			endWith(ts.votes[0].span, "unanswered")
			ts.votes = append(ts.votes[:0], ts.votes[1:]...)
		}
		ctx, span := t.Start(ts.electionCtx, name, tracing.Attrs{Term: m.Term, Peer: m.To})
		m.TraceParent = tracing.Inject(ctx)
		ts.votes = append(ts.votes, voteSpan{span: span, traceparent: m.TraceParent, peer: m.To, resp: resp})
	case messages.MessageType_MSG_VOTE_RESP, messages.MessageType_MSG_PRE_VOTE_RESP:
		if req, ok := ts.voting[m.To]; ok {
			delete(ts.voting, m.To)
			m.TraceParent = req.traceparent // the answer names the request it answers
			_, span := t.StartRemoteAt(bg, req.traceparent, tracing.SpanVoteResponse,
				tracing.Attrs{Term: req.term, Peer: m.To, MsgType: req.msgType}, req.at)
			endWith(span, voteResult(m.Reject))
		}
	case messages.MessageType_MSG_TIMEOUT_NOW:
		if ts.transfer != nil {
			m.TraceParent = tracing.Inject(ts.transferCtx)
		}
	case messages.MessageType_MSG_READ_INDEX:
		if pr, ok := n.pend.reads[string(m.Context)]; ok && pr.trace != nil {
			m.TraceParent = tracing.Inject(pr.trace.ctx)
		}
	case messages.MessageType_MSG_READ_INDEX_RESP:
		key := readServeKey(m.To, m.Context)
		if req, ok := ts.readServe[key]; ok {
			delete(ts.readServe, key)
			_, span := t.StartRemoteAt(bg, req.traceparent, tracing.SpanReadIndexServe,
				tracing.Attrs{Term: req.term, Peer: m.To, Index: m.Index}, req.at)
			endWith(span, voteResult(m.Reject))
		}
	}
}

// readServeKey names a follower's read index request on the leader.
func readServeKey(from uint64, ctx []byte) string {
	return fmt.Sprintf("%d/%x", from, ctx)
}

// traceInbound starts or ends the spans of an inbound message before it is
// stepped.
func (n *node) traceInbound(m *messages.Message) {
	t := n.obs.tracer
	if !t.Enabled() {
		return
	}
	ts := &n.obs.tr
	switch m.Type {
	case messages.MessageType_MSG_APPEND_RESP:
		ts.sending[m.From] = endAnswered(ts.sending[m.From], m)
	case messages.MessageType_MSG_VOTE_RESP, messages.MessageType_MSG_PRE_VOTE_RESP:
		n.endVote(m)
		return
	}
	if m.TraceParent == "" {
		return // untraced at the sender: no orphan spans here
	}
	switch m.Type {
	case messages.MessageType_MSG_APPEND:
		lo, hi := indexRange(m.Entries)
		ctx, span := t.StartRemote(bg, m.TraceParent, tracing.SpanFollowerAppend,
			tracing.Attrs{Term: m.Term, Peer: m.From, First: lo, Last: hi, BatchSize: len(m.Entries)})
		tp := tracing.Inject(ctx)
		ts.serving[m.From] = pushOpen(ts.serving[m.From], openSpan{span: span, prev: m.Index, last: hi})
		ts.persist = tp
		for _, e := range m.Entries {
			if e.TraceParent != "" {
				ts.applyParent[e.Index] = tp
			}
		}
	case messages.MessageType_MSG_SNAPSHOT:
		idx := m.GetSnapshot().GetMetadata().GetIndex()
		ctx, span := t.StartRemote(bg, m.TraceParent, tracing.SpanSnapshotInstall, tracing.Attrs{Term: m.Term, Peer: m.From, Index: idx})
		tp := tracing.Inject(ctx)
		ts.serving[m.From] = pushOpen(ts.serving[m.From], openSpan{span: span, last: idx, snapshot: true})
		ts.persist, ts.snapshot = tp, tp
	case messages.MessageType_MSG_VOTE, messages.MessageType_MSG_PRE_VOTE:
		// The latest request from a candidate replaces an unanswered one.
		ts.voting[m.From] = received{traceparent: m.TraceParent, at: time.Now(), term: m.Term, msgType: m.Type.String()}
	case messages.MessageType_MSG_TIMEOUT_NOW:
		ts.electParent = m.TraceParent
	case messages.MessageType_MSG_READ_INDEX:
		ts.readServe[readServeKey(m.From, m.Context)] = received{traceparent: m.TraceParent, at: time.Now(), term: m.Term}
	}
}
