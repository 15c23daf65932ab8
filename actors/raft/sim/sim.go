package sim

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/flotilla-raft/flotilla/messages"
)

// This file holds what a run is given and returns (Options, Violation,
// Stats), the simulated cluster (Sim) and its run: the faulty phase, then
// the heal and the liveness check.

// Options shapes a run. Probabilities are per message or per step.
type Options struct {
	Seed        uint64
	Nodes       int
	Steps       int // steps with faults; a tick happens every TickEvery steps
	TickEvery   int
	PreVote     bool
	CheckQuorum bool
	// Quiesce turns quiescence on (QuiesceTicks 5, QuiescedHeartbeatTicks
	// 8, ElectionTicks 10): idle leaders quiesce between proposals.
	Quiesce bool

	Drop, Duplicate float64 // per message
	MaxDelay        int     // steps; delays reorder messages
	Partition       float64 // per step: start a (possibly asymmetric) partition
	Heal            float64 // per step: heal all partitions
	Crash           float64 // per step: crash a random node
	Restart         float64 // per step: restart a random crashed node
	Propose         float64 // per step: propose on the leader
	Compact         float64 // per step: compact a random node's log
	SlowDisk        float64 // per step per node: chance a pending batch is NOT persisted this step
	TransferLeader  float64 // per step: ask the leader to hand over
	// ConfChange: per step, the leader proposes a random configuration
	// of the same nodes (a random non-empty set of voters, the others
	// learners): promotions, demotions, joint changes of several voters,
	// the leader's own demotion. Drawn from a random source of its own,
	// so that the other faults of a seed are drawn as without it.
	ConfChange float64
	// CrashAfterPromise: chance to crash a node right after it granted a
	// vote, before its disk caught up (targets the durability ordering).
	CrashAfterPromise float64
	// HealTicks bounds the ticks given after healing for every live node to
	// apply every acknowledged proposal.
	HealTicks int
	// Trace collects a one-line trace of every step (for replays).
	Trace bool
	// NewDisk makes node id's disk; nil: in memory.
	NewDisk func(id uint64) Disk
}

// AllFaults is the standard fault mix of the sweep.
func AllFaults(seed uint64, nodes int) Options {
	return Options{
		Seed: seed, Nodes: nodes, Steps: 2500, TickEvery: 4,
		PreVote: seed%2 == 0, CheckQuorum: seed%3 != 0, Quiesce: seed%4 == 1,
		Drop: 0.05, Duplicate: 0.03, MaxDelay: 6,
		Partition: 0.004, Heal: 0.01, Crash: 0.004, Restart: 0.02,
		Propose: 0.25, Compact: 0.003, SlowDisk: 0.5, TransferLeader: 0.001, CrashAfterPromise: 0.2,
		ConfChange: 0.002, HealTicks: 400,
	}
}

// Violation is a broken property, with the seed that replays it.
type Violation struct {
	Seed uint64
	Step int
	What string
}

func (v *Violation) Error() string {
	return fmt.Sprintf("seed %d step %d: %s\nreplay: go test ./actors/raft/sim/ -run TestReplay -sim.seed=%d -v", v.Seed, v.Step, v.What, v.Seed)
}

// Sim is one simulated cluster.
type Sim struct {
	opt   Options
	rng   *rand.Rand
	crng  *rand.Rand // ConfChange's own source
	step  int
	nodes []*node
	net   []envelope
	cut   map[[2]uint64]bool // directed links that drop

	leaders   map[uint64]uint64 // term -> leader
	seen      map[[2]uint64]seenEntry
	committed map[uint64]committedEntry // index -> what was applied there
	proposed  uint64
	trace     []string
	violation *Violation
	stats     Stats
}

// Stats counts what a run did, to show the faults were exercised.
type Stats struct {
	Elections, Crashes, Restarts, Partitions, Compactions, Snapshots, Proposals, Applied int
	ConfChanges                                                                          int
	// Quiesced and Woke count the cores' quiescence events.
	Quiesced, Woke                 int
	Dropped, Duplicated, Delivered int
	// StorageReads counts the cores' reads of their disk (raft.LogStats):
	// the small entry caches make the stable log come from it.
	StorageReads int
}

// Run runs one simulation and returns the first violation (nil if none).
func Run(opt Options) (*Violation, Stats, []string) {
	s := New(opt)
	v := s.Run()
	return v, s.stats, s.trace
}

// New builds a cluster of opt.Nodes founding members.
func New(opt Options) *Sim {
	s := &Sim{
		opt: opt, rng: rand.New(rand.NewPCG(opt.Seed, 0x5eed)), crng: rand.New(rand.NewPCG(opt.Seed, 0xc0f)), cut: map[[2]uint64]bool{},
		leaders: map[uint64]uint64{}, seen: map[[2]uint64]seenEntry{}, committed: map[uint64]committedEntry{},
	}
	for i := 1; i <= opt.Nodes; i++ {
		n := &node{id: uint64(i), disk: &memDisk{}}
		if opt.NewDisk != nil {
			n.disk = opt.NewDisk(n.id)
		}
		s.nodes = append(s.nodes, n)
		s.start(n)
	}
	return s
}

func (s *Sim) bootstrap() *messages.ClusterConfig {
	cc := &messages.ClusterConfig{Settings: &messages.Settings{PreVote: s.opt.PreVote, CheckQuorum: s.opt.CheckQuorum, ElectionTicks: 10, HeartbeatTicks: 1}}
	for i := 1; i <= s.opt.Nodes; i++ {
		cc.Voters = append(cc.Voters, &messages.Member{Id: uint64(i), Address: fmt.Sprintf("n%d", i)})
	}
	return cc
}

func (s *Sim) fail(format string, args ...any) {
	if s.violation == nil {
		s.violation = &Violation{Seed: s.opt.Seed, Step: s.step, What: fmt.Sprintf(format, args...)}
	}
}

func (s *Sim) tracef(format string, args ...any) {
	if s.opt.Trace {
		s.trace = append(s.trace, fmt.Sprintf("%5d ", s.step)+fmt.Sprintf(format, args...))
	}
}

// Run drives the faulty phase, then heals and checks liveness.
func (s *Sim) Run() *Violation {
	for s.step = 0; s.step < s.opt.Steps && s.violation == nil; s.step++ {
		s.faults()
		s.oneStep(true)
	}
	if s.violation != nil {
		return s.violation
	}
	v := s.healAndCheck()
	for _, n := range s.nodes {
		s.stats.StorageReads += int(n.r.LogStats().StorageReads)
	}
	return v
}

// healAndCheck restarts every node, heals the network and checks that every
// applied entry reaches every node within HealTicks ticks.
func (s *Sim) healAndCheck() *Violation {
	clear(s.cut)
	for _, n := range s.nodes {
		if !n.up {
			s.start(n)
		}
	}
	s.tracef("healed; all nodes up")
	var target uint64
	for idx := range s.committed {
		target = max(target, idx)
	}
	deadline := s.step + s.opt.HealTicks*s.opt.TickEvery
	proposedNoop := false
	for ; s.step < deadline && s.violation == nil; s.step++ {
		s.oneStep(false)
		if l := s.leader(); l != nil && !proposedNoop && l.r.Committed() >= l.r.LastIndex() {
			// One more proposal proves the healed cluster makes progress.
			s.propose()
			proposedNoop = true
		}
		if proposedNoop && s.allApplied(max(target, 1)) {
			if l := s.leader(); l != nil && l.r.Committed() == l.r.LastIndex() && s.allApplied(l.r.LastIndex()) {
				return s.violation
			}
		}
	}
	if s.violation != nil {
		return s.violation
	}
	var b strings.Builder
	for _, n := range s.nodes {
		st := n.r.Status()
		fmt.Fprintf(&b, " [n%d %s term %d commit %d applied %d last %d]", n.id, st.Role, st.Term, st.Commit, n.applied, st.LastIndex)
	}
	if l := s.leader(); l != nil {
		for _, p := range l.r.Status().Progress {
			fmt.Fprintf(&b, " {pr %d match %d next %d %s active %v inflight %d}", p.ID, p.Match, p.Next, p.State, p.RecentActive, p.Inflight)
		}
	}
	s.fail("liveness: after healing, not every node applied every committed entry (target %d) within %d ticks:%s", target, s.opt.HealTicks, b.String())
	return s.violation
}

func (s *Sim) allApplied(idx uint64) bool {
	for _, n := range s.nodes {
		if n.applied < idx {
			return false
		}
	}
	return true
}
