package raft

import (
	"testing"

	"github.com/flotilla-raft/flotilla/messages"
	"google.golang.org/protobuf/proto"
)

// Durability ordering: what a message promises is durable before the
// message leaves (package doc, "Durability ordering").

func hasMsg(msgs []*messages.Message, ty messages.MessageType, to uint64) bool {
	for _, m := range msgs {
		if m.Type == ty && m.To == to {
			return true
		}
	}
	return false
}

// TestVoteGrantHeldUntilPersisted: a vote grant is not handed out until
// the batch holding the vote is reported durable.
func TestVoteGrantHeldUntilPersisted(t *testing.T) {
	r := newTestRaft(t, 1, []uint64{1, 2, 3})
	drain(r)
	m := msg(mVote, 2, 1, 2)
	m.Index, m.LogTerm = 1, 1
	mustStep(t, r, m)
	rd := r.Ready()
	if rd.PersistID == 0 || rd.HardState.GetVote() != 2 || rd.HardState.GetTerm() != 2 {
		t.Fatalf("Ready persist %d hard state %v, want the vote for 2 at term 2 to persist", rd.PersistID, rd.HardState)
	}
	if hasMsg(rd.Messages, mVoteResp, 2) {
		t.Fatal("vote granted before it is durable")
	}
	if r.HasReady() {
		if rd2 := r.Ready(); hasMsg(rd2.Messages, mVoteResp, 2) {
			t.Fatal("vote granted by a second Ready before Persisted")
		}
	}
	r.Persisted(rd.PersistID)
	if !r.HasReady() {
		t.Fatal("nothing ready after Persisted")
	}
	if rd := r.Ready(); !hasMsg(rd.Messages, mVoteResp, 2) || rd.PersistID != 0 {
		t.Fatalf("after Persisted: %v, want the grant alone", rd.Messages)
	}
	// A repeated request for the same vote, once durable, is answered at once.
	mustStep(t, r, m)
	if rd := r.Ready(); !hasMsg(rd.Messages, mVoteResp, 2) || rd.PersistID != 0 {
		t.Fatalf("repeated request: %v persist %d", rd.Messages, rd.PersistID)
	}
}

// TestCandidateVoteRequestsHeldUntilPersisted: a candidate asks for votes
// only once its new term and self-vote are durable.
func TestCandidateVoteRequestsHeldUntilPersisted(t *testing.T) {
	r := newTestRaft(t, 1, []uint64{1, 2, 3})
	drain(r)
	r.Campaign()
	rd := r.Ready()
	if rd.PersistID == 0 || rd.HardState.GetVote() != 1 || rd.HardState.GetTerm() != 2 {
		t.Fatalf("hard state %v", rd.HardState)
	}
	if len(msgsOfType(rd.Messages, mVote)) != 0 {
		t.Fatal("vote requests before the self-vote is durable")
	}
	r.Persisted(rd.PersistID)
	if rd := r.Ready(); len(msgsOfType(rd.Messages, mVote)) != 2 {
		t.Fatalf("after Persisted: %v", rd.Messages)
	}
}

// TestAppendAckHeldUntilPersisted: an append acknowledgement is handed out
// only once the entries it acknowledges are durable, and committed entries
// are handed out for applying only once durable locally.
func TestAppendAckHeldUntilPersisted(t *testing.T) {
	r := newTestRaft(t, 1, []uint64{1, 2, 3})
	drain(r)
	m := msg(mApp, 2, 1, 2)
	m.Index, m.LogTerm, m.Commit = 1, 1, 3
	m.Entries = []*messages.Entry{{Term: 2, Index: 2, Data: []byte("a")}, {Term: 2, Index: 3, Data: []byte("b")}}
	mustStep(t, r, m)
	if r.Committed() != 3 {
		t.Fatalf("commit %d", r.Committed())
	}
	rd := r.Ready()
	if len(rd.Entries) != 2 || rd.PersistID == 0 {
		t.Fatalf("entries %v", rd.Entries)
	}
	if hasMsg(rd.Messages, mAppResp, 2) {
		t.Fatal("append acknowledged before it is durable")
	}
	if len(rd.CommittedEntries) != 0 {
		t.Fatalf("committed entries %v handed out before they are durable", rd.CommittedEntries)
	}
	r.Persisted(rd.PersistID)
	rd = r.Ready()
	acks := msgsOfType(rd.Messages, mAppResp)
	if len(acks) != 1 || acks[0].Index != 3 || acks[0].Reject {
		t.Fatalf("after Persisted: %v", rd.Messages)
	}
	if got := len(rd.CommittedEntries); got != 2 {
		t.Fatalf("after Persisted: %d committed entries, want 2", got)
	}
	// A duplicate append: the ack promises nothing new and leaves at once.
	mustStep(t, r, proto.Clone(m).(*messages.Message))
	if rd := r.Ready(); !hasMsg(rd.Messages, mAppResp, 2) {
		t.Fatalf("duplicate: %v", rd.Messages)
	}
}

// TestAckOfOlderBatchWaitsForLaterOne: an acknowledgement queued while an
// earlier batch is still in flight waits for it.
func TestAckOfOlderBatchWaitsForLaterOne(t *testing.T) {
	r := newTestRaft(t, 1, []uint64{1, 2, 3})
	drain(r)
	m := msg(mApp, 2, 1, 2)
	m.Index, m.LogTerm = 1, 1
	m.Entries = []*messages.Entry{{Term: 2, Index: 2}}
	mustStep(t, r, m)
	rd1 := r.Ready()
	// The same append again: nothing new to persist, but the ack promises
	// entry 2, which is in batch rd1, not yet durable.
	mustStep(t, r, proto.Clone(m).(*messages.Message))
	rd2 := r.Ready()
	if rd2.PersistID != 0 || hasMsg(rd2.Messages, mAppResp, 2) {
		t.Fatalf("second Ready persist %d msgs %v", rd2.PersistID, rd2.Messages)
	}
	// Batches are reported in order; reporting a later batch covers the
	// earlier ones.
	r.Persisted(rd1.PersistID)
	if got := len(msgsOfType(r.Ready().Messages, mAppResp)); got != 2 {
		t.Fatalf("%d acks after Persisted, want 2", got)
	}
	r.Persisted(rd1.PersistID) // again: a no-op
	if r.HasReady() {
		t.Fatal("Persisted twice made something ready")
	}
}

// TestPersistedCoversEarlierBatches: Persisted(id) reports every batch up
// to id durable.
func TestPersistedCoversEarlierBatches(t *testing.T) {
	r := newTestRaft(t, 1, []uint64{1})
	r.Campaign() // single voter: leader once its vote is durable
	r.Persisted(r.Ready().PersistID)
	if r.Role() != Leader {
		t.Fatalf("single voter is %s once its vote is durable", r.Role())
	}
	rd1 := r.Ready()
	r.Propose(&messages.Entry{Data: []byte("x")})
	rd2 := r.Ready()
	if rd1.PersistID == 0 || rd2.PersistID != rd1.PersistID+1 {
		t.Fatalf("persist ids %d %d", rd1.PersistID, rd2.PersistID)
	}
	if r.Committed() != 1 {
		t.Fatalf("commit %d before anything is durable", r.Committed())
	}
	r.Persisted(rd2.PersistID)
	if r.Committed() != 3 {
		t.Fatalf("commit %d, want 3", r.Committed())
	}
	rd := r.Ready()
	if got := len(rd.CommittedEntries); got != 2 {
		t.Fatalf("%d committed entries, want the no-op and x", got)
	}
}

// TestLeaderOwnEntriesCountOnlyOncePersisted: the leader sends its new
// entries before persisting them, but counts itself towards commitment
// only once they are durable.
func TestLeaderOwnEntriesCountOnlyOncePersisted(t *testing.T) {
	r := newTestRaft(t, 1, []uint64{1, 2, 3, 4, 5})
	becomeRole(t, r, Leader)
	acceptAll(t, r)
	idx, _, _ := r.Propose(&messages.Entry{Data: []byte("x")})
	rd := r.Ready()
	if len(rd.Entries) != 1 || len(msgsOfType(rd.Messages, mApp)) != 4 {
		t.Fatalf("the leader's Ready: entries %v messages %v; want the entry sent while it persists", rd.Entries, rd.Messages)
	}
	for _, id := range []uint64{2, 3} {
		m := msg(mAppResp, id, 1, 2)
		m.Index = idx
		mustStep(t, r, m)
	}
	if r.Committed() == idx {
		t.Fatal("committed with 2 followers of 5 and the leader's entry not durable")
	}
	r.Persisted(rd.PersistID)
	if r.Committed() != idx {
		t.Fatalf("commit %d after the leader's Persisted, want %d", r.Committed(), idx)
	}
}

// TestSnapshotDurability: a snapshot received from the leader is handed
// out to persist; the acknowledgement waits for it.
func TestSnapshotDurability(t *testing.T) {
	r := newTestRaft(t, 1, []uint64{1, 2, 3})
	drain(r)
	cc := clusterConfig([]uint64{1, 2, 3}, nil)
	m := msg(mSnap, 2, 1, 2)
	m.Snapshot = &messages.Snapshot{Metadata: &messages.SnapshotMetadata{Index: 10, Term: 2, Config: cc}, Data: []byte("state")}
	mustStep(t, r, m)
	rd := r.Ready()
	if rd.Snapshot == nil || rd.PersistID == 0 || hasMsg(rd.Messages, mAppResp, 2) {
		t.Fatalf("snapshot %v persist %d msgs %v", rd.Snapshot, rd.PersistID, rd.Messages)
	}
	if r.Committed() != 10 || r.FirstIndex() != 11 || r.LastIndex() != 10 {
		t.Fatalf("commit %d first %d last %d", r.Committed(), r.FirstIndex(), r.LastIndex())
	}
	// Entries after the snapshot may arrive before it is durable; they are
	// not applied before both are.
	a := msg(mApp, 2, 1, 2)
	a.Index, a.LogTerm, a.Commit = 10, 2, 11
	a.Entries = []*messages.Entry{{Term: 2, Index: 11, Data: []byte("after")}}
	mustStep(t, r, a)
	rd2 := r.Ready()
	if len(rd2.CommittedEntries) != 0 {
		t.Fatalf("applied %v before the snapshot is durable", rd2.CommittedEntries)
	}
	r.Persisted(rd.PersistID)
	rd3 := r.Ready()
	acks := msgsOfType(rd3.Messages, mAppResp)
	if len(acks) != 1 || acks[0].Index != 10 {
		t.Fatalf("acks after the snapshot's Persisted: %v", acks)
	}
	if len(rd3.CommittedEntries) != 0 {
		t.Fatalf("applied %v before its batch is durable", rd3.CommittedEntries)
	}
	r.Persisted(rd2.PersistID)
	rd4 := r.Ready()
	if len(rd4.CommittedEntries) != 1 || string(rd4.CommittedEntries[0].Data) != "after" {
		t.Fatalf("committed entries %v", rd4.CommittedEntries)
	}
}

// TestTruncatedBatchDoesNotMakeNewEntriesDurable: entries handed out in a
// batch and then cut by a new leader are not durable because that batch is;
// the replacement entries wait for their own batch.
func TestTruncatedBatchDoesNotMakeNewEntriesDurable(t *testing.T) {
	r := newTestRaft(t, 1, []uint64{1, 2, 3})
	drain(r)
	m := msg(mApp, 2, 1, 2)
	m.Index, m.LogTerm = 1, 1
	m.Entries = []*messages.Entry{{Term: 2, Index: 2}, {Term: 2, Index: 3}, {Term: 2, Index: 4}}
	mustStep(t, r, m)
	rd1 := r.Ready()
	// Leader 3 of term 3 replaces 3 and 4 and says 3 is committed.
	m2 := msg(mApp, 3, 1, 3)
	m2.Index, m2.LogTerm, m2.Commit = 2, 2, 3
	m2.Entries = []*messages.Entry{{Term: 3, Index: 3, Data: []byte("new")}}
	mustStep(t, r, m2)
	rd2 := r.Ready()
	if len(rd2.Entries) != 1 || rd2.Entries[0].Index != 3 {
		t.Fatalf("entries to persist %v, want the new entry 3", rd2.Entries)
	}
	r.Persisted(rd1.PersistID)
	rd := r.Ready()
	for _, e := range rd.CommittedEntries {
		if e.Index >= 3 {
			t.Fatalf("entry %d applied, but only the old entry 3 was durable", e.Index)
		}
	}
	if hasMsg(rd.Messages, mAppResp, 3) {
		t.Fatal("acknowledged the new entry 3 before it is durable")
	}
	r.Persisted(rd2.PersistID)
	rd = r.Ready()
	if !hasMsg(rd.Messages, mAppResp, 3) || len(rd.CommittedEntries) != 1 || string(rd.CommittedEntries[0].Data) != "new" {
		t.Fatalf("after the new batch: msgs %v committed %v", rd.Messages, rd.CommittedEntries)
	}
}
