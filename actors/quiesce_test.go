package actors_test

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/cluster/transport/inmem"
	"github.com/flotilla-raft/flotilla/persistence/memstore"
)

// quietCluster is a 3-node cluster with quiescence on (idle 5 ticks,
// quiesced heartbeat every 50 ticks of 10 ms) that committed one command.
func quietCluster(t *testing.T) (*cluster, uint64) {
	c := newClusterWith(t, 3, func(c *cluster) {
		c.configure = func(id uint64, cfg *actors.Config) {
			cfg.Raft.QuiesceTicks, cfg.Raft.QuiescedHeartbeatTicks = 5, 50
		}
	})
	lead := c.waitLeader()
	if _, err := c.propose(lead, "a"); err != nil {
		t.Fatal(err)
	}
	c.waitApplied(1, c.ids...)
	return c, lead
}

// waitQuiesced waits (fake time) until every listed node reports Quiesced.
func (c *cluster) waitQuiesced(ids ...uint64) {
	c.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		all := true
		for _, id := range ids {
			all = all && c.status(id).Quiesced
		}
		if all {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatalf("nodes %v not all quiesced within 5s (fake time) of idleness", ids)
}

// sentAndFires sums the messages the nodes' transports sent and their
// tick timers handled.
func (c *cluster) sentAndFires(ids ...uint64) (sent, fires uint64) {
	for _, id := range ids {
		s := c.status(id)
		if s.Transport == nil {
			c.t.Fatalf("node %d reports no transport stats", id)
		}
		sent += s.Transport.Sent
		fires += s.TimerFires
	}
	return sent, fires
}

// An idle 3-node cluster quiesces: over 10 s (1,000 ticks) its transports
// send one quiesced heartbeat and its answer per follower every 50 ticks
// (about 80 messages, against 4,000 for heartbeats every tick), and its
// tick timers fire once per 50 ticks (about 60 in all, against 3,000). A
// proposal wakes it and commits.
func TestIdleGroupQuiescesAndWakes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, lead := quietCluster(t)
		c.waitQuiesced(c.ids...)
		sent0, fires0 := c.sentAndFires(c.ids...)
		time.Sleep(10 * time.Second)
		sent1, fires1 := c.sentAndFires(c.ids...)
		sent, fires := sent1-sent0, fires1-fires0
		t.Logf("idle 10 s (1,000 ticks), 3 nodes: %d messages sent, %d tick timers handled", sent, fires)
		if sent > 100 {
			t.Errorf("a quiesced group sent %d messages in 1,000 ticks, want <= 100 (2 followers x 2 per 50 ticks)", sent)
		}
		if fires > 75 {
			t.Errorf("a quiesced group's timers fired %d times in 1,000 ticks, want <= 75 (3 nodes x 1 per 50 ticks)", fires)
		}
		for _, id := range c.ids {
			if s := c.status(id); s.Leader != lead || s.Term != c.status(lead).Term {
				t.Fatalf("node %d: leader %d term %d after idling, want leader %d", id, s.Leader, s.Term, lead)
			}
		}
		start := time.Now()
		if _, err := c.propose(lead, "b"); err != nil {
			t.Fatalf("proposal to a quiesced leader: %v", err)
		}
		c.waitApplied(2, c.ids...)
		t.Logf("a proposal woke the group and was applied on 3 nodes in %v (fake time)", time.Since(start))
		if s := c.status(lead); s.Quiesced {
			t.Error("the leader reports Quiesced right after a proposal")
		}
		c.waitQuiesced(c.ids...) // and it goes quiet again
	})
}

// A leader killed while its group is quiet is replaced within a bounded
// time: the followers miss 3 quiesced heartbeats (150 ticks), wake, and
// elect; the bound allows a stride and two election timeouts more.
func TestQuiescedLeaderKilledIsReplaced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, lead := quietCluster(t)
		c.waitQuiesced(c.ids...)
		c.crash(lead)
		start := time.Now()
		const bound = (3*50 + 50 + 4*10 + 20) * 10 * time.Millisecond
		others := c.others(lead)
		var newLead uint64
		for newLead == 0 || newLead == lead {
			if time.Since(start) > bound {
				t.Fatalf("no new leader within %v (fake time) of the quiesced leader's death", bound)
			}
			time.Sleep(10 * time.Millisecond)
			if s := c.status(others[0]); s.Role == actors.Leader {
				newLead = others[0]
			} else if s := c.status(others[1]); s.Role == actors.Leader {
				newLead = others[1]
			}
		}
		t.Logf("new leader %d %v (fake time) after the quiesced leader died (bound %v)", newLead, time.Since(start), bound)
		if _, err := c.propose(newLead, "b"); err != nil {
			t.Fatalf("proposal to the new leader: %v", err)
		}
		c.waitApplied(2, others...)
	})
}

// A negative quiescence setting is refused by Props, naming the field.
func TestQuiesceConfigRefused(t *testing.T) {
	cfg := actors.DefaultConfig()
	cfg.ID, cfg.LogStore, cfg.StateMachine = 1, memstore.New(), &listSM{}
	cfg.Transport = inmem.NewNetwork(1).Transport(1)
	cfg.Raft.QuiesceTicks = -3
	_, err := actors.Props(cfg)
	if err == nil || !strings.Contains(err.Error(), "Config.QuiesceTicks = -3") {
		t.Fatalf("Props with QuiesceTicks -3: %v, want an error naming the field", err)
	}
}

// An orderly Stop of a quiesced leader hands leadership over: a follower
// leads within an election timeout, not after the missed quiesced
// heartbeats (1.5 s) that a dead leader costs.
func TestQuiescedLeaderStopHandsOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, lead := quietCluster(t)
		c.waitQuiesced(c.ids...)
		time.Sleep(1234 * time.Millisecond) // idle: the last quiesced heartbeat is ticks old
		start := time.Now()
		c.stop(lead)
		others := c.others(lead)
		newLead := c.waitLeader(others...)
		t.Logf("node %d leads %v (fake time) after the quiesced leader stopped", newLead, time.Since(start))
		if took := time.Since(start); took > 10*10*time.Millisecond {
			t.Fatalf("node %d leads %v (fake time) after the quiesced leader's Stop, want a hand-over within an election timeout (100ms)", newLead, took)
		}
	})
}
