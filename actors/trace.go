package actors

import (
	"context"
	"fmt"
	"time"

	"github.com/flotilla-raft/flotilla/actors/raft"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/tracing"
	"go.opentelemetry.io/otel/trace"
)

// Spans of the node actor (names, kinds and attributes in package tracing,
// whose package documentation draws the same trees). A Raft message
// exchange is a client/server pair: the sender's span lasts from the send
// until the answer arrives, the receiver's from the receipt until it sends
// its answer, so the receiver's span lies inside the sender's. A request
// from the application is a server span that lasts until it is answered.
//
// One proposal:
//
//	raft.propose (leader; child of Propose.TraceParent when given; until the proposer is answered)
//	├─ raft.leader.append
//	├─ raft.persist (leader; linked to the entries of other traces in the same fsync)
//	├─ raft.replicate → peer (one AppendEntries; until the peer acknowledges its last entry)
//	│  └─ raft.follower.append (follower; until it sends the acknowledgement)
//	│     ├─ raft.persist (follower)
//	│     └─ raft.apply (follower, once committed)
//	├─ raft.commit (leader)
//	└─ raft.apply (leader)
//
// An AppendEntries carrying many proposals is a child of the first traced
// entry and linked to the others (links only ever point to other traces).
//
// An election: raft.election on the (pre-)candidate, from its first
// campaign until it wins or loses (raft.role, raft.term, raft.result set
// then), with its steps as span events; a raft.prevote or raft.vote per
// peer asked, each with the voter's raft.vote.response inside it. A
// leadership transfer's election is a child of raft.transfer.
//
// A read: raft.read (until answered) ⊃ raft.read.index (the ReadIndex
// round; on a follower it holds the leader's raft.read.index.serve), then
// raft.read.wait (until the state machine has applied the read index).
//
// A snapshot: raft.snapshot.take (any node); raft.snapshot.send → peer
// (leader, a trace of its own) ⊃ raft.snapshot.install (follower) ⊃
// raft.persist and raft.snapshot.restore.
//
// A configuration change: raft.config.change (leader, until the final
// configuration commits) holding its entry's replication spans and, for a
// joint change, raft.config.leave_joint. A transfer: raft.transfer (leader,
// until answered) ⊃ the transferee's raft.election.
//
// Heartbeats are never traced: a leader sends one per peer every heartbeat
// interval, and they carry no entries.

var bg = context.Background()

// maxOpen bounds the spans kept open per peer while waiting for an answer
// (AppendEntries in flight, answers not yet sent); beyond it the oldest is
// ended as unanswered, so lost messages cannot grow memory.
const maxOpen = 64

// openSpan is the span of an AppendEntries (prev: its previous log index)
// or of an InstallSnapshot, open until its answer is sent or received.
type openSpan struct {
	span     trace.Span
	prev     uint64 // AppendEntries: the index its entries follow
	last     uint64 // the last index it carries
	snapshot bool
}

// voteSpan is a raft.prevote or raft.vote awaiting its answer. The voter
// sends its answer with the request's traceparent, which finds the request
// even when a later round asked the same peer again.
type voteSpan struct {
	span        trace.Span
	traceparent string
	peer        uint64
	resp        messages.MessageType // the answer's type
}

// received is a request whose server span starts only when the answer is
// sent (a request the core ignores leaves no span), dated from its receipt.
type received struct {
	traceparent string
	at          time.Time
	term        uint64
	msgType     string
}

// configTrace follows a configuration change on the leader.
type configTrace struct {
	span, leaveJoint trace.Span
	ctx              context.Context
	index            uint64
}

// traceState holds the spans of the node actor that outlive one message.
// Every map is bounded: by the proposals in flight (themselves bounded), by
// maxOpen per peer, by the members, or by the entries not yet applied.
type traceState struct {
	proposals   map[uint64]trace.Span // leader: index -> raft.propose, until answered
	sending     map[uint64][]openSpan // leader: peer -> raft.replicate / raft.snapshot.send awaiting the answer
	serving     map[uint64][]openSpan // follower: leader -> raft.follower.append / raft.snapshot.install until answered
	applyParent map[uint64]string     // follower: index -> the raft.follower.append that brought the entry
	votes       []voteSpan            // (pre-)candidate: requests awaiting an answer, oldest first
	voting      map[uint64]received   // voter: candidate -> its request, until answered
	readServe   map[string]received   // leader: a follower's read index request, until answered
	persist     string                // parent of the next persist span
	snapshot    string                // parent of the next snapshot restore
	election    trace.Span            // open while campaigning
	electionCtx context.Context
	electParent string // a TimeoutNow's traceparent: parent of the next election
	voteTicks   int    // ticks left for the answers to an ended election's requests
	config      *configTrace
	transfer    trace.Span // leader: the transfer in progress
	transferCtx context.Context
	committed   uint64 // commit index up to which raft.commit was recorded
}

func newTraceState() traceState {
	return traceState{
		proposals: map[uint64]trace.Span{}, sending: map[uint64][]openSpan{}, serving: map[uint64][]openSpan{},
		applyParent: map[uint64]string{}, voting: map[uint64]received{},
		readServe: map[string]received{},
	}
}

// takePersistParent returns the parent of the next persist span and
// forgets it.
func (ts *traceState) takePersistParent() string {
	p := ts.persist
	ts.persist = ""
	return p
}

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
// the first traced entry, linked to the others' traces. It returns a nil
// span when no entry is traced.
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
	return t.StartLinked(tracing.Extract(bg, first), name, a, all[1:])
}

// endWith sets raft.result and ends span.
func endWith(span trace.Span, result string) {
	span.SetAttributes(tracing.AttrResult.String(result))
	span.End()
}

// pushOpen appends s to list, ending the oldest as unanswered beyond maxOpen.
func pushOpen(list []openSpan, s openSpan) []openSpan {
	if len(list) >= maxOpen {
		endWith(list[0].span, "unanswered")
		list = append(list[:0], list[1:]...)
	}
	return append(list, s)
}

// endAnswered ends the spans of list that an AppendEntries answer m
// answers, and returns the rest: an acknowledgement of index i answers
// every message up to i; a rejection answers the AppendEntries whose
// entries followed m.Index (an InstallSnapshot waits for its
// acknowledgement).
func endAnswered(list []openSpan, m *messages.Message) []openSpan {
	keep := list[:0]
	for _, o := range list {
		switch {
		case !m.Reject && o.last <= m.Index:
			endWith(o.span, "acked")
		case m.Reject && !o.snapshot && o.prev == m.Index:
			endWith(o.span, "rejected")
		default:
			keep = append(keep, o)
		}
	}
	return keep
}

// endAll ends every span of list with result.
func endAll(list []openSpan, result string) {
	for _, o := range list {
		endWith(o.span, result)
	}
}

func voteResult(reject bool) string {
	if reject {
		return "rejected"
	}
	return "granted"
}

// ---- proposals ----

// traceProposal starts raft.propose (ended by traceApplied once the
// proposer is answered) and records raft.leader.append; the entry carries
// the propose span's context.
func (n *node) traceProposal(parent string, e *messages.Entry, index, term uint64) {
	t := n.tracer
	if !t.Enabled() {
		return
	}
	ctx, span := t.StartRemote(bg, parent, tracing.SpanPropose, tracing.Attrs{Term: term, Index: index})
	e.TraceParent = tracing.Inject(ctx)
	_, app := t.Start(ctx, tracing.SpanLeaderAppend, tracing.Attrs{Term: term, Index: index})
	app.End()
	if old, ok := n.tr.proposals[index]; ok {
		endWith(old, "overwritten") // a lost proposal of an earlier term at the same index
	}
	n.tr.proposals[index] = span
}

// traceApplied ends the propose spans of entries applied up to index: the
// applier has answered their proposers.
func (n *node) traceApplied(index uint64) {
	for i, span := range n.tr.proposals {
		if i <= index {
			endWith(span, "applied")
			delete(n.tr.proposals, i)
		}
	}
}

// traceCommits records raft.commit for each newly committed traced entry
// (leader only).
func (n *node) traceCommits() {
	c := n.r.Committed()
	from := n.tr.committed
	if c <= from {
		return
	}
	n.tr.committed = c
	if !n.tracer.Enabled() || n.r.Role() != raft.Leader {
		return
	}
	ents, err := n.r.Entries(max(from+1, n.r.FirstIndex()), c+1)
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

// applyTrace is what the applier needs to parent its spans on this node.
type applyTrace struct {
	parents  map[uint64]string // index -> parent of its raft.apply; no span for the others
	snapshot string            // parent of raft.snapshot.restore
}

// applyTrace returns the parents of the apply spans of ents and of a
// snapshot restore. On the leader an entry's apply is a child of its own
// request's span (raft.propose, raft.config.change), still open; on a
// follower, of the raft.follower.append (or raft.snapshot.install) that
// brought the entry, so that no apply lies outside its parent. An entry
// applied again from the log after a restart, whose spans ended in an
// earlier life of the node, gets no apply span.
func (n *node) applyTrace(ents []*messages.Entry, snap *messages.Snapshot) applyTrace {
	var at applyTrace
	if !n.tracer.Enabled() {
		return at
	}
	if snap != nil {
		at.snapshot, n.tr.snapshot = n.tr.snapshot, ""
		for i := range n.tr.applyParent {
			if i <= snap.GetMetadata().GetIndex() {
				delete(n.tr.applyParent, i)
			}
		}
	}
	for _, e := range ents {
		if e.TraceParent == "" {
			continue
		}
		p, ok := n.tr.applyParent[e.Index]
		delete(n.tr.applyParent, e.Index)
		switch {
		case ok && sameTrace(p, e.TraceParent):
			// the follower's append that brought this entry (not one of
			// another trace that it overwrote since)
		case n.ownsEntry(e):
			p = e.TraceParent
		default:
			continue
		}
		if at.parents == nil {
			at.parents = map[uint64]string{}
		}
		at.parents[e.Index] = p
	}
	return at
}

// ownsEntry reports whether e's request span (raft.propose or
// raft.config.change) is open on this node.
func (n *node) ownsEntry(e *messages.Entry) bool {
	if span, ok := n.tr.proposals[e.Index]; ok {
		return sameTraceID(span, e.TraceParent)
	}
	if c := n.tr.config; c != nil && c.index == e.Index {
		return sameTraceID(c.span, e.TraceParent)
	}
	return false
}

func sameTraceID(span trace.Span, tp string) bool {
	l, ok := tracing.LinkFrom(tp)
	return ok && l.SpanContext.TraceID() == span.SpanContext().TraceID()
}

func sameTrace(a, b string) bool {
	la, ok1 := tracing.LinkFrom(a)
	lb, ok2 := tracing.LinkFrom(b)
	return ok1 && ok2 && la.SpanContext.TraceID() == lb.SpanContext.TraceID()
}

// ---- messages ----

// traceOutbound stamps trace context on an outbound message and starts or
// ends the spans of its sending.
func (n *node) traceOutbound(m *messages.Message) {
	t := n.tracer
	if !t.Enabled() {
		return
	}
	ts := &n.tr
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
		if pr, ok := n.reads[string(m.Context)]; ok && pr.trace != nil {
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
	t := n.tracer
	if !t.Enabled() {
		return
	}
	ts := &n.tr
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

// ---- elections ----

// ensureElection starts raft.election if none is open: a root, or the child
// of the transfer whose TimeoutNow started it.
func (n *node) ensureElection() {
	ts := &n.tr
	if ts.election != nil || !n.tracer.Enabled() {
		return
	}
	n.endVotes()
	ts.electionCtx, ts.election = n.tracer.StartRemote(bg, ts.electParent, tracing.SpanElection, tracing.Attrs{})
	ts.electParent = ""
}

// endElection ends the election with its end state. Its requests still
// unanswered stay open for one more election timeout (an answer the
// election no longer needed may still arrive: the request's span then
// holds the voter's), then traceTick ends them.
func (n *node) endElection(role raft.Role, term uint64, result string) {
	ts := &n.tr
	ts.voteTicks = max(int(n.r.ClusterConfig().GetSettings().GetElectionTicks()), 1)
	ts.election.SetAttributes(tracing.AttrRole.String(role.String()), tracing.AttrTerm.Int64(int64(term)))
	endWith(ts.election, result)
	ts.election, ts.electionCtx = nil, nil
}

// endVote ends the request that the answer m answers: the one its
// traceparent names, or else the latest one to its sender.
func (n *node) endVote(m *messages.Message) {
	ts := &n.tr
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
	for _, v := range n.tr.votes {
		endWith(v.span, "unanswered")
	}
	n.tr.votes = nil
}

// traceTick ends, an election timeout after its election ended, the vote
// requests nobody answered.
func (n *node) traceTick() {
	ts := &n.tr
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
	if !n.tracer.Enabled() {
		return
	}
	ts := &n.tr
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
	ts := &n.tr
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

// ---- configuration changes and transfers ----

// traceConfigChange starts raft.config.change for the configuration entry
// just proposed at index (reason: the request, such as ChangeConfig or
// AddMember), and makes the entry carry its context so that its
// replication spans are its children. The entry has not been handed out
// yet (no Ready since the proposal), so setting its TraceParent races with
// nothing.
func (n *node) traceConfigChange(index uint64, reason string) {
	if !n.tracer.Enabled() {
		return
	}
	ctx, span := n.tracer.Start(bg, tracing.SpanConfigChange, tracing.Attrs{Term: n.r.Term(), Index: index, Reason: reason})
	if ents, err := n.r.Entries(index, index+1); err == nil && len(ents) == 1 {
		ents[0].TraceParent = tracing.Inject(ctx)
	}
	if old := n.tr.config; old != nil {
		endWith(old.span, "superseded")
	}
	n.tr.config = &configTrace{span: span, ctx: ctx, index: index}
}

// traceConfigCommitted marks the commit of a joint configuration (the leave
// starts) or the final one (the change ends).
func (n *node) traceConfigCommitted(ev raft.Event) {
	c := n.tr.config
	if c == nil || ev.Index < c.index {
		return
	}
	attrs := trace.WithAttributes(tracing.AttrIndex.Int64(int64(ev.Index)))
	if len(ev.Config.GetOutgoingVoters()) > 0 {
		c.span.AddEvent("joint configuration committed", attrs)
		if c.leaveJoint == nil {
			_, c.leaveJoint = n.tracer.Start(c.ctx, tracing.SpanLeaveJoint, tracing.Attrs{Index: ev.Index})
		}
		return
	}
	c.span.AddEvent("configuration committed", attrs)
	if c.leaveJoint != nil {
		endWith(c.leaveJoint, "committed")
	}
	endWith(c.span, "committed")
	n.tr.config = nil
}

// traceTransfer starts raft.transfer to peer to; the TimeoutNow message
// carries its context to the transferee's election.
func (n *node) traceTransfer(to uint64) {
	if !n.tracer.Enabled() {
		return
	}
	if n.tr.transfer != nil {
		endWith(n.tr.transfer, "superseded")
	}
	n.tr.transferCtx, n.tr.transfer = n.tracer.Start(bg, tracing.SpanTransfer, tracing.Attrs{Term: n.r.Term(), Peer: to})
}

// traceTransferEnd ends raft.transfer when it is answered.
func (n *node) traceTransferEnd(leader uint64, err error) {
	span := n.tr.transfer
	if span == nil {
		return
	}
	n.tr.transfer, n.tr.transferCtx = nil, nil
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
	ts := &n.tr
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

// ---- reads ----

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
	if !n.tracer.Enabled() {
		return nil
	}
	rt := &readTrace{t: n.tracer}
	var ctx context.Context
	ctx, rt.span = n.tracer.Start(bg, tracing.SpanRead, tracing.Attrs{Term: n.r.Term()})
	rt.ctx, rt.step = n.tracer.Start(ctx, tracing.SpanReadIndex, tracing.Attrs{Leader: n.r.Leader()})
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

// ---- applier ----

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

// traceRestore restores the state machine from s inside
// raft.snapshot.restore, a child of the raft.snapshot.install that brought
// it (parent; no span when empty: a snapshot loaded at start).
func (a *applier) traceRestore(s *messages.Snapshot, parent string) error {
	if parent == "" || !a.tracer.Enabled() {
		return a.timedRestore(s)
	}
	_, span := a.tracer.StartRemote(bg, parent, tracing.SpanSnapshotRestore, tracing.Attrs{Index: s.GetMetadata().GetIndex()})
	err := a.timedRestore(s)
	tracing.End(span, err)
	return err
}
