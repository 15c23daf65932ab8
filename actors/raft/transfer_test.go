package raft

import (
	"errors"
	"testing"

	"github.com/flotilla-raft/flotilla/messages"
)

// Leadership transfer (thesis §3.10).

// TestLeaderTransferToUpToDateNode: the transferee is told to campaign at
// once and wins.
func TestLeaderTransferToUpToDateNode(t *testing.T) {
	nw := newNetwork(t, 3)
	nw.elect(1)
	nw.propose(1, "a")
	if err := nw.raft(1).TransferLeadership(2); err != nil {
		t.Fatal(err)
	}
	rd := nw.raft(1).Ready()
	if to := msgsOfType(rd.Messages, mTimeout); len(to) != 1 || to[0].To != 2 {
		t.Fatalf("messages %v, want MSG_TIMEOUT_NOW to 2", rd.Messages)
	}
	nw.queue = append(nw.queue, rd.Messages...)
	nw.stabilize()
	if nw.leader() != 2 || nw.raft(1).Leader() != 2 {
		t.Fatalf("leader %d, 1 follows %d", nw.leader(), nw.raft(1).Leader())
	}
	var kinds []EventKind
	for _, ev := range nw.nodes[2].events {
		kinds = append(kinds, ev.Kind)
	}
	found := false
	for _, k := range kinds {
		found = found || k == EventTransferTimeoutNow
	}
	if !found {
		t.Fatalf("events of 2: %v", kinds)
	}
	nw.propose(2, "b")
	nw.checkLogsMatch()
}

// TestLeaderTransferToLaggingNode: the leader first brings the transferee
// up to date, then tells it to campaign.
func TestLeaderTransferToLaggingNode(t *testing.T) {
	nw := newNetwork(t, 3)
	nw.elect(1)
	nw.cutLink(1, 3)
	for range 3 {
		nw.propose(1, "x")
	}
	nw.heal()
	l := nw.raft(1)
	if err := l.TransferLeadership(3); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Propose(&messages.Entry{}); !errors.Is(err, ErrTransferInProgress) {
		t.Fatalf("proposal during a transfer: %v", err)
	}
	if st := l.Status(); st.LeadTransferee != 3 {
		t.Fatalf("transferee %d", st.LeadTransferee)
	}
	// The timeout-now is sent only after 3 acknowledged the last entry.
	sawAppend := false
	nw.filter = func(m *messages.Message) bool {
		if m.From == 1 && m.To == 3 {
			if m.Type == mApp && len(m.Entries) > 0 {
				sawAppend = true
			}
			if m.Type == mTimeout && (!sawAppend || nw.raft(3).LastIndex() != l.LastIndex()) {
				t.Fatalf("timeout-now before 3 caught up")
			}
		}
		return true
	}
	nw.stabilize()
	if nw.leader() != 3 {
		t.Fatalf("leader %d, want 3", nw.leader())
	}
	nw.checkLogsMatch()
}

// TestLeaderTransferAbortedAfterElectionTimeout: a transferee that does not
// take over within an election timeout aborts the transfer; proposals are
// accepted again.
func TestLeaderTransferAbortedAfterElectionTimeout(t *testing.T) {
	nw := newNetwork(t, 3)
	nw.elect(1)
	nw.isolate(3)
	l := nw.raft(1)
	if err := l.TransferLeadership(3); err != nil {
		t.Fatal(err)
	}
	nw.stabilize()
	nw.tick(l.electionTimeout()-1, 1)
	if l.Status().LeadTransferee != 3 {
		t.Fatal("transfer ended early")
	}
	nw.tick(1, 1)
	if l.Role() != Leader || l.Status().LeadTransferee != 0 {
		t.Fatalf("role %s transferee %d", l.Role(), l.Status().LeadTransferee)
	}
	aborted := false
	for _, ev := range nw.nodes[1].events {
		aborted = aborted || ev.Kind == EventTransferAborted && ev.Peer == 3
	}
	if !aborted {
		t.Fatal("no transfer-aborted event")
	}
	nw.propose(1, "again")
}

// TestLeaderTransferErrors: refusals and no-ops.
func TestLeaderTransferErrors(t *testing.T) {
	nw := newNetworkConfig(t, clusterConfig([]uint64{1, 2, 3}, []uint64{4}), []uint64{1, 2, 3, 4})
	err := nw.raft(2).TransferLeadership(3)
	var nle *NotLeaderError
	if !errors.As(err, &nle) || nle.Leader != 0 || !errors.Is(err, ErrNotLeader) {
		t.Fatalf("no leader: %v", err)
	}
	nw.elect(1)
	err = nw.raft(2).TransferLeadership(3)
	if !errors.As(err, &nle) || nle.Leader != 1 || nle.LeaderAddress != "n1:7000" {
		t.Fatalf("follower: %v", err)
	}
	if err.Error() != `raft: not the leader (leader is 1 at "n1:7000")` {
		t.Fatalf("message %q", err.Error())
	}
	if err := nw.raft(1).TransferLeadership(1); err != nil || nw.raft(1).Status().LeadTransferee != 0 {
		t.Fatalf("to itself: %v", err)
	}
	if err := nw.raft(1).TransferLeadership(4); !errors.Is(err, ErrInvalidConfigChange) {
		t.Fatalf("to a learner: %v", err)
	}
	if err := nw.raft(1).TransferLeadership(9); !errors.Is(err, ErrInvalidConfigChange) {
		t.Fatalf("to a stranger: %v", err)
	}
	// A learner told to campaign does not.
	m := msg(mTimeout, 1, 4, nw.raft(1).Term())
	mustStep(t, nw.raft(4), m)
	if nw.raft(4).Role() != Follower {
		t.Fatalf("learner is %s", nw.raft(4).Role())
	}
}

// TestLeaderTransferToRemovedNode: a transferee removed by a committed
// configuration in force ends the transfer.
func TestLeaderTransferToRemovedNode(t *testing.T) {
	r := newTestRaft(t, 1, []uint64{1, 2, 3})
	becomeRole(t, r, Leader)
	acceptAll(t, r)
	r.leadTransferee = 3
	r.ccHist = append(r.ccHist, confAt{r.LastIndex(), clusterConfig([]uint64{1, 2}, nil)})
	r.setConfigAt(r.ccHist[len(r.ccHist)-1])
	if r.leadTransferee != 0 {
		t.Fatalf("transferee %d after its removal", r.leadTransferee)
	}
}

// TestTransferTarget: the leader hands over to a voter that acknowledged a
// recent heartbeat, the one with the longest log among them; a voter gone
// silent for more than two heartbeat intervals (and a tick) is never
// chosen, even with CheckQuorum off (where RecentActive is never cleared).
func TestTransferTarget(t *testing.T) {
	r := newTestRaft(t, 1, []uint64{1, 2, 3}, func(s *messages.Settings) { s.CheckQuorum = false })
	if got := r.TransferTarget(); got != 0 {
		t.Fatalf("a follower's target: %d, want 0", got)
	}
	r.becomeCandidate("test")
	r.becomeLeader("test")
	drainMsgs(r)
	if got := r.TransferTarget(); got != 0 {
		t.Fatalf("target before any heartbeat is acknowledged: %d, want 0", got)
	}
	ack := func(from uint64) {
		for _, m := range msgsOfType(drainMsgs(r), messages.MessageType_MSG_HEARTBEAT) {
			if m.To == from {
				resp := msg(messages.MessageType_MSG_HEARTBEAT_RESP, from, 1, r.Term())
				resp.Index = m.Index
				mustStep(t, r, resp)
			}
		}
	}
	r.Tick() // a heartbeat to each peer
	hb := msgsOfType(drainMsgs(r), messages.MessageType_MSG_HEARTBEAT)
	for _, m := range hb {
		resp := msg(messages.MessageType_MSG_HEARTBEAT_RESP, m.To, 1, r.Term())
		resp.Index = m.Index
		mustStep(t, r, resp)
	}
	r.prs[3].Match = r.prs[2].Match + 1 // 3 has the longer log
	if got := r.TransferTarget(); got != 3 {
		t.Fatalf("target with both peers answering: %d, want 3 (the longer log)", got)
	}
	// Only 2 answers from now on: 3 drops out after 2 heartbeat intervals
	// and a tick.
	for range 4 {
		r.Tick()
		ack(2)
	}
	if got := r.TransferTarget(); got != 2 {
		t.Fatalf("target with 3 silent for 4 ticks: %d, want 2", got)
	}
	for range 4 {
		r.Tick()
		drainMsgs(r)
	}
	if got := r.TransferTarget(); got != 0 {
		t.Fatalf("target with every peer silent: %d, want 0", got)
	}
}
