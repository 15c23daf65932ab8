package actors_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/actors/raft"
)

// A leader cut off from the others, with lease-based reads configured,
// does not answer a read from its lease once another leader committed a
// write (every node's ticks run at one rate here: fake time).
func TestLeaseReadOnPartitionedLeaderIsNotStale(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newClusterWith(t, 3, func(c *cluster) {
			c.configure = func(id uint64, cfg *actors.Config) { cfg.Raft.ReadOnly = raft.ReadOnlyLeaseBased }
		})
		old := c.waitLeader()
		if _, err := c.propose(old, "a"); err != nil {
			t.Fatal(err)
		}
		c.net.Isolate(old)
		others := c.others(old)
		// Poll quickly (fake time) for the first commit of a new leader.
		var newLead uint64
		deadline := time.Now().Add(30 * time.Second)
		for newLead == 0 {
			for _, id := range others {
				if s := c.status(id); s.Role == actors.Leader && s.Commit > 0 {
					newLead = id
				}
			}
			if time.Now().After(deadline) {
				t.Fatal("no new leader within 30s (fake time)")
			}
			time.Sleep(time.Millisecond)
		}
		if _, err := c.propose(newLead, "b"); err != nil {
			t.Fatal(err)
		}
		wasLeader := c.status(old).Role == actors.Leader
		res, err := actors.Request[*actors.ReadResponse](c.sys.Root, c.node(old), &actors.Read{Query: "n"}, 2*time.Second)
		if err == nil && res.Result.(int) < 2 {
			t.Fatalf("the cut-off leader (still leader: %v) answered a read with %d commands, after leader %d committed the 2nd", wasLeader, res.Result, newLead)
		}
		t.Logf("old leader still leader when asked: %v; read answered %v, %v", wasLeader, res, err)
		c.net.Heal()
	})
}
