package actors

import (
	"github.com/flotilla-raft/flotilla/actors/raft"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/tracing"
	"go.opentelemetry.io/otel/trace"
)

// ensureElection starts raft.election if none is open: a root, or the child
// of the transfer whose TimeoutNow started it.
func (n *node) ensureElection() {
	ts := &n.obs.tr
	if ts.election != nil || !n.obs.tracer.Enabled() {
		return
	}
	n.endVotes()
	ts.electionCtx, ts.election = n.obs.tracer.StartRemote(bg, ts.electParent, tracing.SpanElection, tracing.Attrs{})
	ts.electParent = ""
}

// endElection ends the election with its end state. Its requests still
// unanswered stay open for one more election timeout (an answer the
// election no longer needed may still arrive: the request's span then
// holds the voter's), then traceTick ends them.
func (n *node) endElection(role raft.Role, term uint64, result string) {
	ts := &n.obs.tr
	ts.voteTicks = max(int(n.r.ClusterConfig().GetSettings().GetElectionTicks()), 1)
	ts.election.SetAttributes(tracing.AttrRole.String(role.String()), tracing.AttrTerm.Int64(int64(term)))
	endWith(ts.election, result)
	ts.election, ts.electionCtx = nil, nil
}

// endVote ends the request that the answer m answers: the one its
// traceparent names, or else the latest one to its sender.
func (n *node) endVote(m *messages.Message) {
	ts := &n.obs.tr
	found := -1
	for i, v := range ts.votes {
		if m.TraceParent != "" && v.traceparent == m.TraceParent ||
			m.TraceParent == "" && v.peer == m.From && v.resp == m.Type {
			found = i
		}
	}
	if found < 0 {
		return
	}
	endWith(ts.votes[found].span, voteResult(m.Reject))
	ts.votes = append(ts.votes[:found], ts.votes[found+1:]...)
}

// endVotes ends every vote request still unanswered.
func (n *node) endVotes() {
	for _, v := range n.obs.tr.votes {
		endWith(v.span, "unanswered")
	}
	n.obs.tr.votes = nil
}

// traceTick ends, an election timeout after its election ended, the vote
// requests nobody answered.
func (n *node) traceTick() {
	ts := &n.obs.tr
	if ts.election != nil || len(ts.votes) == 0 {
		return
	}
	if ts.voteTicks--; ts.voteTicks <= 0 {
		n.endVotes()
	}
}

// traceUntilWon traces the events up to the last one that makes this node
// leader, and returns how many it traced (0 when none does).
func (n *node) traceUntilWon(events []raft.Event) int {
	won := -1
	for i, ev := range events {
		if ev.Kind == raft.EventRoleChanged && ev.To == raft.Leader {
			won = i
		}
	}
	for _, ev := range events[:won+1] {
		n.traceEvent(ev)
	}
	return won + 1
}

// traceEvent follows the core's events: elections (one span, its steps as
// events), configuration changes, and the end of a leadership.
func (n *node) traceEvent(ev raft.Event) {
	if !n.obs.tracer.Enabled() {
		return
	}
	ts := &n.obs.tr
	attrs := trace.WithAttributes(tracing.AttrTerm.Int64(int64(ev.Term)), tracing.AttrReason.String(ev.Reason))
	if ev.Kind == raft.EventRoleChanged {
		if ev.From == raft.Leader {
			n.traceLeadershipLost()
		}
		switch {
		case ev.To == raft.PreCandidate || ev.To == raft.Candidate:
			if ts.election == nil || ev.From == raft.Follower {
				n.ensureElection()
				ts.election.SetAttributes(tracing.AttrReason.String(ev.Reason))
			}
		case ts.election != nil:
			ts.election.AddEvent("became "+ev.To.String(), attrs)
			result := "lost"
			if ev.To == raft.Leader {
				result = "won"
			}
			n.endElection(ev.To, ev.Term, result)
			return
		}
	}
	if ev.Kind == raft.EventConfigChanged {
		n.traceConfigCommitted(ev)
	}
	if ts.election != nil {
		ts.election.AddEvent(ev.Kind.String(), attrs)
	}
}

// traceLeadershipLost ends what only a leader waits for.
func (n *node) traceLeadershipLost() {
	ts := &n.obs.tr
	for peer, list := range ts.sending {
		endAll(list, "abandoned")
		delete(ts.sending, peer)
	}
	if c := ts.config; c != nil {
		if c.leaveJoint != nil {
			endWith(c.leaveJoint, "abandoned")
		}
		endWith(c.span, "abandoned")
		ts.config = nil
	}
}

// traceConfigChange starts raft.config.change for the configuration entry
// just proposed at index (reason: the request, such as ChangeConfig or
// AddMember), and makes the entry carry its context so that its
// replication spans are its children. The entry has not been handed out
// yet (no Ready since the proposal), so setting its TraceParent races with
// nothing.
func (n *node) traceConfigChange(index uint64, reason string) {
	if !n.obs.tracer.Enabled() {
		return
	}
	ctx, span := n.obs.tracer.Start(bg, tracing.SpanConfigChange, tracing.Attrs{Term: n.r.Term(), Index: index, Reason: reason})
	if ents, err := n.r.Entries(index, index+1, 0); err == nil && len(ents) == 1 {
		ents[0].TraceParent = tracing.Inject(ctx)
	}
	if old := n.obs.tr.config; old != nil {
		endWith(old.span, "superseded")
	}
	n.obs.tr.config = &configTrace{span: span, ctx: ctx, index: index}
}

// traceConfigCommitted marks the commit of a joint configuration (the leave
// starts) or the final one (the change ends).
func (n *node) traceConfigCommitted(ev raft.Event) {
	c := n.obs.tr.config
	if c == nil || ev.Index < c.index {
		return
	}
	attrs := trace.WithAttributes(tracing.AttrIndex.Int64(int64(ev.Index)))
	if len(ev.Config.GetOutgoingVoters()) > 0 {
		c.span.AddEvent("joint configuration committed", attrs)
		if c.leaveJoint == nil {
			_, c.leaveJoint = n.obs.tracer.Start(c.ctx, tracing.SpanLeaveJoint, tracing.Attrs{Index: ev.Index})
		}
		return
	}
	c.span.AddEvent("configuration committed", attrs)
	if c.leaveJoint != nil {
		endWith(c.leaveJoint, "committed")
	}
	endWith(c.span, "committed")
	n.obs.tr.config = nil
}

// traceTransfer starts raft.transfer to peer to; the TimeoutNow message
// carries its context to the transferee's election.
func (n *node) traceTransfer(to uint64) {
	if !n.obs.tracer.Enabled() {
		return
	}
	if n.obs.tr.transfer != nil {
		endWith(n.obs.tr.transfer, "superseded")
	}
	n.obs.tr.transferCtx, n.obs.tr.transfer = n.obs.tracer.Start(bg, tracing.SpanTransfer, tracing.Attrs{Term: n.r.Term(), Peer: to})
}

// traceTransferEnd ends raft.transfer when it is answered.
func (n *node) traceTransferEnd(leader uint64, err error) {
	span := n.obs.tr.transfer
	if span == nil {
		return
	}
	n.obs.tr.transfer, n.obs.tr.transferCtx = nil, nil
	span.SetAttributes(tracing.AttrLeader.Int64(int64(leader)))
	if err != nil {
		span.SetAttributes(tracing.AttrResult.String("failed"))
		tracing.End(span, err)
		return
	}
	endWith(span, "transferred")
}

// traceStop ends every open span when the node stops: pending requests
// are answered with err.
func (n *node) traceStop(err error) {
	ts := &n.obs.tr
	if ts.proposals == nil {
		return // never started
	}
	for i, span := range ts.proposals {
		tracing.End(span, err)
		delete(ts.proposals, i)
	}
	n.traceLeadershipLost()
	for peer, list := range ts.serving {
		endAll(list, "unanswered")
		delete(ts.serving, peer)
	}
	clear(ts.voting)
	clear(ts.readServe)
	if ts.election != nil {
		n.endElection(n.r.Role(), n.r.Term(), "stopped")
	}
	n.endVotes()
	n.traceTransferEnd(0, err)
}
