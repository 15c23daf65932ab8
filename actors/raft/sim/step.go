package sim

import (
	"encoding/binary"
	"hash/fnv"
	"slices"

	"github.com/flotilla-raft/flotilla/actors/raft"
	"github.com/flotilla-raft/flotilla/messages"
)

// This file holds one step of the cluster: ticks, delivery of the messages
// due, persistence (slow disks), Ready processing, the network (loss,
// duplication, delay) and the state machine.

type envelope struct {
	at int
	m  *messages.Message
}

// oneStep delivers due messages, ticks, persists, and processes Ready.
func (s *Sim) oneStep(faulty bool) {
	if s.step%s.opt.TickEvery == 0 {
		for _, n := range s.nodes {
			if n.up {
				n.r.Tick()
			}
		}
	}
	// Deliver what is due, in the (seeded) order the delays produced.
	var due []envelope
	rest := s.net[:0]
	for _, e := range s.net {
		if e.at <= s.step {
			due = append(due, e)
		} else {
			rest = append(rest, e)
		}
	}
	s.net = rest
	for _, e := range due {
		n := s.nodes[e.m.To-1]
		if !n.up {
			continue
		}
		if err := n.r.Step(e.m); err != nil {
			s.fail("node %d refused %s from %d: %v", n.id, e.m.Type, e.m.From, err)
		}
		s.stats.Delivered++
	}
	for _, n := range s.nodes {
		if !n.up {
			continue
		}
		s.persist(n, faulty)
		s.ready(n, faulty)
	}
	s.check()
}

// persist makes the oldest pending batches durable (all of them unless the
// disk is slow this step).
func (s *Sim) persist(n *node, faulty bool) {
	k := len(n.queue)
	if faulty && s.rng.Float64() < s.opt.SlowDisk {
		k = s.rng.IntN(k + 1)
	}
	if k == 0 {
		return
	}
	for _, p := range n.queue[:k] {
		if err := n.disk.Save(p.rd); err != nil {
			s.fail("node %d cannot persist: %v", n.id, err)
			return
		}
	}
	n.r.Persisted(n.queue[k-1].id)
	n.queue = slices.Delete(n.queue, 0, k)
}

func (s *Sim) ready(n *node, faulty bool) {
	n.r.AppliedTo(n.applied) // what the last step applied
	for n.r.HasReady() {
		rd := n.r.Ready()
		if rd.StorageError != nil {
			s.fail("node %d could not read its disk: %v", n.id, rd.StorageError)
			return
		}
		if rd.PersistID != 0 {
			s.checkAppended(n, rd.Entries)
			n.queue = append(n.queue, pending{id: rd.PersistID, rd: rd})
		}
		for _, m := range rd.Messages {
			s.sendMsg(m, faulty)
		}
		if rd.Snapshot != nil {
			md := rd.Snapshot.Metadata
			n.applied = md.Index
			n.hash = binary.BigEndian.Uint64(rd.Snapshot.Data)
			if c, ok := s.committed[md.Index]; ok && c.hash != n.hash {
				s.fail("node %d restored a snapshot at %d whose state differs from what was applied there", n.id, md.Index)
			}
			s.stats.Snapshots++
		}
		for _, e := range rd.CommittedEntries {
			s.apply(n, e)
		}
		for _, ev := range rd.Events {
			if ev.Kind == raft.EventVoteGranted && faulty && s.upCount() > 1 && s.rng.Float64() < s.opt.CrashAfterPromise {
				s.crash(n)
				s.stats.Crashes++
				s.tracef("crash %d right after granting a vote to %d", n.id, ev.Peer)
				return
			}
			switch ev.Kind {
			case raft.EventQuiesced:
				s.stats.Quiesced++
			case raft.EventWoke:
				s.stats.Woke++
			}
			if ev.Kind == raft.EventRoleChanged && ev.To == raft.Leader {
				s.stats.Elections++
				s.tracef("node %d leads term %d", n.id, ev.Term)
				s.checkLeaderCompleteness(n)
			}
		}
	}
}

func (s *Sim) sendMsg(m *messages.Message, faulty bool) {
	if faulty {
		if s.cut[[2]uint64{m.From, m.To}] || s.rng.Float64() < s.opt.Drop {
			s.stats.Dropped++
			return
		}
		if s.rng.Float64() < s.opt.Duplicate {
			s.stats.Duplicated++
			s.net = append(s.net, envelope{at: s.step + 1 + s.rng.IntN(s.opt.MaxDelay+1), m: m})
		}
		s.net = append(s.net, envelope{at: s.step + 1 + s.rng.IntN(s.opt.MaxDelay+1), m: m})
		return
	}
	s.net = append(s.net, envelope{at: s.step + 1, m: m})
}

func (s *Sim) apply(n *node, e *messages.Entry) {
	if e.Index != n.applied+1 {
		s.fail("node %d applies index %d after %d (gap or repeat)", n.id, e.Index, n.applied)
		return
	}
	h := fnv.New64a()
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], n.hash)
	h.Write(buf[:])
	binary.BigEndian.PutUint64(buf[:], e.Term)
	h.Write(buf[:])
	h.Write(e.Data)
	n.hash = h.Sum64()
	n.applied = e.Index
	if c, ok := s.committed[e.Index]; ok {
		if c.term != e.Term || c.hash != n.hash {
			s.fail("state machine safety: node %d applied index %d term %d, another node applied term %d there", n.id, e.Index, e.Term, c.term)
		}
	} else {
		s.committed[e.Index] = committedEntry{term: e.Term, hash: n.hash}
		s.stats.Applied++
	}
}
