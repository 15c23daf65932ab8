package raft

// Configuration-change tests about who is a member: a leader removed from
// the voters hands off, a removed node learns its removal, a refused
// non-member learns it, a joining node answers the leader, and a node
// always uses the latest configuration in its log.

import (
	"errors"
	"slices"
	"testing"

	"github.com/flotilla-raft/flotilla/messages"
)

// TestRemovedLeaderHandsOff is a regression test: a leader that a committed
// configuration removes from the voters hands its log over to a voter
// before stepping down. It used to step down at once; the remaining voter,
// not yet told that the change committed, still needed the old leader's
// vote for the outgoing majority, and the old leader refused it for its
// longer log: no leader ever again.
func TestRemovedLeaderHandsOff(t *testing.T) {
	nw := newNetwork(t, 3)
	nw.elect(1)
	nw.isolate(3) // a minority of the outgoing voters is down
	l := nw.raft(1)
	joint, err := l.ProposeConfig(clusterConfig([]uint64{2}, []uint64{1, 3}))
	if err != nil {
		t.Fatal(err)
	}
	// The joint entry commits, the leader proposes the leave entry; 2's
	// acknowledgement of it is held back.
	var held []*messages.Message
	nw.filter = func(m *messages.Message) bool {
		if m.From == 2 && m.Type == mAppResp && m.Index > joint {
			held = append(held, m)
			return false
		}
		return true
	}
	nw.stabilize()
	leave := joint + 1
	if l.LastIndex() != leave || len(held) == 0 {
		t.Fatalf("setup: last %d, held %v", l.LastIndex(), held)
	}
	// One more entry, whose appends to 2 are lost.
	if _, _, err := l.Propose(&messages.Entry{Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	nw.filter = func(m *messages.Message) bool { return !(m.From == 1 && m.To == 2) }
	nw.stabilize()
	// Now 2's acknowledgement of the leave entry arrives: it commits, the
	// leader is no longer a voter, 2 is the only one, and 2 was never told.
	nw.queue = append(nw.queue, held...)
	nw.filter = nil
	nw.stabilize()
	if c := l.Committed(); c < leave {
		t.Fatalf("leader commit %d, leave entry at %d", c, leave)
	}
	nw.tick(50, 1, 2)
	if lead := nw.leader(); lead != 2 {
		for _, id := range nw.ids {
			st := nw.raft(id).Status()
			t.Logf("node %d: %s term %d last %d commit %d config %v", id, st.Role, st.Term, st.LastIndex, st.Commit, st.Config)
		}
		t.Fatalf("leader %d, want 2", lead)
	}
	nw.propose(2, "after")
	if r := nw.raft(2); r.Committed() != r.LastIndex() {
		t.Fatalf("2 alone does not commit: %d of %d", r.Committed(), r.LastIndex())
	}
}

// TestRemovedLeaderRetriesHandOff: a removed leader whose hand-off does not
// complete within an election timeout tries again, refusing proposals
// meanwhile, and its last entries survive the hand-off.
func TestRemovedLeaderRetriesHandOff(t *testing.T) {
	nw := newNetwork(t, 3)
	nw.elect(1)
	l := nw.raft(1)
	cfg, err := l.ProposeConfig(clusterConfig([]uint64{2, 3}, nil))
	if err != nil {
		t.Fatal(err)
	}
	// The acknowledgements of the config entry are held back while x is
	// proposed; x then never reaches 2 and 3 for now.
	var held []*messages.Message
	nw.filter = func(m *messages.Message) bool {
		if m.Type == mAppResp && m.Index >= cfg {
			held = append(held, m)
			return false
		}
		return true
	}
	nw.stabilize()
	x, _, _ := l.Propose(&messages.Entry{Data: []byte("x")})
	cutX := true
	nw.filter = func(m *messages.Message) bool {
		if cutX && m.Type == mApp && len(m.Entries) > 0 && m.Entries[len(m.Entries)-1].Index >= x {
			return false
		}
		return true
	}
	nw.queue = append(nw.queue, held...)
	nw.stabilize()
	if l.Committed() < cfg || l.Role() != Leader || l.Status().LeadTransferee == 0 {
		t.Fatalf("commit %d role %s transferee %d", l.Committed(), l.Role(), l.Status().LeadTransferee)
	}
	if _, _, err := l.Propose(&messages.Entry{}); !errors.Is(err, ErrTransferInProgress) {
		t.Fatalf("proposal while handing off: %v", err)
	}
	nw.tick(2*l.electionTimeout(), 1)
	started := 0
	for _, ev := range nw.nodes[1].events {
		if ev.Kind == EventTransferStarted {
			started++
		}
	}
	if started < 2 || l.Role() != Leader {
		t.Fatalf("%d transfers started, role %s", started, l.Role())
	}
	cutX = false
	nw.tick(3, 1)
	lead := nw.leader()
	if lead != 2 && lead != 3 {
		t.Fatalf("leader %d", lead)
	}
	nw.tick(2)
	if got := nw.nodes[lead].appliedData(); !slices.Equal(got, []string{"x"}) {
		t.Fatalf("new leader applied %v", got)
	}
}

// TestRestartedVoterUsesLatestConfigInLog is a regression test (thesis
// §4.1: a server uses the latest configuration in its log, committed or
// not). A voter restarted with a stale commit index (a change of commit
// alone is not synced) used to fall back to the last configuration its
// commit index covered, here {1,2,3}, and could not win alone; found as
// leaderless seeds of TestRandomConfigChangesAreSafe (146, 160, ...).
func TestRestartedVoterUsesLatestConfigInLog(t *testing.T) {
	ents := logOfTerms(t, clusterConfig([]uint64{1, 2, 3}, nil), 1)
	ents = append(ents, configEntry(t, 1, 2, clusterConfig([]uint64{1}, []uint64{2, 3})))
	r := newRaftWithLog(t, 1, 1, ents) // commit 1: entry 2 not known committed
	if got := memberIDs(r.ClusterConfig().Voters); !slices.Equal(got, []uint64{1}) {
		t.Fatalf("voters after restart %v, want [1]", got)
	}
	r.Campaign()
	drain(r)
	if r.Role() != Leader {
		t.Fatalf("sole voter is %s after campaigning", r.Role())
	}
}

// TestLeaderLeftOutOfLatestConfigCampaignsAgain is a regression test: a
// leader appended the entry leaving a joint configuration without itself,
// then lost leadership before anyone else stored it. Its log is the only
// up-to-date one, so the others need its vote: it must be able to
// campaign (and lead the new configuration without counting itself until
// it commits, thesis §4.2.2). Seed 15 of TestRandomConfigChangesAreSafe
// stayed leaderless otherwise.
func TestLeaderLeftOutOfLatestConfigCampaignsAgain(t *testing.T) {
	ents := logOfTerms(t, clusterConfig([]uint64{1, 2}, nil), 1)
	joint := clusterConfig([]uint64{2}, nil)
	joint.OutgoingVoters = members(1, 2)
	ents = append(ents, configEntry(t, 1, 2, joint), configEntry(t, 1, 3, clusterConfig([]uint64{2}, []uint64{1})))
	r, err := New(testConfig(1, nil), InitialState{HardState: &messages.HardState{Term: 1, Commit: 2}, Entries: ents})
	if err != nil {
		t.Fatal(err)
	}
	r.Campaign()
	// Not a voter of the configuration in force, it asks for pre-votes
	// first (even with PreVote off), so that it cannot disrupt the voters.
	pre := msgsOfType(drainMsgs(r), mPreVote)
	if len(pre) != 1 || pre[0].To != 2 {
		t.Fatalf("pre-vote requests %v, want one to 2", pre)
	}
	mustStep(t, r, &messages.Message{Type: messages.MessageType_MSG_PRE_VOTE_RESP, ClusterId: 7, From: 2, To: 1, Term: r.Term() + 1})
	votes := msgsOfType(drainMsgs(r), mVote)
	if len(votes) != 1 || votes[0].To != 2 {
		t.Fatalf("vote requests %v, want one to 2", votes)
	}
	mustStep(t, r, &messages.Message{Type: messages.MessageType_MSG_VOTE_RESP, ClusterId: 7, From: 2, To: 1, Term: r.Term()})
	drain(r)
	if r.Role() != Leader {
		t.Fatalf("node 1 is %s with the vote of 2", r.Role())
	}
	// It leads the configuration it is not part of until that commits,
	// then hands over to 2.
	mustStep(t, r, &messages.Message{Type: messages.MessageType_MSG_APPEND_RESP, ClusterId: 7, From: 2, To: 1, Term: r.Term(), Index: r.LastIndex()})
	msgs := drainMsgs(r)
	if r.Committed() != r.LastIndex() || len(msgsOfType(msgs, mTimeout)) != 1 || r.Role() != Follower {
		t.Fatalf("commit %d last %d role %s, messages %v", r.Committed(), r.LastIndex(), r.Role(), msgs)
	}
}

// TestVoteRequestsReachEveryMember is a regression test: a member that is
// a voter in a configuration the candidate does not know yet must learn
// the candidate's term. Node 2 below only knows {1,2} and will never ask
// node 3, a voter of the joint configuration that node 3 holds: unaware
// of node 2's terms, node 3 kept campaigning one term behind, into terms
// in which node 2 had already voted for itself (seed 6145 of
// TestRandomConfigChangesAreSafe stayed leaderless).
func TestVoteRequestsReachEveryMember(t *testing.T) {
	r := newTestRaft(t, 1, []uint64{1, 2})
	r.ccHist = []confAt{{1, clusterConfig([]uint64{1, 2}, []uint64{3})}}
	r.setConfigAt(r.ccHist[0])
	r.Campaign()
	msgs := drainMsgs(r)
	var to []uint64
	for _, m := range msgsOfType(msgs, mVote) {
		to = append(to, m.To)
	}
	if !slices.Equal(to, []uint64{2, 3}) {
		t.Fatalf("vote requests to %v, want [2 3]", to)
	}
	// The learner's answer does not count.
	mustStep(t, r, &messages.Message{Type: messages.MessageType_MSG_VOTE_RESP, ClusterId: 7, From: 3, To: 1, Term: r.Term()})
	drain(r)
	if r.Role() != Candidate {
		t.Fatalf("a learner's vote made node 1 %s", r.Role())
	}
}

func hasEvent(evs []Event, kind EventKind) *Event {
	for i := range evs {
		if evs[i].Kind == kind {
			return &evs[i]
		}
	}
	return nil
}

// TestRemovedMemberLearnsItsRemoval: the leader keeps replicating to a
// member that a committed configuration removed until the member answers
// with that commit index; the member then knows it is removed, says so
// in an event and its status, and campaigns no more.
func TestRemovedMemberLearnsItsRemoval(t *testing.T) {
	nw := newNetwork(t, 3)
	nw.elect(1)
	idx, err := nw.raft(1).ProposeConfig(clusterConfig([]uint64{1, 2}, nil))
	if err != nil {
		t.Fatal(err)
	}
	nw.stabilize()
	nw.tick(1, 1) // a heartbeat carries the commit index
	r3 := nw.raft(3)
	if r3.Committed() < idx || !r3.Removed() || !r3.Status().Removed {
		t.Fatalf("node 3: commit %d (removal %d), removed %v", r3.Committed(), idx, r3.Removed())
	}
	ev := hasEvent(nw.nodes[3].events, EventRemoved)
	if ev == nil || ev.Index != idx {
		t.Fatalf("node 3 events %v, want removed at %d", nw.nodes[3].events, idx)
	}
	if ev := hasEvent(nw.nodes[1].events, EventMemberDeparted); ev == nil || ev.Peer != 3 {
		t.Fatalf("leader events %v, want member-departed 3", nw.nodes[1].events)
	}
	if nw.raft(1).IsMember(3) {
		t.Fatal("the leader still replicates to 3")
	}
	sent := len(nw.sent)
	nw.tick(50, 3)
	for _, m := range nw.sent[sent:] {
		if m.From == 3 {
			t.Fatalf("removed node 3 sent %v", m)
		}
	}
	if r3.Role() != Follower {
		t.Fatalf("removed node 3 is %s", r3.Role())
	}
}

// TestRefusedNonMemberLearnsIt: a member removed while cut off (the
// leader gave up on it after departTimeouts election timeouts) campaigns
// once back; the members' driver drops its requests and answers them
// with RefuseNonMember; it learns it is removed and stops.
func TestRefusedNonMemberLearnsIt(t *testing.T) {
	nw := newNetwork(t, 3)
	nw.elect(1)
	nw.isolate(3)
	idx, err := nw.raft(1).ProposeConfig(clusterConfig([]uint64{1, 2}, nil))
	if err != nil {
		t.Fatal(err)
	}
	nw.stabilize()
	nw.tick(10*(departTimeouts+1), 1, 2)
	if nw.raft(1).IsMember(3) || hasEvent(nw.nodes[1].events, EventMemberDeparted) == nil {
		t.Fatalf("leader still tracks 3: events %v", nw.nodes[1].events)
	}
	nw.heal()
	refused := 0
	nw.filter = func(m *messages.Message) bool {
		if r := nw.raft(m.To); !r.IsMember(m.From) {
			refused++
			r.RefuseNonMember(m)
			return false
		}
		return true
	}
	nw.tick(30, 3)
	r3 := nw.raft(3)
	if refused == 0 || !r3.Removed() || r3.Role() != Follower {
		t.Fatalf("refused %d, node 3 removed %v role %s", refused, r3.Removed(), r3.Role())
	}
	if ev := hasEvent(nw.nodes[3].events, EventRemoved); ev == nil || ev.Index != idx {
		t.Fatalf("node 3 events %v, want removed citing %d", nw.nodes[3].events, idx)
	}
	before := refused
	nw.tick(30, 3)
	if refused != before {
		t.Fatalf("node 3 kept campaigning: %d more refusals", refused-before)
	}
}

// TestJoiningNodeAnswersToLeaderAddress: a node that joins a running
// cluster knows no configuration, hence no address to answer to; the
// leader's first messages to it carry the leader's address.
func TestJoiningNodeAnswersToLeaderAddress(t *testing.T) {
	nw := newNetworkConfig(t, clusterConfig([]uint64{1, 2, 3}, nil), []uint64{1, 2, 3, 4})
	nw.elect(1)
	var first *messages.Message
	nw.filter = func(m *messages.Message) bool {
		if m.To == 4 && first == nil {
			first = m
		}
		return true
	}
	if _, err := nw.raft(1).ProposeConfig(clusterConfig([]uint64{1, 2, 3}, []uint64{4})); err != nil {
		t.Fatal(err)
	}
	if got := nw.raft(4).Address(1); got != "" {
		t.Fatalf("node 4 knows address %q of 1 before any message", got)
	}
	nw.stabilize()
	if first == nil || first.FromAddress != "n1:7000" {
		t.Fatalf("first message to the newcomer %v, want from_address n1:7000", first)
	}
	var later []*messages.Message
	nw.filter = func(m *messages.Message) bool {
		if m.To == 4 {
			later = append(later, m)
		}
		return true
	}
	nw.propose(1, "x")
	for _, m := range later {
		if m.FromAddress != "" {
			t.Fatalf("the leader still sends its address once 4 answered: %v", m)
		}
	}
	if nw.raft(4).Address(1) != "n1:7000" {
		t.Fatalf("node 4: address of 1 is %q", nw.raft(4).Address(1))
	}
}

// TestAdmits: a member takes messages from members only; a node that is
// no member (joining a running cluster) takes them from anyone, since the
// leader that adds it is not in its configuration yet.
func TestAdmits(t *testing.T) {
	r := newTestRaft(t, 1, []uint64{1, 2, 3})
	for id, want := range map[uint64]bool{2: true, 3: true, 4: false} {
		if got := r.Admits(id); got != want {
			t.Errorf("member 1 admits %d: %v, want %v", id, got, want)
		}
	}
	joining, err := New(testConfig(4, nil), InitialState{})
	if err != nil {
		t.Fatal(err)
	}
	if !joining.Admits(1) || !joining.Admits(9) {
		t.Errorf("a joining node refuses a sender: Admits(1) %v, Admits(9) %v, want both true", joining.Admits(1), joining.Admits(9))
	}
}
