package raft

import (
	"errors"
	"slices"
	"testing"

	"github.com/flotilla-raft/flotilla/messages"
)

// ReadIndex (thesis §6.4).

func readContexts(rs []ReadState) []string {
	var out []string
	for _, r := range rs {
		out = append(out, string(r.Context))
	}
	return out
}

// TestReadIndexLeader: the leader answers a read index once a quorum
// answered a heartbeat carrying the request, at its commit index.
func TestReadIndexLeader(t *testing.T) {
	nw := newNetwork(t, 3)
	nw.elect(1)
	nw.propose(1, "a")
	l := nw.raft(1)
	if err := l.ReadIndex([]byte("r1")); err != nil {
		t.Fatal(err)
	}
	// Before any heartbeat answer: nothing.
	rd := l.Ready()
	hbs := msgsOfType(rd.Messages, mHeartbeat)
	if len(hbs) != 2 || string(hbs[0].Context) != "r1" || len(rd.ReadStates) != 0 {
		t.Fatalf("heartbeats %v read states %v", hbs, rd.ReadStates)
	}
	nw.queue = append(nw.queue, rd.Messages...)
	nw.stabilize()
	rs := nw.nodes[1].reads
	if len(rs) != 1 || string(rs[0].Context) != "r1" || rs[0].Index != l.Committed() {
		t.Fatalf("read states %v, want r1 at %d", rs, l.Committed())
	}
}

// TestReadIndexQuorumConfirmsQueue: the quorum answer for a later request
// also confirms the earlier ones; a repeated context is served once.
func TestReadIndexQuorumConfirmsQueue(t *testing.T) {
	r := newTestRaft(t, 1, []uint64{1, 2, 3})
	becomeRole(t, r, Leader)
	acceptAll(t, r)
	for _, ctx := range []string{"a", "b", "b", "c"} {
		if err := r.ReadIndex([]byte(ctx)); err != nil {
			t.Fatal(err)
		}
	}
	drain(r)
	// The heartbeat tick carries the last context.
	r.Tick()
	for _, m := range msgsOfType(drainMsgs(r), mHeartbeat) {
		if string(m.Context) != "c" {
			t.Fatalf("heartbeat context %q, want c", m.Context)
		}
	}
	ack := func(ctx string) {
		m := msg(mHBResp, 2, 1, 2)
		m.Context = []byte(ctx)
		mustStep(t, r, m)
	}
	ack("zzz") // unknown: ignored
	ack("b")
	rd := r.Ready()
	if got := readContexts(rd.ReadStates); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("read states %v, want a b", got)
	}
	ack("c")
	if got := readContexts(r.Ready().ReadStates); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("read states %v, want c", got)
	}
}

// TestReadIndexFollowerForwarded: a follower forwards a read index to the
// leader and gets the answer as a ReadState.
func TestReadIndexFollowerForwarded(t *testing.T) {
	nw := newNetwork(t, 3)
	nw.elect(1)
	nw.propose(1, "a")
	if err := nw.raft(2).ReadIndex([]byte("f")); err != nil {
		t.Fatal(err)
	}
	nw.stabilize()
	rs := nw.nodes[2].reads
	if len(rs) != 1 || string(rs[0].Context) != "f" || rs[0].Index != nw.raft(1).Committed() {
		t.Fatalf("follower read states %v", rs)
	}
	if len(nw.nodes[1].reads) != 0 {
		t.Fatalf("leader kept the follower's read: %v", nw.nodes[1].reads)
	}
	// Without a known leader a read cannot be served.
	r := newTestRaft(t, 1, []uint64{1, 2, 3})
	if err := r.ReadIndex([]byte("x")); !errors.Is(err, ErrNoLeader) {
		t.Fatalf("no leader: %v", err)
	}
}

// TestReadIndexPendingUntilCommitInTerm: a new leader does not know the
// commit index until it commits an entry of its own term: reads wait.
func TestReadIndexPendingUntilCommitInTerm(t *testing.T) {
	nw := newNetwork(t, 3)
	nw.elect(1)
	nw.propose(1, "a")
	// 2 becomes leader, but its noop is not acknowledged yet.
	nw.filter = func(m *messages.Message) bool { return m.Type != mAppResp }
	nw.elect(2)
	l := nw.raft(2)
	if err := l.ReadIndex([]byte("early")); err != nil {
		t.Fatal(err)
	}
	if err := nw.raft(3).ReadIndex([]byte("early-3")); err != nil {
		t.Fatal(err)
	}
	nw.stabilize()
	nw.tick(1, 2)
	if len(nw.nodes[2].reads)+len(nw.nodes[3].reads) != 0 {
		t.Fatalf("served before the first commit of the term: %v %v", nw.nodes[2].reads, nw.nodes[3].reads)
	}
	nw.filter = nil
	nw.tick(2, 2)
	want := l.Committed()
	if t2, _ := l.log.term(want); t2 != l.Term() {
		t.Fatalf("commit %d is of term %d", want, t2)
	}
	for id, ctx := range map[uint64]string{2: "early", 3: "early-3"} {
		rs := nw.nodes[id].reads
		if len(rs) != 1 || string(rs[0].Context) != ctx || rs[0].Index < 3 {
			t.Fatalf("node %d read states %v", id, rs)
		}
	}
}

// TestReadIndexIsolatedLeader: a leader cut from the quorum never confirms
// a read.
func TestReadIndexIsolatedLeader(t *testing.T) {
	nw := newNetwork(t, 3)
	nw.elect(1)
	nw.isolate(1)
	nw.raft(1).ReadIndex([]byte("stale?"))
	nw.tick(20, 1)
	if len(nw.nodes[1].reads) != 0 {
		t.Fatalf("isolated leader served %v", nw.nodes[1].reads)
	}
}

// TestReadIndexSingleVoterAndLease: a single voter and a lease-based leader
// answer at once, without a heartbeat round.
func TestReadIndexSingleVoterAndLease(t *testing.T) {
	nw := newNetwork(t, 1)
	nw.elect(1)
	nw.raft(1).ReadIndex([]byte("solo"))
	if rs := nw.raft(1).Ready().ReadStates; len(rs) != 1 || rs[0].Index != nw.raft(1).Committed() {
		t.Fatalf("single voter read states %v", rs)
	}

	cc := clusterConfig([]uint64{1, 2, 3}, nil, withCheckQuorum)
	nw = newNetworkWith(t, cc, []uint64{1, 2, 3}, func(c *Config) { c.ReadOnly = ReadOnlyLeaseBased })
	nw.elect(1)
	nw.raft(1).ReadIndex([]byte("lease"))
	rd := nw.raft(1).Ready()
	if len(rd.ReadStates) != 1 || len(msgsOfType(rd.Messages, mHeartbeat)) != 0 {
		t.Fatalf("lease read: states %v messages %v", rd.ReadStates, rd.Messages)
	}
	nw.raft(2).ReadIndex([]byte("lease-2"))
	nw.stabilize()
	if rs := nw.nodes[2].reads; len(rs) != 1 {
		t.Fatalf("follower lease read: %v", rs)
	}
}

// TestReadIndexFromNonMember: a read index from a node the leader does not
// track is dropped.
func TestReadIndexFromNonMember(t *testing.T) {
	r := newTestRaft(t, 1, []uint64{1, 2, 3})
	becomeRole(t, r, Leader)
	acceptAll(t, r)
	m := msg(mReadIndex, 9, 1, 2)
	m.Context = []byte("x")
	mustStep(t, r, m)
	if msgs := drainMsgs(r); len(msgs) != 0 {
		t.Fatalf("answered a non-member: %v", msgs)
	}
}
