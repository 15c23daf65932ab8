package raft

import (
	"github.com/flotilla-raft/flotilla/cluster/membership"
	"github.com/flotilla-raft/flotilla/messages"
)

// This file holds elections (§5.2, thesis §9.6 for pre-vote, §4.2.3 for
// leases and CheckQuorum): the election timer, campaigns, vote requests
// and their counting.

// campaignTransfer marks vote requests of a leadership transfer: they are
// granted even inside a leader lease.
var campaignTransfer = []byte("flotilla/transfer")

// tickElection (follower and candidates, every tick) ends the restart
// guard after an election timeout and campaigns once the randomized
// election timeout has passed without a leader (§5.2).
func (r *Raft) tickElection() {
	r.electionElapsed++
	if r.electionElapsed >= r.electionTimeout() {
		r.restartGuard = false
	}
	if r.promotable() && r.electionElapsed >= r.randomizedElectionTimeout {
		r.electionElapsed = 0
		r.campaignStart("election timeout")
	}
}

// resetRandomizedElectionTimeout draws the next election timeout in
// [electionTimeout, 2*electionTimeout) (§5.2: randomized timeouts make
// split votes rare).
func (r *Raft) resetRandomizedElectionTimeout() {
	et := r.electionTimeout()
	r.randomizedElectionTimeout = et + r.rand.IntN(et)
}

// promotable reports whether this node may campaign: it is a voter of the
// configuration in force, or of the last one known committed. The second
// case keeps a cluster live when a leader appended a configuration
// without itself (leaving a joint one, or removing itself) and lost
// leadership before anyone else stored it: its log is then the only
// up-to-date one, the others need its vote, and it must be able to win
// again, leading the new configuration without counting itself until it
// commits (thesis §4.2.2). Votes are still counted in the configuration
// in force, and such a node always runs a pre-vote first (campaignStart).
func (r *Raft) promotable() bool {
	if r.removed {
		return false
	}
	if r.quorum.IsVoter(r.id) {
		return true
	}
	cc := r.ccHist[r.committedConf()].cc
	return membership.JointOf(cc).IsVoter(r.id)
}

// Campaign starts an election at once (with a pre-vote when PreVote is on).
// Only a voter campaigns; a leader does nothing, and so does a node inside
// a leader's lease (CheckQuorum on, the leader heard within an election
// timeout): it promised that leader not to help elect another meanwhile.
func (r *Raft) Campaign() {
	r.wake("campaign requested", true)
	if r.role != Leader && r.promotable() && !r.inLease() {
		r.campaignStart("campaign requested")
	}
}

// campaignStart campaigns with a pre-vote first when PreVote is on or
// this node is no voter of the configuration in force.
func (r *Raft) campaignStart(reason string) {
	// A node that is no voter of the configuration in force (see
	// promotable) always runs a pre-vote first: the voters never hear of
	// its term, and their timers are not reset, unless it can win.
	if r.settings().PreVote || !r.quorum.IsVoter(r.id) {
		r.campaign(PreCandidate, reason, false)
	} else {
		r.campaign(Candidate, reason, false)
	}
}

// campaign becomes a pre-candidate or candidate and asks for votes;
// transfer marks the requests of a leadership transfer (they pass
// leases).
func (r *Raft) campaign(role Role, reason string, transfer bool) {
	if !r.promotable() {
		return
	}
	var voteType messages.MessageType
	var term uint64
	if role == PreCandidate {
		r.becomePreCandidate(reason)
		voteType, term = messages.MessageType_MSG_PRE_VOTE, r.term+1
	} else {
		r.becomeCandidate(reason)
		voteType, term = messages.MessageType_MSG_VOTE, r.term
	}
	if role == PreCandidate && r.poll(r.id, true) == membership.VoteWon {
		// A single voter: no one to ask.
		r.electionWon()
		return
	}
	// A candidate's own vote counts once durable, like any other (see
	// Persisted): a single voter that won at once could otherwise lead
	// the same term twice across a crash, with different entries.
	var ctx []byte
	if transfer {
		ctx = campaignTransfer
	}
	// Vote requests go to every member, though only voters' answers count:
	// a member that is a voter in a configuration this candidate does not
	// know yet must learn the new term, or, never reset by it, it keeps
	// campaigning one term behind into terms where the candidate already
	// voted for itself (a livelock found by TestRandomConfigChangesAreSafe,
	// seed 6145). Pre-votes change no term and go to the voters only.
	to := r.quorum.Voters()
	if role == Candidate {
		to = r.peers
	}
	for _, id := range to {
		if id == r.id {
			continue
		}
		m := &messages.Message{Type: voteType, To: id, Term: term, Index: r.log.lastIndex(), LogTerm: r.log.lastTerm(), Context: ctx}
		if voteType == messages.MessageType_MSG_VOTE {
			// The candidate's term and self-vote must be durable first.
			r.sendAfterPersist(m)
		} else {
			r.send(m)
		}
	}
}

// handleVoteRequest grants a vote or pre-vote to a candidate whose log is
// at least as up to date (§5.4.1) when this node has not voted for
// another in the term; a granted vote leaves only once durable.
func (r *Raft) handleVoteRequest(m *messages.Message) {
	pre := m.Type == messages.MessageType_MSG_PRE_VOTE
	respType := messages.MessageType_MSG_VOTE_RESP
	if pre {
		respType = messages.MessageType_MSG_PRE_VOTE_RESP
	}
	canVote := r.vote == m.From ||
		(r.vote == 0 && r.lead == 0) ||
		(pre && m.Term > r.term)
	if canVote && r.log.isUpToDate(m.Index, m.LogTerm) {
		resp := &messages.Message{Type: respType, To: m.From, Term: m.Term}
		if pre {
			r.send(resp)
			return
		}
		r.electionElapsed = 0
		r.vote = m.From
		r.event(Event{Kind: EventVoteGranted, Peer: m.From, Reason: "candidate's log is up to date"})
		r.sendAfterPersist(resp) // the vote must be durable first
		return
	}
	resp := &messages.Message{Type: respType, To: m.From, Term: r.term, Reject: true}
	r.send(resp)
}

// poll records id's answer (its first counts) and counts the votes in the
// configuration in force.
func (r *Raft) poll(id uint64, granted bool) membership.VoteResult {
	if _, ok := r.votes[id]; !ok {
		r.votes[id] = granted
	}
	return r.quorum.VoteResult(r.votes)
}

// electionWon moves a pre-candidate on to a real campaign, a candidate to
// leader.
func (r *Raft) electionWon() {
	if r.role == PreCandidate {
		r.event(Event{Kind: EventPreVoteWon, Reason: "a quorum would vote"})
		r.campaign(Candidate, "pre-vote won", false)
		return
	}
	r.becomeLeader("won the election")
}

// inLease reports whether this node is inside a leader's lease (thesis
// §4.2.3, §6.4.1): with CheckQuorum on, it heard from a live leader (or
// restarted, see restartGuard) less than an election timeout ago, and
// neither votes for nor becomes another leader until that passes.
func (r *Raft) inLease() bool {
	return r.settings().CheckQuorum && (r.lead != 0 || r.restartGuard) && r.electionElapsed < r.electionTimeout()
}

// quorumActive reports whether a quorum was heard from since the last
// check, and resets the marks.
func (r *Raft) quorumActive() bool {
	votes := make(map[uint64]bool, len(r.prs))
	for id, pr := range r.prs {
		if id == r.id {
			votes[id] = true
			continue
		}
		votes[id] = pr.RecentActive
		pr.RecentActive = false
	}
	return r.quorum.VoteResult(votes) == membership.VoteWon
}
