package actors

import (
	"errors"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors/raft"
	"github.com/flotilla-raft/flotilla/messages"
)

// The node actor's behaviors. Each role's behavior handles first what that
// role does differently, then hands the rest to common; the Raft rules of
// each role are the core's (actors/raft), these are what the actor adds:
// who serves a request, what each tick does.

// starting is the behavior until the node has started, and for good after
// a start that failed: every request is refused with ErrStopped.
func (n *node) starting(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actor.Started:
		if err := n.start(ctx); err != nil {
			n.log.Error("node failed to start", "err", err)
			n.failStop(ctx, "start failed", err)
		}
	case *actor.Stopping, *actor.Stopped, *actor.Restarting:
	default:
		n.refuse(ctx, n.stoppedErr())
	}
}

// leader is the behavior of the leader. It serves what only a leader
// serves: proposals (requests.go), membership changes (membership.go) and
// leadership transfers; its ticks also advance the catch-up of learners
// waiting for promotion. Its traffic to each peer leaves through that
// peer's replicator (ready.go), stopped when it steps down (events.go).
func (n *node) leader(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *Propose:
		if !n.refused(ctx) {
			n.propose(ctx, msg)
		}
	case *ChangeConfig, *AddMember, *RemoveMember, *PromoteLearner:
		if !n.refused(ctx) {
			n.changeMembership(ctx, msg)
		}
	case *TransferLeadership:
		if !n.refused(ctx) {
			n.transferLeadership(ctx, msg)
		}
	case *tick:
		if n.onTick(ctx, msg) {
			n.tickMembership(ctx)
		}
	default:
		n.common(ctx)
	}
}

// follower is the behavior of a follower: what needs the leader is
// redirected to the leader it knows (NotLeaderError with its id and
// address; Leader 0 when it knows none yet).
func (n *node) follower(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *Propose, *ChangeConfig, *AddMember, *RemoveMember, *PromoteLearner, *TransferLeadership:
		if !n.refused(ctx) {
			n.refuse(ctx, &NotLeaderError{Leader: n.r.Leader(), LeaderAddress: n.r.LeaderAddress()})
		}
	default:
		n.common(ctx)
	}
}

// candidate is the behavior of a candidate or pre-candidate: an election is
// under way and no leader is known, so what needs the leader is refused
// with NotLeaderError{Leader: 0}; the caller retries once one is elected.
func (n *node) candidate(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *Propose, *ChangeConfig, *AddMember, *RemoveMember, *PromoteLearner, *TransferLeadership:
		if !n.refused(ctx) {
			n.refuse(ctx, &NotLeaderError{})
		}
	default:
		n.common(ctx)
	}
}

// become switches the behavior to the role's.
func (n *node) become(role raft.Role) {
	switch role {
	case raft.Leader:
		n.behavior.Become(n.leader)
	case raft.Candidate, raft.PreCandidate:
		n.behavior.Become(n.candidate)
	default:
		n.behavior.Become(n.follower)
	}
}

// common handles what every started node handles alike, whatever its role.
func (n *node) common(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	// The actor's life (lifecycle.go).
	case *tick:
		n.onTick(ctx, msg)
	case *actor.Restarting, *actor.Stopping:
		// Its children stop with it: their Terminated is no failure.
		n.life.exiting = true
		n.stopTicking()
	case *actor.Stopped:
		// Stopped by its parent (or a crash test): release what it holds.
		n.shutdown(ctx)
	case *actor.Terminated:
		n.childTerminated(ctx, msg.Who)
	case *Stop:
		n.beginStop(ctx)
	case *Resume:
		n.resume(ctx)

	// The core's inputs and outputs (ready.go) and the children's reports
	// (protocol.go).
	case *messages.Message:
		n.inbound(ctx, msg)
	case *flushNode:
		n.life.flushQueued = false
		n.processReady(ctx)
	case *persisted:
		n.r.Persisted(msg.id)
		n.scheduleFlush(ctx)
	case *persistFailed:
		n.failStop(ctx, "storage failure", msg.err)
	case *applyFailed:
		n.failStop(ctx, "apply failed", msg.err)
	case *appliedUpTo:
		n.appliedUpTo(ctx, msg.index)
		if n.r.AppliedTo(msg.index) {
			n.scheduleFlush(ctx) // the applier's queue has room again
		}
	case *drained:
		n.finishStop(ctx)
	case *snapshotMade:
		n.snapshotMade(ctx, msg)
	case *lazySnapshotMade:
		n.lazySnapshotDone(ctx, msg)
	case *snapshotSendProgress:
		n.snapshotSendProgress(ctx, msg.p)
	case *snapshotOpenFailed:
		n.snapshotOpenFailed(ctx, msg)
	case *snapshotAckOut:
		n.send(ctx, msg.m)
	case snapshotCorrupt:
		n.inbox.drops.CorruptSnapshot++
	case *snapshotRecvProgress:
		n.snap.receiving = &msg.p
	case *snapshotReceivedAll:
		n.snapshotReceived(ctx, msg)
	case *snapshotRefused:
		n.snapshotRefused(msg)

	// Requests every role serves.
	case *Read:
		if n.stopping() {
			n.refuse(ctx, n.stoppedErr())
			return
		}
		n.read(ctx, msg)
	case *Campaign:
		n.r.Campaign()
		n.scheduleFlush(ctx)
	case *TakeSnapshot:
		if n.stopping() {
			n.refuse(ctx, n.stoppedErr())
			return
		}
		n.requestSnapshot(ctx, ctx.Sender())
	case *CompactTo:
		n.compactTo(ctx, msg)
	case *Subscribe:
		pid := msg.PID
		if pid == nil {
			pid = ctx.Sender()
		}
		n.subscribe(ctx, pid)
	case *Unsubscribe:
		n.unsubscribe(ctx, msg.PID)
	case *GetStatus:
		n.respond(ctx, n.status())
	case *GetHistory:
		n.respond(ctx, &History{NodeID: n.cfg.ID, Transitions: n.ev.history.Snapshot()})
	case *SetLogLevel:
		n.setLogLevel(ctx, msg)
	}
}

// setLogLevel serves SetLogLevel.
func (n *node) setLogLevel(ctx actor.Context, msg *SetLogLevel) {
	if n.cfg.LogLevel == nil {
		n.respond(ctx, &SetLogLevelResponse{Err: errors.New("actors: Config.LogLevel is not set: the level is the application's handler's")})
		return
	}
	prev := n.cfg.LogLevel.Level()
	n.cfg.LogLevel.Set(msg.Level)
	n.log.Info("log level changed", "from", prev, "to", msg.Level)
	n.respond(ctx, &SetLogLevelResponse{Previous: prev})
}
