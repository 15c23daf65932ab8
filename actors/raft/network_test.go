package raft

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/flotilla-raft/flotilla/messages"
	"google.golang.org/protobuf/proto"
)

// This file holds the in-test driver: a network of *Raft instances wired
// together by a FIFO message queue, with a memory "stable storage" per node.
// It is single-threaded and deterministic: no goroutines, no clock. It
// follows the driver contract of doc.go (persist, Persisted, send, apply)
// and checks, at every Ready, that the core keeps its side of it.

// memStorage is one node's stable storage: only what the driver reported
// persisted is in it.
type memStorage struct {
	hs   *messages.HardState
	snap *messages.Snapshot
	ents []*messages.Entry // the entries after snap, contiguous
}

func (s *memStorage) snapIndex() uint64 { return s.snap.GetMetadata().GetIndex() }

func (s *memStorage) lastIndex() uint64 { return s.snapIndex() + uint64(len(s.ents)) }

// entry returns the stored entry i, nil if not stored.
func (s *memStorage) entry(i uint64) *messages.Entry {
	if i <= s.snapIndex() || i > s.lastIndex() {
		return nil
	}
	return s.ents[i-s.snapIndex()-1]
}

func (s *memStorage) write(t testing.TB, rd Ready) {
	t.Helper()
	if rd.HardState != nil {
		s.hs = proto.Clone(rd.HardState).(*messages.HardState)
	}
	if rd.Snapshot != nil {
		s.snap = rd.Snapshot
		s.ents = nil
	}
	if len(rd.Entries) > 0 {
		first := rd.Entries[0].Index
		if first <= s.snapIndex() || first > s.lastIndex()+1 {
			t.Fatalf("entries from %d do not continue the stored log (snapshot %d, last %d)", first, s.snapIndex(), s.lastIndex())
		}
		s.ents = append(slices.Clone(s.ents[:first-s.snapIndex()-1]), rd.Entries...)
	}
}

// compact records snap and drops the stored entries it covers.
func (s *memStorage) compact(snap *messages.Snapshot) {
	i := snap.Metadata.Index
	var keep []*messages.Entry
	for _, e := range s.ents {
		if e.Index > i {
			keep = append(keep, e)
		}
	}
	s.snap, s.ents = snap, keep
}

func (s *memStorage) initialState() InitialState {
	return InitialState{HardState: s.hs, Snapshot: s.snap, Entries: slices.Clone(s.ents)}
}

type testNode struct {
	id      uint64
	cfg     Config
	r       *Raft
	store   memStorage
	down    bool
	hold    bool    // do not persist at once: keep Readies in unsaved
	unsaved []Ready // handed out, not yet persisted
	applied []*messages.Entry
	// snapData is the state of the last snapshot the application restored.
	snapData []byte
	restarts int // times applied was reset (crash, snapshot)
	reads    []ReadState
	events   []Event
}

type network struct {
	t      testing.TB
	ids    []uint64
	nodes  map[uint64]*testNode
	queue  []*messages.Message
	cut    map[[2]uint64]bool // from, to
	filter func(m *messages.Message) bool
	sent   []*messages.Message // every message delivered, in order
}

// newNetwork bootstraps a cluster of voters 1..n (and learners) with the
// given settings options.
func newNetwork(t testing.TB, n int, opts ...func(*messages.Settings)) *network {
	t.Helper()
	var ids []uint64
	for i := 1; i <= n; i++ {
		ids = append(ids, uint64(i))
	}
	return newNetworkConfig(t, clusterConfig(ids, nil, opts...), ids)
}

// newNetworkConfig bootstraps the nodes ids with cc (nodes not in cc start
// empty and wait for the leader).
func newNetworkConfig(t testing.TB, cc *messages.ClusterConfig, ids []uint64) *network {
	t.Helper()
	return newNetworkWith(t, cc, ids, nil)
}

// newNetworkWith is newNetworkConfig with a change to every node's Config.
func newNetworkWith(t testing.TB, cc *messages.ClusterConfig, ids []uint64, change func(*Config)) *network {
	t.Helper()
	nw := &network{t: t, nodes: map[uint64]*testNode{}, cut: map[[2]uint64]bool{}}
	inConfig := map[uint64]bool{}
	for _, m := range append(slices.Clone(cc.Voters), cc.Learners...) {
		inConfig[m.Id] = true
	}
	for _, id := range ids {
		var boot *messages.ClusterConfig
		if inConfig[id] {
			boot = cc
		}
		cfg := testConfig(id, boot)
		if change != nil {
			change(&cfg)
		}
		nw.addNode(cfg, InitialState{})
	}
	return nw
}

// addNode starts a node with cfg and st, as if st were in its storage.
func (nw *network) addNode(cfg Config, st InitialState) *testNode {
	nw.t.Helper()
	cfg.Seed = int64(cfg.ID) * 1000
	r, err := New(cfg, st)
	if err != nil {
		nw.t.Fatalf("New(%d): %v", cfg.ID, err)
	}
	nd := &testNode{id: cfg.ID, cfg: cfg, r: r}
	nd.store = memStorage{hs: st.HardState, snap: st.Snapshot, ents: slices.Clone(st.Entries)}
	nw.nodes[cfg.ID] = nd
	if !slices.Contains(nw.ids, cfg.ID) {
		nw.ids = append(nw.ids, cfg.ID)
		slices.Sort(nw.ids)
	}
	return nd
}

func (nw *network) raft(id uint64) *Raft { return nw.nodes[id].r }

// isolate cuts every link to and from id.
func (nw *network) isolate(id uint64) {
	for _, o := range nw.ids {
		if o != id {
			nw.cut[[2]uint64{id, o}] = true
			nw.cut[[2]uint64{o, id}] = true
		}
	}
}

// cutLink cuts a <-> b.
func (nw *network) cutLink(a, b uint64) {
	nw.cut[[2]uint64{a, b}] = true
	nw.cut[[2]uint64{b, a}] = true
}

// heal restores every link.
func (nw *network) heal() { nw.cut = map[[2]uint64]bool{} }

// ready processes every Ready of nd; it reports whether there was any.
func (nw *network) ready(nd *testNode) bool {
	t := nw.t
	t.Helper()
	any := false
	for i := 0; nd.r.HasReady(); i++ {
		if i > 100 {
			t.Fatalf("node %d: HasReady stays true", nd.id)
		}
		any = true
		rd := nd.r.Ready()
		// The core's side of the contract: committed entries handed out are
		// already durable locally, and continue what was applied.
		for _, e := range rd.CommittedEntries {
			if se := nd.store.entry(e.Index); se == nil || se.Term != e.Term {
				t.Fatalf("node %d: committed entry %d (term %d) handed out for applying before it is durable", nd.id, e.Index, e.Term)
			}
		}
		if rd.Snapshot != nil {
			nd.applied = nil // the application restarts from the snapshot
			nd.restarts++
			nd.snapData = rd.Snapshot.Data
		}
		for _, e := range rd.CommittedEntries {
			if n := len(nd.applied); n > 0 && nd.applied[n-1].Index+1 != e.Index {
				t.Fatalf("node %d: applied %d then %d", nd.id, nd.applied[n-1].Index, e.Index)
			}
			nd.applied = append(nd.applied, e)
		}
		nw.checkPromises(nd, rd.Messages)
		nd.reads = append(nd.reads, rd.ReadStates...)
		nd.events = append(nd.events, rd.Events...)
		nw.queue = append(nw.queue, rd.Messages...)
		if rd.PersistID != 0 {
			nd.unsaved = append(nd.unsaved, rd)
			if !nd.hold {
				nw.persist(nd.id)
			}
		}
	}
	return any
}

// checkPromises fails if a message handed out to be sent promises state
// that is not in nd's stable storage yet (thesis §3.8: "servers must
// persist their state before responding").
func (nw *network) checkPromises(nd *testNode, msgs []*messages.Message) {
	t := nw.t
	t.Helper()
	hs := nd.store.hs
	for _, m := range msgs {
		switch {
		// A grant or request of an earlier term may leave late (it was
		// durable before the node moved on): the stored term is then
		// higher, which is as binding.
		case m.Type == messages.MessageType_MSG_VOTE_RESP && !m.Reject:
			if hs.GetTerm() < m.Term || hs.GetTerm() == m.Term && hs.GetVote() != m.To {
				t.Fatalf("node %d grants its vote to %d at term %d, stored hard state is %v", nd.id, m.To, m.Term, hs)
			}
		case m.Type == messages.MessageType_MSG_VOTE:
			if hs.GetTerm() < m.Term || hs.GetTerm() == m.Term && hs.GetVote() != nd.id {
				t.Fatalf("node %d asks for votes at term %d, stored hard state is %v", nd.id, m.Term, hs)
			}
		case m.Type == messages.MessageType_MSG_APPEND_RESP && !m.Reject:
			if m.Index > nd.store.lastIndex() {
				t.Fatalf("node %d acknowledges index %d, stored last index is %d", nd.id, m.Index, nd.store.lastIndex())
			}
		}
	}
}

// persist makes everything nd handed out durable and reports it.
func (nw *network) persist(id uint64) {
	nd := nw.nodes[id]
	if len(nd.unsaved) == 0 {
		return
	}
	for _, rd := range nd.unsaved {
		nd.store.write(nw.t, rd)
	}
	last := nd.unsaved[len(nd.unsaved)-1].PersistID
	nd.unsaved = nil
	nd.r.Persisted(last)
}

// compact takes a snapshot of id at its applied index, keeping keep
// entries, and stores it as the driver would.
func (nw *network) compact(id uint64, data string, keep uint64) {
	nw.t.Helper()
	nd := nw.nodes[id]
	if err := nd.r.Compact(nd.r.Applied(), []byte(data), keep); err != nil {
		nw.t.Fatalf("Compact at %d: %v", id, err)
	}
	nd.store.compact(nd.r.Snapshot())
}

// crash drops what id has not persisted and restarts it from its storage.
func (nw *network) crash(id uint64) {
	nd := nw.nodes[id]
	nd.unsaved = nil
	r, err := New(nd.cfg, nd.store.initialState())
	if err != nil {
		nw.t.Fatalf("restart %d: %v", id, err)
	}
	nd.r = r
	nd.applied = nil
	nd.restarts++
	nd.snapData = nd.store.snap.GetData()
	// Messages in flight to or from it are not lost by the crash itself.
}

// deliverShuffled runs every node's Ready, then delivers what they sent in
// a random order, losing one message in ten (randomized schedules).
func (nw *network) deliverShuffled(rng *rand.Rand) {
	for _, id := range nw.ids {
		nw.ready(nw.nodes[id])
	}
	q := nw.queue
	nw.queue = nil
	rng.Shuffle(len(q), func(i, j int) { q[i], q[j] = q[j], q[i] })
	for _, m := range q {
		if rng.IntN(10) > 0 {
			nw.deliver(m)
		}
	}
}

// crashOrCompact crashes a picked node (one time in three) or compacts a
// picked node's log at its applied index (the coin is drawn before the
// pick, so seeds replay as before). Compact may leave a snapshot ahead of
// the in-memory log start (keep); the storage keeps what follows it.
func (nw *network) crashOrCompact(rng *rand.Rand, pick func() uint64) {
	if rng.IntN(3) == 0 {
		nw.crash(pick())
	} else if nd := nw.nodes[pick()]; nd.r.Applied() > nd.r.log.snapIndex {
		nw.compact(nd.id, fmt.Sprint("snap@", nd.r.Applied()), uint64(rng.IntN(3)))
	}
}

func (nw *network) deliver(m *messages.Message) {
	nw.t.Helper()
	nd := nw.nodes[m.To]
	if nd == nil || nd.down || nw.cut[[2]uint64{m.From, m.To}] || (nw.filter != nil && !nw.filter(m)) {
		return
	}
	nw.sent = append(nw.sent, m)
	if err := nd.r.Step(proto.Clone(m).(*messages.Message)); err != nil {
		nw.t.Fatalf("node %d: Step(%v): %v", m.To, m, err)
	}
}

// stabilize runs the network until no node has anything to do and no
// message is in flight.
func (nw *network) stabilize() {
	nw.t.Helper()
	for i := 0; i < 10000; i++ {
		progressed := false
		for _, id := range nw.ids {
			if nd := nw.nodes[id]; !nd.down && nw.ready(nd) {
				progressed = true
			}
		}
		if len(nw.queue) == 0 && !progressed {
			return
		}
		q := nw.queue
		nw.queue = nil
		for _, m := range q {
			nw.deliver(m)
		}
	}
	nw.t.Fatalf("the network did not stabilize")
}

// tick ticks the given nodes (all up nodes if none) k times, stabilizing
// after each round.
func (nw *network) tick(k int, ids ...uint64) {
	if len(ids) == 0 {
		ids = nw.ids
	}
	for range k {
		for _, id := range ids {
			if nd := nw.nodes[id]; !nd.down {
				nd.r.Tick()
			}
		}
		nw.stabilize()
	}
}

// campaign makes id campaign and runs the election to its end.
func (nw *network) campaign(id uint64) {
	nw.raft(id).Campaign()
	nw.stabilize()
}

// elect makes id the leader or fails.
func (nw *network) elect(id uint64) {
	nw.t.Helper()
	nw.campaign(id)
	if r := nw.raft(id); r.Role() != Leader {
		nw.t.Fatalf("node %d is %s at term %d, want leader", id, r.Role(), r.Term())
	}
}

// leader returns the leader of the highest term among up nodes, 0 if none.
func (nw *network) leader() uint64 {
	var lead, term uint64
	for _, id := range nw.ids {
		nd := nw.nodes[id]
		if !nd.down && nd.r.Role() == Leader && nd.r.Term() >= term {
			lead, term = id, nd.r.Term()
		}
	}
	return lead
}

// propose proposes data at id and stabilizes; it returns the entry's index.
func (nw *network) propose(id uint64, data string) uint64 {
	nw.t.Helper()
	idx, _, err := nw.raft(id).Propose(&messages.Entry{Data: []byte(data)})
	if err != nil {
		nw.t.Fatalf("propose at %d: %v", id, err)
	}
	nw.stabilize()
	return idx
}

// appliedData returns the data of the normal entries nd applied.
func (nd *testNode) appliedData() []string {
	var out []string
	for _, e := range nd.applied {
		if e.Type == messages.EntryType_ENTRY_NORMAL {
			out = append(out, string(e.Data))
		}
	}
	return out
}

// checkLogsMatch fails unless every up node's log equals the leader's up
// to its last index and every node committed the same prefix.
func (nw *network) checkLogsMatch(ids ...uint64) {
	nw.t.Helper()
	if len(ids) == 0 {
		ids = nw.ids
	}
	ref := nw.raft(ids[0])
	for _, id := range ids[1:] {
		r := nw.raft(id)
		if r.LastIndex() != ref.LastIndex() || r.Committed() != ref.Committed() {
			nw.t.Fatalf("node %d last %d commit %d; node %d last %d commit %d", id, r.LastIndex(), r.Committed(), ids[0], ref.LastIndex(), ref.Committed())
		}
		lo := max(r.FirstIndex(), ref.FirstIndex())
		a, _ := r.Entries(lo, r.LastIndex()+1, 0)
		b, _ := ref.Entries(lo, ref.LastIndex()+1, 0)
		for i := range a {
			if !proto.Equal(a[i], b[i]) {
				nw.t.Fatalf("node %d entry %d = %v, node %d has %v", id, a[i].Index, a[i], ids[0], b[i])
			}
		}
	}
}

// countSent counts delivered messages of type ty (from -> to when non-zero).
func (nw *network) countSent(ty messages.MessageType, from, to uint64) int {
	n := 0
	for _, m := range nw.sent {
		if m.Type == ty && (from == 0 || m.From == from) && (to == 0 || m.To == to) {
			n++
		}
	}
	return n
}
