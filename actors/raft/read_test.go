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
	nw.raft(1).ReadIndex([]byte("before-acks"))
	if rs := nw.raft(1).Ready().ReadStates; len(rs) != 0 {
		t.Fatalf("lease read before any heartbeat was acknowledged: %v", rs)
	}
	nw.stabilize()
	nw.tick(1) // a heartbeat round: the lease starts
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

// newLeaseNetwork is a cluster of voters 1, 2, 3 configured for lease
// reads, with the given settings.
func newLeaseNetwork(t *testing.T, opts ...func(*messages.Settings)) *network {
	cc := clusterConfig([]uint64{1, 2, 3}, nil, opts...)
	return newNetworkWith(t, cc, []uint64{1, 2, 3}, func(c *Config) { c.ReadOnly = ReadOnlyLeaseBased })
}

// TestLeaseReadNotStaleAfterPartition: a lease-based leader cut off from
// the others, with perfect clocks (every node ticks alike), must not answer
// a read once a new leader may have committed: the stale read
// (old leader of term 2 answering index 3 after the new leader of term 3
// committed index 5) is refused.
func TestLeaseReadNotStaleAfterPartition(t *testing.T) {
	nw := newLeaseNetwork(t, withCheckQuorum, withPreVote)
	nw.elect(1)
	nw.propose(1, "a")
	nw.tick(3) // heartbeats: the lease is fresh
	nw.isolate(1)
	var newLead uint64
	for i := 0; i < 100 && newLead == 0; i++ {
		nw.tick(1)
		for _, id := range []uint64{2, 3} {
			if r := nw.raft(id); r.Role() == Leader {
				if t2, _ := r.log.term(r.Committed()); t2 == r.Term() {
					newLead = id
				}
			}
		}
	}
	if newLead == 0 {
		t.Fatal("no new leader committed within 100 ticks")
	}
	nw.propose(newLead, "b")
	committed := nw.raft(newLead).Committed()
	if nw.raft(1).Role() != Leader {
		t.Fatal("the old leader stepped down before the new one committed: this schedule no longer tests the stale window")
	}
	nw.raft(1).ReadIndex([]byte("stale?"))
	nw.stabilize()
	for _, rs := range nw.nodes[1].reads {
		if rs.Index < committed {
			t.Fatalf("old leader (term %d) served read index %d after leader %d (term %d) committed %d",
				nw.raft(1).Term(), rs.Index, newLead, nw.raft(newLead).Term(), committed)
		}
	}
}

// TestLeaseReadNeedsCheckQuorumNow: lease reads stop when CheckQuorum is
// turned off in the settings in force (the Config only asked for them).
func TestLeaseReadNeedsCheckQuorumNow(t *testing.T) {
	nw := newLeaseNetwork(t, withCheckQuorum)
	nw.elect(1)
	nw.tick(2)
	off := clusterConfig([]uint64{1, 2, 3}, nil)
	if _, err := nw.raft(1).ProposeConfig(off); err != nil {
		t.Fatal(err)
	}
	nw.stabilize()
	nw.tick(2)
	if nw.raft(1).settings().CheckQuorum {
		t.Fatal("CheckQuorum still on")
	}
	nw.raft(1).ReadIndex([]byte("no-lease"))
	rd := nw.raft(1).Ready()
	if len(rd.ReadStates) != 0 || len(msgsOfType(rd.Messages, mHeartbeat)) == 0 {
		t.Fatalf("read served at once without CheckQuorum: states %v", rd.ReadStates)
	}
	nw.queue = append(nw.queue, rd.Messages...)
	nw.stabilize()
	if len(nw.nodes[1].reads) != 1 {
		t.Fatalf("read not served by a heartbeat round: %v", nw.nodes[1].reads)
	}
}

// TestLeaseReadRefusedOnceTransferBegins: the transferee's election ignores
// leases, so a leader that sent TimeoutNow trusts none for its term.
func TestLeaseReadRefusedOnceTransferBegins(t *testing.T) {
	nw := newLeaseNetwork(t, withCheckQuorum, withPreVote)
	nw.elect(1)
	nw.tick(1)
	nw.filter = func(m *messages.Message) bool { return m.Type != messages.MessageType_MSG_TIMEOUT_NOW }
	if err := nw.raft(1).TransferLeadership(2); err != nil {
		t.Fatal(err)
	}
	nw.stabilize()
	nw.raft(1).ReadIndex([]byte("during-transfer"))
	if rs := nw.raft(1).Ready().ReadStates; len(rs) != 0 {
		t.Fatalf("lease read during a transfer: %v", rs)
	}
}

// TestLeaseHolderDoesNotHelpElectAnother: a follower inside a leader's
// lease ignores a Campaign request, and so does a node that restarted
// with state, until an election timeout passed: either could otherwise
// help elect a leader while the old one still serves lease reads.
func TestLeaseHolderDoesNotHelpElectAnother(t *testing.T) {
	nw := newLeaseNetwork(t, withCheckQuorum, withPreVote)
	nw.elect(1)
	nw.propose(1, "a")
	nw.tick(2)
	nw.isolate(1)
	nw.crash(2) // restarts from its storage
	for _, id := range []uint64{2, 3} {
		nw.raft(id).Campaign()
		if r := nw.raft(id); r.Role() != Follower {
			t.Fatalf("node %d campaigned inside the lease: %s", id, r.Role())
		}
	}
	et := nw.raft(3).electionTimeout()
	nw.tick(2*et, 2, 3)
	if l := nw.leader(); l != 2 && l != 3 {
		t.Fatalf("no new leader among 2 and 3 after the lease: %d", l)
	}
}
