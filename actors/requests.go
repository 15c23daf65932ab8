package actors

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors/raft"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/tracing"
)

// Requests and their answers: proposals, reads and leadership transfers,
// and the one mapping from a request to its error answer. Membership
// changes are in membership.go, snapshots in snapshot.go.

// answerFor is the answer to request req that carries only err: the one
// mapping from a request to its error answer, used to refuse a request
// (the node stops or is paused, or is not the leader) and to answer the
// requests still pending when the node stops. nil when req is no request
// with an answer.
func answerFor(req any, err error) any {
	switch req.(type) {
	case *Propose:
		return &ProposeResponse{Err: err}
	case *ChangeConfig:
		return &ChangeConfigResponse{Err: err}
	case *AddMember, *RemoveMember, *PromoteLearner:
		return &MembershipResponse{Err: err}
	case *TransferLeadership:
		return &TransferLeadershipResponse{Err: err}
	case *Read:
		return &ReadResponse{Err: err}
	case *TakeSnapshot:
		return &TakeSnapshotResponse{Err: err}
	case *CompactTo:
		return &CompactToResponse{Err: err}
	}
	return nil
}

// refuse answers the request being handled with err.
func (n *node) refuse(ctx actor.Context, err error) {
	if a := answerFor(ctx.Message(), err); a != nil {
		n.respond(ctx, a)
	}
}

// unavailable is why the node serves no request now: it stops (or failed),
// or it was started paused. nil when it serves.
func (n *node) unavailable() error {
	switch {
	case n.stopping():
		return n.stoppedErr()
	case n.life.paused:
		return ErrPaused
	}
	return nil
}

// refused refuses the request being handled when the node serves none
// now (see unavailable), and reports whether it did.
func (n *node) refused(ctx actor.Context) bool {
	err := n.unavailable()
	if err != nil {
		n.refuse(ctx, err)
	}
	return err != nil
}

// mapErr maps the core's transient refusals to ErrRetry, and its
// uncommitted-bytes cap to ErrOverloaded as well.
func mapErr(err error) error {
	switch {
	case errors.Is(err, raft.ErrProposalDropped):
		return fmt.Errorf("%w: %w: %w", ErrRetry, ErrOverloaded, err)
	case errors.Is(err, raft.ErrTransferInProgress), errors.Is(err, raft.ErrConfigChangePending), errors.Is(err, raft.ErrNoLeader):
		return fmt.Errorf("%w: %w", ErrRetry, err)
	}
	return err
}

// overload refuses the request being handled with ErrOverloaded (wrapped
// with ErrRetry), counted under cause.
func (n *node) overload(ctx actor.Context, count *uint64, cause, detail string) {
	*count++
	n.obs.metrics.overloaded(cause)
	n.refuse(ctx, fmt.Errorf("%w: %w: %s", ErrRetry, ErrOverloaded, detail))
}

// pendingProposals is how many proposals of this node wait for their
// answer: to commit (pend.proposals) or in the applier's batches.
func (n *node) pendingProposals() int { return len(n.pend.proposals) + n.pend.applyingWaiters }

// handedToApplier records the waiters of a batch up to upTo handed to the
// applier; appliedWaiters forgets those answered once it applied up to
// index.
func (n *node) handedToApplier(upTo uint64, waiters int) {
	if waiters > 0 {
		n.pend.applying = append(n.pend.applying, applyingBatch{upTo: upTo, waiters: waiters})
		n.pend.applyingWaiters += waiters
	}
}

func (n *node) appliedWaiters(index uint64) {
	k := 0
	for ; k < len(n.pend.applying) && n.pend.applying[k].upTo <= index; k++ {
		n.pend.applyingWaiters -= n.pend.applying[k].waiters
	}
	n.pend.applying = n.pend.applying[k:]
}

func (n *node) respond(ctx actor.Context, msg any) {
	if ctx.Sender() != nil {
		ctx.Respond(msg)
	}
}

// answerPending answers every request still pending with err (the node
// stops) and ends their spans.
func (n *node) answerPending(ctx actor.Context, err error) {
	for idx, w := range n.pend.proposals {
		a := answerFor((*Propose)(nil), err).(*ProposeResponse)
		a.Index = idx
		ctx.Send(w.pid, a)
	}
	clear(n.pend.proposals)
	n.pend.applying, n.pend.applyingWaiters = nil, 0 // the applier answers them
	n.failReads(ctx, err)
	for _, pr := range n.pend.readsByIndex {
		pr.answer(ctx, err)
	}
	n.pend.readsByIndex = nil
	n.failMemberOps(ctx, err)
	if n.pend.transfer != nil {
		n.endTransfer(ctx, 0, err)
	}
	n.traceStop(err)
}

// ---- proposals ----

// propose serves a Propose on the leader: the core appends the entry, the
// proposer waits in pend.proposals until the applier answers it.
func (n *node) propose(ctx actor.Context, msg *Propose) {
	if max := n.cfg.MaxPendingProposals; max > 0 && ctx.Sender() != nil && n.pendingProposals() >= max {
		n.overload(ctx, &n.pend.overloaded.PendingProposals, tracing.OverloadPendingProposals,
			fmt.Sprintf("%d proposals wait for their answer, Config.MaxPendingProposals %d", n.pendingProposals(), max))
		return
	}
	e := &messages.Entry{Data: msg.Data, ClientId: msg.ClientID, Sequence: msg.Sequence, TraceParent: msg.TraceParent}
	idx, term, err := n.r.Propose(e)
	if errors.Is(err, raft.ErrProposalDropped) {
		n.pend.overloaded.UncommittedBytes++
		n.obs.metrics.overloaded(tracing.OverloadUncommittedBytes)
	}
	if err != nil {
		n.refuse(ctx, mapErr(err))
		return
	}
	n.accepted(ctx, msg, idx, term)
	n.traceProposal(msg.TraceParent, e, idx, term)
	n.obs.metrics.proposed(idx)
	if s := ctx.Sender(); s != nil {
		n.pend.proposals[idx] = waiter{pid: s, term: term}
	}
	n.scheduleFlush(ctx)
}

// proposalsCovered answers the proposals waiting at an index a snapshot
// from the leader covers (this node proposed them as a leader since
// deposed): whether their entries made it into the log the snapshot
// covers is unknown here, and no entry of theirs will be applied.
func (n *node) proposalsCovered(ctx actor.Context, index uint64) {
	for idx, w := range n.pend.proposals {
		if idx <= index {
			err := fmt.Errorf("%w: a snapshot from the leader covers index %d, where the proposal was appended", ErrOutcomeUnknown, idx)
			ctx.Send(w.pid, &ProposeResponse{Index: idx, Err: err})
			delete(n.pend.proposals, idx)
		}
	}
}

// ---- reads ----

type pendingRead struct {
	from  *actor.PID
	query any
	index uint64
	trace *readTrace
	start time.Time // arrival, for the read latency metric
}

// answer answers the read with err and ends its spans.
func (pr pendingRead) answer(ctx actor.Context, err error) {
	if pr.from != nil {
		ctx.Send(pr.from, answerFor((*Read)(nil), err))
	}
	pr.trace.end(err)
}

func (n *node) read(ctx actor.Context, msg *Read) {
	if max, pending := n.cfg.MaxPendingReads, len(n.pend.reads)+len(n.pend.readsByIndex); max > 0 && pending >= max {
		n.overload(ctx, &n.pend.overloaded.PendingReads, tracing.OverloadPendingReads,
			fmt.Sprintf("%d reads wait, Config.MaxPendingReads %d", pending, max))
		return
	}
	n.pend.readSeq++
	key := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, n.cfg.ID), n.pend.readSeq)
	if err := n.r.ReadIndex(key); err != nil {
		n.refuse(ctx, mapErr(err))
		return
	}
	n.pend.reads[string(key)] = pendingRead{from: ctx.Sender(), query: msg.Query, trace: n.traceRead(), start: time.Now()}
	n.scheduleFlush(ctx)
}

// readIndexKnown moves the read the core answered to the reads waiting for
// the applier.
func (n *node) readIndexKnown(rs raft.ReadState) {
	if pr, ok := n.pend.reads[string(rs.Context)]; ok {
		delete(n.pend.reads, string(rs.Context))
		pr.index = rs.Index
		pr.trace.indexKnown(rs.Index)
		n.pend.readsByIndex = append(n.pend.readsByIndex, pr)
	}
}

// serveReads passes reads whose index is applied to the applier, which
// answers them after everything before in its mailbox.
func (n *node) serveReads(ctx actor.Context) {
	keep := n.pend.readsByIndex[:0]
	for _, pr := range n.pend.readsByIndex {
		// Entries up to the read index have been handed to the applier (it
		// runs them before this query) once the core handed them out.
		if pr.index <= n.r.Applied() {
			pr.trace.applied()
			ctx.Send(n.kids.applier, &readQuery{from: pr.from, query: pr.query, index: pr.index, trace: pr.trace, start: pr.start})
		} else {
			keep = append(keep, pr)
		}
	}
	n.pend.readsByIndex = keep
}

// failReads answers every read still waiting for its read index.
func (n *node) failReads(ctx actor.Context, err error) {
	for key, pr := range n.pend.reads {
		pr.answer(ctx, err)
		delete(n.pend.reads, key)
	}
}

// ---- leadership transfer ----

type transferState struct {
	reply *actor.PID
}

// transferLeadership serves a TransferLeadership on the leader. The core
// runs the transfer; it ends when another node leads (LeaderChanged) or
// when the core aborts it (EventTransferAborted, after an election
// timeout), see events.go.
func (n *node) transferLeadership(ctx actor.Context, msg *TransferLeadership) {
	to := msg.To
	if to == 0 {
		to = n.r.TransferTarget()
	}
	if to == 0 {
		n.refuse(ctx, fmt.Errorf("%w: no other voter to transfer to", ErrRetry))
		return
	}
	if err := n.r.TransferLeadership(to); err != nil {
		n.refuse(ctx, mapErr(err))
		return
	}
	n.pend.transfer = &transferState{reply: ctx.Sender()}
	n.traceTransfer(to)
	n.scheduleFlush(ctx)
}

// endTransfer answers the transfer under way: leader is who leads now.
func (n *node) endTransfer(ctx actor.Context, leader uint64, err error) {
	n.traceTransferEnd(leader, err)
	if n.pend.transfer.reply != nil {
		ctx.Send(n.pend.transfer.reply, &TransferLeadershipResponse{Leader: leader, Err: err})
	}
	n.pend.transfer = nil
}
