package raft

import (
	"testing"

	"github.com/flotilla-raft/flotilla/messages"
)

// PreVote (thesis §9.6) and CheckQuorum (§6.2, leader lease §4.2.3).

// partitionAndRejoin elects 1, isolates 3 while 1 commits entries and 3
// times out again and again, then heals and lets 3 tick once more.
func partitionAndRejoin(t *testing.T, opts ...func(*messages.Settings)) (nw *network, termBefore uint64) {
	nw = newNetwork(t, 3, opts...)
	nw.elect(1)
	termBefore = nw.raft(1).Term()
	nw.isolate(3)
	nw.propose(1, "while-3-is-away")
	for range 5 {
		nw.campaign(3)
	}
	nw.heal()
	nw.campaign(3)
	return nw, termBefore
}

// TestPreVoteRejoiningNodeDoesNotDisrupt: with PreVote, a node that was
// partitioned away does not raise its term and does not depose the leader
// when it comes back.
func TestPreVoteRejoiningNodeDoesNotDisrupt(t *testing.T) {
	for name, opts := range map[string][]func(*messages.Settings){
		"prevote":             {withPreVote},
		"prevote+checkquorum": {withPreVote, withCheckQuorum},
	} {
		t.Run(name, func(t *testing.T) {
			nw, term := partitionAndRejoin(t, opts...)
			if r := nw.raft(3); r.Term() != term {
				t.Fatalf("rejoining node at term %d, want %d", r.Term(), term)
			}
			l := nw.raft(1)
			if l.Role() != Leader || l.Term() != term {
				t.Fatalf("leader is %s at term %d, want leader at %d", l.Role(), l.Term(), term)
			}
			nw.tick(1, 1)
			if nw.raft(3).Leader() != 1 {
				t.Fatalf("node 3 follows %d", nw.raft(3).Leader())
			}
			nw.propose(1, "after")
			nw.checkLogsMatch()
		})
	}
}

// TestNoPreVoteRejoiningNodeDisrupts: without PreVote and CheckQuorum, the
// rejoining node's higher term deposes the leader (the problem PreVote
// solves); its stale log keeps it from winning.
func TestNoPreVoteRejoiningNodeDisrupts(t *testing.T) {
	nw, term := partitionAndRejoin(t)
	l := nw.raft(1)
	if l.Term() <= term+1 {
		t.Fatalf("leader term %d: not disrupted (was %d)", l.Term(), term)
	}
	if l.Role() == Leader && l.Term() == term {
		t.Fatal("leader kept its term")
	}
	if nw.raft(3).Role() == Leader {
		t.Fatal("a node with a stale log won")
	}
	for range 50 {
		if nw.leader() != 0 {
			break
		}
		nw.tick(1)
	}
	if lead := nw.leader(); lead != 1 && lead != 2 {
		t.Fatalf("leader %d", lead)
	}
}

// TestPreVoteDoesNotChangeTerm: a pre-candidate asks at term+1 without
// changing its term or vote; a voter answers without changing its own.
func TestPreVoteDoesNotChangeTerm(t *testing.T) {
	r := newTestRaft(t, 1, []uint64{1, 2, 3}, withPreVote)
	drain(r)
	r.Campaign()
	if r.Role() != PreCandidate || r.Term() != 1 || r.Status().Vote != 0 {
		t.Fatalf("role %s term %d vote %d", r.Role(), r.Term(), r.Status().Vote)
	}
	rd := r.Ready()
	if rd.PersistID != 0 {
		t.Fatal("a pre-vote persisted something")
	}
	pvs := msgsOfType(rd.Messages, mPreVote)
	if len(pvs) != 2 || pvs[0].Term != 2 {
		t.Fatalf("pre-votes %v, want 2 at term 2, sent at once", rd.Messages)
	}
	v := newTestRaft(t, 2, []uint64{1, 2, 3}, withPreVote)
	drain(v)
	pv := pvs[0]
	mustStep(t, v, pv)
	resps := msgsOfType(drainMsgs(v), mPreResp)
	if len(resps) != 1 || resps[0].Reject || resps[0].Term != 2 || v.Term() != 1 || v.Status().Vote != 0 {
		t.Fatalf("pre-vote response %v, voter term %d vote %d", resps, v.Term(), v.Status().Vote)
	}
	// One grant and the self vote win the pre-vote: a real election follows.
	mustStep(t, r, resps[0])
	if r.Role() != Candidate || r.Term() != 2 {
		t.Fatalf("after pre-vote: %s at %d", r.Role(), r.Term())
	}
}

// TestPreVoteLost: a pre-candidate rejected by a quorum returns to follower
// at its unchanged term; a rejection of a higher term makes it adopt it.
func TestPreVoteLost(t *testing.T) {
	r := newTestRaft(t, 1, []uint64{1, 2, 3}, withPreVote)
	drain(r)
	r.Campaign()
	for _, id := range []uint64{2, 3} {
		m := msg(mPreResp, id, 1, 1)
		m.Reject = true
		mustStep(t, r, m)
	}
	if r.Role() != Follower || r.Term() != 1 {
		t.Fatalf("%s at %d, want follower at 1", r.Role(), r.Term())
	}
	r.Campaign()
	m := msg(mPreResp, 2, 1, 5)
	m.Reject = true
	mustStep(t, r, m)
	if r.Role() != Follower || r.Term() != 5 {
		t.Fatalf("%s at %d, want follower at 5", r.Role(), r.Term())
	}
	// A pre-vote of a stale term is rejected with our term.
	m = msg(mPreVote, 2, 1, 3)
	m.Index, m.LogTerm = 1, 1
	mustStep(t, r, m)
	resps := msgsOfType(drainMsgs(r), mPreResp)
	if len(resps) != 1 || !resps[0].Reject || resps[0].Term != 5 {
		t.Fatalf("responses %v", resps)
	}
}

// TestVoteRequests is a table of vote and pre-vote requests against a
// follower, with every combination of log up-to-dateness, term and lease.
func TestVoteRequests(t *testing.T) {
	cc := clusterConfig([]uint64{1, 2, 3}, nil, withPreVote)
	// The voter's log: terms 1, 2, 2 (last index 3, last term 2), term 2.
	tests := []struct {
		name       string
		ty         messages.MessageType
		term       uint64
		index, lt  uint64
		vote, lead uint64
		wreject    bool
		wterm      uint64 // the voter's term after
		wvote      uint64
	}{
		{"vote: longer log, same last term", mVote, 3, 4, 2, 0, 0, false, 3, 2},
		{"vote: same log", mVote, 3, 3, 2, 0, 0, false, 3, 2},
		{"vote: shorter log, same last term", mVote, 3, 2, 2, 0, 0, true, 3, 0},
		{"vote: later last term, shorter", mVote, 3, 2, 3, 0, 0, false, 3, 2},
		{"vote: earlier last term, longer", mVote, 3, 9, 1, 0, 0, true, 3, 0},
		{"vote: same term, already voted for another", mVote, 2, 3, 2, 3, 0, true, 2, 3},
		{"vote: same term, already voted for it", mVote, 2, 3, 2, 2, 0, false, 2, 2},
		{"vote: same term, leader known", mVote, 2, 3, 2, 0, 3, true, 2, 0},
		{"vote: stale term", mVote, 1, 9, 9, 0, 0, true /* with our term */, 2, 0},
		{"pre-vote: up to date, higher term", mPreVote, 3, 3, 2, 3, 3, false, 2, 3},
		{"pre-vote: stale log", mPreVote, 3, 2, 2, 0, 0, true, 2, 0},
		{"pre-vote: same term, voted for another", mPreVote, 2, 3, 2, 3, 0, true, 2, 3},
		{"pre-vote: same term, no vote, no leader", mPreVote, 2, 3, 2, 0, 0, false, 2, 0},
		{"pre-vote: stale term", mPreVote, 1, 3, 2, 0, 0, true, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRaftWithLog(t, 1, 2, logOfTerms(t, cc, 1, 2, 2))
			r.vote, r.prevHS.vote, r.lead = tt.vote, tt.vote, tt.lead
			m := msg(tt.ty, 2, 1, tt.term)
			m.Index, m.LogTerm = tt.index, tt.lt
			mustStep(t, r, m)
			want := mVoteResp
			if tt.ty == mPreVote {
				want = mPreResp
			}
			resps := msgsOfType(drainMsgs(r), want)
			if len(resps) != 1 || resps[0].Reject != tt.wreject {
				t.Fatalf("responses %v, want reject=%v", resps, tt.wreject)
			}
			if tt.term == 1 && resps[0].Term != 2 {
				t.Fatalf("a stale request is refused with term %d, want ours (2)", resps[0].Term)
			}
			if r.Term() != tt.wterm || r.Status().Vote != tt.wvote {
				t.Fatalf("term %d vote %d, want %d %d", r.Term(), r.Status().Vote, tt.wterm, tt.wvote)
			}
		})
	}
}

// TestCheckQuorumLeaderStepsDown: a leader that has not heard from a
// quorum within an election timeout steps down.
func TestCheckQuorumLeaderStepsDown(t *testing.T) {
	nw := newNetwork(t, 3, withCheckQuorum)
	nw.elect(1)
	nw.isolate(1)
	// The first check may count what was heard before the partition; the
	// second one, an election timeout later, cannot.
	nw.tick(2*nw.raft(1).electionTimeout(), 1)
	if r := nw.raft(1); r.Role() != Follower || r.Leader() != 0 {
		t.Fatalf("isolated leader is %s (leader %d)", r.Role(), r.Leader())
	}
	// Without CheckQuorum it stays leader.
	nw = newNetwork(t, 3)
	nw.elect(1)
	nw.isolate(1)
	nw.tick(5*nw.raft(1).electionTimeout(), 1)
	if r := nw.raft(1); r.Role() != Leader {
		t.Fatalf("isolated leader without CheckQuorum is %s", r.Role())
	}
}

// TestCheckQuorumLeaderStaysWithQuorum: one follower down is not enough to
// depose a leader of 3.
func TestCheckQuorumLeaderStaysWithQuorum(t *testing.T) {
	nw := newNetwork(t, 3, withCheckQuorum)
	nw.elect(1)
	nw.isolate(3)
	nw.tick(3*nw.raft(1).electionTimeout(), 1, 2)
	if r := nw.raft(1); r.Role() != Leader {
		t.Fatalf("leader with a quorum is %s", r.Role())
	}
}

// TestInLeaseFollowerIgnoresVoteRequests: with CheckQuorum, a follower that
// heard from its leader within an election timeout ignores vote requests of
// a higher term (no answer, no term change).
func TestInLeaseFollowerIgnoresVoteRequests(t *testing.T) {
	for _, ty := range []messages.MessageType{mVote, mPreVote} {
		nw := newNetwork(t, 3, withCheckQuorum)
		nw.elect(1)
		f := nw.raft(2)
		term := f.Term()
		m := msg(ty, 3, 2, term+5)
		m.Index, m.LogTerm = 100, 100
		mustStep(t, f, m)
		if f.Term() != term || len(drainMsgs(f)) != 0 {
			t.Fatalf("%s: term %d, want %d and no answer", ty, f.Term(), term)
		}
		// Once the lease runs out (no word from the leader for an election
		// timeout), the request is heard.
		for range f.electionTimeout() {
			f.electionElapsed++
		}
		mustStep(t, f, m)
		if ty == mVote && f.Term() != term+5 {
			t.Fatalf("vote out of lease: term %d", f.Term())
		}
		if len(drainMsgs(f)) != 1 {
			t.Fatalf("%s out of lease: no answer", ty)
		}
	}
}

// TestCheckQuorumStaleLeaderLearnsTerm: a leader deposed while partitioned
// learns the new term from the answer to its stale append.
func TestCheckQuorumStaleLeaderLearnsTerm(t *testing.T) {
	r := newTestRaft(t, 1, []uint64{1, 2, 3}, withPreVote, withCheckQuorum)
	becomeRole(t, r, Leader) // term 2
	f := newTestRaft(t, 2, []uint64{1, 2, 3}, withPreVote, withCheckQuorum)
	f.becomeFollower(5, 3, "test")
	drain(f)
	m := msg(mHeartbeat, 1, 2, 2)
	mustStep(t, f, m)
	resps := drainMsgs(f)
	if len(resps) != 1 || resps[0].Type != mAppResp || resps[0].Term != 5 {
		t.Fatalf("answer to a stale heartbeat %v", resps)
	}
	mustStep(t, r, resps[0])
	if r.Role() != Follower || r.Term() != 5 {
		t.Fatalf("stale leader %s at %d", r.Role(), r.Term())
	}
}

// TestStaleAppendAnsweredWhateverTheSettings: settings change through the
// log, so a node that missed the change that turned CheckQuorum on can
// still run with both PreVote and CheckQuorum off while the leader holds a
// lease. Its vote requests are ignored in the lease; were it to ignore the
// leader's appends of a lower term too, it would campaign forever (found
// by the whole-system simulator). A stale append is answered with our term
// whatever the settings (§5.1: a stale request is rejected).
func TestStaleAppendAnsweredWhateverTheSettings(t *testing.T) {
	for _, ty := range []messages.MessageType{mHeartbeat, mApp} {
		r := newTestRaft(t, 1, []uint64{1, 2, 3}, withPreVote, withCheckQuorum)
		becomeRole(t, r, Leader)                  // term 2
		f := newTestRaft(t, 2, []uint64{1, 2, 3}) // neither PreVote nor CheckQuorum
		f.becomeFollower(9, 0, "test")
		drain(f)
		mustStep(t, f, msg(ty, 1, 2, 2))
		resps := drainMsgs(f)
		if len(resps) != 1 || resps[0].Type != mAppResp || resps[0].Term != 9 {
			t.Fatalf("answer to a stale %s: %v", ty, resps)
		}
		mustStep(t, r, resps[0])
		if r.Role() != Follower || r.Term() != 9 {
			t.Fatalf("stale leader %s at %d", r.Role(), r.Term())
		}
	}
}

// TestLeaderTransferThroughLease: the vote requests of a leadership
// transfer are granted even by followers in a lease.
func TestLeaderTransferThroughLease(t *testing.T) {
	nw := newNetwork(t, 3, withPreVote, withCheckQuorum)
	nw.elect(1)
	term := nw.raft(1).Term()
	if err := nw.raft(1).TransferLeadership(2); err != nil {
		t.Fatal(err)
	}
	nw.stabilize()
	if nw.leader() != 2 || nw.raft(2).Term() != term+1 {
		t.Fatalf("leader %d at term %d, want 2 at %d", nw.leader(), nw.raft(2).Term(), term+1)
	}
	for _, id := range nw.ids {
		if nw.raft(id).Leader() != 2 {
			t.Fatalf("node %d follows %d", id, nw.raft(id).Leader())
		}
	}
}
