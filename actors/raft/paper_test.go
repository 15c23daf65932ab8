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

// TestLeaderStartReplication_5_3: a leader appends a proposal to its log and
// sends it to followers in AppendEntries carrying the previous index and term
// and its commit index.
func TestLeaderStartReplication_5_3(t *testing.T) {
	r := newTestRaft(t, 1, []uint64{1, 2, 3})
	becomeRole(t, r, Leader) // noop at 2
	acceptAll(t, r)
	li := r.LastIndex()
	idx, term, err := r.Propose(&messages.Entry{Data: []byte("x")})
	if err != nil || idx != li+1 || term != 2 {
		t.Fatalf("Propose = %d, %d, %v; want %d, 2, nil", idx, term, err, li+1)
	}
	apps := msgsOfType(drainMsgs(r), mApp)
	if len(apps) != 2 {
		t.Fatalf("appends %v, want 2", apps)
	}
	for _, m := range apps {
		if m.Index != li || m.LogTerm != 2 || m.Commit != li || len(m.Entries) != 1 || string(m.Entries[0].Data) != "x" || m.Entries[0].Index != li+1 {
			t.Fatalf("append %v", m)
		}
	}
}

// acceptAll acknowledges everything the leader has, from every follower.
func acceptAll(t *testing.T, r *Raft) {
	t.Helper()
	drain(r)
	for _, id := range r.Members() {
		if id != r.ID() {
			m := msg(mAppResp, id, r.ID(), r.Term())
			m.Index = r.LastIndex()
			mustStep(t, r, m)
		}
	}
	drain(r)
}

// TestLeaderCommitEntry_5_3: once an entry is replicated on a majority the
// leader commits it, hands it out for applying and tells followers the new
// commit index.
func TestLeaderCommitEntry_5_3(t *testing.T) {
	r := newTestRaft(t, 1, []uint64{1, 2, 3})
	becomeRole(t, r, Leader)
	acceptAll(t, r)
	idx, _, _ := r.Propose(&messages.Entry{Data: []byte("x")})
	drain(r)
	m := msg(mAppResp, 2, 1, 2)
	m.Index = idx
	mustStep(t, r, m)
	msgs, committed := drain(r)
	if r.Committed() != idx {
		t.Fatalf("commit %d, want %d", r.Committed(), idx)
	}
	if len(committed) != 1 || string(committed[0].Data) != "x" {
		t.Fatalf("committed %v, want [x]", committed)
	}
	apps := msgsOfType(msgs, mApp)
	if len(apps) != 2 {
		t.Fatalf("appends %v, want the new commit to both followers", msgs)
	}
	for _, a := range apps {
		if a.Commit != idx {
			t.Fatalf("append %v, want commit %d", a, idx)
		}
	}
}

// TestLeaderAcknowledgeCommit_5_3: an entry commits once a majority
// (including the leader) has it.
func TestLeaderAcknowledgeCommit_5_3(t *testing.T) {
	tests := []struct {
		size      int
		acceptors []uint64
		want      bool
	}{
		{1, nil, true},
		{3, nil, false},
		{3, []uint64{2}, true},
		{3, []uint64{2, 3}, true},
		{5, nil, false},
		{5, []uint64{2}, false},
		{5, []uint64{2, 3}, true},
		{5, []uint64{2, 3, 4, 5}, true},
	}
	for i, tt := range tests {
		var peers []uint64
		for id := 1; id <= tt.size; id++ {
			peers = append(peers, uint64(id))
		}
		r := newTestRaft(t, 1, peers)
		becomeRole(t, r, Leader)
		acceptAll(t, r)
		idx, _, _ := r.Propose(&messages.Entry{Data: []byte("x")})
		drain(r)
		for _, id := range tt.acceptors {
			m := msg(mAppResp, id, 1, 2)
			m.Index = idx
			mustStep(t, r, m)
		}
		if got := r.Committed() == idx; got != tt.want {
			t.Errorf("#%d: committed = %v, want %v", i, got, tt.want)
		}
	}
}

// TestLeaderCommitPrecedingEntries_5_3: committing an entry of its term
// commits every preceding entry, including those of earlier leaders.
func TestLeaderCommitPrecedingEntries_5_3(t *testing.T) {
	cc := clusterConfig([]uint64{1, 2, 3}, nil)
	for i, terms := range [][]uint64{{1}, {1, 2}, {1, 1, 2}, {1, 2, 2}} {
		r := newRaftWithLog(t, 1, 2, logOfTerms(t, cc, terms...))
		becomeRole(t, r, Leader) // term 3
		li := r.LastIndex()
		m := msg(mAppResp, 2, 1, 3)
		m.Index = li
		mustStep(t, r, m)
		_, committed := drain(r)
		if r.Committed() != li {
			t.Fatalf("#%d: commit %d, want %d", i, r.Committed(), li)
		}
		if got := termsOf(committed); !slices.Equal(got, append(slices.Clone(terms[1:]), 3)) {
			t.Fatalf("#%d: committed terms %v, want %v then the noop", i, got, terms[1:])
		}
	}
}

// TestFollowerCommitEntry_5_3: a follower commits what the leader's commit
// index covers, in log order.
func TestFollowerCommitEntry_5_3(t *testing.T) {
	tests := []struct {
		n      int // entries sent after index 1
		commit uint64
	}{
		{1, 2}, {2, 3}, {2, 2}, {1, 1}, {3, 9}, // 9 is past the end: commit up to the last new entry
	}
	for i, tt := range tests {
		r := newTestRaft(t, 1, []uint64{1, 2, 3})
		drain(r)
		m := msg(mApp, 2, 1, 2)
		m.Index, m.LogTerm, m.Commit = 1, 1, tt.commit
		for k := range tt.n {
			m.Entries = append(m.Entries, &messages.Entry{Term: 2, Index: uint64(2 + k), Data: []byte{byte(k)}})
		}
		mustStep(t, r, m)
		_, committed := drain(r)
		want := min(tt.commit, uint64(1+tt.n))
		if r.Committed() != want {
			t.Errorf("#%d: commit %d, want %d", i, r.Committed(), want)
		}
		if len(committed) != int(want-1) {
			t.Errorf("#%d: handed out %d entries, want %d", i, len(committed), want-1)
		}
	}
}

// TestFollowerCheckMsgApp_5_3: a follower refuses AppendEntries whose
// previous index/term it does not have, with a hint for the leader.
func TestFollowerCheckMsgApp_5_3(t *testing.T) {
	cc := clusterConfig([]uint64{1, 2, 3}, nil)
	tests := []struct {
		term, index uint64
		windex      uint64
		wreject     bool
		whint       uint64
		whintTerm   uint64
	}{
		// the previous entry matches a committed entry
		{0, 0, 1, false, 0, 0},
		{1, 1, 1, false, 0, 0},
		{2, 3, 3, false, 0, 0},
		// the previous entry matches
		{2, 2, 2, false, 0, 0},
		// unmatched: the term differs
		{3, 3, 3, true, 3, 2},
		// unmatched: past the end
		{3, 4, 4, true, 3, 2},
	}
	for i, tt := range tests {
		r := newRaftWithLog(t, 1, 2, logOfTerms(t, cc, 1, 2, 2))
		r.log.committed = 1
		m := msg(mApp, 2, 1, 2)
		m.Index, m.LogTerm = tt.index, tt.term
		mustStep(t, r, m)
		resps := msgsOfType(drainMsgs(r), mAppResp)
		if len(resps) != 1 {
			t.Fatalf("#%d: responses %v", i, resps)
		}
		got := resps[0]
		if got.Reject != tt.wreject || got.Index != tt.windex || got.RejectHint != tt.whint || got.LogTerm != tt.whintTerm {
			t.Errorf("#%d: response %v, want reject=%v index=%d hint=%d/%d", i, got, tt.wreject, tt.windex, tt.whint, tt.whintTerm)
		}
	}
}

// TestFollowerAppendEntries_5_3: a follower deletes a conflicting suffix and
// appends the new entries; entries it already has are kept.
func TestFollowerAppendEntries_5_3(t *testing.T) {
	cc := clusterConfig([]uint64{1, 2, 3}, nil)
	tests := []struct {
		index, term uint64
		ents        []uint64 // terms of the entries sent after index
		want        []uint64
	}{
		{3, 2, []uint64{3}, []uint64{1, 2, 2, 3}},
		{2, 2, []uint64{3, 4}, []uint64{1, 2, 3, 4}},
		{1, 1, []uint64{2}, []uint64{1, 2, 2}},
		{1, 1, []uint64{3}, []uint64{1, 3}},
		{1, 1, []uint64{2, 2, 2, 3}, []uint64{1, 2, 2, 2, 3}},
	}
	for i, tt := range tests {
		r := newRaftWithLog(t, 1, 2, logOfTerms(t, cc, 1, 2, 2))
		drain(r)
		m := msg(mApp, 2, 1, 4)
		m.Index, m.LogTerm = tt.index, tt.term
		for k, term := range tt.ents {
			m.Entries = append(m.Entries, &messages.Entry{Term: term, Index: tt.index + 1 + uint64(k)})
		}
		mustStep(t, r, m)
		if got := logTerms(t, r); !slices.Equal(got, tt.want) {
			t.Errorf("#%d: log terms %v, want %v", i, got, tt.want)
		}
		rd := r.Ready()
		var wantUnstable []uint64
		for k, term := range tt.want {
			if uint64(k+1) > tt.index && (uint64(k+1) > 3 || term != []uint64{1, 2, 2}[k]) {
				wantUnstable = append(wantUnstable, term)
			}
		}
		if got := termsOf(rd.Entries); !slices.Equal(got, wantUnstable) {
			t.Errorf("#%d: entries to persist %v, want %v", i, got, wantUnstable)
		}
	}
}

// figure7Leader is the leader's log of Figure 7 (term 8 once elected).
var figure7Leader = []uint64{1, 1, 1, 4, 4, 5, 5, 6, 6, 6}

// figure7Followers are the follower logs (a)-(f) of Figure 7.
var figure7Followers = map[string][]uint64{
	"a": {1, 1, 1, 4, 4, 5, 5, 6, 6},
	"b": {1, 1, 1, 4},
	"c": {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6},
	"d": {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7},
	"e": {1, 1, 1, 4, 4, 4, 4},
	"f": {1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3},
}

// TestLeaderSyncFollowerLog_Figure7: whatever the follower's log, the leader
// (term 8) brings it to its own: missing entries are sent, extraneous and
// conflicting ones are deleted.
func TestLeaderSyncFollowerLog_Figure7(t *testing.T) {
	cc := clusterConfig([]uint64{1, 2, 3}, nil)
	for _, name := range slices.Sorted(mapKeys(figure7Followers)) {
		t.Run(name, func(t *testing.T) {
			nw := &network{t: t, nodes: map[uint64]*testNode{}, cut: map[[2]uint64]bool{}}
			lead := logOfTerms(t, cc, figure7Leader...)
			nw.addNode(testConfig(1, nil), InitialState{HardState: &messages.HardState{Term: 7, Commit: 1}, Entries: lead})
			nw.addNode(testConfig(2, nil), InitialState{HardState: &messages.HardState{Term: 7, Commit: 1}, Entries: logOfTerms(t, cc, figure7Followers[name]...)})
			// The third voter votes for the leader: it has the leader's log
			// (a majority has the leader's log, as in the paper).
			nw.addNode(testConfig(3, nil), InitialState{HardState: &messages.HardState{Term: 7, Commit: 1}, Entries: lead})
			// Follower (d) would refuse its vote (its log is more up to
			// date); node 3 suffices. Let the leader win at term 8.
			nw.raft(1).term = 7
			nw.elect(1)
			if nw.raft(1).Term() != 8 {
				t.Fatalf("leader term %d, want 8", nw.raft(1).Term())
			}
			nw.propose(1, "after")
			nw.checkLogsMatch()
			want := append(slices.Clone(figure7Leader), 8, 8)
			if got := logTerms(t, nw.raft(2)); !slices.Equal(got, want) {
				t.Fatalf("follower log %v, want %v", got, want)
			}
			if got := nw.nodes[2].appliedData(); len(got) == 0 || got[len(got)-1] != "after" {
				t.Fatalf("follower applied %v", got)
			}
		})
	}
}

// TestFastBacktracking_Figure7 counts the rejected probes the leader needs
// to find each Figure 7 follower's match point: with the term hint, one
// round trip skips a whole term (§5.3, "the leader can ... bypass all of the
// conflicting entries in that term"), instead of one entry.
func TestFastBacktracking_Figure7(t *testing.T) {
	cc := clusterConfig([]uint64{1, 2, 3}, nil)
	tests := map[string]int{
		// The leader's first probe is (10, term 6), for its noop at 11.
		"a": 1, // ends at 9: hint (9, 6); next probe (9, 6) matches
		"b": 1, // ends at 4: hint (4, 4); next probe (4, 4) matches
		"c": 0, // has (10, 6); its extra entry 11 is overwritten
		"d": 0, // has (10, 6); entries 11-12 of term 7 are overwritten
		// hint (7, 4); the leader skips its terms 6 and 5 at once and
		// probes (5, 4), which matches: 1 round trip instead of 5.
		"e": 1,
		// hint (10, 3); the leader has nothing of term 2 or 3, it goes
		// back to (3, 1), which matches: 1 round trip instead of 7.
		"f": 1,
	}
	for _, name := range slices.Sorted(mapKeys(tests)) {
		t.Run(name, func(t *testing.T) {
			lead := logOfTerms(t, cc, figure7Leader...)
			r := newRaftWithLog(t, 1, 7, lead)
			r.becomeCandidate("test")
			r.becomeLeader("test") // term 8; noop at 11
			f := newRaftWithLog(t, 2, 7, logOfTerms(t, cc, figure7Followers[name]...))
			drain(f)
			rejections := 0
			pending := msgsOfType(drainMsgs(r), mApp)
			for round := 0; len(pending) > 0; round++ {
				if round > 20 {
					t.Fatalf("no convergence")
				}
				var next []*messages.Message
				for _, m := range pending {
					if m.To != 2 {
						continue
					}
					mustStep(t, f, m)
					for _, resp := range msgsOfType(drainMsgs(f), mAppResp) {
						if resp.Reject {
							rejections++
						}
						mustStep(t, r, resp)
					}
					next = append(next, msgsOfType(drainMsgs(r), mApp)...)
				}
				pending = next
				if f.LastIndex() == r.LastIndex() && f.Committed() == r.Committed() && r.Committed() == r.LastIndex() {
					break
				}
			}
			if got := logTerms(t, f); !slices.Equal(got, append(slices.Clone(figure7Leader), 8)) {
				t.Fatalf("follower log %v", got)
			}
			if want := tests[name]; rejections != want {
				t.Errorf("%d rejected probes, want %d", rejections, want)
			}
		})
	}
}

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
		e, _ := nw.raft(2).Entries(2, 3)
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
