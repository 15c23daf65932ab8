package raft

import (
	"fmt"

	"github.com/flotilla-raft/flotilla/messages"
)

// This file holds leadership transfer (thesis §3.10) and the hand-off of
// a leader that a committed configuration removed from the voters
// (§4.2.2).

// TransferLeadership hands leadership to voter to (thesis §3.10): the
// leader stops accepting proposals, brings to's log up to date, then tells
// it to campaign at once. It is aborted after an election timeout.
func (r *Raft) TransferLeadership(to uint64) error {
	if r.role != Leader {
		return &NotLeaderError{Leader: r.lead, LeaderAddress: r.addrs[r.lead]}
	}
	r.wake("leadership transfer", false)
	if to == r.id {
		return nil
	}
	pr := r.prs[to]
	if pr == nil || pr.IsLearner {
		return fmt.Errorf("%w: %d is not a voter", ErrInvalidConfigChange, to)
	}
	r.startTransfer(to, pr, "transfer requested")
	return nil
}

// TransferTarget returns the voter a leader hands leadership to when none
// is named (a TransferLeadership to 0, a leader that stops): of the voters
// that acknowledged a heartbeat sent within the last two heartbeat
// intervals (and a tick), the one with the longest log, so that a peer gone
// silent is never chosen. It returns 0 when there is none, or when this
// node is not the leader.
func (r *Raft) TransferTarget() uint64 {
	if r.role != Leader {
		return 0
	}
	recent := uint64(2*max(r.heartbeatTimeout(), 1) + 1)
	var best, bestMatch uint64
	for _, id := range r.peers {
		pr := r.prs[id]
		// Quiesced, a peer that answered the latest quiesce heartbeat is
		// as recent as any.
		live := r.quiesced && pr != nil && pr.leaseAck != 0 && pr.leaseAck >= r.quiesceBeatAt
		if id == r.id || pr == nil || pr.IsLearner || pr.leaseAck == 0 || r.ticks-pr.leaseAck > recent && !live {
			continue
		}
		if best == 0 || pr.Match > bestMatch {
			best, bestMatch = id, pr.Match
		}
	}
	return best
}

func (r *Raft) startTransfer(to uint64, pr *Progress, reason string) {
	r.leadTransferee = to
	r.electionElapsed = 0
	r.event(Event{Kind: EventTransferStarted, Peer: to, Reason: reason})
	if pr.Match == r.log.lastIndex() {
		r.sendTimeoutNow(to)
	} else {
		r.sendAppend(to, pr)
	}
}

// handOff starts a transfer to the voter with the longest log. A leader
// that a committed configuration removed from the voters keeps leading
// the cluster it left (thesis §4.2.2) until a voter holds its whole log:
// stepping down at once could leave the voters, which may not know yet
// that the change committed, needing the vote of the old leader, which
// refuses them for its longer log.
func (r *Raft) handOff() {
	var to uint64
	for _, id := range r.quorum.Voters() {
		if pr := r.prs[id]; pr != nil && (to == 0 || pr.Match > r.prs[to].Match) {
			to = id
		}
	}
	if to != 0 {
		r.startTransfer(to, r.prs[to], "removed from the voters by a committed configuration")
	}
}

func (r *Raft) sendTimeoutNow(to uint64) {
	r.leaseBroken = true
	r.send(&messages.Message{Type: messages.MessageType_MSG_TIMEOUT_NOW, To: to})
	if !r.promotable() {
		// Handing off after a removal: to has the whole log and can win
		// an election even if the timeout-now is lost.
		r.becomeFollower(r.term, 0, fmt.Sprintf("removed from the voters: handed over to %d", to))
	}
}

// electionTimeoutTransfer (leader, every election timeout) aborts a
// transfer that the transferee did not complete within it; a leader that
// is no voter hands off again, maybe to another voter.
func (r *Raft) electionTimeoutTransfer() {
	if r.leadTransferee == 0 {
		return
	}
	r.event(Event{Kind: EventTransferAborted, Peer: r.leadTransferee, Reason: "transferee did not take over within an election timeout"})
	r.leadTransferee = 0
	if !r.promotable() {
		r.handOff() // try again, maybe another voter
	}
}
