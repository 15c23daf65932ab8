package raft

import (
	"errors"
	"slices"
	"testing"

	"github.com/flotilla-raft/flotilla/messages"
)

// Snapshots and log compaction (§7).

// lagBehind elects 1 in a cluster of 3, cuts 3 off and commits n entries
// without it.
func lagBehind(t *testing.T, n int) *network {
	nw := newNetwork(t, 3)
	nw.elect(1)
	nw.propose(1, "seen-by-3")
	nw.isolate(3)
	for range n {
		nw.propose(1, "missed")
	}
	return nw
}

// TestCompactAndSendSnapshotToLaggingPeer: a peer that needs entries the
// leader compacted away gets the snapshot, then the entries after it.
func TestCompactAndSendSnapshotToLaggingPeer(t *testing.T) {
	nw := lagBehind(t, 5)
	l := nw.raft(1)
	applied := l.Applied()
	nw.compact(1, "state@leader", 0)
	if l.FirstIndex() != applied+1 {
		t.Fatalf("first index %d after compacting at %d", l.FirstIndex(), applied)
	}
	if s := l.Snapshot(); s.Metadata.Index != applied || s.Metadata.Term != l.Term() || len(s.Metadata.Config.Voters) != 3 {
		t.Fatalf("snapshot %v", s.Metadata)
	}
	nw.heal()
	nw.tick(1, 1)
	if nw.countSent(mSnap, 1, 3) != 1 {
		t.Fatalf("%d snapshots sent to 3, want 1", nw.countSent(mSnap, 1, 3))
	}
	f := nw.raft(3)
	if f.FirstIndex() != applied+1 || string(nw.nodes[3].snapData) != "state@leader" {
		t.Fatalf("follower first index %d snapshot data %q", f.FirstIndex(), nw.nodes[3].snapData)
	}
	restored := false
	for _, ev := range nw.nodes[3].events {
		restored = restored || ev.Kind == EventSnapshotRestored && ev.Index == applied
	}
	if !restored {
		t.Fatal("no snapshot-restored event")
	}
	if st := l.Status(); st.Progress[2].State != StateReplicate || st.Progress[2].Match != l.LastIndex() {
		t.Fatalf("progress of 3 %+v", st.Progress[2])
	}
	nw.propose(1, "after")
	nw.checkLogsMatch()
	if got := nw.nodes[3].appliedData(); !slices.Equal(got, []string{"after"}) {
		t.Fatalf("3 applied %v after the snapshot", got)
	}
	// 3 restarts from its storage: snapshot and the entries after it.
	nw.crash(3)
	if r := nw.raft(3); r.FirstIndex() != applied+1 || r.LastIndex() != l.LastIndex() || !r.IsMember(1) {
		t.Fatalf("restarted: first %d last %d members %v", r.FirstIndex(), r.LastIndex(), r.Members())
	}
	nw.tick(1, 1)
	nw.propose(1, "after-restart")
	nw.checkLogsMatch()
	if got := nw.nodes[3].appliedData(); !slices.Contains(got, "after-restart") {
		t.Fatalf("3 applied %v", got)
	}
}

// TestCompactKeepsEntriesForSlowPeers: with keep entries retained, a peer a
// little behind gets entries, not a snapshot.
func TestCompactKeepsEntriesForSlowPeers(t *testing.T) {
	nw := lagBehind(t, 3)
	l := nw.raft(1)
	nw.compact(1, "state", 5)
	if l.FirstIndex() != l.Applied()-4 {
		t.Fatalf("first index %d, applied %d", l.FirstIndex(), l.Applied())
	}
	nw.heal()
	nw.tick(1, 1)
	if n := nw.countSent(mSnap, 1, 3); n != 0 {
		t.Fatalf("%d snapshots sent", n)
	}
	nw.checkLogsMatch()
	// Keeping more than the log holds compacts nothing.
	first := l.FirstIndex()
	nw.propose(1, "x")
	if err := l.Compact(l.Applied(), nil, 1000); err != nil || l.FirstIndex() != first {
		t.Fatalf("Compact: %v first %d", err, l.FirstIndex())
	}
}

// TestSnapshotLostIsRetried: a snapshot that is lost is sent again after an
// election timeout in snapshot state.
func TestSnapshotLostIsRetried(t *testing.T) {
	nw := lagBehind(t, 3)
	nw.compact(1, "state", 0)
	nw.heal()
	dropped := 0
	nw.filter = func(m *messages.Message) bool {
		if m.Type == mSnap && dropped == 0 {
			dropped++
			return false
		}
		return true
	}
	nw.tick(1, 1)
	if st := nw.raft(1).Status(); st.Progress[2].State != StateSnapshot {
		t.Fatalf("progress of 3 %+v", st.Progress[2])
	}
	nw.tick(nw.raft(1).electionTimeout()+1, 1)
	if nw.countSent(mSnap, 1, 3) != 1 || dropped != 1 {
		t.Fatalf("snapshots delivered %d dropped %d", nw.countSent(mSnap, 1, 3), dropped)
	}
	nw.checkLogsMatch()
}

// TestHandleSnapshot covers the follower's cases of InstallSnapshot.
func TestHandleSnapshot(t *testing.T) {
	cc := clusterConfig([]uint64{1, 2, 3}, nil)
	snap := func(index, term uint64) *messages.Message {
		m := msg(mSnap, 2, 1, 3)
		m.Snapshot = &messages.Snapshot{Metadata: &messages.SnapshotMetadata{Index: index, Term: term, Config: cc}}
		return m
	}
	tests := []struct {
		name     string
		m        *messages.Message
		wack     bool
		wackIdx  uint64
		wfirst   uint64
		wcommit  uint64
		wrestore bool
	}{
		{"no metadata", func() *messages.Message { m := snap(0, 0); m.Snapshot = nil; return m }(), false, 0, 1, 2, false},
		{"index 0", snap(0, 0), false, 0, 1, 2, false},
		{"older than commit", snap(2, 2), true, 2, 1, 2, false},
		{"matches the log: fast-forward", snap(4, 2), true, 4, 1, 4, false},
		{"conflicts with the log", snap(4, 3), true, 4, 5, 4, true},
		{"past the log", snap(9, 3), true, 9, 10, 9, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRaftWithLog(t, 1, 3, logOfTerms(t, cc, 1, 2, 2, 2, 2))
			r.log.committed = 2
			drain(r)
			mustStep(t, r, tt.m)
			rd := r.Ready()
			if (rd.Snapshot != nil) != tt.wrestore {
				t.Fatalf("snapshot handed out: %v", rd.Snapshot)
			}
			if rd.PersistID != 0 {
				r.Persisted(rd.PersistID)
			}
			acks := msgsOfType(append(rd.Messages, r.Ready().Messages...), mAppResp)
			if tt.wack != (len(acks) == 1) || (tt.wack && acks[0].Index != tt.wackIdx) {
				t.Fatalf("acks %v, want index %d", acks, tt.wackIdx)
			}
			if r.FirstIndex() != tt.wfirst || r.Committed() != tt.wcommit || r.Leader() != 2 {
				t.Fatalf("first %d commit %d leader %d", r.FirstIndex(), r.Committed(), r.Leader())
			}
		})
	}
	// A snapshot without a configuration keeps the one in force.
	r := newTestRaft(t, 1, []uint64{1, 2, 3})
	drain(r)
	m := msg(mSnap, 2, 1, 3)
	m.Snapshot = &messages.Snapshot{Metadata: &messages.SnapshotMetadata{Index: 5, Term: 3}}
	mustStep(t, r, m)
	if got := memberIDs(r.ClusterConfig().Voters); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("voters %v", got)
	}
}

// TestCompactErrors covers the refusals of Compact and Entries.
func TestCompactErrors(t *testing.T) {
	nw := newNetwork(t, 1)
	nw.elect(1)
	nw.propose(1, "a")
	r := nw.raft(1)
	if err := r.Compact(r.Applied()+1, nil, 0); err == nil {
		t.Fatal("compacted past applied")
	}
	if err := r.Compact(r.Applied(), nil, 0); err != nil {
		t.Fatal(err)
	}
	if err := r.Compact(r.Applied(), nil, 0); !errors.Is(err, ErrCompacted) {
		t.Fatalf("compact twice: %v", err)
	}
	if _, err := r.Entries(1, 2, 0); !errors.Is(err, ErrCompacted) {
		t.Fatalf("Entries below first: %v", err)
	}
	if _, err := r.Entries(r.FirstIndex(), r.LastIndex()+2, 0); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Entries past last: %v", err)
	}
	if _, err := r.log.term(r.LastIndex() + 1); !errors.Is(err, ErrUnavailable) {
		t.Fatal(err)
	}
}

// TestSnapshotConfigIsTheOneInForceAtItsIndex: a snapshot records the
// configuration in force at its index, not the latest.
func TestSnapshotConfigIsTheOneInForceAtItsIndex(t *testing.T) {
	nw := newNetworkConfig(t, clusterConfig([]uint64{1, 2, 3}, nil), []uint64{1, 2, 3, 4})
	nw.elect(1)
	l := nw.raft(1)
	before := nw.propose(1, "before")
	cfgIdx, err := l.ProposeConfig(clusterConfig([]uint64{1, 2, 3}, []uint64{4}))
	if err != nil {
		t.Fatal(err)
	}
	nw.stabilize()
	after := nw.propose(1, "after")
	if err := l.Compact(before, []byte("s1"), 0); err != nil {
		t.Fatal(err)
	}
	if got := memberIDs(l.Snapshot().Metadata.Config.Learners); len(got) != 0 {
		t.Fatalf("snapshot at %d has learners %v (config entry is at %d)", before, got, cfgIdx)
	}
	if err := l.Compact(after, []byte("s2"), 0); err != nil {
		t.Fatal(err)
	}
	if got := memberIDs(l.Snapshot().Metadata.Config.Learners); !slices.Equal(got, []uint64{4}) {
		t.Fatalf("snapshot at %d has learners %v", after, got)
	}
	// A node restored from that snapshot, then compacting before any new
	// config entry, keeps the snapshot's configuration.
	nw.isolate(2)
	nw.propose(1, "more")
	nw.propose(1, "more")
	nw.compact(1, "s3", 0)
	nw.heal()
	nw.tick(1, 1)
	f := nw.raft(2)
	nw.propose(1, "x")
	if err := f.Compact(f.Applied(), nil, 0); err != nil {
		t.Fatal(err)
	}
	if got := memberIDs(f.Snapshot().Metadata.Config.Learners); !slices.Equal(got, []uint64{4}) {
		t.Fatalf("follower snapshot learners %v", got)
	}
}

// TestNewFromStorage: New restores term, vote, commit, snapshot, entries
// and the applied index, and refuses a log with a gap.
func TestNewFromStorage(t *testing.T) {
	cc := clusterConfig([]uint64{1, 2, 3}, nil)
	snap := &messages.Snapshot{Metadata: &messages.SnapshotMetadata{Index: 5, Term: 2, Config: cc}}
	ents := []*messages.Entry{{Term: 2, Index: 6}, {Term: 3, Index: 7}, {Term: 3, Index: 8}}
	r, err := New(testConfig(1, nil), InitialState{
		HardState: &messages.HardState{Term: 3, Vote: 2, Commit: 7},
		Snapshot:  snap, Entries: ents, Applied: 6,
	})
	if err != nil {
		t.Fatal(err)
	}
	st := r.Status()
	if st.Term != 3 || st.Vote != 2 || st.Commit != 7 || st.Applied != 6 || st.FirstIndex != 6 || st.LastIndex != 8 || st.Role != Follower {
		t.Fatalf("status %+v", st)
	}
	_, committed := drain(r)
	if len(committed) != 1 || committed[0].Index != 7 {
		t.Fatalf("handed out %v, want entry 7 only", committed)
	}
	if _, err := New(testConfig(1, nil), InitialState{Snapshot: snap, Entries: ents[1:]}); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("gap after the snapshot: %v", err)
	}
	// A store that kept a tail of the log below its snapshot (Compact's
	// retained entries): those entries are covered by the snapshot.
	tail := append([]*messages.Entry{{Term: 1, Index: 3}, {Term: 2, Index: 4}, {Term: 2, Index: 5}}, ents...)
	r, err = New(testConfig(1, nil), InitialState{HardState: &messages.HardState{Term: 3, Commit: 7}, Snapshot: snap, Entries: tail})
	if err != nil {
		t.Fatalf("entries below the snapshot: %v", err)
	}
	if st := r.Status(); st.FirstIndex != 6 || st.LastIndex != 8 || st.Applied != 5 {
		t.Fatalf("status with entries below the snapshot %+v", st)
	}
	tail[2] = &messages.Entry{Term: 1, Index: 5}
	if _, err := New(testConfig(1, nil), InitialState{Snapshot: snap, Entries: tail}); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("stored entry at the snapshot's index with another term: %v", err)
	}
	bad := []*messages.Entry{{Term: 1, Index: 1, Type: messages.EntryType_ENTRY_CONFIG, Data: []byte{0xff}}}
	if _, err := New(testConfig(1, nil), InitialState{HardState: &messages.HardState{Term: 1, Commit: 1}, Entries: bad}); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("undecodable config entry: %v", err)
	}
	if _, err := New(Config{}, InitialState{}); err == nil {
		t.Fatal("New accepted an invalid Config")
	}
}

// TestCompactNeverMovesTheSnapshotBack: with a tail of the log kept below
// the snapshot, an index in that tail is still refused: the snapshot a
// lagging peer would be sent never goes back.
func TestCompactNeverMovesTheSnapshotBack(t *testing.T) {
	nw := newNetwork(t, 1)
	nw.elect(1)
	for _, d := range []string{"a", "b", "c", "d", "e"} {
		nw.propose(1, d)
	}
	r := nw.raft(1)
	hi := r.Applied()
	if err := r.Compact(hi, []byte("new"), 4); err != nil {
		t.Fatal(err)
	}
	if r.FirstIndex() >= hi-1 {
		t.Fatalf("first index %d: the tail below %d was not kept", r.FirstIndex(), hi)
	}
	if err := r.Compact(hi-1, []byte("old"), 0); !errors.Is(err, ErrCompacted) {
		t.Fatalf("Compact(%d) below the snapshot at %d: %v, want ErrCompacted", hi-1, hi, err)
	}
	if s := r.Snapshot(); s.GetMetadata().GetIndex() != hi || string(s.GetData()) != "new" {
		t.Fatalf("snapshot at %d with %q, want %d with \"new\"", s.GetMetadata().GetIndex(), s.GetData(), hi)
	}
}
