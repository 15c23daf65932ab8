package raft

import (
	"fmt"

	"github.com/flotilla-raft/flotilla/messages"
)

// This file holds quiescence: a leader with nothing to do stops
// heartbeating, and its followers stop their election timers (see the
// package doc, "Quiescence", for the rule and why it is safe).

// quiescedMissedBeats is how many quiesced-heartbeat periods a quiesced
// follower waits without word from its leader before it wakes and runs
// its election timer again: one lost heartbeat and the drift of the two
// nodes' slow timers must not wake it.
const quiescedMissedBeats = 3

// Quiesced reports whether this node is quiesced: a leader that sends only
// a heartbeat every QuiescedHeartbeatTicks, or a follower whose election
// timer is stopped. A driver may then tick it at a slow rate, QuiesceStride
// ticks at once.
func (r *Raft) Quiesced() bool { return r.quiesced }

// QuiesceStride is how many ticks a driver may deliver at once (Tick
// called that many times in a row, every QuiesceStride tick intervals)
// while Quiesced: Config.QuiescedHeartbeatTicks. A quiesced node does
// nothing on a tick but count it, send its rare heartbeat, and check for
// its leader's.
func (r *Raft) QuiesceStride() int { return r.cfg.QuiescedHeartbeatTicks }

// tickQuiesced is a tick of a quiesced node.
func (r *Raft) tickQuiesced() {
	r.quietElapsed++
	if r.role == Leader {
		if r.quietElapsed >= r.cfg.QuiescedHeartbeatTicks {
			r.quietElapsed = 0
			r.bcastQuiesce()
		}
		return
	}
	if r.quietElapsed >= quiescedMissedBeats*r.cfg.QuiescedHeartbeatTicks {
		r.wake(fmt.Sprintf("no heartbeat from quiesced leader %d for %d ticks", r.lead, r.quietElapsed), true)
	}
}

// tickQuiesce (leader, awake, after its tick) counts the ticks the leader
// could have quiesced, and quiesces once there were Config.QuiesceTicks
// in a row.
func (r *Raft) tickQuiesce() {
	if r.role != Leader || !r.canQuiesce() {
		r.quietElapsed = 0
		return
	}
	r.quietElapsed++
	if r.quietElapsed >= r.cfg.QuiesceTicks {
		r.quiesced = true
		r.quietElapsed = 0
		r.event(Event{Kind: EventQuiesced, Index: r.log.committed, Reason: fmt.Sprintf("idle for %d ticks, every peer caught up", r.cfg.QuiesceTicks)})
		r.bcastQuiesce()
	}
}

// canQuiesce reports whether this leader has nothing in flight: every
// entry is committed (one of its term among them) and every peer holds
// them all, in replicate state; no read, transfer, configuration change,
// departing member or snapshot transfer is pending.
func (r *Raft) canQuiesce() bool {
	if r.cfg.QuiesceTicks <= 0 {
		return false
	}
	last := r.log.lastIndex()
	if r.log.committed != last || r.leadTransferee != 0 || len(r.reads.queue) > 0 || len(r.pendingReads) > 0 ||
		len(r.departing) > 0 || len(r.snapTransfers) > 0 || r.pendingConfIndex > r.log.committed || len(r.cc.OutgoingVoters) > 0 {
		return false
	}
	if t, _ := r.log.term(last); t != r.term {
		return false
	}
	for _, id := range r.peers {
		pr := r.prs[id]
		if id == r.id {
			continue
		}
		if pr == nil || pr.Match != last || pr.State != StateReplicate || pr.RemovedAt != 0 {
			return false
		}
	}
	return true
}

// bcastQuiesce sends every peer a quiescing heartbeat: a heartbeat with
// Quiesce set, carrying the commit index (every peer holds it).
func (r *Raft) bcastQuiesce() {
	r.commitNews = false
	r.quiesceBeatAt = r.ticks
	for _, id := range r.peers {
		pr := r.prs[id]
		if id == r.id || pr == nil {
			continue
		}
		r.send(&messages.Message{Type: messages.MessageType_MSG_HEARTBEAT, To: id, Commit: min(pr.Match, r.log.committed),
			Index: r.ticks, Quiesce: true, FromAddress: r.ownAddressFor(pr)})
	}
}

// keepsQuiet reports whether m leaves a quiesced node quiesced. A
// follower: a heartbeat of its leader that quiesces or was sent before
// the one that quiesced it (Index is the leader's clock). A leader: the
// answer of a peer of its term to one of its heartbeats (it echoes the
// leader's clock in Index; a woken follower's call is an answer with
// Index 0), without a read to confirm. Every other message wakes it.
func (r *Raft) keepsQuiet(m *messages.Message) bool {
	if m.Term != r.term {
		return false
	}
	if r.role == Leader {
		return m.Type == messages.MessageType_MSG_HEARTBEAT_RESP && m.Index != 0 && len(m.Context) == 0
	}
	return m.Type == messages.MessageType_MSG_HEARTBEAT && m.From == r.lead && (m.Quiesce || m.Index <= r.quiescedAt)
}

// quiesceFollower (follower) obeys a quiescing heartbeat of its leader:
// its election timer stops until a message other than another one
// arrives, a local request, or quiescedMissedBeats periods without one.
func (r *Raft) quiesceFollower(m *messages.Message) {
	if !r.quiesced {
		r.quiesced = true
		r.event(Event{Kind: EventQuiesced, Peer: m.From, Index: m.Commit, Reason: fmt.Sprintf("leader %d quiesced the group", m.From)})
	}
	r.quietElapsed = 0
	r.quiescedAt = m.Index
}

// wake ends quiescence. A leader's lease restarts from heartbeats sent
// after the next tick (its clock may have lagged while a driver ticked it
// in strides), and it heartbeats at once, which wakes its followers. A
// follower runs its election timer from zero, and with tellLeader sends
// its leader a plain heartbeat answer, which wakes a live leader.
func (r *Raft) wake(reason string, tellLeader bool) {
	if !r.quiesced {
		return
	}
	r.quiesced = false
	r.quietElapsed = 0
	r.event(Event{Kind: EventWoke, Reason: reason})
	if r.role == Leader {
		r.leaseFrom = r.ticks + 1
		for _, pr := range r.prs {
			pr.leaseAck = 0
		}
		r.electionElapsed, r.heartbeatElapsed = 0, 0
		r.bcastHeartbeat(nil)
		return
	}
	r.electionElapsed = 0
	if tellLeader && r.lead != 0 {
		r.send(&messages.Message{Type: messages.MessageType_MSG_HEARTBEAT_RESP, To: r.lead, Commit: r.log.committed})
	}
}
