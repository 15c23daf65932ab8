package actors_test

import (
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flotilla-raft/flotilla/actors"
)

// Learners and removed members, through the public actor API under
// testing/synctest (fake time), as in membership_test.go.

// TestLearnerServesReads: a learner answers linearizable reads (through
// the leader's read index) and sees every write acknowledged before.
func TestLearnerServesReads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 3)
		lead := c.waitLeader()
		c.addNode(4)
		if _, err := actors.Request[*actors.MembershipResponse](c.sys.Root, c.node(lead), &actors.AddMember{ID: 4, Address: "node-4"}, time.Minute); err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			if _, err := c.propose(lead, fmt.Sprint("w", i)); err != nil {
				t.Fatal(err)
			}
		}
		// A learner that has not heard from the leader yet answers
		// ErrRetry, as any follower: retry as a client would.
		var r *actors.ReadResponse
		var err error
		for try := 0; ; try++ {
			r, err = actors.Request[*actors.ReadResponse](c.sys.Root, c.node(4), &actors.Read{}, 10*time.Second)
			if !errors.Is(err, actors.ErrRetry) || try == 50 {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("read on the learner: %v; status %+v", err, c.status(4))
		}
		if n := r.Result.(int); n < 5 {
			t.Fatalf("learner read saw %d commands, want >= 5", n)
		}
	})
}

// TestRefusedNonMemberLearnsIt: a voter removed while it was down comes
// back believing it is a voter and campaigns; the members' gates drop its
// requests and tell it it is no member; it publishes MemberRemoved, says
// Removed in its status and stops campaigning.
func TestRefusedNonMemberLearnsIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 3)
		lead := c.waitLeader()
		gone := c.others(lead)[0]
		c.crash(gone)
		r, err := actors.Request[*actors.MembershipResponse](c.sys.Root, c.node(lead), &actors.RemoveMember{ID: gone}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second) // fake time: the leader gives up on it
		c.restart(gone)
		deadline := time.Now().Add(30 * time.Second)
		var got *actors.MemberRemoved
		for got == nil && time.Now().Before(deadline) {
			select {
			case ev := <-c.events:
				if mr, ok := ev.(*actors.MemberRemoved); ok && mr.NodeID == gone {
					got = mr
				}
			case <-time.After(time.Second):
			}
		}
		if got == nil || got.By == 0 || got.Index != r.Index {
			t.Fatalf("MemberRemoved %+v, want one from a member citing %d", got, r.Index)
		}
		s := c.status(gone)
		if !s.Removed || s.Role != actors.Follower {
			t.Fatalf("refused node: removed %v role %s", s.Removed, s.Role)
		}
		term := s.Term
		time.Sleep(3 * time.Second)
		if s := c.status(gone); s.Term != term || s.Role != actors.Follower {
			t.Fatalf("refused node still campaigns: term %d -> %d, role %s", term, s.Term, s.Role)
		}
	})
}

// TestMemberFollowsLeaderItDoesNotKnow: a voter down while a new voter
// joins and then takes the lead comes back with the old configuration,
// in which its leader is no member. It must accept the leader's appends
// (Raft learns the configuration from the leader's log, thesis §4.1) and
// catch up; its gate used to drop them as from a non-member, and with
// pre-votes refused by members in lease it stayed a pre-candidate for
// ever (simtest seeds 24 and 102 with membership changes).
func TestMemberFollowsLeaderItDoesNotKnow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 3)
		lead := c.waitLeader()
		gone := c.others(lead)[0]
		c.crash(gone)
		c.addNode(4)
		if _, err := actors.Request[*actors.MembershipResponse](c.sys.Root, c.node(lead), &actors.AddMember{ID: 4, Address: "node-4", Voter: true}, time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, err := actors.Request[*actors.TransferLeadershipResponse](c.sys.Root, c.node(lead), &actors.TransferLeadership{To: 4}, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		if l := c.waitLeader(lead, 4); l != 4 {
			t.Fatalf("leader %d after the transfer, want 4", l)
		}
		for i := range 5 {
			if _, err := c.propose(4, fmt.Sprint("led-by-4-", i)); err != nil {
				t.Fatal(err)
			}
		}
		c.restart(gone)
		c.waitApplied(5, gone)
		c.waitConfig(gone, []uint64{1, 2, 3, 4}, nil)
		if s := c.status(gone); s.Leader != 4 || s.Role != actors.Follower {
			t.Fatalf("node %d: role %s, leader %d; want a follower of 4", gone, s.Role, s.Leader)
		}
	})
}
