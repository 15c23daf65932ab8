package raft

import (
	"errors"
	"slices"
	"testing"

	"github.com/flotilla-raft/flotilla/messages"
)

func memberIDs(ms []*messages.Member) []uint64 {
	ids := make([]uint64, 0, len(ms))
	for _, m := range ms {
		ids = append(ids, m.Id)
	}
	slices.Sort(ids)
	return ids
}

// checkConfig fails unless node id's configuration in force has these
// voters and learners and is not joint.
func (nw *network) checkConfig(id uint64, voters, learners []uint64) {
	nw.t.Helper()
	cc := nw.raft(id).ClusterConfig()
	if got := memberIDs(cc.Voters); !slices.Equal(got, voters) {
		nw.t.Fatalf("node %d voters %v, want %v", id, got, voters)
	}
	if got := memberIDs(cc.Learners); !slices.Equal(got, learners) {
		nw.t.Fatalf("node %d learners %v, want %v", id, got, learners)
	}
	if len(cc.OutgoingVoters) != 0 {
		nw.t.Fatalf("node %d still joint: outgoing %v", id, memberIDs(cc.OutgoingVoters))
	}
}

// TestConfChangeAddLearnerThenPromote: a learner receives the log but never
// campaigns nor counts for commitment; promoted, it is a voter.
func TestConfChangeAddLearnerThenPromote(t *testing.T) {
	nw := newNetworkConfig(t, clusterConfig([]uint64{1, 2, 3}, nil), []uint64{1, 2, 3, 4})
	nw.elect(1)
	l := nw.raft(1)
	if _, err := l.ProposeConfig(clusterConfig([]uint64{1, 2, 3}, []uint64{4})); err != nil {
		t.Fatal(err)
	}
	nw.stabilize()
	nw.propose(1, "a")
	for _, id := range nw.ids {
		nw.checkConfig(id, []uint64{1, 2, 3}, []uint64{4})
	}
	nw.checkLogsMatch()
	if got := nw.nodes[4].appliedData(); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("learner applied %v", got)
	}
	if !l.IsMember(4) || l.Address(4) != "n4:7000" {
		t.Fatalf("IsMember(4) = %v, Address = %q", l.IsMember(4), l.Address(4))
	}
	if st := l.Status(); !st.Progress[3].IsLearner {
		t.Fatalf("progress of 4: %+v", st.Progress[3])
	}
	// A learner never campaigns.
	nw.isolate(4)
	nw.tick(50, 4)
	if r := nw.raft(4); r.Role() != Follower || r.Term() != l.Term() {
		t.Fatalf("learner is %s at term %d", r.Role(), r.Term())
	}
	nw.raft(4).Campaign()
	if nw.raft(4).Role() != Follower {
		t.Fatalf("learner campaigned")
	}
	// Its acknowledgement does not count: with 2 and 3 cut, nothing commits.
	nw.heal()
	nw.cutLink(1, 2)
	nw.cutLink(1, 3)
	c := l.Committed()
	nw.propose(1, "b")
	if l.Committed() != c {
		t.Fatalf("committed %d with a learner's acknowledgement", l.Committed())
	}
	nw.heal()
	nw.tick(1, 1)
	if l.Committed() != l.LastIndex() {
		t.Fatalf("commit %d of %d after healing", l.Committed(), l.LastIndex())
	}

	// Promote 4: a single voter change, no joint state.
	idx, err := l.ProposeConfig(clusterConfig([]uint64{1, 2, 3, 4}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := l.Entries(idx, idx+1, 0); len(e[0].Data) == 0 {
		t.Fatal("empty config entry")
	} else if cc, _ := decodeConfig(e[0]); len(cc.OutgoingVoters) != 0 {
		t.Fatalf("promotion went joint: %v", cc)
	}
	nw.stabilize()
	for _, id := range nw.ids {
		nw.checkConfig(id, []uint64{1, 2, 3, 4}, nil)
	}
	if st := l.Status(); st.Progress[3].IsLearner {
		t.Fatalf("4 still a learner: %+v", st.Progress[3])
	}
	// Now 4 counts: with 2 and 3 cut, 1 and 4 are not a majority of 4, with
	// only 3 cut they are.
	nw.cutLink(1, 3)
	nw.propose(1, "c")
	if l.Committed() != l.LastIndex() {
		t.Fatalf("commit %d of %d with 1, 2, 4 of 4", l.Committed(), l.LastIndex())
	}
}

// TestConfChangeRemoveVoter: a removed voter stops receiving the log and no
// longer counts.
func TestConfChangeRemoveVoter(t *testing.T) {
	nw := newNetwork(t, 3)
	nw.elect(1)
	l := nw.raft(1)
	if _, err := l.ProposeConfig(clusterConfig([]uint64{1, 2}, nil)); err != nil {
		t.Fatal(err)
	}
	nw.stabilize()
	nw.checkConfig(1, []uint64{1, 2}, nil)
	nw.checkConfig(2, []uint64{1, 2}, nil)
	if l.IsMember(3) || slices.Contains(l.Members(), 3) {
		t.Fatalf("3 still a member: %v", l.Members())
	}
	last3 := nw.raft(3).LastIndex()
	nw.propose(1, "a")
	if nw.raft(3).LastIndex() != last3 {
		t.Fatal("a removed node still receives entries")
	}
	// A message from the removed node is ignored by the leader.
	m := msg(mAppResp, 3, 1, l.Term())
	m.Index = 100
	mustStep(t, l, m)
	if l.Committed() != l.LastIndex() {
		t.Fatalf("commit %d of %d", l.Committed(), l.LastIndex())
	}
}

// TestConfChangeRemoveLeader: a leader removed from the voters steps down
// once the change commits, and the rest elect a new leader.
func TestConfChangeRemoveLeader(t *testing.T) {
	nw := newNetwork(t, 3)
	nw.elect(1)
	if _, err := nw.raft(1).ProposeConfig(clusterConfig([]uint64{2, 3}, nil)); err != nil {
		t.Fatal(err)
	}
	nw.stabilize()
	if r := nw.raft(1); r.Role() != Follower {
		t.Fatalf("removed leader is %s", r.Role())
	}
	nw.tick(30, 2, 3)
	lead := nw.leader()
	if lead != 2 && lead != 3 {
		t.Fatalf("leader %d after the old one left", lead)
	}
	nw.propose(lead, "after")
	nw.checkLogsMatch(2, 3)
}

// TestConfChangeCommitsWithNewQuorum is a regression test: once a
// configuration that removes a voter commits, entries the new quorum already
// holds commit at once. The leader used to wait for an acknowledgement that
// the removed voter would never send.
func TestConfChangeCommitsWithNewQuorum(t *testing.T) {
	nw := newNetwork(t, 2)
	nw.elect(1)
	l := nw.raft(1)
	if _, err := l.ProposeConfig(clusterConfig([]uint64{1}, nil)); err != nil {
		t.Fatal(err)
	}
	x, _, err := l.Propose(&messages.Entry{Data: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	// Node 2 only ever receives the configuration entry, not x.
	nw.filter = func(m *messages.Message) bool {
		if m.Type == mApp && len(m.Entries) > 0 && m.Entries[len(m.Entries)-1].Index == x {
			m.Entries = m.Entries[:len(m.Entries)-1]
		}
		return true
	}
	nw.stabilize()
	nw.tick(5, 1)
	if l.Committed() != x {
		t.Fatalf("commit %d, want %d: the leader alone is the quorum", l.Committed(), x)
	}
	if got := nw.nodes[1].appliedData(); !slices.Equal(got, []string{"x"}) {
		t.Fatalf("applied %v", got)
	}
}

// TestConfChangeJointAutoLeave: replacing two voters at once goes through
// joint consensus; once the joint configuration commits, the leader leaves
// it on its own.
func TestConfChangeJointAutoLeave(t *testing.T) {
	nw := newNetworkConfig(t, clusterConfig([]uint64{1, 2, 3}, nil), []uint64{1, 2, 3, 4, 5})
	nw.elect(1)
	l := nw.raft(1)
	// The new voters first join as learners to catch up.
	if _, err := l.ProposeConfig(clusterConfig([]uint64{1, 2, 3}, []uint64{4, 5})); err != nil {
		t.Fatal(err)
	}
	nw.stabilize()
	idx, err := l.ProposeConfig(clusterConfig([]uint64{1, 4, 5}, nil))
	if err != nil {
		t.Fatal(err)
	}
	e, _ := l.Entries(idx, idx+1, 0)
	joint, _ := decodeConfig(e[0])
	if got := memberIDs(joint.OutgoingVoters); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("joint entry outgoing %v, want [1 2 3]", got)
	}
	// While the joint entry is not committed, another change is refused.
	if _, err := l.ProposeConfig(clusterConfig([]uint64{1, 4}, nil)); !errors.Is(err, ErrConfigChangePending) {
		t.Fatalf("second change: %v, want ErrConfigChangePending", err)
	}
	nw.stabilize()
	for _, id := range []uint64{1, 4, 5} {
		nw.checkConfig(id, []uint64{1, 4, 5}, nil)
	}
	// Every node went through the joint configuration, then left it.
	var seq []int
	for _, ev := range nw.nodes[4].events {
		if ev.Kind == EventConfigChanged {
			seq = append(seq, len(ev.Config.OutgoingVoters))
		}
	}
	if !slices.Equal(seq[len(seq)-2:], []int{3, 0}) {
		t.Fatalf("outgoing voter counts of the config changes seen by 4: %v, want ... 3 0", seq)
	}
	nw.isolate(2)
	nw.isolate(3)
	nw.propose(1, "new")
	if l.Committed() != l.LastIndex() {
		t.Fatalf("the new voters do not commit alone")
	}
}

// TestConfChangeJointNeedsBothMajorities: while joint, a decision needs a
// majority of the outgoing and of the incoming voters.
func TestConfChangeJointNeedsBothMajorities(t *testing.T) {
	nw := newNetworkConfig(t, clusterConfig([]uint64{1, 2, 3}, nil), []uint64{1, 2, 3, 4, 5})
	nw.elect(1)
	l := nw.raft(1)
	if _, err := l.ProposeConfig(clusterConfig([]uint64{1, 2, 3}, []uint64{4, 5})); err != nil {
		t.Fatal(err)
	}
	nw.stabilize()
	// 4 and 5 cannot hear the joint entry: it still commits under the old
	// config (2, 3 of 1-3), and the leave entry then cannot commit without
	// a majority of {1, 4, 5}.
	nw.isolate(4)
	nw.isolate(5)
	if _, err := l.ProposeConfig(clusterConfig([]uint64{1, 4, 5}, nil)); err != nil {
		t.Fatal(err)
	}
	nw.stabilize()
	cc := l.ClusterConfig()
	if len(cc.OutgoingVoters) == 0 {
		t.Fatalf("left the joint config without the new voters")
	}
	c := l.Committed()
	nw.propose(1, "x")
	if l.Committed() != c {
		t.Fatalf("committed %d in joint config without the incoming majority", l.Committed())
	}
	nw.heal()
	nw.tick(2, 1)
	nw.checkConfig(1, []uint64{1, 4, 5}, nil)
	if l.Committed() != l.LastIndex() {
		t.Fatalf("commit %d of %d", l.Committed(), l.LastIndex())
	}
}

// TestProposeConfigErrors covers the refusals of ProposeConfig.
func TestProposeConfigErrors(t *testing.T) {
	nw := newNetwork(t, 3)
	if _, err := nw.raft(1).ProposeConfig(clusterConfig([]uint64{1, 2}, nil)); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("follower: %v", err)
	}
	nw.elect(1)
	l := nw.raft(1)
	joint := clusterConfig([]uint64{1, 2}, nil)
	joint.OutgoingVoters = members(1, 2, 3)
	if _, err := l.ProposeConfig(joint); !errors.Is(err, ErrInvalidConfigChange) {
		t.Fatalf("outgoing voters given: %v", err)
	}
	if _, err := l.ProposeConfig(&messages.ClusterConfig{}); !errors.Is(err, ErrInvalidConfigChange) {
		t.Fatalf("no voters: %v", err)
	}
	if _, _, err := l.Propose(&messages.Entry{Type: messages.EntryType_ENTRY_CONFIG}); !errors.Is(err, ErrInvalidConfigChange) {
		t.Fatalf("config entry through Propose: %v", err)
	}
	// Settings left nil are kept.
	idx, err := l.ProposeConfig(&messages.ClusterConfig{Voters: members(1, 2, 3, 4)[:3]})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.ProposeConfig(clusterConfig([]uint64{1, 2}, nil)); !errors.Is(err, ErrConfigChangePending) {
		t.Fatalf("second change before the first is committed: %v", err)
	}
	nw.stabilize()
	if l.Applied() < idx || l.ClusterConfig().Settings.ElectionTicks != 10 {
		t.Fatalf("applied %d config %v", l.Applied(), l.ClusterConfig())
	}
	// A new leader refuses changes until an entry of its term (its no-op)
	// is committed.
	r := newTestRaft(t, 1, []uint64{1, 2, 3})
	r.becomeCandidate("test")
	r.becomeLeader("test")
	if _, err := r.ProposeConfig(clusterConfig([]uint64{1, 2}, nil)); !errors.Is(err, ErrConfigChangePending) {
		t.Fatalf("new leader: %v", err)
	}
}

// TestConfChangeSettings: a committed configuration carries new cluster
// settings to every node.
func TestConfChangeSettings(t *testing.T) {
	nw := newNetwork(t, 3)
	nw.elect(1)
	cc := clusterConfig([]uint64{1, 2, 3}, nil, withPreVote, withCheckQuorum)
	cc.Settings.ElectionTicks = 20
	if _, err := nw.raft(1).ProposeConfig(cc); err != nil {
		t.Fatal(err)
	}
	nw.stabilize()
	for _, id := range nw.ids {
		s := nw.raft(id).ClusterConfig().Settings
		if !s.PreVote || !s.CheckQuorum || s.ElectionTicks != 20 {
			t.Fatalf("node %d settings %v", id, s)
		}
		if rt := nw.raft(id).randomizedElectionTimeout; rt < 20 || rt >= 40 {
			t.Fatalf("node %d randomized timeout %d not in [20, 40)", id, rt)
		}
	}
}

// TestNewLeaderLeavesJointConfig is a regression test: when the leader that
// committed a joint configuration is lost before its leave entry reaches
// anyone, the next leader leaves the joint configuration. It used to stay
// joint for ever, refusing every later change with ErrConfigChangePending.
func TestNewLeaderLeavesJointConfig(t *testing.T) {
	nw := newNetworkConfig(t, clusterConfig([]uint64{1, 2, 3}, []uint64{4, 5}), []uint64{1, 2, 3, 4, 5})
	nw.elect(1)
	joint, err := nw.raft(1).ProposeConfig(clusterConfig([]uint64{1, 4, 5}, nil))
	if err != nil {
		t.Fatal(err)
	}
	// Appends of anything after the joint entry are lost; heartbeats tell
	// the followers that the joint entry committed.
	nw.filter = func(m *messages.Message) bool {
		if m.From == 1 && m.Type == mApp {
			for _, e := range m.Entries {
				if e.Index > joint {
					return false
				}
			}
		}
		return true
	}
	nw.stabilize()
	nw.tick(1, 1)
	for _, id := range []uint64{2, 3, 4, 5} {
		if r := nw.raft(id); r.Committed() != joint || r.LastIndex() != joint || len(r.ClusterConfig().OutgoingVoters) == 0 {
			t.Fatalf("setup: node %d commit %d last %d config %v", id, r.Committed(), r.LastIndex(), r.ClusterConfig())
		}
	}
	_, err = nw.raft(1).ProposeConfig(clusterConfig([]uint64{1, 4}, nil))
	if !errors.Is(err, ErrConfigChangePending) {
		t.Fatalf("change while joint: %v", err)
	}
	nw.filter = nil
	nw.nodes[1].down = true
	nw.elect(4)
	for _, id := range []uint64{4, 5} {
		nw.checkConfig(id, []uint64{1, 4, 5}, nil)
	}
	if _, err := nw.raft(4).ProposeConfig(clusterConfig([]uint64{1, 4, 5}, []uint64{2})); err != nil {
		t.Fatalf("a change after leaving: %v", err)
	}
}

// TestConfChangeJointLeaderOnlyOutgoing: a leader that is only an outgoing
// voter leads through the joint configuration, leaves it, then steps down;
// the incoming voters go on.
func TestConfChangeJointLeaderOnlyOutgoing(t *testing.T) {
	nw := newNetworkConfig(t, clusterConfig([]uint64{1, 2, 3}, []uint64{4, 5}), []uint64{1, 2, 3, 4, 5})
	nw.elect(1)
	if _, err := nw.raft(1).ProposeConfig(clusterConfig([]uint64{3, 4, 5}, nil)); err != nil {
		t.Fatal(err)
	}
	nw.stabilize()
	if r := nw.raft(1); r.Role() != Follower {
		t.Fatalf("old leader is %s", r.Role())
	}
	nw.checkConfig(1, []uint64{3, 4, 5}, nil)
	// The old leader stepped down as the leave entry committed, before
	// telling anyone: the others learn it from the next leader.
	nw.tick(30, 3, 4, 5)
	lead := nw.leader()
	if lead < 3 {
		t.Fatalf("leader %d", lead)
	}
	for _, id := range []uint64{3, 4, 5} {
		nw.checkConfig(id, []uint64{3, 4, 5}, nil)
	}
	nw.propose(lead, "new era")
	nw.checkLogsMatch(3, 4, 5)
}

// TestConfChangeEventsAndStatus: the config-changed event carries the index
// and the configuration; Status reports it.
func TestConfChangeEventsAndStatus(t *testing.T) {
	nw := newNetwork(t, 3)
	nw.elect(1)
	idx, err := nw.raft(1).ProposeConfig(clusterConfig([]uint64{1, 2, 3}, []uint64{9}))
	if err != nil {
		t.Fatal(err)
	}
	nw.stabilize()
	for _, id := range nw.ids {
		var got *Event
		for i, ev := range nw.nodes[id].events {
			if ev.Kind == EventConfigChanged {
				got = &nw.nodes[id].events[i]
			}
		}
		if got == nil || got.Index != idx || memberIDs(got.Config.Learners)[0] != 9 {
			t.Fatalf("node %d config event %v", id, got)
		}
		if st := nw.raft(id).Status(); st.Config != nw.raft(id).ClusterConfig() || st.Leader != 1 {
			t.Fatalf("node %d status %+v", id, st)
		}
	}
}
