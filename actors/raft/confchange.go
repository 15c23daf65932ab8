package raft

import (
	"fmt"
	"slices"

	"github.com/flotilla-raft/flotilla/cluster/membership"
	"github.com/flotilla-raft/flotilla/messages"
	"google.golang.org/protobuf/proto"
)

// This file holds configuration changes (thesis §4): proposing one,
// putting configurations in force as they enter or leave the log,
// leaving a joint configuration, the members the leader replicates to
// (departing ones included), and removal. The configuration as a value,
// its validation, quorum math and transitions are in cluster/membership.

type confAt struct {
	index uint64
	cc    *messages.ClusterConfig
}

// ProposeConfig proposes a new cluster configuration (members and
// settings). A change of more than one voter goes through joint consensus
// (§4.3) automatically: the entry proposed is the joint configuration, and
// the leader leaves it once it commits. One change at a time.
func (r *Raft) ProposeConfig(target *messages.ClusterConfig) (index uint64, err error) {
	if err := r.checkProposal(); err != nil {
		return 0, err
	}
	r.wake("configuration change", false)
	if membership.IsJoint(target) {
		return 0, fmt.Errorf("%w: outgoing_voters is managed by the core", ErrInvalidConfigChange)
	}
	if r.pendingConfIndex > r.log.committed || membership.IsJoint(r.cc) {
		return 0, fmt.Errorf("%w: entry %d not yet committed (commit %d)", ErrConfigChangePending, r.pendingConfIndex, r.log.committed)
	}
	cc, err := membership.Enter(r.cc, target)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrInvalidConfigChange, err)
	}
	return r.appendConfig(cc)
}

// appendConfig appends configuration cc (validated) to the leader's log,
// in force at once; the next change waits for its commit.
func (r *Raft) appendConfig(cc *messages.ClusterConfig) (uint64, error) {
	data, err := proto.Marshal(cc)
	if err != nil {
		return 0, fmt.Errorf("raft: marshal configuration: %w", err)
	}
	e := &messages.Entry{Type: messages.EntryType_ENTRY_CONFIG, Data: data}
	r.appendEntries(e)
	r.pendingConfIndex = e.Index
	return e.Index, nil
}

// configsAppended puts the configuration entries among ents (just
// appended to the log, ascending) in force at once; it reports whether
// there was any.
func (r *Raft) configsAppended(ents []*messages.Entry) (changed bool) {
	for _, e := range ents {
		if e.Type != messages.EntryType_ENTRY_CONFIG || e.Index <= r.ccHist[len(r.ccHist)-1].index {
			continue
		}
		cc, err := decodeConfig(e)
		if err != nil {
			r.logger.Error("undecodable configuration entry ignored", "index", e.Index, "err", err)
			continue
		}
		r.ccHist = append(r.ccHist, confAt{e.Index, cc})
		r.setConfigAt(r.ccHist[len(r.ccHist)-1])
		changed = true
		if r.removed && membership.IsMember(cc, r.id) {
			r.removed = false // added back
		}
	}
	return changed
}

// configsTruncated reverts to the configuration in force before index i,
// once the log was cut from i.
func (r *Raft) configsTruncated(i uint64) {
	n := len(r.ccHist)
	for n > 1 && r.ccHist[n-1].index >= i {
		n--
	}
	if n < len(r.ccHist) {
		r.ccHist = r.ccHist[:n]
		r.setConfigAt(r.ccHist[n-1])
	}
}

// configCommitted acts on the configuration in force once it is committed:
// the leader leaves a joint configuration, and a leader that is no longer
// a voter hands over (thesis §4.2.2).
func (r *Raft) configCommitted() {
	if r.role != Leader || r.ccIndex > r.log.committed {
		return
	}
	if !r.quorum.IsVoter(r.id) {
		if r.leadTransferee == 0 {
			r.handOff()
		}
		return
	}
	if len(r.cc.OutgoingVoters) > 0 {
		r.leaveJoint()
	}
}

// leaveJoint proposes the configuration in force (joint, committed)
// without its outgoing voters: joint consensus reached, the incoming
// voters go on alone (§4.3).
func (r *Raft) leaveJoint() {
	leave, err := membership.LeaveJoint(r.cc)
	if err != nil {
		r.logger.Error("could not leave the joint configuration", "err", err)
		return
	}
	if _, err := r.appendConfig(leave); err != nil {
		r.logger.Error("could not leave the joint configuration", "err", err)
	}
}

// setConfigAt makes c the configuration in force.
func (r *Raft) setConfigAt(c confAt) {
	cc := c.cc
	old := r.cc
	r.cc, r.ccIndex = cc, c.index
	r.wasMember = r.wasMember || membership.IsMember(cc, r.id)
	if old != nil && old.GetSettings().GetElectionTicks() != cc.GetSettings().GetElectionTicks() {
		r.resetRandomizedElectionTimeout()
	}
	r.quorum = membership.JointOf(cc)
	r.updateMembers()
	if r.leadTransferee != 0 && !r.quorum.IsVoter(r.leadTransferee) {
		r.leadTransferee = 0
	}
}

// committedConf is the position in ccHist of the last configuration known
// committed.
func (r *Raft) committedConf() int {
	k := len(r.ccHist) - 1
	for k > 0 && r.ccHist[k].index > r.log.committed {
		k--
	}
	return k
}

// configAt returns the configuration in force at index (<= committed).
func (r *Raft) configAt(index uint64) *messages.ClusterConfig {
	cc := r.cc
	for i := len(r.ccHist) - 1; i >= 0; i-- {
		cc = r.ccHist[i].cc
		if r.ccHist[i].index <= index {
			return cc
		}
	}
	if r.snapshot != nil && r.snapshot.Metadata.Config != nil && r.snapshot.Metadata.Index <= index {
		return r.snapshot.Metadata.Config
	}
	return cc
}

// updateMembers recomputes the members: those of the last committed
// configuration and of every later one in the log. The leader replicates
// to all of them (thesis §4.3: "log entries are replicated to all servers
// in both configurations"), so that a member being removed still hears
// that the configuration removing it committed.
func (r *Raft) updateMembers() {
	r.oldAddrs = r.addrs
	r.addrs = make(map[uint64]string)
	for _, c := range r.ccHist[r.committedConf():] {
		for _, ms := range [][]*messages.Member{c.cc.OutgoingVoters, c.cc.Learners, c.cc.Voters} {
			for _, m := range ms {
				r.addrs[m.Id] = m.Address
			}
		}
	}
	if r.role == Leader {
		// A member removed by a committed configuration departs: it is
		// still sent the log (with the commit index) until it knows.
		for id, pr := range r.prs {
			if _, ok := r.addrs[id]; ok || id == r.id {
				continue
			}
			if _, ok := r.departing[id]; !ok {
				r.departing[id] = r.oldAddrs[id]
				pr.RemovedAt = r.ccHist[r.committedConf()].index
			}
		}
		for id, addr := range r.departing {
			if _, ok := r.addrs[id]; ok {
				delete(r.departing, id) // added back
				r.prs[id].RemovedAt = 0
				continue
			}
			r.addrs[id] = addr
		}
	}
	r.peers = r.peers[:0]
	for id := range r.addrs {
		r.peers = append(r.peers, id)
	}
	slices.Sort(r.peers)
	if r.role == Leader {
		// Track new members, forget removed ones.
		for _, id := range r.peers {
			if _, ok := r.prs[id]; !ok {
				r.prs[id] = r.newProgress(id)
			}
		}
		for id := range r.prs {
			if _, ok := r.addrs[id]; !ok {
				delete(r.prs, id)
			}
		}
		for id, pr := range r.prs {
			pr.IsLearner = !r.quorum.IsVoter(id)
		}
	}
}

// departTimeouts is how many election timeouts the leader keeps
// replicating to a departing member that does not answer.
const departTimeouts = 3

// departed forgets a departing peer whose answer (m) shows that it knows
// of its removal: its commit index reached the configuration that
// removed it.
func (r *Raft) departed(m *messages.Message, pr *Progress) bool {
	if pr.RemovedAt != 0 && m.Commit >= pr.RemovedAt &&
		(m.Type == messages.MessageType_MSG_APPEND_RESP || m.Type == messages.MessageType_MSG_HEARTBEAT_RESP) {
		r.forgetDeparting(m.From, fmt.Sprintf("knows that configuration %d removed it", pr.RemovedAt))
		return true
	}
	return false
}

// electionTimeoutDeparting (leader, every election timeout) forgets the
// departing peers that stayed silent for departTimeouts of them.
func (r *Raft) electionTimeoutDeparting() {
	for id, pr := range r.prs {
		if pr.RemovedAt == 0 {
			continue
		}
		if pr.departTimeouts++; pr.departTimeouts >= departTimeouts {
			r.forgetDeparting(id, fmt.Sprintf("silent for %d election timeouts after its removal", departTimeouts))
		}
	}
}

// forgetDeparting stops replicating to a departing peer.
func (r *Raft) forgetDeparting(id uint64, why string) {
	delete(r.departing, id)
	delete(r.prs, id)
	r.updateMembers()
	r.event(Event{Kind: EventMemberDeparted, Peer: id, Reason: why})
}

// noteRemoval sets removed once a committed configuration leaves this
// node out (it is no voter, outgoing voter or learner of it).
func (r *Raft) noteRemoval() {
	k := r.committedConf()
	cc := r.ccHist[k].cc
	if r.removed || !r.wasMember || r.ccHist[k].index == 0 || membership.IsMember(cc, r.id) {
		return
	}
	// A later configuration in the log may add it back: not removed then.
	for _, c := range r.ccHist[k:] {
		if membership.IsMember(c.cc, r.id) {
			return
		}
	}
	r.removed = true
	r.event(Event{Kind: EventRemoved, Index: r.ccHist[k].index, Config: cc, Reason: fmt.Sprintf("configuration %d, committed, leaves this node out", r.ccHist[k].index)})
}

// Admits reports whether this node takes messages from id: id is one of
// Members (departing peers a leader still replicates to included), or
// this node is no member itself (a node joining a running cluster is
// first contacted by a leader it does not know yet). The driver drops the
// messages of senders it does not admit, before Step (the node actor's
// transport.Gate), and hands them to RefuseNonMember.
func (r *Raft) Admits(id uint64) bool { return r.IsMember(id) || !r.IsMember(r.id) }

// RefuseNonMember answers m, a message the driver dropped because its
// sender is no member, with a MSG_NOT_MEMBER notice when m is a vote or
// pre-vote request: the candidate learns that it was removed instead of
// campaigning for ever, unheard. The notice cites the last configuration
// known committed here.
func (r *Raft) RefuseNonMember(m *messages.Message) {
	if m == nil || m.ClusterId != r.clusterID || m.To != r.id || m.From == 0 || m.From == r.id || membership.IsMember(r.cc, m.From) {
		return
	}
	if m.Type != messages.MessageType_MSG_VOTE && m.Type != messages.MessageType_MSG_PRE_VOTE {
		return
	}
	c := r.ccHist[r.committedConf()]
	if c.index == 0 || membership.IsMember(c.cc, m.From) {
		return
	}
	r.send(&messages.Message{Type: messages.MessageType_MSG_NOT_MEMBER, To: m.From, Index: c.index})
}

// handleNotMember trusts a notice that cites a configuration at least as
// new as any this node holds: a newer one would have been replicated to
// it had it added this node back.
func (r *Raft) handleNotMember(m *messages.Message) {
	if r.removed || m.Index < r.ccIndex || m.Index == 0 {
		return
	}
	r.removed = true
	if r.role != Follower {
		r.becomeFollower(r.term, 0, fmt.Sprintf("refused as a non-member by %d", m.From))
	}
	r.event(Event{Kind: EventRemoved, Peer: m.From, Index: m.Index, Reason: fmt.Sprintf("refused as a non-member by %d (configuration %d)", m.From, m.Index)})
}

// Removed reports whether this node knows it is no member (a committed
// configuration leaves it out, or a member refused it): it does not
// campaign.
func (r *Raft) Removed() bool { return r.removed }

// checkWireConfig refuses a configuration received from a peer that this
// node could not put in force (no voters, zero ids, impossible timeouts).
func checkWireConfig(cc *messages.ClusterConfig, err error) error {
	if err != nil {
		return err
	}
	return membership.Validate(cc)
}

// decodeConfig reads the configuration of entry e (settings defaulted).
func decodeConfig(e *messages.Entry) (*messages.ClusterConfig, error) {
	cc, err := membership.Decode(e.Data)
	if err != nil {
		return nil, fmt.Errorf("%w: config entry %d: %v", ErrInvalidMessage, e.Index, err)
	}
	return cc, nil
}
