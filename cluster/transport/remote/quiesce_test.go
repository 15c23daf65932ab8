package remote_test

import (
	"testing"
	"time"

	"github.com/flotilla-raft/flotilla/actors"
)

// TestQuiescenceOverRemote: three node actors on remote transports (real
// gRPC on 127.0.0.1, mutual TLS) with quiescence on (idle 5 ticks of 20
// ms, a quiesced heartbeat every 25 ticks). Idle, they send about 4
// messages per 0.5 s instead of 4 per tick; a proposal wakes the group and
// commits; once quiet again, the leader's actor is killed while every
// transport stays up (no connection state can tell), and the followers,
// missing its rare heartbeats, elect another within a bounded time.
func TestQuiescenceOverRemote(t *testing.T) {
	c := newRaftClusterWith(t, 0, func(cfg *actors.Config) {
		cfg.Raft.QuiesceTicks, cfg.Raft.QuiescedHeartbeatTicks = 5, 25
	})
	lead, _ := c.waitLeader()
	propose := func(id uint64) {
		t.Helper()
		if _, err := actors.ProposeAndWait(c.sys.Root, c.pids[id], &actors.Propose{Data: []byte("x")}, 10*time.Second); err != nil {
			t.Fatalf("proposal to %d: %v", id, err)
		}
	}
	propose(lead)
	quiet := func(ids ...uint64) func() bool {
		return func() bool {
			for _, id := range ids {
				if !c.status(id).Quiesced {
					return false
				}
			}
			return true
		}
	}
	waitUntil(t, "every node quiesced", quiet(1, 2, 3))
	sent := func() (n uint64) {
		for id := range c.pids {
			n += c.status(id).Transport.Sent
		}
		return n
	}
	s0, t0 := sent(), time.Now()
	time.Sleep(2 * time.Second) // idle time whose traffic is measured
	n, wall := sent()-s0, time.Since(t0)
	ticks := int(wall / (20 * time.Millisecond))
	t.Logf("idle %v (%d ticks) over gRPC: %d messages sent by 3 nodes (heartbeating every tick: about %d)", wall.Round(time.Millisecond), ticks, n, 4*ticks)
	if limit := uint64(4*(ticks/25+2)) + 4; n > limit {
		t.Errorf("a quiesced group sent %d messages in %d ticks, want <= %d", n, ticks, limit)
	}
	propose(lead)
	waitUntil(t, "every node quiesced again", quiet(1, 2, 3))

	c.sys.Root.Stop(c.pids[lead]) // the actor dies; its transport stays connected
	delete(c.pids, lead)
	start := time.Now()
	var others []uint64
	for id := range c.pids {
		others = append(others, id)
	}
	waitUntil(t, "a new leader after the quiesced leader's death", func() bool {
		for _, id := range others {
			if c.status(id).Role == actors.Leader {
				lead = id
				return true
			}
		}
		return false
	})
	took := time.Since(start)
	bound := time.Duration(3*25+25+4*10+20) * 20 * time.Millisecond
	t.Logf("new leader %d %v after the quiesced leader's actor died (bound %v)", lead, took.Round(time.Millisecond), bound)
	if took > bound+time.Second {
		t.Errorf("replacing the quiesced leader took %v, want <= %v (plus 1 s of scheduling slack)", took, bound)
	}
	propose(lead)
}
