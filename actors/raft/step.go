package raft

import (
	"fmt"

	"github.com/flotilla-raft/flotilla/cluster/membership"
	"github.com/flotilla-raft/flotilla/messages"
)

// This file holds the entry point of every message from a peer, Step: it
// refuses malformed ones, applies the term rules of Figure 2 and §4.2.3,
// and hands the message to what the node's role does with it
// (stepFollower, stepCandidate, stepLeader); and the way out: send and
// sendAfterPersist.

// maxHintAddrs bounds hintAddrs.
const maxHintAddrs = 64

// Step feeds a message from a peer. Messages of the wrong cluster or not
// addressed to this node are refused with ErrInvalidMessage; stale and
// unexpected messages are ignored (Raft tolerates loss, duplication and
// reordering).
func (r *Raft) Step(m *messages.Message) error {
	if m == nil {
		return fmt.Errorf("%w: nil message", ErrInvalidMessage)
	}
	if m.ClusterId != r.clusterID {
		return fmt.Errorf("%w: cluster id %d, this is cluster %d", ErrInvalidMessage, m.ClusterId, r.clusterID)
	}
	if m.To != r.id || m.From == 0 || m.From == r.id {
		return fmt.Errorf("%w: %s from %d to %d at node %d", ErrInvalidMessage, m.Type, m.From, m.To, r.id)
	}
	if m.Type == messages.MessageType_MSG_APPEND {
		// The log is built from these entries as they are: they must
		// continue the previous entry, with terms that never decrease
		// and never pass the leader's.
		prevTerm := m.LogTerm
		for i, e := range m.Entries {
			if e.GetIndex() != m.Index+1+uint64(i) || e.GetTerm() < prevTerm || e.GetTerm() > m.Term {
				return fmt.Errorf("%w: append after %d/%d at term %d: entry %d is %d/%d", ErrInvalidMessage, m.Index, m.LogTerm, m.Term, i, e.GetIndex(), e.GetTerm())
			}
			prevTerm = e.GetTerm()
			if e.GetType() == messages.EntryType_ENTRY_CONFIG {
				if err := checkWireConfig(decodeConfig(e)); err != nil {
					return fmt.Errorf("%w: append: entry %d: %w", ErrInvalidMessage, e.GetIndex(), err)
				}
			}
		}
	}
	if m.Type == messages.MessageType_MSG_SNAPSHOT {
		if cc := m.GetSnapshot().GetMetadata().GetConfig(); cc != nil {
			if err := checkWireConfig(cc, nil); err != nil {
				return fmt.Errorf("%w: snapshot configuration: %w", ErrInvalidMessage, err)
			}
		}
	}
	if err := checkSnapshotChunk(m); err != nil {
		return err
	}
	if m.Type == messages.MessageType_MSG_SNAPSHOT_CHUNK && m.Term == r.term && r.lead != 0 && m.From != r.lead {
		// One leader per term: a chunk from another node of this term
		// is forged.
		return fmt.Errorf("%w: snapshot chunk from %d in term %d, whose leader is %d", ErrInvalidMessage, m.From, m.Term, r.lead)
	}
	if m.FromAddress != "" {
		if _, ok := r.addrs[m.From]; !ok {
			if r.hintAddrs == nil {
				r.hintAddrs = map[uint64]string{}
			}
			if len(r.hintAddrs) < maxHintAddrs || r.hintAddrs[m.From] != "" {
				r.hintAddrs[m.From] = m.FromAddress
			}
		}
	}
	if r.quiesced && !r.keepsQuiet(m) {
		r.wake(fmt.Sprintf("%s from %d", m.Type, m.From), m.From != r.lead)
	}
	if m.Type == messages.MessageType_MSG_NOT_MEMBER {
		r.handleNotMember(m)
		return nil
	}
	switch {
	case m.Term > r.term:
		if m.Type == messages.MessageType_MSG_VOTE || m.Type == messages.MessageType_MSG_PRE_VOTE {
			force := string(m.Context) == string(campaignTransfer)
			if !force && r.inLease() {
				// A live leader is known: do not let a disconnected node
				// disrupt it (thesis §4.2.3).
				return nil
			}
		}
		switch {
		case m.Type == messages.MessageType_MSG_PRE_VOTE:
			// Never change term for a pre-vote.
		case m.Type == messages.MessageType_MSG_PRE_VOTE_RESP && !m.Reject:
			// The term of a granted pre-vote is the one we would campaign in.
		default:
			lead := uint64(0)
			switch m.Type {
			case messages.MessageType_MSG_APPEND, messages.MessageType_MSG_HEARTBEAT, messages.MessageType_MSG_SNAPSHOT,
				messages.MessageType_MSG_SNAPSHOT_CHUNK:
				lead = m.From
			}
			wasFollower := r.role == Follower
			elapsed, timeout := r.electionElapsed, r.randomizedElectionTimeout
			r.becomeFollower(m.Term, lead, fmt.Sprintf("saw term %d from %d (%s)", m.Term, m.From, m.Type))
			if m.Type == messages.MessageType_MSG_VOTE && wasFollower {
				// A follower's election timer runs on unless it hears
				// from a leader or grants its vote (Figure 2): a vote
				// request that it refuses (the candidate's log is behind)
				// does not postpone its own campaign. Otherwise candidates
				// with stale logs, each resetting the timers of the only
				// nodes that can win, can keep a cluster leaderless (seed
				// 1564 of TestRandomConfigChangesAreSafe).
				r.electionElapsed, r.randomizedElectionTimeout = elapsed, timeout
			}
		}
	case m.Term < r.term:
		switch m.Type {
		case messages.MessageType_MSG_APPEND, messages.MessageType_MSG_HEARTBEAT, messages.MessageType_MSG_SNAPSHOT_CHUNK:
			// A stale leader learns our term and steps down (Figure 2:
			// "reply false if term < currentTerm"). Always: with pre-votes
			// (the PreVote setting, or a node campaigning only by its
			// committed configuration) no vote request may ever raise
			// the stale leader's term, and a node ahead in term would
			// ignore it for ever (seed 4788 of
			// TestRandomConfigChangesAreSafe).
			r.send(&messages.Message{Type: messages.MessageType_MSG_APPEND_RESP, To: m.From})
		case messages.MessageType_MSG_PRE_VOTE:
			r.send(&messages.Message{Type: messages.MessageType_MSG_PRE_VOTE_RESP, To: m.From, Term: r.term, Reject: true})
		case messages.MessageType_MSG_VOTE:
			// The candidate learns our term (Figure 2). A voter that
			// does not know this node (another configuration) may
			// otherwise never raise its term past ours, campaigning in
			// terms we ignore (seed 11961 of
			// TestRandomConfigChangesAreSafe).
			r.send(&messages.Message{Type: messages.MessageType_MSG_VOTE_RESP, To: m.From, Term: r.term, Reject: true})
		}
		return nil
	}

	switch m.Type {
	case messages.MessageType_MSG_VOTE, messages.MessageType_MSG_PRE_VOTE:
		r.handleVoteRequest(m)
		return nil
	}
	switch r.role {
	case Leader:
		r.stepLeader(m)
	case Candidate, PreCandidate:
		r.stepCandidate(m)
	default:
		r.stepFollower(m)
	}
	return nil
}

// stepFollower is what a follower does with a message of its term: it
// hears the leader (append, heartbeat, snapshot), campaigns at once on a
// TimeoutNow, and takes the answers to its read requests.
func (r *Raft) stepFollower(m *messages.Message) {
	switch m.Type {
	case messages.MessageType_MSG_APPEND:
		r.electionElapsed = 0
		r.setLeader(m.From)
		r.handleAppendEntries(m)
	case messages.MessageType_MSG_HEARTBEAT:
		r.electionElapsed = 0
		r.setLeader(m.From)
		r.handleHeartbeat(m)
		if m.Quiesce {
			r.quiesceFollower(m)
		}
	case messages.MessageType_MSG_SNAPSHOT:
		r.electionElapsed = 0
		r.setLeader(m.From)
		r.handleSnapshot(m)
	case messages.MessageType_MSG_SNAPSHOT_CHUNK:
		r.electionElapsed = 0
		r.setLeader(m.From)
		r.snapTransfers = append(r.snapTransfers, m)
	case messages.MessageType_MSG_TIMEOUT_NOW:
		// Leadership transfer: campaign at once, skipping pre-vote.
		r.event(Event{Kind: EventTransferTimeoutNow, Peer: m.From, Reason: "leader hands over"})
		r.campaign(Candidate, fmt.Sprintf("leadership transfer from %d", m.From), true)
	case messages.MessageType_MSG_READ_INDEX_RESP:
		r.readStates = append(r.readStates, ReadState{Index: m.Index, Context: m.Context})
	}
}

// stepCandidate is what a candidate or pre-candidate does: a leader of
// its term makes it a follower; the answers to its campaign are counted.
func (r *Raft) stepCandidate(m *messages.Message) {
	myResp := messages.MessageType_MSG_VOTE_RESP
	if r.role == PreCandidate {
		myResp = messages.MessageType_MSG_PRE_VOTE_RESP
	}
	switch m.Type {
	case messages.MessageType_MSG_APPEND, messages.MessageType_MSG_HEARTBEAT, messages.MessageType_MSG_SNAPSHOT,
		messages.MessageType_MSG_SNAPSHOT_CHUNK:
		// A leader of our term exists (§5.2).
		r.becomeFollower(m.Term, m.From, fmt.Sprintf("heard from leader %d of term %d", m.From, m.Term))
		r.stepFollower(m)
	case myResp:
		if !m.Reject {
			r.event(Event{Kind: EventVoteReceived, Peer: m.From, Reason: m.Type.String()})
		}
		switch r.poll(m.From, !m.Reject) {
		case membership.VoteWon:
			r.electionWon()
		case membership.VoteLost:
			r.becomeFollower(r.term, 0, fmt.Sprintf("%s lost: a quorum rejected", r.role))
		}
	}
}

// stepLeader is what a leader does: answers to its appends and
// heartbeats move the peer's progress, and read requests from followers
// are served.
func (r *Raft) stepLeader(m *messages.Message) {
	pr := r.prs[m.From]
	if pr == nil {
		if m.Type == messages.MessageType_MSG_READ_INDEX {
			return
		}
		r.logger.Debug("message from a non-member ignored", "from", m.From, "type", m.Type)
		return
	}
	pr.RecentActive = true
	if r.departed(m, pr) {
		return
	}
	switch m.Type {
	case messages.MessageType_MSG_APPEND_RESP:
		r.handleAppendResp(m, pr)
	case messages.MessageType_MSG_HEARTBEAT_RESP:
		r.handleHeartbeatResp(m, pr)
	case messages.MessageType_MSG_READ_INDEX:
		r.readIndex(m.From, m.Context)
	case messages.MessageType_MSG_SNAPSHOT_ACK:
		r.handleSnapshotAck(m, pr)
	}
}

// setLeader records the leader heard from in this term.
func (r *Raft) setLeader(id uint64) {
	if r.lead != id {
		old := r.lead
		r.lead = id
		r.event(Event{Kind: EventLeaderChanged, Leader: id, Peer: old, Reason: "heard from the leader"})
	}
}

// stamp sets the sender, the cluster id, and the current term when m
// carries none (a pre-vote and its answer keep theirs: the term the
// campaign would run in).
func (r *Raft) stamp(m *messages.Message) *messages.Message {
	m.From = r.id
	m.ClusterId = r.clusterID
	if m.Term == 0 && m.Type != messages.MessageType_MSG_PRE_VOTE && m.Type != messages.MessageType_MSG_PRE_VOTE_RESP {
		m.Term = r.term
	}
	return m
}

// send queues m for the next Ready.
func (r *Raft) send(m *messages.Message) { r.msgs = append(r.msgs, r.stamp(m)) }

// sendAfterPersist queues a message that promises durable state: it leaves
// only once everything handed out for persistence so far is durable.
func (r *Raft) sendAfterPersist(m *messages.Message) {
	r.msgsAfterPersist = append(r.msgsAfterPersist, r.stamp(m))
}
