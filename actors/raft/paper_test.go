package raft

// Tests named after the sections and figures of the Raft paper ("In Search
// of an Understandable Consensus Algorithm", extended version), in the
// style of etcd-io/raft's raft_paper_test.go. Each one checks one rule of
// the paper on one node, by stepping messages into it and reading what it
// hands out, or on a small network.
//
// Every node is bootstrapped: entry 1 (term 1) is the configuration, so a
// fresh node starts at term 1 with a log of one committed entry.

import (
	"slices"
	"testing"

	"github.com/flotilla-raft/flotilla/messages"
)

const (
	mApp       = messages.MessageType_MSG_APPEND
	mAppResp   = messages.MessageType_MSG_APPEND_RESP
	mVote      = messages.MessageType_MSG_VOTE
	mVoteResp  = messages.MessageType_MSG_VOTE_RESP
	mPreVote   = messages.MessageType_MSG_PRE_VOTE
	mPreResp   = messages.MessageType_MSG_PRE_VOTE_RESP
	mHeartbeat = messages.MessageType_MSG_HEARTBEAT
	mHBResp    = messages.MessageType_MSG_HEARTBEAT_RESP
	mSnap      = messages.MessageType_MSG_SNAPSHOT
	mTimeout   = messages.MessageType_MSG_TIMEOUT_NOW
	mReadIndex = messages.MessageType_MSG_READ_INDEX
	mReadResp  = messages.MessageType_MSG_READ_INDEX_RESP
)

// becomeRole puts a fresh node in role (term 2 for candidate and leader)
// and drains what that produced.
func becomeRole(t *testing.T, r *Raft, role Role) {
	t.Helper()
	switch role {
	case Follower:
	case PreCandidate:
		r.becomePreCandidate("test")
	case Candidate:
		r.becomeCandidate("test")
	case Leader:
		r.becomeCandidate("test")
		r.becomeLeader("test")
	}
	drain(r)
}

// TestFollowerUpdateTermFromMessage_5_1 and its siblings: a node that sees
// a higher term adopts it and becomes a follower (§5.1); when the message
// comes from a leader, it learns the leader.
func TestFollowerUpdateTermFromMessage_5_1(t *testing.T) { testUpdateTermFromMessage(t, Follower) }
func TestCandidateUpdateTermFromMessage_5_1(t *testing.T) {
	testUpdateTermFromMessage(t, Candidate)
}
func TestPreCandidateUpdateTermFromMessage_5_1(t *testing.T) {
	testUpdateTermFromMessage(t, PreCandidate)
}
func TestLeaderUpdateTermFromMessage_5_1(t *testing.T) { testUpdateTermFromMessage(t, Leader) }

func testUpdateTermFromMessage(t *testing.T, role Role) {
	for _, ty := range []messages.MessageType{mApp, mHeartbeat, mVoteResp, mAppResp} {
		t.Run(ty.String(), func(t *testing.T) {
			r := newTestRaft(t, 1, []uint64{1, 2, 3})
			becomeRole(t, r, role)
			m := msg(ty, 2, 1, 5)
			if ty == mApp {
				m.Index, m.LogTerm = 1, 1
			}
			mustStep(t, r, m)
			if r.Term() != 5 || r.Role() != Follower {
				t.Fatalf("term %d role %s, want 5 follower", r.Term(), r.Role())
			}
			wantLead := uint64(0)
			if ty == mApp || ty == mHeartbeat {
				wantLead = 2
			}
			if r.Leader() != wantLead {
				t.Fatalf("leader %d, want %d", r.Leader(), wantLead)
			}
			if r.Status().Vote != 0 {
				t.Fatalf("vote %d in a new term, want none", r.Status().Vote)
			}
		})
	}
}

// TestRejectStaleTermMessage_5_1: a message of an older term is ignored,
// except that a stale leader's append or heartbeat and a stale vote
// request are answered with our term (Figure 2: "reply false if term <
// currentTerm"), so that the sender catches up.
func TestRejectStaleTermMessage_5_1(t *testing.T) {
	for _, ty := range []messages.MessageType{mApp, mHeartbeat, mVote, mVoteResp, mAppResp, mSnap, mTimeout} {
		r := newTestRaft(t, 1, []uint64{1, 2, 3})
		becomeRole(t, r, Candidate) // term 2
		m := msg(ty, 2, 1, 1)
		m.Index, m.LogTerm, m.Commit = 1, 1, 1
		mustStep(t, r, m)
		if r.Term() != 2 || r.Role() != Candidate {
			t.Fatalf("%s: term %d role %s, want 2 candidate", ty, r.Term(), r.Role())
		}
		msgs := drainMsgs(r)
		if want := map[messages.MessageType]messages.MessageType{mApp: mAppResp, mHeartbeat: mAppResp, mVote: mVoteResp}[ty]; want != 0 {
			if len(msgs) != 1 || msgs[0].Type != want || msgs[0].Term != 2 || msgs[0].To != 2 || ty == mVote && !msgs[0].Reject {
				t.Fatalf("%s: sent %v, want a %s of term 2", ty, msgs, want)
			}
			continue
		}
		if len(msgs) != 0 {
			t.Fatalf("%s: sent %v for a stale message (PreVote and CheckQuorum off)", ty, msgs)
		}
	}
}

// TestStartAsFollower_5_2: servers start as followers.
func TestStartAsFollower_5_2(t *testing.T) {
	r := newTestRaft(t, 1, []uint64{1, 2, 3})
	if r.Role() != Follower || r.Term() != 1 || r.Leader() != 0 {
		t.Fatalf("role %s term %d leader %d, want follower 1 0", r.Role(), r.Term(), r.Leader())
	}
}

// TestLeaderBcastBeat_5_2: a leader sends heartbeats to every follower each
// heartbeat timeout.
func TestLeaderBcastBeat_5_2(t *testing.T) {
	r := newTestRaft(t, 1, []uint64{1, 2, 3})
	becomeRole(t, r, Leader)
	r.Tick() // heartbeat timeout is 1 tick
	hbs := msgsOfType(drainMsgs(r), mHeartbeat)
	if len(hbs) != 2 {
		t.Fatalf("heartbeats %v, want one to each of 2 and 3", hbs)
	}
	for i, m := range hbs {
		if m.To != uint64(i+2) || m.Term != 2 || m.From != 1 {
			t.Fatalf("heartbeat %v", m)
		}
	}
}

// TestFollowerStartElection_5_2 and TestCandidateStartNewElection_5_2: on an
// election timeout a follower (or a candidate whose election timed out)
// increments its term, votes for itself and asks every other voter.
func TestFollowerStartElection_5_2(t *testing.T) { testNonleaderStartElection(t, Follower) }
func TestCandidateStartNewElection_5_2(t *testing.T) {
	testNonleaderStartElection(t, Candidate)
}

func testNonleaderStartElection(t *testing.T, role Role) {
	r := newTestRaft(t, 1, []uint64{1, 2, 3})
	becomeRole(t, r, role)
	term := r.Term()
	for range 2 * r.electionTimeout() {
		r.Tick()
	}
	if r.Term() != term+1 || r.Role() != Candidate || r.Status().Vote != 1 {
		t.Fatalf("term %d role %s vote %d, want %d candidate 1", r.Term(), r.Role(), r.Status().Vote, term+1)
	}
	votes := msgsOfType(drainMsgs(r), mVote)
	if len(votes) != 2 || votes[0].To != 2 || votes[1].To != 3 {
		t.Fatalf("vote requests %v, want to 2 and 3", votes)
	}
	for _, m := range votes {
		if m.Term != term+1 || m.Index != 1 || m.LogTerm != 1 {
			t.Fatalf("vote request %v", m)
		}
	}
}

// TestLeaderElectionInOneRoundRPC_5_2: a candidate wins with a majority of
// votes, loses on a majority of rejections, and stays candidate otherwise.
func TestLeaderElectionInOneRoundRPC_5_2(t *testing.T) {
	tests := []struct {
		size  int
		votes map[uint64]bool
		want  Role
	}{
		{1, nil, Leader},
		{3, map[uint64]bool{2: true, 3: true}, Leader},
		{3, map[uint64]bool{2: true}, Leader},
		{5, map[uint64]bool{2: true, 3: true, 4: true, 5: true}, Leader},
		{5, map[uint64]bool{2: true, 3: true, 4: true}, Leader},
		{5, map[uint64]bool{2: true, 3: true}, Leader},
		{3, map[uint64]bool{2: false, 3: false}, Follower},
		{5, map[uint64]bool{2: false, 3: false, 4: false, 5: false}, Follower},
		{5, map[uint64]bool{2: true, 3: false, 4: false, 5: false}, Follower},
		{3, map[uint64]bool{}, Candidate},
		{5, map[uint64]bool{2: true}, Candidate},
		{5, map[uint64]bool{2: false, 3: false}, Candidate},
		{5, map[uint64]bool{}, Candidate},
	}
	for i, tt := range tests {
		var peers []uint64
		for id := 1; id <= tt.size; id++ {
			peers = append(peers, uint64(id))
		}
		r := newTestRaft(t, 1, peers)
		r.Campaign()
		drain(r)
		for _, id := range slices.Sorted(mapKeys(tt.votes)) {
			m := msg(mVoteResp, id, 1, r.Term())
			m.Reject = !tt.votes[id]
			mustStep(t, r, m)
		}
		if r.Role() != tt.want {
			t.Errorf("#%d: role %s, want %s", i, r.Role(), tt.want)
		}
		if r.Term() != 2 {
			t.Errorf("#%d: term %d, want 2", i, r.Term())
		}
	}
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestFollowerVote_5_2: a follower votes for at most one candidate per
// term, first come first served.
func TestFollowerVote_5_2(t *testing.T) {
	tests := []struct {
		vote, candidate uint64
		wreject         bool
	}{
		{0, 2, false},
		{0, 3, false},
		{2, 2, false},
		{3, 3, false},
		{2, 3, true},
		{3, 2, true},
	}
	for i, tt := range tests {
		r := newRaftWithLog(t, 1, 2, logOfTerms(t, clusterConfig([]uint64{1, 2, 3}, nil), 1))
		r.vote = tt.vote
		r.prevHS.vote = tt.vote
		m := msg(mVote, tt.candidate, 1, 2)
		m.Index, m.LogTerm = 1, 1
		mustStep(t, r, m)
		resps := msgsOfType(drainMsgs(r), mVoteResp)
		if len(resps) != 1 || resps[0].To != tt.candidate || resps[0].Reject != tt.wreject || resps[0].Term != 2 {
			t.Errorf("#%d: responses %v, want one with reject=%v", i, resps, tt.wreject)
		}
	}
}

// TestCandidateFallback_5_2: a candidate that hears from a leader of a term
// at least its own becomes its follower.
func TestCandidateFallback_5_2(t *testing.T) {
	for _, term := range []uint64{2, 3} {
		for _, ty := range []messages.MessageType{mApp, mHeartbeat} {
			r := newTestRaft(t, 1, []uint64{1, 2, 3})
			becomeRole(t, r, Candidate) // term 2
			m := msg(ty, 2, 1, term)
			m.Index, m.LogTerm = 1, 1
			mustStep(t, r, m)
			if r.Role() != Follower || r.Term() != term || r.Leader() != 2 {
				t.Errorf("%s term %d: role %s term %d leader %d, want follower of 2", ty, term, r.Role(), r.Term(), r.Leader())
			}
		}
	}
}

// TestFollowerElectionTimeoutRandomized_5_2 and the candidate variant: the
// election timeout is drawn in [et, 2et) and does take several values.
func TestFollowerElectionTimeoutRandomized_5_2(t *testing.T) {
	testNonleaderElectionTimeoutRandomized(t, Follower)
}
func TestCandidateElectionTimeoutRandomized_5_2(t *testing.T) {
	testNonleaderElectionTimeoutRandomized(t, Candidate)
}

func testNonleaderElectionTimeoutRandomized(t *testing.T, role Role) {
	r := newTestRaft(t, 1, []uint64{1, 2, 3})
	et := r.electionTimeout()
	seen := map[int]bool{}
	for range 50 * et {
		becomeRole(t, r, role)
		term := r.Term()
		ticks := 0
		for r.Term() == term {
			r.Tick()
			ticks++
		}
		drain(r)
		if ticks < et || ticks >= 2*et {
			t.Fatalf("election after %d ticks, want in [%d, %d)", ticks, et, 2*et)
		}
		seen[ticks] = true
	}
	if len(seen) < et/2 {
		t.Fatalf("timeouts seen %v: not randomized", seen)
	}
}

// TestFollowersElectionTimeoutNonconflict_5_2: with randomized timeouts,
// followers seldom time out in the same tick.
func TestFollowersElectionTimeoutNonconflict_5_2(t *testing.T) {
	const rounds = 200
	conflicts := 0
	for round := range rounds {
		var rs []*Raft
		for id := uint64(1); id <= 5; id++ {
			cfg := testConfig(id, clusterConfig([]uint64{1, 2, 3, 4, 5}, nil))
			cfg.Seed = int64(round)
			r, err := New(cfg, InitialState{})
			if err != nil {
				t.Fatal(err)
			}
			rs = append(rs, r)
		}
		for {
			fired := 0
			for _, r := range rs {
				r.Tick()
				if r.Role() != Follower {
					fired++
				}
			}
			if fired > 0 {
				if fired > 1 {
					conflicts++
				}
				break
			}
		}
	}
	if p := float64(conflicts) / rounds; p > 0.3 {
		t.Fatalf("%d of %d elections had simultaneous candidates", conflicts, rounds)
	}
}
