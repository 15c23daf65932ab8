package raft

import (
	"fmt"

	"github.com/flotilla-raft/flotilla/messages"
)

// This file holds log replication (§5.3, §5.4): proposals, the leader's
// appends and heartbeats and their answers, flow control through
// Progress, commitment, and the follower's side of appends and
// heartbeats.

// Propose appends an application command to the leader's log and returns
// its index and term. The entry is sent to followers by the next Ready. e
// is owned by the core from now on (Term and Index are set).
func (r *Raft) Propose(e *messages.Entry) (index, term uint64, err error) {
	if err := r.checkProposal(); err != nil {
		return 0, 0, err
	}
	r.wake("proposal", false)
	if len(e.Data) > r.cfg.MaxProposalBytes {
		return 0, 0, fmt.Errorf("%w: %d bytes, limit %d", ErrProposalTooLarge, len(e.Data), r.cfg.MaxProposalBytes)
	}
	if e.Type == messages.EntryType_ENTRY_CONFIG {
		return 0, 0, fmt.Errorf("%w: use ProposeConfig for configuration entries", ErrInvalidConfigChange)
	}
	size := uint64(len(e.Data))
	if r.uncommittedBytes > 0 && size > 0 && r.uncommittedBytes+size > r.cfg.MaxUncommittedBytes {
		return 0, 0, fmt.Errorf("%w: %d bytes uncommitted, %d more would pass Config.MaxUncommittedBytes (%d)",
			ErrProposalDropped, r.uncommittedBytes, size, r.cfg.MaxUncommittedBytes)
	}
	r.uncommittedBytes += size
	r.appendEntries(e)
	return e.Index, e.Term, nil
}

// committedOut lowers the uncommitted bytes by the commands of entries
// handed out as committed (etcd-io/raft's reduceUncommittedSize). Entries
// of earlier terms, never counted, may take it below what this term
// added: it stops at 0.
func (r *Raft) committedOut(ents []*messages.Entry) {
	for _, e := range ents {
		if e.Type == messages.EntryType_ENTRY_NORMAL {
			r.uncommittedBytes -= min(r.uncommittedBytes, uint64(len(e.Data)))
		}
	}
}

func (r *Raft) checkProposal() error {
	if r.role != Leader {
		return &NotLeaderError{Leader: r.lead, LeaderAddress: r.addrs[r.lead]}
	}
	if r.leadTransferee != 0 {
		return ErrTransferInProgress
	}
	return nil
}

// appendEntries appends new entries of the current term to the leader's log.
func (r *Raft) appendEntries(ents ...*messages.Entry) {
	li := r.log.lastIndex()
	for i, e := range ents {
		e.Term = r.term
		e.Index = li + 1 + uint64(i)
	}
	r.log.appendAfterLast(ents)
	r.needBcast = true
	if r.configsAppended(ents) && r.role == Leader {
		// A new quorum may already hold the entries before (a removed
		// voter no longer holds the commit index back).
		r.maybeCommit()
	}
}

// newProgress is the leader's first view of peer id: probing from the
// end of the leader's log (its own match is what is persisted).
func (r *Raft) newProgress(id uint64) *Progress {
	pr := &Progress{Next: r.log.lastIndex() + 1, IsLearner: !r.quorum.IsVoter(id), RecentActive: true}
	pr.inflights.maxCount, pr.inflights.maxBytes = r.cfg.MaxInflightMsgs, r.cfg.MaxInflightBytes
	if id == r.id {
		pr.Match = r.log.persisted
	}
	return pr
}

// tickHeartbeat (leader, every tick) runs check-quorum, departing
// members and transfer abort every election timeout, lost snapshots,
// and heartbeats or the commit news every tick.
func (r *Raft) tickHeartbeat() {
	r.heartbeatElapsed++
	r.electionElapsed++
	if r.electionElapsed >= r.electionTimeout() {
		r.electionElapsed = 0
		if r.settings().CheckQuorum {
			if !r.quorumActive() {
				r.becomeFollower(r.term, 0, "check-quorum: no quorum heard within an election timeout")
				return
			}
		}
		r.electionTimeoutDeparting()
		r.electionTimeoutTransfer()
	}
	r.tickSnapshots()
	if r.heartbeatElapsed >= r.heartbeatTimeout() {
		r.heartbeatElapsed = 0
		r.bcastHeartbeat(r.reads.lastContext())
	} else if r.commitNews {
		if r.commitNewsAge++; r.cfg.CommitNewsTicks > 0 && r.commitNewsAge >= r.cfg.CommitNewsTicks {
			r.needBcast, r.bcastNews = true, true // the news waited long enough: an append carries it
		}
	}
}

// bcastAppend sends every peer the entries it lacks. With news (the
// commit index must reach every peer now) a peer with nothing new to
// receive gets an empty append; without, it gets nothing: its entries are
// already in flight (an acknowledgement's answer may have carried the ones
// this broadcast was for), and an empty append would be a wasted round
// trip.
func (r *Raft) bcastAppend(news bool) {
	all := true
	for _, id := range r.peers {
		pr := r.prs[id]
		if pr == nil || id == r.id {
			continue
		}
		if !news && pr.State == StateReplicate && pr.Next > r.log.lastIndex() {
			all = false
			continue
		}
		r.sendAppend(id, pr)
	}
	if all {
		r.commitNews = false // every peer got an append carrying the commit index
	}
}

// bcastHeartbeat sends every peer a heartbeat carrying the commit index
// (capped by what the peer has), the lease clock, and ctx, the read round
// it confirms.
func (r *Raft) bcastHeartbeat(ctx []byte) {
	r.commitNews = false // every heartbeat carries the commit index
	for _, id := range r.peers {
		pr := r.prs[id]
		if id == r.id || pr == nil {
			continue
		}
		r.send(&messages.Message{Type: messages.MessageType_MSG_HEARTBEAT, To: id, Commit: min(pr.Match, r.log.committed), Context: ctx, Index: r.ticks,
			FromAddress: r.ownAddressFor(pr)})
	}
}

// sendAppend sends the peer the entries it needs, if its flow allows.
func (r *Raft) sendAppend(to uint64, pr *Progress) {
	if to == r.id || pr.isPaused() {
		return
	}
	prevIndex := pr.Next - 1
	prevTerm, err := r.log.term(prevIndex)
	if err != nil {
		r.sendSnapshot(to, pr)
		return
	}
	var ents []*messages.Entry
	if pr.Next <= r.log.lastIndex() {
		if ents, err = r.log.slice(pr.Next, r.log.lastIndex()+1, r.cfg.MaxSizePerMsg, r.cfg.MaxEntriesPerMsg); err != nil {
			return // storage failed: the driver stops the node (Ready.StorageError)
		}
	}
	r.send(&messages.Message{Type: messages.MessageType_MSG_APPEND, To: to, Index: prevIndex, LogTerm: prevTerm, Entries: ents, Commit: r.log.committed,
		FromAddress: r.ownAddressFor(pr)})
	switch pr.State {
	case StateReplicate:
		if n := len(ents); n > 0 {
			last := ents[n-1].Index
			pr.Next = last + 1
			pr.inflights.add(last, entriesSize(ents))
		}
	case StateProbe:
		pr.probeSent = true
	}
}

// ownAddressFor is this node's address when the peer has not acknowledged
// anything yet (it may not know the configuration, hence where to
// answer), "" otherwise.
func (r *Raft) ownAddressFor(pr *Progress) string {
	if pr.Match > 0 {
		return ""
	}
	return r.addrs[r.id]
}

// handleAppendResp moves the peer's progress on an acknowledgement (and
// maybe the commit index), or back on a rejection, using the hint to skip
// a whole term of conflicting entries; once a transferee holds the whole
// log, it tells it to campaign (TimeoutNow).
func (r *Raft) handleAppendResp(m *messages.Message, pr *Progress) {
	if m.Reject {
		next := m.RejectHint
		if m.LogTerm > 0 {
			// Skip every entry of our log after the hint whose term is
			// newer than the follower's hint term.
			next, _ = r.log.findConflictByTerm(m.RejectHint, m.LogTerm)
		}
		if pr.maybeDecrTo(m.Index, next) {
			if pr.State == StateReplicate {
				pr.becomeProbe()
			}
			r.sendAppend(m.From, pr)
		}
		return
	}
	if !pr.maybeUpdate(m.Index) {
		if pr.State == StateProbe && pr.Match == m.Index {
			pr.probeSent = false
		}
		return
	}
	switch {
	case pr.State == StateProbe:
		pr.becomeReplicate()
	case pr.State == StateSnapshot && pr.Match >= pr.PendingSnapshot:
		pr.becomeProbe()
		pr.becomeReplicate()
	case pr.State == StateReplicate:
		pr.inflights.freeLE(m.Index)
	}
	if r.maybeCommit() {
		r.commitAdvanced()
	}
	if pr.Next <= r.log.lastIndex() {
		// More to send (the window was full). An ack with nothing left to
		// send is not answered: an empty append would be a wasted round
		// trip (the next append or heartbeat carries the commit index).
		r.sendAppend(m.From, pr)
	}
	if m.From == r.leadTransferee && pr.Match == r.log.lastIndex() {
		r.sendTimeoutNow(m.From)
	}
}

// handleHeartbeatResp notes the peer's acknowledgement of the lease and of
// a read round, and sends it what it lacks.
func (r *Raft) handleHeartbeatResp(m *messages.Message, pr *Progress) {
	if m.Index != 0 && m.Index <= r.ticks && m.Index >= r.leaseFrom {
		pr.leaseAck = max(pr.leaseAck, m.Index)
	}
	pr.probeSent = false
	if pr.State == StateReplicate && pr.inflights.full() {
		// The window may be full of lost messages: free one, so the
		// next append reveals the gap and the rejection sends the peer
		// back to probing.
		pr.inflights.freeFirst()
	}
	if pr.Match < r.log.lastIndex() || pr.State == StateProbe {
		r.sendAppend(m.From, pr)
	}
	if len(m.Context) > 0 {
		r.ackRead(m.From, m.Context)
	}
}

// maybeCommit advances the commit index to what a quorum has persisted,
// counting only entries of the current term (§5.4.2).
func (r *Raft) maybeCommit() bool {
	ci := r.quorum.CommittedIndex(func(id uint64) uint64 {
		if pr := r.prs[id]; pr != nil {
			return pr.Match
		}
		return 0
	})
	if ci <= r.log.committed {
		return false
	}
	if t, err := r.log.term(ci); err != nil || t != r.term {
		return false
	}
	r.commitTo(ci)
	return true
}

// commitTo raises the commit index to i and tells of the configurations
// that it commits.
func (r *Raft) commitTo(i uint64) {
	old := r.log.committed
	if !r.log.commitTo(i) {
		return
	}
	// Configuration entries took effect when appended; their commit is
	// what the application hears about, and it ends the membership of
	// those that the newly committed configuration left out.
	changed := false
	for _, c := range r.ccHist {
		if c.index > old && c.index <= i {
			r.event(Event{Kind: EventConfigChanged, Index: c.index, Config: c.cc, Reason: "configuration entry committed"})
			changed = true
		}
	}
	if changed {
		r.updateMembers()
		r.noteRemoval()
	}
	r.configCommitted()
	if r.role == Leader {
		r.releasePendingReads()
	}
}

// commitAdvanced handles a leader's commit-index advance: the followers
// hear of it with the next append or heartbeat (within
// Config.CommitNewsTicks), or at once when it is -1.
func (r *Raft) commitAdvanced() {
	if r.cfg.CommitNewsTicks < 0 {
		r.needBcast, r.bcastNews = true, true
		return
	}
	if !r.commitNews {
		r.commitNews, r.commitNewsAge = true, 0
	}
}

// handleAppendEntries is the follower's side of AppendEntries (§5.3):
// append when the previous entry matches, cutting a conflicting suffix,
// and acknowledge once durable; otherwise reject with a hint.
func (r *Raft) handleAppendEntries(m *messages.Message) {
	if m.Index < r.log.committed {
		r.sendAfterPersist(&messages.Message{Type: messages.MessageType_MSG_APPEND_RESP, To: m.From, Index: r.log.committed, Commit: r.log.committed})
		return
	}
	lastNew, truncatedAt, ok := r.log.maybeAppend(m.Index, m.LogTerm, m.Entries)
	if !ok {
		// Fast backtracking: tell the leader the largest index <= its probe
		// whose term is <= the probe's term.
		hintIndex, hintTerm := r.log.findConflictByTerm(m.Index, m.LogTerm)
		r.sendAfterPersist(&messages.Message{Type: messages.MessageType_MSG_APPEND_RESP, To: m.From, Index: m.Index, Reject: true, RejectHint: hintIndex, LogTerm: hintTerm})
		return
	}
	if truncatedAt != 0 {
		r.capBatches(truncatedAt)
		r.configsTruncated(truncatedAt)
	}
	r.configsAppended(m.Entries)
	r.commitTo(min(m.Commit, lastNew))
	// The commit index rides along: a departing member's answer tells the
	// leader that it knows of its removal.
	r.sendAfterPersist(&messages.Message{Type: messages.MessageType_MSG_APPEND_RESP, To: m.From, Index: lastNew, Commit: r.log.committed})
}

// handleHeartbeat commits what the leader says and answers at once (a
// heartbeat promises nothing durable).
func (r *Raft) handleHeartbeat(m *messages.Message) {
	// The leader sends min(its commit, our match): safe to commit.
	if m.Commit > r.log.committed && m.Commit <= r.log.lastIndex() {
		r.commitTo(m.Commit)
	}
	// Index echoes the leader's clock of the heartbeat (its lease); Commit
	// tells a departing peer how far it has caught up.
	r.send(&messages.Message{Type: messages.MessageType_MSG_HEARTBEAT_RESP, To: m.From, Context: m.Context, Index: m.Index, Commit: r.log.committed,
		Quiesce: m.Quiesce})
}
