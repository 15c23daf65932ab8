package sim

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/flotilla-raft/flotilla/actors/raft"
	"github.com/flotilla-raft/flotilla/messages"
)

// Options shapes a run. Probabilities are per message or per step.
type Options struct {
	Seed        uint64
	Nodes       int
	Steps       int // steps with faults; a tick happens every TickEvery steps
	TickEvery   int
	PreVote     bool
	CheckQuorum bool

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
		PreVote: seed%2 == 0, CheckQuorum: seed%3 != 0,
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

type envelope struct {
	at int
	m  *messages.Message
}

// Disk is a node's stable storage in the simulation. The default keeps it
// in memory; a test can plug in a real store (see the Pebble disk in the
// tests). Crash loses whatever the disk had not made durable.
type Disk interface {
	// Load returns what is stored, for raft.New after a (re)start.
	Load() (raft.InitialState, error)
	// Save stores one Ready's snapshot, entries and hard state, durably.
	Save(rd raft.Ready) error
	// Compact stores snapshot s and drops the entries it covers.
	Compact(s *messages.Snapshot) error
	// Crash simulates power loss: unsynced data may be lost.
	Crash() error
}

// memDisk is the default Disk: exactly what Save was given.
type memDisk struct{ d durable }

func (m *memDisk) Load() (raft.InitialState, error) {
	return raft.InitialState{HardState: m.d.hs, Snapshot: m.d.snap, Entries: m.d.entries}, nil
}

func (m *memDisk) Crash() error { return nil }

func (m *memDisk) Compact(sn *messages.Snapshot) error {
	m.d.snap = sn
	var keep []*messages.Entry
	for _, e := range m.d.entries {
		if e.Index > sn.Metadata.Index {
			keep = append(keep, e)
		}
	}
	m.d.entries = keep
	return nil
}

func (m *memDisk) Save(rd raft.Ready) error {
	d := &m.d
	if rd.Snapshot != nil {
		d.snap = rd.Snapshot
		d.entries = nil
	}
	if len(rd.Entries) > 0 {
		first := rd.Entries[0].Index
		base := uint64(1)
		if d.snap != nil {
			base = d.snap.Metadata.Index + 1
		}
		if first < base {
			return fmt.Errorf("entry %d below the snapshot %d", first, base-1)
		}
		if first > base+uint64(len(d.entries)) {
			return fmt.Errorf("entry %d leaves a gap after %d", first, base+uint64(len(d.entries))-1)
		}
		d.entries = append(d.entries[:first-base:first-base], rd.Entries...)
	}
	if rd.HardState != nil {
		d.hs = rd.HardState
	}
	return nil
}

// durable is what a node's stable storage holds.
type durable struct {
	hs      *messages.HardState
	snap    *messages.Snapshot
	entries []*messages.Entry // after snap
}

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

type seenEntry struct {
	prevTerm uint64
	data     string
	typ      messages.EntryType
}

type committedEntry struct {
	term uint64
	hash uint64 // state machine hash after applying it
}

// Stats counts what a run did, to show the faults were exercised.
type Stats struct {
	Elections, Crashes, Restarts, Partitions, Compactions, Snapshots, Proposals, Applied int
	ConfChanges                                                                          int
	Dropped, Duplicated, Delivered                                                       int
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

func (s *Sim) start(n *node) {
	cfg := raft.DefaultConfig()
	cfg.ID = n.id
	cfg.Seed = int64(s.opt.Seed*31 + uint64(s.step))
	cfg.Bootstrap = s.bootstrap()
	cfg.MaxSizePerMsg = 512
	cfg.MaxInflightMsgs = 4
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
	if err := n.disk.Crash(); err != nil {
		s.fail("node %d disk crash: %v", n.id, err)
	}
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
	return s.healAndCheck()
}

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
	if s.rng.Float64() < o.Propose {
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
	// Storage keeps the snapshot and drops the entries it covers (like a
	// store's Compact; the in-memory log may keep a tail).
	if err := n.disk.Compact(n.r.Snapshot()); err != nil {
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
	for n.r.HasReady() {
		rd := n.r.Ready()
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

// checkAppended checks log matching on every entry a node appends: an
// (index, term) pair always names the same entry, preceded by the same
// term.
func (s *Sim) checkAppended(n *node, ents []*messages.Entry) {
	for _, e := range ents {
		var prevTerm uint64
		if e.Index > 1 {
			if pe, err := n.r.Entries(e.Index-1, e.Index); err == nil {
				prevTerm = pe[0].Term
			} else if sn := n.r.Snapshot(); sn != nil && sn.Metadata.Index == e.Index-1 {
				prevTerm = sn.Metadata.Term
			} else {
				continue
			}
		}
		key := [2]uint64{e.Index, e.Term}
		got := seenEntry{prevTerm: prevTerm, data: string(e.Data), typ: e.Type}
		if want, ok := s.seen[key]; ok {
			if want != got {
				s.fail("log matching: node %d has entry (%d, term %d) differing from another node's (prev term %d vs %d)", n.id, e.Index, e.Term, got.prevTerm, want.prevTerm)
			}
		} else {
			s.seen[key] = got
		}
	}
}

// checkLeaderCompleteness: a new leader holds every entry applied anywhere.
func (s *Sim) checkLeaderCompleteness(n *node) {
	first := n.r.FirstIndex()
	for idx, c := range s.committed {
		if idx < first {
			continue
		}
		ents, err := n.r.Entries(idx, idx+1)
		if err != nil {
			s.fail("leader completeness: leader %d of term %d lacks committed index %d (last %d)", n.id, n.r.Term(), idx, n.r.LastIndex())
			return
		}
		if ents[0].Term != c.term {
			s.fail("leader completeness: leader %d of term %d has term %d at committed index %d (term %d)", n.id, n.r.Term(), ents[0].Term, idx, c.term)
			return
		}
	}
}

// check asserts election safety after every step.
func (s *Sim) check() {
	for _, n := range s.nodes {
		if !n.up || n.r.Role() != raft.Leader {
			continue
		}
		t := n.r.Term()
		if l, ok := s.leaders[t]; ok && l != n.id {
			s.fail("election safety: nodes %d and %d both lead term %d", l, n.id, t)
		}
		s.leaders[t] = n.id
	}
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
