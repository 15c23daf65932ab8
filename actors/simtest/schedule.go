package simtest

import (
	"fmt"
	"time"

	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/cluster/transport/inmem"
)

// This file holds the fault schedule: one step drawn from the seed
// (partitions, network faults, crashes, stops, restarts, snapshots,
// leadership transfers, pauses, configuration changes, stale-read probes)
// and the heal that ends the faults.

// step takes one action of the schedule.
func (s *sim) step() {
	// At most a minority of the founding voters is down or paused at once
	// (two of three in a 3-node cluster, which then loses its quorum at
	// times), so the cluster mostly makes progress between faults.
	canFail := s.downCount() < (s.opt.Nodes-1)/2+boolInt(s.opt.Nodes == 3)
	switch p := s.rng.IntN(100); {
	case p < 8:
		s.partition(s.runningIDs())
	case p < 18:
		s.tracef("heal partitions")
		s.net.Heal()
	case p < 24:
		s.networkFaults()
	case p < 28:
		s.tracef("network faults cleared")
		s.net.ClearFaults()
	case p < 36:
		if n := s.pick(running); n != nil && canFail {
			s.halt(n, true)
		}
	case p < 40:
		if n := s.pick(running); n != nil && canFail {
			s.halt(n, false)
		}
	case p < 44:
		// Crash right after a snapshot.
		if n := s.pick(running); n != nil && canFail {
			if r, err := actors.Request[*actors.TakeSnapshotResponse](s.root, n.pid, &actors.TakeSnapshot{}, time.Second); err == nil {
				s.tracef("node %d took a snapshot at %d", n.id, r.Index)
				s.halt(n, true)
				s.count(func(st *Stats) { st.CrashesAfterSnapshot++ })
			}
		}
	case p < 58:
		if n := s.pick(down); n != nil {
			s.startNode(n, false)
		}
	case p < 62:
		if n := s.pick(running); n != nil {
			r, err := actors.Request[*actors.TakeSnapshotResponse](s.root, n.pid, &actors.TakeSnapshot{}, time.Second)
			if err == nil {
				s.tracef("snapshot on node %d at %d", n.id, r.Index)
			}
		}
	case p < 67:
		s.transfer()
	case p < 71:
		if s.opt.Settings {
			s.changeSettings()
		}
	case p < 74:
		// Pause: stop in order, start paused; a later step resumes it.
		if n := s.pick(running); n != nil && canFail {
			s.halt(n, false)
			s.startNode(n, true)
			s.count(func(st *Stats) { st.Pauses++ })
		}
	case p < 80:
		if n := s.pick(paused); n != nil {
			s.resume(n)
		}
	case p < 90:
		if s.opt.Membership {
			s.changeMembers()
		}
	case p < 94:
		s.staleReadProbe()
	}
}

// partition cuts a random minority of ids from the rest.
func (s *sim) partition(ids []uint64) {
	s.rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	k := 1 + s.rng.IntN(max(1, len(ids)/2))
	if k < len(ids) {
		s.tracef("partition %v | %v", ids[:k], ids[k:])
		s.net.Partition(ids[:k], ids[k:])
		s.count(func(st *Stats) { st.Partitions++ })
	}
}

// networkFaults sets random loss, duplication and delay on every link.
func (s *sim) networkFaults() {
	f := inmem.Faults{Drop: s.rng.Float64() * 0.2, Duplicate: s.rng.Float64() * 0.1,
		MaxDelay: time.Duration(s.rng.IntN(30)) * time.Millisecond}
	s.tracef("network faults %+v", f)
	s.net.SetFaults(f)
}

// staleReadProbe cuts the leader off, has an append acknowledged by the
// rest, then reads on the cut-off node: a leader that still serves reads
// then (a broken lease) answers without the append, which porcupine flags.
func (s *sim) staleReadProbe() {
	lead, _ := s.leader()
	if lead == 0 {
		return
	}
	var rest []uint64
	for _, id := range s.runningIDs() {
		if id != lead {
			rest = append(rest, id)
		}
	}
	s.tracef("stale-read probe: partition [%d] | %v", lead, rest)
	s.net.Partition([]uint64{lead}, rest)
	s.count(func(st *Stats) { st.Partitions++ })
	time.Sleep(time.Duration(s.rng.IntN(3*electionTick)) * tickInterval)
	key := s.keys[s.rng.IntN(len(s.keys))]
	s.probeClient.avoid = lead
	s.probeClient.seq++
	acked := s.probeClient.append(key, fmt.Sprintf("probe.%d", s.probeClient.seq))
	s.probeClient.avoid = 0
	if acked {
		s.probeClient.readOn(lead, s.pidOf(lead), key)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (s *sim) transfer() {
	lead, st := s.leader()
	if lead == 0 {
		return
	}
	var to uint64
	if s.rng.IntN(2) == 0 {
		for _, v := range st.Config.GetVoters() {
			if v.Id != lead && s.rng.IntN(2) == 0 {
				to = v.Id
			}
		}
	}
	r, err := actors.Request[*actors.TransferLeadershipResponse](s.root, s.pidOf(lead), &actors.TransferLeadership{To: to}, 3*time.Second)
	if err != nil {
		s.tracef("transfer leadership from %d to %d: %v", lead, to, err)
		return
	}
	s.tracef("transfer leadership from %d to %d: leader %d", lead, to, r.Leader)
	{
		s.count(func(st *Stats) { st.Transfers++ })
	}
}

// heal ends the faults: the network heals, every member is started and
// resumed.
func (s *sim) heal() {
	s.tracef("heal: network healed, every member started and resumed")
	s.healed.Store(true)
	s.net.Heal()
	s.net.ClearFaults()
	s.handleStopped()
	for _, id := range s.order {
		n := s.nodes[id]
		if !n.member {
			continue
		}
		switch n.state {
		case down:
			s.startNode(n, false)
		case paused:
			s.resume(n)
		}
	}
}
