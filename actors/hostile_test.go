package actors_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/flotilla-raft/flotilla/cluster/transport"
	"github.com/flotilla-raft/flotilla/messages"
)

// TestCorruptSnapshotFromMemberIsRefused: a member (here the leader's id,
// as a faulty or compromised leader would) sends a follower a snapshot
// whose data the follower cannot restore. The follower refuses it before
// the core installs it, counts it and keeps following: no panic, no stop,
// no state it cannot apply; the cluster keeps its leader and commits.
func TestCorruptSnapshotFromMemberIsRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 3)
		lead := c.waitLeader()
		if _, err := c.propose(lead, "before"); err != nil {
			t.Fatal(err)
		}
		follower := c.others(lead)[0]
		c.waitApplied(1, follower)
		st := c.status(follower)

		// The attacker's transport; inmem routes by id and does not check
		// the sender, so the message claims to be the leader's.
		attacker := c.net.Transport(99)
		for i, data := range [][]byte{{0xff, 0xff, 0xff}, nil} {
			m := &messages.Message{Type: messages.MessageType_MSG_SNAPSHOT, From: lead, To: follower, Term: st.Term,
				Snapshot: &messages.Snapshot{Data: data, Metadata: &messages.SnapshotMetadata{
					Index: st.LastIndex + 1000 + uint64(i), Term: st.Term, Config: st.Config}}}
			if err := attacker.Send(transport.Peer{ID: follower, Address: "x"}, m); err != nil {
				t.Fatal(err)
			}
		}
		deadline := time.Now().Add(10 * time.Second)
		for c.status(follower).Dropped.CorruptSnapshot < 2 {
			if time.Now().After(deadline) {
				t.Fatalf("follower %d did not count the corrupt snapshots: %+v", follower, c.status(follower).Dropped)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if _, err := c.propose(lead, "after"); err != nil {
			t.Fatalf("the cluster stopped committing: %v", err)
		}
		c.waitApplied(2, c.ids...)
		if got := c.waitLeader(); got != lead {
			t.Errorf("leader changed from %d to %d", lead, got)
		}
		if s := c.status(follower); s.LastIndex >= st.LastIndex+1000 || s.Applied < 3 {
			t.Errorf("follower installed the corrupt snapshot: %v", s)
		}
	})
}
