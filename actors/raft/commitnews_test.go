package raft

import (
	"fmt"
	"testing"

	"github.com/flotilla-raft/flotilla/messages"
)

// proposeInterleaved proposes n commands at the leader, one per network
// hop (the leader's Ready, then one delivery of everything in flight), as
// proposals issued together reach a leader while the acknowledgements of
// the first ones come back; then it runs the network until it is quiet.
// It returns the appends and append acknowledgements exchanged.
func proposeInterleaved(nw *network, lead uint64, n int) (appends, acks int) {
	nw.t.Helper()
	before := len(nw.sent)
	for i := range n {
		if _, _, err := nw.raft(lead).Propose(&messages.Entry{Data: []byte(fmt.Sprint("cmd-", i))}); err != nil {
			nw.t.Fatalf("propose %d: %v", i, err)
		}
		for _, id := range nw.ids {
			nw.ready(nw.nodes[id])
		}
		q := nw.queue
		nw.queue = nil
		for _, m := range q {
			nw.deliver(m)
		}
	}
	nw.stabilize()
	for _, m := range nw.sent[before:] {
		switch m.Type {
		case messages.MessageType_MSG_APPEND:
			appends++
		case messages.MessageType_MSG_APPEND_RESP:
			acks++
		}
	}
	return appends, acks
}

// The leader lets a commit-index advance ride the next append or heartbeat
// (Config.CommitNewsTicks 0, the default) instead of broadcasting an
// append per advance: with 12 proposals issued together on 3 nodes, at
// most 4.5 messages per proposal (appends and acknowledgements), against
// more in the eager mode; and the followers still learn the commit within
// one heartbeat.
func TestCommitNewsRidesTheNextMessage(t *testing.T) {
	const proposals = 12
	run := func(commitNews int) (appends, acks int) {
		nw := newNetworkWith(t, clusterConfig([]uint64{1, 2, 3}, nil), []uint64{1, 2, 3}, func(c *Config) { c.CommitNewsTicks = commitNews })
		nw.ids = []uint64{1, 2, 3}
		nw.elect(1)
		appends, acks = proposeInterleaved(nw, 1, proposals)
		lead := nw.raft(1)
		for _, id := range []uint64{2, 3} {
			if commitNews == 0 && nw.raft(id).Committed() >= lead.Committed() {
				t.Errorf("lazy: follower %d committed %d already, the leader %d: the test does not exercise the wait", id, nw.raft(id).Committed(), lead.Committed())
			}
		}
		nw.tick(1, 1) // one heartbeat interval (HeartbeatTicks 1) on the leader
		for _, id := range []uint64{2, 3} {
			if c := nw.raft(id).Committed(); c != lead.Committed() {
				t.Errorf("CommitNewsTicks %d: follower %d committed %d after one heartbeat, the leader %d", commitNews, id, c, lead.Committed())
			}
		}
		nw.checkLogsMatch()
		return appends, acks
	}
	la, lk := run(0)
	ea, ek := run(-1)
	lazy, eager := float64(la+lk)/proposals, float64(ea+ek)/proposals
	t.Logf("per proposal: lazy %.2f (%d appends, %d acks), eager %.2f (%d appends, %d acks)", lazy, la, lk, eager, ea, ek)
	if lazy > 4.5 {
		t.Errorf("lazy commit news: %.2f messages per proposal, want at most 4.5", lazy)
	}
	if lazy >= eager {
		t.Errorf("lazy commit news (%.2f per proposal) saves nothing over eager (%.2f)", lazy, eager)
	}
}

// A positive CommitNewsTicks below the heartbeat interval sends the news
// in an append once that many ticks passed.
func TestCommitNewsTicksBound(t *testing.T) {
	cc := clusterConfig([]uint64{1, 2, 3}, nil)
	cc.Settings.HeartbeatTicks = 5
	nw := newNetworkWith(t, cc, []uint64{1, 2, 3}, func(c *Config) { c.CommitNewsTicks = 2 })
	nw.ids = []uint64{1, 2, 3}
	nw.elect(1)
	nw.propose(1, "x")
	lead := nw.raft(1)
	if nw.raft(2).Committed() == lead.Committed() {
		t.Fatalf("follower 2 committed %d at once: the news did not wait", lead.Committed())
	}
	nw.tick(1, 1)
	if nw.raft(2).Committed() == lead.Committed() {
		t.Fatalf("follower 2 committed after 1 tick, the bound is 2")
	}
	nw.tick(1, 1)
	if c := nw.raft(2).Committed(); c != lead.Committed() {
		t.Fatalf("follower 2 committed %d after 2 ticks (CommitNewsTicks 2), the leader %d", c, lead.Committed())
	}
}

// An acknowledgement that advances the commit index still sends the peer
// what the full window held back: the entries do not wait for a tick.
func TestCommitAdvanceStillSendsWhatTheWindowHeldBack(t *testing.T) {
	// Two voters: every acknowledgement of the follower advances the
	// commit index.
	nw := newNetworkWith(t, clusterConfig([]uint64{1, 2}, nil), []uint64{1, 2}, func(c *Config) {
		c.CommitNewsTicks = 0
		c.MaxInflightMsgs = 1
	})
	nw.ids = []uint64{1, 2}
	nw.elect(1)
	nw.propose(1, "warm") // the followers are in replicate mode now
	for i := range 3 {
		if _, _, err := nw.raft(1).Propose(&messages.Entry{Data: []byte(fmt.Sprint("cmd-", i))}); err != nil {
			t.Fatal(err)
		}
		nw.ready(nw.nodes[1]) // one append in flight; the rest wait for the window
	}
	nw.stabilize() // no tick
	if lead := nw.raft(1); lead.Committed() != lead.LastIndex() {
		t.Fatalf("leader committed %d of %d without a tick: entries held back by the window waited", lead.Committed(), lead.LastIndex())
	}
}
