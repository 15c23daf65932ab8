package raft

// Tests named after the Raft paper (see paper_test.go): safety, §5.4
// (the election restriction, Figure 8), and the term rules that keep a
// stale leader or a refused candidate from disrupting the cluster.

import (
	"slices"
	"testing"

	"github.com/flotilla-raft/flotilla/messages"
)

// TestVoteRequest_5_4_1: a candidate's vote request carries the index and
// term of its last entry.
func TestVoteRequest_5_4_1(t *testing.T) {
	cc := clusterConfig([]uint64{1, 2, 3}, nil)
	for i, terms := range [][]uint64{{1}, {1, 2}, {1, 2, 3, 3}} {
		r := newRaftWithLog(t, 1, 3, logOfTerms(t, cc, terms...))
		r.Campaign()
		votes := msgsOfType(drainMsgs(r), mVote)
		if len(votes) != 2 {
			t.Fatalf("#%d: %v", i, votes)
		}
		for _, m := range votes {
			if m.Index != uint64(len(terms)) || m.LogTerm != terms[len(terms)-1] || m.Term != 4 {
				t.Fatalf("#%d: vote request %v", i, m)
			}
		}
	}
}

// TestVoter_ElectionRestriction_5_4_1: a voter grants its vote only to a
// candidate whose log is at least as up to date as its own: a later last
// term wins, then a longer log.
func TestVoter_ElectionRestriction_5_4_1(t *testing.T) {
	cc := clusterConfig([]uint64{1, 2, 3}, nil)
	tests := []struct {
		ents        []uint64
		index, term uint64
		wreject     bool
	}{
		// same last term
		{[]uint64{1}, 1, 1, false},
		{[]uint64{1}, 2, 1, false},
		{[]uint64{1, 1}, 1, 1, true},
		// later last term
		{[]uint64{1}, 1, 2, false},
		{[]uint64{1, 1}, 1, 2, false},
		{[]uint64{1, 2, 2}, 1, 3, false},
		// earlier last term
		{[]uint64{1, 2}, 1, 1, true},
		{[]uint64{1, 2}, 5, 1, true},
		{[]uint64{1, 2}, 2, 2, false},
		{[]uint64{1, 2}, 3, 2, false},
		{[]uint64{1, 2, 2}, 2, 2, true},
	}
	for i, tt := range tests {
		r := newRaftWithLog(t, 1, 3, logOfTerms(t, cc, tt.ents...))
		m := msg(mVote, 2, 1, 4)
		m.Index, m.LogTerm = tt.index, tt.term
		mustStep(t, r, m)
		resps := msgsOfType(drainMsgs(r), mVoteResp)
		if len(resps) != 1 || resps[0].Reject != tt.wreject {
			t.Errorf("#%d: responses %v, want reject=%v", i, resps, tt.wreject)
		}
		wantVote := uint64(2)
		if tt.wreject {
			wantVote = 0
		}
		if r.Status().Vote != wantVote || r.Term() != 4 {
			t.Errorf("#%d: vote %d term %d, want %d 4", i, r.Status().Vote, r.Term(), wantVote)
		}
	}
}

// TestLeaderOnlyCommitsLogFromCurrentTerm_Figure8 replays Figure 8: an entry
// of an earlier term (2) replicated on a majority is NOT committed by
// counting replicas; it commits only with an entry of the leader's own term
// (d vs. e of the figure).
func TestLeaderOnlyCommitsLogFromCurrentTerm_Figure8(t *testing.T) {
	cc := clusterConfig([]uint64{1, 2, 3, 4, 5}, nil)
	hs := func(term uint64) *messages.HardState { return &messages.HardState{Term: term, Commit: 1} }
	build := func(t *testing.T) *network {
		nw := &network{t: t, nodes: map[uint64]*testNode{}, cut: map[[2]uint64]bool{}}
		// (c): S1 leads term 4 and has replicated the term-2 entry at index
		// 2 to S2 and S3 (a majority); S5 holds a term-3 entry at index 2.
		nw.addNode(testConfig(1, nil), InitialState{HardState: hs(3), Entries: logOfTerms(t, cc, 1, 2)})
		nw.addNode(testConfig(2, nil), InitialState{HardState: hs(3), Entries: logOfTerms(t, cc, 1, 2)})
		nw.addNode(testConfig(3, nil), InitialState{HardState: hs(3), Entries: logOfTerms(t, cc, 1, 2)})
		nw.addNode(testConfig(4, nil), InitialState{HardState: hs(3), Entries: logOfTerms(t, cc, 1)})
		nw.addNode(testConfig(5, nil), InitialState{HardState: hs(3), Entries: logOfTerms(t, cc, 1, 3)})
		return nw
	}

	t.Run("d: the old-term entry is overwritten", func(t *testing.T) {
		nw := build(t)
		// S1 crashes; S5 is elected with the votes of S2, S3, S4 (its last
		// term 3 beats their 2) and overwrites the term-2 entry.
		nw.nodes[1].down = true
		nw.elect(5)
		if c := nw.raft(2).Committed(); c < 2 {
			t.Fatalf("S2 commit %d", c)
		}
		e, _ := nw.raft(2).Entries(2, 3, 0)
		if e[0].Term != 3 {
			t.Fatalf("S2 entry 2 has term %d, want S5's term-3 entry", e[0].Term)
		}
	})

	t.Run("e: committed with an entry of the current term", func(t *testing.T) {
		nw := build(t)
		nw.isolate(5)
		// S1 leads term 4 (as in (c)) and tells S2, S3 about the term-2 entry
		// again but, before its noop is acknowledged, nothing commits:
		nw.raft(1).term = 3
		nw.filter = func(m *messages.Message) bool { return m.Type != mAppResp }
		nw.elect(1)
		if c := nw.raft(1).Committed(); c != 1 {
			t.Fatalf("leader committed %d with only term-2 entries replicated on a majority, want 1", c)
		}
		// Once the noop of term 4 reaches a majority, index 2 commits with it.
		nw.filter = nil
		nw.tick(1, 1)
		if c := nw.raft(1).Committed(); c != 3 {
			t.Fatalf("leader commit %d, want 3", c)
		}
		for _, id := range []uint64{1, 2, 3, 4} {
			if got := logTerms(t, nw.raft(id)); !slices.Equal(got, []uint64{1, 2, 4}) {
				t.Fatalf("S%d log %v", id, got)
			}
		}
	})

	t.Run("counting replicas", func(t *testing.T) {
		// Directly: a leader of term 4 whose term-2 entry is matched by a
		// majority does not commit it.
		r := newRaftWithLog(t, 1, 3, logOfTerms(t, cc, 1, 2))
		becomeRole(t, r, Leader) // term 4, noop at 3
		for _, id := range []uint64{2, 3} {
			m := msg(mAppResp, id, 1, 4)
			m.Index = 2
			mustStep(t, r, m)
		}
		if r.Committed() != 1 {
			t.Fatalf("commit %d from counting replicas of a term-2 entry, want 1", r.Committed())
		}
		m := msg(mAppResp, 2, 1, 4)
		m.Index = 3
		mustStep(t, r, m)
		drain(r)
		m = msg(mAppResp, 3, 1, 4)
		m.Index = 3
		mustStep(t, r, m)
		if r.Committed() != 3 {
			t.Fatalf("commit %d, want 3", r.Committed())
		}
	})
}

// TestLeaderStepsDownOnHigherTerm: a leader that sees a higher term in any
// message, vote request included, becomes a follower of that term.
func TestLeaderStepsDownOnHigherTerm(t *testing.T) {
	nw := newNetwork(t, 3)
	nw.elect(1)
	// Node 3 misses a term: partition it and let it campaign alone.
	nw.isolate(3)
	nw.propose(1, "x")
	nw.campaign(3)
	nw.campaign(3)
	if nw.raft(3).Term() != 4 {
		t.Fatalf("node 3 term %d", nw.raft(3).Term())
	}
	nw.heal()
	// Without CheckQuorum there is no lease: the leader steps down on the
	// vote request of term 5 and, with its longer log, refuses the vote.
	nw.campaign(3)
	r1 := nw.raft(1)
	if r1.Role() == Leader && r1.Term() == 2 {
		t.Fatalf("leader kept term 2")
	}
	if r1.Term() < 5 {
		t.Fatalf("leader term %d, want >= 5", r1.Term())
	}
	if nw.raft(3).Role() == Leader {
		t.Fatalf("node 3 with a stale log won")
	}
	// Heartbeat replies with a higher term depose it too.
	nw2 := newNetwork(t, 3)
	nw2.elect(1)
	l := nw2.raft(1)
	m := msg(mHBResp, 2, 1, 9)
	mustStep(t, l, m)
	if l.Role() != Follower || l.Term() != 9 || l.Leader() != 0 {
		t.Fatalf("role %s term %d leader %d, want follower 9 none", l.Role(), l.Term(), l.Leader())
	}
}

// TestRefusedVoteKeepsElectionTimer_5_2: a follower's election timer runs
// on unless it hears from the leader or grants its vote (Figure 2); a
// vote request of a higher term that it refuses raises its term but does
// not postpone its own campaign.
func TestRefusedVoteKeepsElectionTimer_5_2(t *testing.T) {
	r := newRaftWithLog(t, 1, 1, logOfTerms(t, clusterConfig([]uint64{1, 2, 3}, nil), 1, 1))
	for range 5 {
		r.Tick()
	}
	m := msg(mVote, 2, 1, 5)
	m.Index, m.LogTerm = 1, 1 // behind: refused
	mustStep(t, r, m)
	if r.Term() != 5 || r.Status().Vote != 0 || r.electionElapsed != 5 {
		t.Fatalf("term %d vote %d elapsed %d, want 5, 0, 5", r.Term(), r.Status().Vote, r.electionElapsed)
	}
	m = msg(mVote, 3, 1, 6)
	m.Index, m.LogTerm = 2, 1 // up to date: granted
	mustStep(t, r, m)
	if r.Status().Vote != 3 || r.electionElapsed != 0 {
		t.Fatalf("vote %d elapsed %d, want 3, 0", r.Status().Vote, r.electionElapsed)
	}
}
