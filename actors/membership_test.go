package actors_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence/memstore"
	"google.golang.org/protobuf/proto"
)

// These tests drive membership through the public actor API: AddMember,
// RemoveMember, PromoteLearner and ChangeConfig on node actors over the
// in-memory transport, under testing/synctest (fake time).

// addNode starts node id with no bootstrap configuration: it waits for a
// leader to contact it.
func (c *cluster) addNode(id uint64) {
	c.t.Helper()
	prev := c.configure
	c.configure = func(nid uint64, cfg *actors.Config) {
		if prev != nil {
			prev(nid, cfg)
		}
		if nid == id {
			cfg.Bootstrap = nil
		}
	}
	c.mu.Lock()
	c.stores[id] = memstore.New()
	c.mu.Unlock()
	c.ids = append(c.ids, id)
	c.start(id)
}

func ids(ms []*messages.Member) []uint64 {
	var out []uint64
	for _, m := range ms {
		out = append(out, m.GetId())
	}
	slices.Sort(out)
	return out
}

// waitConfig waits until node id's committed configuration has these
// voters and learners and is not joint.
func (c *cluster) waitConfig(id uint64, voters, learners []uint64) *actors.Status {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var s *actors.Status
	for time.Now().Before(deadline) {
		s = c.status(id)
		if slices.Equal(ids(s.Config.Voters), voters) && slices.Equal(ids(s.Config.Learners), learners) &&
			len(s.Config.OutgoingVoters) == 0 && s.ConfigIndex <= s.Commit {
			return s
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatalf("node %d: configuration voters %v learners %v outgoing %v (index %d, commit %d), want voters %v learners %v",
		id, ids(s.Config.Voters), ids(s.Config.Learners), ids(s.Config.OutgoingVoters), s.ConfigIndex, s.Commit, voters, learners)
	return nil
}

// memberReq sends a membership request to node id; the answer arrives on
// the returned channel.
func memberReq[T any](c *cluster, id uint64, msg any) <-chan result[T] {
	ch := make(chan result[T], 1)
	go func() {
		r, err := actors.Request[T](c.sys.Root, c.node(id), msg, 120*time.Second)
		ch <- result[T]{r, err}
	}()
	return ch
}

type result[T any] struct {
	r   T
	err error
}

// TestAddVoterWaitsForCatchUp: a new server joins as a learner and is
// promoted only once it has caught up; while the leader cannot reach it,
// it stays a learner (the quorum does not grow), the operation waits, and
// the leader's status shows the learner with its lag.
func TestAddVoterWaitsForCatchUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 3)
		lead := c.waitLeader()
		for i := range 20 {
			if _, err := c.propose(lead, fmt.Sprint("before-", i)); err != nil {
				t.Fatal(err)
			}
		}
		c.addNode(4)
		c.net.Block(lead, 4) // a slow follower: nothing reaches it
		ch := memberReq[*actors.MembershipResponse](c, lead, &actors.AddMember{ID: 4, Address: "node-4", Voter: true})
		c.waitConfig(lead, []uint64{1, 2, 3}, []uint64{4})
		time.Sleep(5 * time.Second) // fake time: many election timeouts
		select {
		case r := <-ch:
			t.Fatalf("AddMember answered while the learner is cut off: %+v %v", r.r, r.err)
		default:
		}
		s := c.waitConfig(lead, []uint64{1, 2, 3}, []uint64{4})
		var lag uint64
		for _, p := range s.Progress {
			if p.ID == 4 {
				if !p.IsLearner {
					t.Fatalf("4 counts as a voter: %+v", p)
				}
				lag = p.Lag
			}
		}
		if lag < 20 {
			t.Fatalf("learner 4 lag %d in the leader's status, want >= 20", lag)
		}
		c.net.Unblock(lead, 4)
		r := <-ch
		if r.err != nil {
			t.Fatalf("AddMember: %v", r.err)
		}
		if !slices.Equal(ids(r.r.Config.Voters), []uint64{1, 2, 3, 4}) || len(r.r.Config.OutgoingVoters) != 0 {
			t.Fatalf("answer carries %v", r.r.Config)
		}
		for _, id := range c.ids {
			if s := c.waitConfig(id, []uint64{1, 2, 3, 4}, nil); s.ConfigIndex != r.r.Index {
				t.Fatalf("node %d config index %d, answer %d", id, s.ConfigIndex, r.r.Index)
			}
		}
		c.waitApplied(20, 4)
	})
}

// TestAddMemberCatchUpTimeout: a learner that never catches up fails the
// operation with ErrCatchUpTimeout after Config.CatchUpTimeout; it stays
// a learner and other changes go on.
func TestAddMemberCatchUpTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newClusterWith(t, 3, func(c *cluster) {
			c.configure = func(id uint64, cfg *actors.Config) { cfg.CatchUpTimeout = 2 * time.Second }
		})
		lead := c.waitLeader()
		c.addNode(4)
		c.net.Block(lead, 4)
		_, err := actors.Request[*actors.MembershipResponse](c.sys.Root, c.node(lead), &actors.AddMember{ID: 4, Address: "node-4", Voter: true}, time.Minute)
		if !errors.Is(err, actors.ErrCatchUpTimeout) {
			t.Fatalf("AddMember of an unreachable learner: %v, want ErrCatchUpTimeout", err)
		}
		c.waitConfig(lead, []uint64{1, 2, 3}, []uint64{4})
		r, err := actors.Request[*actors.MembershipResponse](c.sys.Root, c.node(lead), &actors.RemoveMember{ID: 4}, time.Minute)
		if err != nil {
			t.Fatalf("RemoveMember after the timeout: %v", err)
		}
		if s := c.waitConfig(lead, []uint64{1, 2, 3}, nil); s.ConfigIndex != r.Index {
			t.Fatalf("config index %d, answer %d", s.ConfigIndex, r.Index)
		}
	})
}

// TestRemoveVoterIncludingLeader: a follower, then the leader itself, are
// removed; each answer carries the committed index; the leader hands over;
// each removed node publishes MemberRemoved and says Removed in its status.
func TestRemoveVoterIncludingLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 5)
		lead := c.waitLeader()
		follower := c.others(lead)[0]
		r, err := actors.Request[*actors.MembershipResponse](c.sys.Root, c.node(lead), &actors.RemoveMember{ID: follower}, time.Minute)
		if err != nil {
			t.Fatalf("remove follower %d: %v", follower, err)
		}
		rest := c.others(follower)
		r2, err := actors.Request[*actors.MembershipResponse](c.sys.Root, c.node(lead), &actors.RemoveMember{ID: lead, ExpectedConfigIndex: r.Index}, time.Minute)
		if err != nil {
			t.Fatalf("remove leader %d: %v", lead, err)
		}
		var remaining []uint64
		for _, id := range rest {
			if id != lead {
				remaining = append(remaining, id)
			}
		}
		newLead := c.waitLeader(remaining...)
		for _, id := range remaining {
			if s := c.waitConfig(id, remaining, nil); s.ConfigIndex != r2.Index {
				t.Fatalf("node %d config index %d, answer %d", id, s.ConfigIndex, r2.Index)
			}
		}
		if _, err := c.propose(newLead, "after"); err != nil {
			t.Fatalf("proposal to the new leader: %v", err)
		}
		removed := map[uint64]uint64{}
		deadline := time.Now().Add(30 * time.Second)
		for len(removed) < 2 && time.Now().Before(deadline) {
			select {
			case ev := <-c.events:
				if mr, ok := ev.(*actors.MemberRemoved); ok {
					removed[mr.NodeID] = mr.Index
				}
			case <-time.After(time.Second):
			}
		}
		// A node cites the last committed configuration it knows when it
		// learns its removal: the follower may learn only once both
		// removals committed.
		if removed[follower] < r.Index || removed[lead] < r2.Index {
			t.Fatalf("MemberRemoved events %v, want %d at >= %d and %d at >= %d", removed, follower, r.Index, lead, r2.Index)
		}
		for _, id := range []uint64{follower, lead} {
			if s := c.status(id); !s.Removed || s.Role == actors.Leader {
				t.Fatalf("removed node %d: removed %v role %s", id, s.Removed, s.Role)
			}
		}
	})
}

// TestJointChangeOfTwoVoters: replacing two voters at once goes through
// joint consensus; ChangeConfig answers only once the final, non-joint
// configuration is committed, and every member publishes both steps.
func TestJointChangeOfTwoVoters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 3)
		lead := c.waitLeader()
		c.addNode(4)
		c.addNode(5)
		for _, id := range []uint64{4, 5} {
			if _, err := actors.Request[*actors.MembershipResponse](c.sys.Root, c.node(lead), &actors.AddMember{ID: id, Address: fmt.Sprint("node-", id)}, time.Minute); err != nil {
				t.Fatalf("add learner %d: %v", id, err)
			}
		}
		keep := c.others(lead)[0]
		want := []uint64{keep, 4, 5}
		slices.Sort(want)
		target := proto.Clone(c.status(lead).Config).(*messages.ClusterConfig)
		target.Voters = nil
		for _, id := range want {
			target.Voters = append(target.Voters, &messages.Member{Id: id, Address: fmt.Sprint("node-", id)})
		}
		target.Learners = nil
		r, err := actors.Request[*actors.ChangeConfigResponse](c.sys.Root, c.node(lead), &actors.ChangeConfig{Config: target}, time.Minute)
		if err != nil {
			t.Fatalf("joint change: %v", err)
		}
		if len(r.Config.OutgoingVoters) != 0 || !slices.Equal(ids(r.Config.Voters), want) {
			t.Fatalf("answer carries %v, want the final configuration", r.Config)
		}
		c.waitLeader(want...)
		for _, id := range want {
			if s := c.waitConfig(id, want, nil); s.ConfigIndex != r.Index {
				t.Fatalf("node %d config index %d, answer %d", id, s.ConfigIndex, r.Index)
			}
		}
		// Every incoming voter saw the joint step, then the final one.
		joint, final := map[uint64]bool{}, map[uint64]bool{}
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) && len(final) < 3 {
			select {
			case ev := <-c.events:
				if mc, ok := ev.(*actors.MembershipChanged); ok && slices.Contains(want, mc.NodeID) {
					if len(mc.Config.OutgoingVoters) > 0 {
						joint[mc.NodeID] = true
					} else if mc.Index == r.Index {
						final[mc.NodeID] = true
					}
				}
			case <-time.After(time.Second):
			}
		}
		for _, id := range want {
			if !joint[id] || !final[id] {
				t.Fatalf("node %d: joint event %v, final event %v", id, joint[id], final[id])
			}
		}
	})
}

// TestSettingsChangeThroughLog: PreVote, CheckQuorum and the timeouts
// change through the log, and every member ends up with the same settings.
func TestSettingsChangeThroughLog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 3)
		lead := c.waitLeader()
		st := c.status(lead)
		target := proto.Clone(st.Config).(*messages.ClusterConfig)
		target.Settings = &messages.Settings{PreVote: false, CheckQuorum: false, ElectionTicks: 20, HeartbeatTicks: 2}
		r, err := actors.Request[*actors.ChangeConfigResponse](c.sys.Root, c.node(lead), &actors.ChangeConfig{Config: target, ExpectedConfigIndex: st.ConfigIndex}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range c.ids {
			deadline := time.Now().Add(10 * time.Second)
			for {
				s := c.status(id)
				if s.ConfigIndex == r.Index && s.Commit >= r.Index {
					if !proto.Equal(s.Config.Settings, target.Settings) {
						t.Fatalf("node %d settings %v, want %v", id, s.Config.Settings, target.Settings)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("node %d never committed configuration %d: %+v", id, r.Index, s)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		// The cluster still elects under the new timeouts.
		c.crash(lead)
		c.waitLeader(c.others(lead)...)
	})
}

// TestMembershipCompareAndSet: two operators working from the same
// configuration index: the second change is refused with ErrStaleConfig
// instead of silently reverting the first.
func TestMembershipCompareAndSet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 3)
		lead := c.waitLeader()
		seen := c.status(lead).ConfigIndex
		c.addNode(4)
		r, err := actors.Request[*actors.MembershipResponse](c.sys.Root, c.node(lead), &actors.AddMember{ID: 4, Address: "node-4", ExpectedConfigIndex: seen}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if r.Index <= seen {
			t.Fatalf("answer index %d, was %d", r.Index, seen)
		}
		_, err = actors.Request[*actors.MembershipResponse](c.sys.Root, c.node(lead), &actors.RemoveMember{ID: c.others(lead)[0], ExpectedConfigIndex: seen}, time.Minute)
		if !errors.Is(err, actors.ErrStaleConfig) {
			t.Fatalf("stale RemoveMember: %v, want ErrStaleConfig", err)
		}
		target := proto.Clone(r.Config).(*messages.ClusterConfig)
		target.Learners = nil
		_, err = actors.Request[*actors.ChangeConfigResponse](c.sys.Root, c.node(lead), &actors.ChangeConfig{Config: target, ExpectedConfigIndex: seen}, time.Minute)
		if !errors.Is(err, actors.ErrStaleConfig) {
			t.Fatalf("stale ChangeConfig: %v, want ErrStaleConfig", err)
		}
		c.waitConfig(lead, []uint64{1, 2, 3}, []uint64{4})
		// With the current index it goes through.
		if _, err := actors.Request[*actors.MembershipResponse](c.sys.Root, c.node(lead), &actors.PromoteLearner{ID: 4, ExpectedConfigIndex: r.Index}, time.Minute); err != nil {
			t.Fatalf("PromoteLearner with the current index: %v", err)
		}
		c.waitConfig(lead, []uint64{1, 2, 3, 4}, nil)
	})
}
