package sim

import (
	"encoding/binary"

	"github.com/flotilla-raft/flotilla/actors/raft"
)

// This file holds the simulated nodes: starting one from its disk, crashing
// it, and the questions the faults ask of the nodes (a random one, how many
// are up, the leader).

type pending struct {
	id uint64
	rd raft.Ready
}

type node struct {
	id      uint64
	r       *raft.Raft
	up      bool
	disk    Disk
	queue   []pending // handed out, not yet durable
	applied uint64    // last index applied to the state machine
	hash    uint64    // state machine: hash chain of applied entries
}

func (s *Sim) start(n *node) {
	cfg := raft.DefaultConfig()
	cfg.ID = n.id
	cfg.Seed = int64(s.opt.Seed*31 + uint64(s.step))
	cfg.Bootstrap = s.bootstrap()
	cfg.MaxSizePerMsg = 512
	cfg.MaxInflightMsgs = 4
	// Small entry caches (1 byte: none), apply batches and apply queues,
	// so that the stable log is read from the disk and committed entries
	// arrive in several Readys, some held back until the application
	// acknowledges the ones before.
	cfg.EntryCacheBytes = []uint64{1, 300, 3000}[(s.opt.Seed+n.id)%3]
	cfg.MaxCommittedSizePerReady = 200
	cfg.MaxApplyingBytes = 500 // acknowledged at the node's next step (ready)
	if s.opt.Quiesce {
		cfg.QuiesceTicks, cfg.QuiescedHeartbeatTicks = 5, 8
	}
	st, err := n.disk.Load()
	if err != nil {
		s.fail("node %d cannot load its disk: %v", n.id, err)
		return
	}
	r, err := raft.New(cfg, st)
	if err != nil {
		s.fail("restart of %d failed: %v", n.id, err)
		return
	}
	n.r, n.up, n.queue = r, true, nil
	n.applied, n.hash = 0, 0
	if sn := st.Snapshot; sn != nil {
		n.applied = sn.Metadata.Index
		n.hash = binary.BigEndian.Uint64(sn.Data)
	}
}

// crash stops n: what it had not persisted is lost, and so is whatever its
// disk had not synced.
func (s *Sim) crash(n *node) {
	n.up, n.queue = false, nil
	s.stats.StorageReads += int(n.r.LogStats().StorageReads)
	if err := n.disk.Crash(); err != nil {
		s.fail("node %d disk crash: %v", n.id, err)
	}
}

func (s *Sim) randNode() *node { return s.nodes[s.rng.IntN(len(s.nodes))] }

func (s *Sim) upCount() int {
	n := 0
	for _, x := range s.nodes {
		if x.up {
			n++
		}
	}
	return n
}

// leader returns a live node that believes it leads the highest term.
func (s *Sim) leader() *node {
	var best *node
	for _, n := range s.nodes {
		if n.up && n.r.Role() == raft.Leader && (best == nil || n.r.Term() > best.r.Term()) {
			best = n
		}
	}
	return best
}
