package actors

import (
	"errors"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors/raft"
	"github.com/flotilla-raft/flotilla/cluster/membership"
	"github.com/flotilla-raft/flotilla/messages"
)

// This file holds the operator's membership API on the leader: AddMember,
// RemoveMember, PromoteLearner and ChangeConfig, each an operation that
// moves through phases and is answered once its final, non-joint
// configuration is committed. The Raft rules (joint consensus, the
// configuration in force) stay in the core; this is bookkeeping.

// opPhase is where a membership operation stands.
type opPhase uint8

const (
	// opCommit: a configuration entry (index) is proposed; the operation
	// goes on when a non-joint configuration at or after it commits.
	opCommit opPhase = iota
	// opLearner: the entry adding the learner is proposed; once it
	// commits, the learner's catch-up starts.
	opLearner
	// opCatchUp: waiting for the learner to catch up, then promoting it.
	opCatchUp
)

type memberOp struct {
	reply *actor.PID
	kind  string // for errors: "AddMember", ...
	id    uint64
	phase opPhase
	index uint64 // the configuration entry the phase waits for
	req   any    // the request: ChangeConfig, AddMember, RemoveMember or PromoteLearner
	// Catch-up (opCatchUp): a round ends when the learner's match reaches
	// roundTarget, the leader's last index when the round began at tick
	// roundStart; a round shorter than an election timeout means the
	// learner is caught up (thesis §4.2.1).
	roundTarget, roundStart uint64
	deadline                uint64 // tick at which the catch-up fails
}

// changeMembership serves a membership request on the leader.
func (n *node) changeMembership(ctx actor.Context, msg any) {
	op := &memberOp{reply: ctx.Sender(), req: msg}
	rs := n.r.Status()
	cur := rs.Config
	var expected uint64
	var target *messages.ClusterConfig
	var err error
	switch m := msg.(type) {
	case *ChangeConfig:
		op.kind, expected = "ChangeConfig", m.ExpectedConfigIndex
		target = m.Config
		if target == nil {
			err = fmt.Errorf("%w: ChangeConfig.Config is nil", ErrInvalidMembership)
		}
	case *AddMember:
		op.kind, op.id, expected = "AddMember", m.ID, m.ExpectedConfigIndex
		switch {
		case m.ID == 0 || m.Address == "":
			err = fmt.Errorf("%w: AddMember{ID: %d, Address: %q} needs both", ErrInvalidMembership, m.ID, m.Address)
		case membership.IsVoter(cur, m.ID) || (!m.Voter && membership.IsLearner(cur, m.ID)):
			// Already there with that role: nothing to do.
		case membership.IsLearner(cur, m.ID):
			op.phase = opCatchUp
		default:
			op.phase = opLearner
			target = membership.AddLearner(cur, &messages.Member{Id: m.ID, Address: m.Address})
		}
		if err == nil && !m.Voter && op.phase == opLearner {
			op.phase = opCommit // a learner is all that was asked
		}
	case *RemoveMember:
		op.kind, op.id, expected = "RemoveMember", m.ID, m.ExpectedConfigIndex
		if !membership.IsVoter(cur, m.ID) && !membership.IsLearner(cur, m.ID) {
			err = fmt.Errorf("%w: %d is no member", ErrInvalidMembership, m.ID)
			break
		}
		target = membership.Remove(cur, m.ID)
	case *PromoteLearner:
		op.kind, op.id, expected = "PromoteLearner", m.ID, m.ExpectedConfigIndex
		switch {
		case membership.IsVoter(cur, m.ID):
		case !membership.IsLearner(cur, m.ID):
			err = fmt.Errorf("%w: %d is not a learner", ErrInvalidMembership, m.ID)
		default:
			op.phase = opCatchUp
		}
	}
	if err == nil && target == nil && op.phase != opCatchUp {
		// Already done (a retry whose answer was lost finds it so):
		// success, whatever index was expected.
		n.answerOp(ctx, op, rs.ConfigIndex, cur, nil)
		return
	}
	if err == nil && expected != 0 && expected != rs.ConfigIndex {
		err = fmt.Errorf("%w: %s expected configuration %d, the configuration in force is %d", ErrStaleConfig, op.kind, expected, rs.ConfigIndex)
	}
	if err == nil && rs.ConfigIndex > rs.Commit {
		err = fmt.Errorf("%w: configuration %d is not committed yet", ErrRetry, rs.ConfigIndex)
	}
	if err != nil {
		n.answerOp(ctx, op, 0, nil, err)
		return
	}
	switch {
	case target != nil:
		if op.index, err = n.r.ProposeConfig(target); err != nil {
			n.answerOp(ctx, op, 0, nil, fmt.Errorf("%s: %w", op.kind, mapErr(err)))
			return
		}
		n.traceConfigChange(op.index, op.kind)
		n.scheduleFlush(ctx)
	default: // op.phase == opCatchUp
		n.startCatchUp(op)
	}
	n.pend.memberOps = append(n.pend.memberOps, op)
}

func (n *node) startCatchUp(op *memberOp) {
	op.phase = opCatchUp
	op.roundTarget, op.roundStart = n.r.LastIndex(), n.life.ticks
	op.deadline = n.life.ticks + uint64(max(n.cfg.CatchUpTimeout/n.cfg.TickInterval, 1))
}

// membershipCommitted moves the operations waiting for a configuration
// at or before ev.Index on (any role: a follower answers too).
func (n *node) membershipCommitted(ctx actor.Context, ev raft.Event) {
	joint := len(ev.Config.GetOutgoingVoters()) > 0
	keep := n.pend.memberOps[:0]
	for _, op := range n.pend.memberOps {
		switch {
		case op.index == 0 || op.index > ev.Index || op.phase == opCatchUp:
		case op.phase == opLearner:
			n.startCatchUp(op)
		case !joint:
			n.answerOp(ctx, op, ev.Index, ev.Config, nil)
			continue
		}
		keep = append(keep, op)
	}
	n.pend.memberOps = keep
}

// tickMembership checks the catch-up of learners waiting for promotion.
func (n *node) tickMembership(ctx actor.Context) {
	if len(n.pend.memberOps) == 0 || n.r.Role() != raft.Leader {
		return
	}
	rs := n.r.Status()
	et := uint64(max(rs.Config.GetSettings().GetElectionTicks(), 1))
	keep := n.pend.memberOps[:0]
	for _, op := range n.pend.memberOps {
		if op.phase != opCatchUp {
			keep = append(keep, op)
			continue
		}
		pr := progressOf(rs.Progress, op.id)
		switch {
		case pr == nil || !membership.IsLearner(rs.Config, op.id):
			n.answerOp(ctx, op, 0, nil, fmt.Errorf("%w: %s: %d is no longer a learner", ErrInvalidMembership, op.kind, op.id))
			continue
		case n.life.ticks >= op.deadline:
			n.answerOp(ctx, op, 0, nil, fmt.Errorf("%w: %s: learner %d is %d entries behind after %v", ErrCatchUpTimeout, op.kind, op.id, pr.Lag, n.cfg.CatchUpTimeout))
			continue
		}
		caught := n.cfg.CatchUpLag > 0 && pr.Lag <= n.cfg.CatchUpLag
		if pr.Match >= op.roundTarget {
			if n.life.ticks-op.roundStart <= et {
				caught = true
			} else {
				op.roundTarget, op.roundStart = rs.LastIndex, n.life.ticks // another round
			}
		}
		if caught && rs.ConfigIndex <= rs.Commit {
			idx, err := n.r.ProposeConfig(membership.Promote(rs.Config, op.id))
			switch {
			case err == nil:
				op.phase, op.index = opCommit, idx
				n.traceConfigChange(idx, op.kind+": promote")
				n.scheduleFlush(ctx)
			case errors.Is(err, raft.ErrConfigChangePending):
				// Another change first: try again next tick.
			default:
				n.answerOp(ctx, op, 0, nil, fmt.Errorf("%s: promote %d: %w", op.kind, op.id, mapErr(err)))
				continue
			}
		}
		keep = append(keep, op)
	}
	n.pend.memberOps = keep
}

// failMemberOps answers every operation with err (leadership lost, stop).
func (n *node) failMemberOps(ctx actor.Context, err error) {
	for _, op := range n.pend.memberOps {
		n.answerOp(ctx, op, 0, nil, err)
	}
	n.pend.memberOps = nil
}

func (n *node) answerOp(ctx actor.Context, op *memberOp, index uint64, cc *messages.ClusterConfig, err error) {
	switch {
	case op.reply == nil:
	case err != nil:
		ctx.Send(op.reply, answerFor(op.req, err))
	case isChangeConfig(op.req):
		ctx.Send(op.reply, &ChangeConfigResponse{Index: index, Config: cc})
	default:
		ctx.Send(op.reply, &MembershipResponse{Index: index, Config: cc})
	}
}

func isChangeConfig(req any) bool {
	_, ok := req.(*ChangeConfig)
	return ok
}

// onRemoved publishes this node's removal.
func (n *node) onRemoved(ctx actor.Context, ev raft.Event) {
	n.log.Warn("this node is no member any more", "index", ev.Index, "reason", ev.Reason)
	n.publish(ctx, &MemberRemoved{NodeID: n.cfg.ID, Index: ev.Index, By: ev.Peer, Reason: ev.Reason})
}

// stopNonMemberReplicators stops the replicator of every peer the core no
// longer sends to.
func (n *node) stopNonMemberReplicators(ctx actor.Context) {
	for pid, rp := range n.kids.replicators {
		if !n.r.IsMember(pid) {
			ctx.Stop(rp)
			delete(n.kids.replicators, pid)
		}
	}
}

func progressOf(prs []raft.PeerProgress, id uint64) *raft.PeerProgress {
	for i := range prs {
		if prs[i].ID == id {
			return &prs[i]
		}
	}
	return nil
}
