package raft

import (
	"strings"
	"testing"

	"github.com/flotilla-raft/flotilla/messages"
)

func quiesceNetwork(t *testing.T, opts ...func(*messages.Settings)) *network {
	t.Helper()
	ids := []uint64{1, 2, 3}
	nw := newNetworkWith(t, clusterConfig(ids, nil, opts...), ids, func(c *Config) {
		c.QuiesceTicks, c.QuiescedHeartbeatTicks = 5, 20
	})
	nw.elect(1)
	nw.propose(1, "a")
	return nw
}

func checkQuiesced(t *testing.T, nw *network, want bool) {
	t.Helper()
	for _, id := range nw.ids {
		if nd := nw.nodes[id]; !nd.down && nd.r.Quiesced() != want {
			t.Fatalf("node %d (%s) Quiesced() = %v, want %v", id, nd.r.Role(), nd.r.Quiesced(), want)
		}
	}
}

// An idle group quiesces after QuiesceTicks, then sends only one quiesce
// heartbeat per follower every QuiescedHeartbeatTicks; a proposal wakes it
// and commits.
func TestQuiesceIdleAndWakeOnProposal(t *testing.T) {
	nw := quiesceNetwork(t, withCheckQuorum, withPreVote)
	nw.tick(5)
	checkQuiesced(t, nw, true)
	before := len(nw.sent)
	nw.tick(100) // 5 quiesced heartbeat periods, many election timeouts
	if got := len(nw.sent) - before; got != 5*2*2 {
		t.Fatalf("a quiesced group exchanged %d messages in 100 ticks, want 20 (5 periods x 2 followers x heartbeat+answer)", got)
	}
	if l := nw.leader(); l != 1 || nw.raft(1).Term() != 2 && nw.raft(1).Term() != 1 {
		t.Fatalf("leader %d term %d after quiet ticks", l, nw.raft(1).Term())
	}
	term := nw.raft(1).Term()
	idx := nw.propose(1, "b")
	checkQuiesced(t, nw, false)
	for _, id := range nw.ids {
		if c := nw.raft(id).Committed(); c < idx {
			t.Fatalf("node %d committed %d, want %d after the wake", id, c, idx)
		}
	}
	if nw.raft(1).Term() != term {
		t.Fatalf("term moved %d -> %d across quiescence", term, nw.raft(1).Term())
	}
	nw.tick(5)
	checkQuiesced(t, nw, true)
}

// A leader that dies while the group is quiesced is replaced: the
// followers wake after 3 missed quiesce heartbeats and elect a new leader
// within a bounded number of ticks.
func TestQuiescedLeaderDiesIsReplaced(t *testing.T) {
	for _, opts := range [][]func(*messages.Settings){nil, {withPreVote, withCheckQuorum}} {
		nw := quiesceNetwork(t, opts...)
		nw.tick(5)
		checkQuiesced(t, nw, true)
		nw.nodes[1].down = true
		bound := 3*20 + 2*2*10 + 20
		for i := 0; i < bound && nw.leader() == 0 || nw.leader() == 1; i++ {
			nw.tick(1)
		}
		if l := nw.leader(); l == 0 || l == 1 {
			t.Fatalf("no new leader within %d ticks of the quiesced leader's death", bound)
		}
		l := nw.leader()
		idx := nw.propose(l, "after")
		if c := nw.raft(l).Committed(); c < idx {
			t.Fatalf("the new leader committed %d, want %d", c, idx)
		}
	}
}

// A follower woken by something else (here a read) wakes a live quiesced
// leader, which then heartbeats: the follower never campaigns.
func TestQuiescedFollowerWakesLeader(t *testing.T) {
	nw := quiesceNetwork(t, withCheckQuorum, withPreVote)
	nw.tick(5)
	checkQuiesced(t, nw, true)
	if err := nw.raft(2).ReadIndex([]byte("r")); err != nil {
		t.Fatal(err)
	}
	nw.stabilize()
	if nw.raft(1).Quiesced() {
		t.Fatal("the leader stayed quiesced after a follower's read")
	}
	term := nw.raft(1).Term()
	nw.tick(3 * 10)
	if nw.leader() != 1 || nw.raft(1).Term() != term {
		t.Fatalf("leader %d term %d, want 1 at term %d: a woken follower disrupted a live leader", nw.leader(), nw.raft(1).Term(), term)
	}
}

// A follower that missed the quiesce heartbeat campaigns: its pre-vote
// wakes the leader, whose heartbeats bring it back, with no new term.
func TestQuiesceMissedByFollower(t *testing.T) {
	nw := quiesceNetwork(t, withCheckQuorum, withPreVote)
	nw.filter = func(m *messages.Message) bool {
		return !(m.Quiesce && m.To == 3 && m.Type == messages.MessageType_MSG_HEARTBEAT)
	}
	nw.tick(5)
	if !nw.raft(1).Quiesced() || nw.raft(3).Quiesced() {
		t.Fatalf("leader quiesced %v, node 3 quiesced %v; want true, false", nw.raft(1).Quiesced(), nw.raft(3).Quiesced())
	}
	nw.filter = nil
	term := nw.raft(1).Term()
	nw.tick(40)
	if nw.leader() != 1 || nw.raft(1).Term() != term {
		t.Fatalf("leader %d term %d, want 1 at term %d", nw.leader(), nw.raft(1).Term(), term)
	}
}

// A woken leader does not trust lease acknowledgements of heartbeats sent
// before it woke: its first read takes a heartbeat round.
func TestQuiesceWakeRestartsLease(t *testing.T) {
	ids := []uint64{1, 2, 3}
	nw := newNetworkWith(t, clusterConfig(ids, nil, withCheckQuorum), ids, func(c *Config) {
		c.QuiesceTicks, c.QuiescedHeartbeatTicks, c.ReadOnly = 5, 20, ReadOnlyLeaseBased
	})
	nw.elect(1)
	nw.propose(1, "a")
	nw.tick(5)
	checkQuiesced(t, nw, true)
	nw.tick(1)
	r := nw.raft(1)
	if err := r.ReadIndex([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if len(r.readStates) != 0 {
		t.Fatal("a woken leader answered a read on its lease at once")
	}
	nw.stabilize()
	if len(nw.raft(1).Ready().ReadStates) == 0 && nw.countSent(messages.MessageType_MSG_HEARTBEAT, 1, 0) == 0 {
		t.Fatal("the read was never answered")
	}
}

func TestQuiesceConfigValidate(t *testing.T) {
	c := DefaultConfig()
	c.ID, c.QuiesceTicks, c.QuiescedHeartbeatTicks = 1, -1, -2
	err := c.Validate()
	if err == nil {
		t.Fatal("negative quiescence settings accepted")
	}
	for _, want := range []string{"Config.QuiesceTicks = -1", "Config.QuiescedHeartbeatTicks = -2"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

// A quiesced leader still finds a transfer target (the node's Stop hands
// over to it): a peer that answered its latest quiesce heartbeat is live,
// however long ago that was.
func TestQuiescedLeaderFindsTransferTarget(t *testing.T) {
	nw := quiesceNetwork(t, withCheckQuorum, withPreVote)
	nw.tick(5)
	checkQuiesced(t, nw, true)
	nw.tick(30) // quiesce heartbeats are 20 ticks apart: the last was 10+ ticks ago
	to := nw.raft(1).TransferTarget()
	if to == 0 {
		t.Fatal("a quiesced leader found no transfer target")
	}
	if err := nw.raft(1).TransferLeadership(to); err != nil {
		t.Fatal(err)
	}
	nw.stabilize()
	if nw.leader() != to {
		t.Fatalf("leader %d after the transfer to %d", nw.leader(), to)
	}
}
