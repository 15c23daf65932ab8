package actors

import (
	"context"
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
// interval and they carry no entries.

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

// traceProposal starts raft.propose (ended by traceApplied once the
// proposer is answered) and records raft.leader.append; the entry carries
// the propose span's context.
func (n *node) traceProposal(parent string, e *messages.Entry, index, term uint64) {
	t := n.obs.tracer
	if !t.Enabled() {
		return
	}
	ctx, span := t.StartRemote(bg, parent, tracing.SpanPropose, tracing.Attrs{Term: term, Index: index})
	e.TraceParent = tracing.Inject(ctx)
	_, app := t.Start(ctx, tracing.SpanLeaderAppend, tracing.Attrs{Term: term, Index: index})
	app.End()
	if old, ok := n.obs.tr.proposals[index]; ok {
		endWith(old, "overwritten") // a lost proposal of an earlier term at the same index
	}
	n.obs.tr.proposals[index] = span
}

// traceApplied ends the propose spans of entries applied up to index: the
// applier has answered their proposers.
func (n *node) traceApplied(index uint64) {
	for i, span := range n.obs.tr.proposals {
		if i <= index {
			endWith(span, "applied")
			delete(n.obs.tr.proposals, i)
		}
	}
}

// traceCommits records raft.commit for each newly committed traced entry
// (leader only).
func (n *node) traceCommits() {
	c := n.r.Committed()
	from := n.obs.tr.committed
	if c <= from {
		return
	}
	n.obs.tr.committed = c
	if !n.obs.tracer.Enabled() || n.r.Role() != raft.Leader {
		return
	}
	for lo := max(from+1, n.r.FirstIndex()); lo <= c; {
		ents, err := n.r.Entries(lo, c+1, scanLogPageBytes)
		if err != nil || len(ents) == 0 {
			return
		}
		for _, e := range ents {
			if e.TraceParent != "" {
				_, span := n.obs.tracer.StartRemote(bg, e.TraceParent, tracing.SpanCommit, tracing.Attrs{Term: e.Term, Index: e.Index})
				span.End()
			}
		}
		lo += uint64(len(ents))
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
	if !n.obs.tracer.Enabled() {
		return at
	}
	if snap != nil {
		at.snapshot, n.obs.tr.snapshot = n.obs.tr.snapshot, ""
		for i := range n.obs.tr.applyParent {
			if i <= snap.GetMetadata().GetIndex() {
				delete(n.obs.tr.applyParent, i)
			}
		}
	}
	for _, e := range ents {
		if e.TraceParent == "" {
			continue
		}
		p, ok := n.obs.tr.applyParent[e.Index]
		delete(n.obs.tr.applyParent, e.Index)
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
	if span, ok := n.obs.tr.proposals[e.Index]; ok {
		return sameTraceID(span, e.TraceParent)
	}
	if c := n.obs.tr.config; c != nil && c.index == e.Index {
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
