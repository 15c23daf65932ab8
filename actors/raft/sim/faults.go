package sim

import (
	"encoding/binary"

	"github.com/flotilla-raft/flotilla/messages"
)

// This file holds the faults and operations drawn from the seed at every
// step: partitions and heals, crashes and restarts, compactions, leadership
// transfers, proposals and configuration changes.

func (s *Sim) faults() {
	o := s.opt
	if s.rng.Float64() < o.Partition {
		a, b := s.randNode(), s.randNode()
		if a != b {
			s.cut[[2]uint64{a.id, b.id}] = true
			if s.rng.IntN(2) == 0 {
				s.cut[[2]uint64{b.id, a.id}] = true
			}
			s.stats.Partitions++
			s.tracef("partition %d-%d", a.id, b.id)
		}
		if s.rng.IntN(3) == 0 { // isolate a node entirely
			x := s.randNode()
			for _, y := range s.nodes {
				s.cut[[2]uint64{x.id, y.id}], s.cut[[2]uint64{y.id, x.id}] = true, true
			}
			s.tracef("isolate %d", x.id)
		}
	}
	if s.rng.Float64() < o.Heal {
		clear(s.cut)
		s.tracef("heal")
	}
	if s.rng.Float64() < o.Crash {
		n := s.randNode()
		if l := s.leader(); l != nil && s.rng.IntN(2) == 0 {
			n = l // leaders crash often: that is where the bugs are
		}
		if n.up && s.upCount() > 1 {
			s.crash(n) // unpersisted state is lost
			s.stats.Crashes++
			s.tracef("crash %d", n.id)
		}
	}
	if s.rng.Float64() < o.Restart {
		if n := s.randNode(); !n.up {
			s.start(n)
			s.stats.Restarts++
			s.tracef("restart %d", n.id)
		}
	}
	if s.rng.Float64() < o.Compact {
		if n := s.randNode(); n.up && n.applied > n.r.FirstIndex() {
			s.compact(n)
		}
	}
	if s.rng.Float64() < o.TransferLeader {
		if l := s.leader(); l != nil {
			to := s.randNode()
			_ = l.r.TransferLeadership(to.id)
			s.tracef("transfer %d -> %d", l.id, to.id)
		}
	}
	// With Quiesce, every other window of 300 steps (75 ticks) is idle:
	// leaders quiesce in it and wake at the next proposal.
	if s.rng.Float64() < o.Propose && (!o.Quiesce || (s.step/300)%2 == 0) {
		s.propose()
	}
	if o.ConfChange > 0 && s.crng.Float64() < o.ConfChange {
		s.changeConfig()
	}
}

// changeConfig has the leader propose a random configuration of the same
// nodes: every node stays a member (voter or learner), so every node must
// still apply every committed entry once healed.
func (s *Sim) changeConfig() {
	l := s.leader()
	if l == nil {
		return
	}
	cc := s.bootstrap()
	voters, learners := cc.Voters[:0:0], cc.Learners
	for _, m := range cc.Voters {
		if s.crng.IntN(3) > 0 {
			voters = append(voters, m)
		} else {
			learners = append(learners, m)
		}
	}
	if len(voters) == 0 {
		voters, learners = append(voters, learners[0]), learners[1:]
	}
	cc.Voters, cc.Learners = voters, learners
	if idx, err := l.r.ProposeConfig(cc); err == nil {
		s.stats.ConfChanges++
		s.tracef("config change at %d: %d voters, %d learners (index %d)", l.id, len(voters), len(learners), idx)
	}
}

func (s *Sim) compact(n *node) {
	// The snapshot is the state machine hash at the applied index.
	data := binary.BigEndian.AppendUint64(nil, n.hash)
	idx := n.applied
	if idx > n.r.Applied() {
		return
	}
	if err := n.r.Compact(idx, data, uint64(s.rng.IntN(5))); err != nil {
		return
	}
	// Storage keeps the snapshot and drops the entries before the core's
	// first index (like the node's persister: the core may keep a tail
	// before the snapshot, and reads it from the disk).
	if err := n.disk.Compact(n.r.Snapshot(), n.r.FirstIndex()-1); err != nil {
		s.fail("node %d cannot compact its disk: %v", n.id, err)
		return
	}
	s.stats.Compactions++
	s.tracef("compact %d at %d", n.id, idx)
}

func (s *Sim) propose() {
	l := s.leader()
	if l == nil {
		return
	}
	s.proposed++
	data := binary.BigEndian.AppendUint64(nil, s.proposed)
	if _, _, err := l.r.Propose(&messages.Entry{Data: data}); err == nil {
		s.stats.Proposals++
	}
}
