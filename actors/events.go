package actors

import (
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors/raft"
	"github.com/flotilla-raft/flotilla/cluster/transport"
)

// Events, history and subscriptions: what the node tells the application
// of itself, and its status.

// onEvent handles an event of the core; traced: its trace was recorded
// already (traceUntilWon).
func (n *node) onEvent(ctx actor.Context, ev raft.Event, traced bool) {
	if !traced {
		n.traceEvent(ev)
	}
	n.obs.metrics.event(ev)
	t := Transition{Term: ev.Term, Kind: ev.Kind.String(), Leader: ev.Leader, Peer: ev.Peer, Reason: ev.Reason}
	id := n.cfg.ID
	switch ev.Kind {
	case raft.EventRoleChanged:
		t.From, t.To = ev.From.String(), ev.To.String()
		n.become(ev.To)
		if ev.To == raft.Leader {
			n.stopReceiver(ctx)
		}
		if ev.From == raft.Leader {
			n.stopReplicators(ctx)
			n.failMemberOps(ctx, fmt.Errorf("%w: leadership lost before the configuration change completed", ErrOutcomeUnknown))
		}
		if (ev.To == raft.PreCandidate || ev.To == raft.Candidate) && n.pend.transfer != nil {
			// This former leader heard from no new one within an election
			// timeout: the transfer did not take.
			n.endTransfer(ctx, 0, fmt.Errorf("%w: no leader took over after the transfer", ErrRetry))
		}
		n.publish(ctx, &RoleChanged{NodeID: id, Term: ev.Term, From: ev.From, To: ev.To, Reason: ev.Reason})
	case raft.EventTermChanged:
		n.publish(ctx, &TermChanged{NodeID: id, Term: ev.Term, Reason: ev.Reason})
	case raft.EventLeaderChanged:
		n.publish(ctx, &LeaderChanged{NodeID: id, Term: ev.Term, Leader: ev.Leader, LeaderAddress: n.r.Address(ev.Leader)})
		// A read index asked of the old leader (or served by this node as
		// leader) will not be answered now: fail it so the caller retries.
		n.failReads(ctx, fmt.Errorf("%w: the leader changed while the read was pending", ErrRetry))
		if n.pend.transfer != nil && ev.Leader != 0 && ev.Leader != id {
			n.endTransfer(ctx, ev.Leader, nil)
		}
	case raft.EventConfigChanged:
		n.membershipCommitted(ctx, ev)
		n.stopNonMemberReplicators(ctx)
		n.publish(ctx, &MembershipChanged{NodeID: id, Index: ev.Index, Config: ev.Config})
	case raft.EventMemberDeparted:
		n.stopNonMemberReplicators(ctx)
	case raft.EventRemoved:
		n.onRemoved(ctx, ev)
	case raft.EventSnapshotRestored:
		n.publish(ctx, &SnapshotInstalled{NodeID: id, Index: ev.Index})
	case raft.EventQuiesced, raft.EventWoke:
		n.publish(ctx, &QuiescenceChanged{NodeID: id, Term: ev.Term, Quiesced: ev.Kind == raft.EventQuiesced, Reason: ev.Reason})
	case raft.EventTransferAborted:
		// The core gave up (the transferee did not take over within an
		// election timeout): the request is answered, a stopping leader
		// stops handing over on its next tick.
		if n.pend.transfer != nil {
			n.endTransfer(ctx, n.r.Leader(), fmt.Errorf("%w: leadership transfer timed out: %s", ErrRetry, ev.Reason))
		}
		if s := n.life.stop; s != nil && s.transferring {
			s.handOverEnded = true
		}
	}
	n.addHistory(t)
}

func (n *node) addHistory(t Transition) {
	t.Time = time.Now()
	if t.Term == 0 && n.r != nil {
		t.Term = n.r.Term()
	}
	n.ev.history.Add(t)
	n.log.Info("transition", "kind", t.Kind, "term", t.Term, "from", t.From, "to", t.To, "leader", t.Leader, "reason", t.Reason)
}

func (n *node) publish(ctx actor.Context, ev any) {
	for _, s := range n.ev.subs {
		ctx.Send(s, ev)
	}
}

func (n *node) unsubscribe(ctx actor.Context, pid *actor.PID) {
	for i, p := range n.ev.subs {
		if p.Equal(pid) {
			n.ev.subs = append(n.ev.subs[:i:i], n.ev.subs[i+1:]...)
			break
		}
	}
	ctx.Send(n.kids.applier, &setSubscribers{subs: n.ev.subs})
}

func (n *node) subscribe(ctx actor.Context, pid *actor.PID) {
	if pid == nil {
		return
	}
	for _, s := range n.ev.subs {
		if s.Equal(pid) {
			return
		}
	}
	n.ev.subs = append(n.ev.subs, pid)
	ctx.Send(n.kids.applier, &setSubscribers{subs: append([]*actor.PID(nil), n.ev.subs...)})
}

func (n *node) status() *Status {
	rs := n.r.Status()
	s := &Status{ID: rs.ID, Role: rs.Role, Term: rs.Term, Leader: rs.Leader, LeaderAddress: n.r.LeaderAddress(),
		Commit: rs.Commit, Applied: n.applied, LastIndex: rs.LastIndex, FirstIndex: rs.FirstIndex,
		Config: rs.Config, ConfigIndex: rs.ConfigIndex, Removed: rs.Removed, Progress: rs.Progress, Log: rs.Log, Paused: n.life.paused, Quiesced: rs.Quiesced, TimerFires: n.life.timerFires, Dropped: n.inbox.drops,
		Overloaded: n.pend.overloaded, CorruptSnapshotFiles: n.snap.corruptFiles,
		SnapshotSends: n.snapshotSends()}
	if r := n.snap.receiving; r != nil {
		c := *r
		s.SnapshotReceiving = &c
	}
	gs := n.inbox.gate.Stats()
	s.Dropped.WrongCluster, s.Dropped.NonMember, s.Dropped.WrongTarget = gs.DroppedWrongCluster, gs.DroppedNotMember, gs.DroppedWrongTo
	if sr, ok := n.cfg.Transport.(transport.StatsReporter); ok {
		ts := sr.Stats()
		s.Transport = &ts
	}
	if ps, ok := n.cfg.Transport.(transport.PeerStatuser); ok {
		s.Peers = map[uint64]string{}
		for id, st := range ps.PeerStatus() {
			s.Peers[id] = st.State.String()
		}
	}
	return s
}
