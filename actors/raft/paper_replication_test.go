package raft

// Tests named after the Raft paper (see paper_test.go): log replication,
// §5.3 and Figure 7.

import (
	"slices"
	"testing"

	"github.com/flotilla-raft/flotilla/messages"
)

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
