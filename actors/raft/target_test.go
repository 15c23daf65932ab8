package raft

import (
	"testing"

	"github.com/flotilla-raft/flotilla/messages"
)

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
