package raft

// Crash tests: random schedules of crashes that lose whatever was not
// reported persisted must lose no acknowledged entry, and runs are
// deterministic.

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/flotilla-raft/flotilla/messages"
	"google.golang.org/protobuf/proto"
)

// TestCrashLosesNoAcknowledgedEntry runs seeded random schedules where
// nodes persist late and crash (losing every batch not reported
// persisted), messages are lost and reordered. No entry any node applied
// is ever lost or changed, and after healing every node has all of them.
func TestCrashLosesNoAcknowledgedEntry(t *testing.T) {
	seeds := 60
	if testing.Short() {
		seeds = 10
	}
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			runCrashSchedule(t, seed)
		})
	}
}

// runCrashSchedule runs the schedule of seed and returns the trace of
// every message delivered (for the determinism test).
func runCrashSchedule(t *testing.T, seed uint64) []*messages.Message {
	rng := rand.New(rand.NewPCG(seed, 99))
	size := 3 + 2*rng.IntN(2)
	var opts []func(*messages.Settings)
	if rng.IntN(2) == 0 {
		opts = append(opts, withPreVote, withCheckQuorum)
	}
	nw := newNetwork(t, size, opts...)
	for _, id := range nw.ids {
		nw.nodes[id].hold = true
	}
	applied := map[uint64]*messages.Entry{} // every entry any node applied
	// Per node, how many of its applied entries were recorded, as of which
	// restart.
	seen, restarts := map[uint64]int{}, map[uint64]int{}
	record := func() {
		for _, id := range nw.ids {
			nd := nw.nodes[id]
			ents := nd.applied
			if nd.restarts != restarts[id] {
				seen[id], restarts[id] = 0, nd.restarts
			}
			from := seen[id]
			seen[id] = len(ents)
			for _, e := range ents[from:] {
				if old, ok := applied[e.Index]; ok && !proto.Equal(old, e) {
					t.Fatalf("seed %d: node %d applied %v at %d, another node applied %v", seed, id, e, e.Index, old)
				}
				applied[e.Index] = e
			}
		}
	}
	pick := func() uint64 { return nw.ids[rng.IntN(len(nw.ids))] }
	proposals := 0
	for range 1500 {
		switch k := rng.IntN(20); {
		case k < 5:
			nw.nodes[pick()].r.Tick()
		case k < 7:
			if lead := nw.leader(); lead != 0 {
				proposals++
				nw.raft(lead).Propose(&messages.Entry{Data: []byte(fmt.Sprint("p", proposals))})
			}
		case k < 12:
			nw.deliverShuffled(rng)
		case k < 18:
			nw.persist(pick())
		case k < 19:
			nw.crashOrCompact(rng, pick)
		default:
			if rng.IntN(4) == 0 {
				nw.heal()
				nw.isolate(pick())
			} else {
				nw.heal()
			}
		}
		record()
	}
	// Heal, persist at once, and let the cluster settle.
	nw.heal()
	for _, id := range nw.ids {
		nw.nodes[id].hold = false
		nw.persist(id)
	}
	for i := 0; nw.leader() == 0 || nw.raft(nw.leader()).Committed() != nw.raft(nw.leader()).LastIndex(); i++ {
		if i > 200 {
			t.Fatalf("seed %d: no leader committing after healing", seed)
		}
		nw.tick(1)
	}
	lead := nw.leader()
	nw.propose(lead, "final")
	for i := 0; i < 100; i++ {
		nw.tick(1)
		ok := true
		for _, id := range nw.ids {
			ok = ok && nw.raft(id).Committed() == nw.raft(lead).LastIndex()
		}
		if ok {
			break
		}
		if i == 99 {
			for _, id := range nw.ids {
				st := nw.raft(id).Status()
				t.Logf("node %d: %s term %d lead %d first %d last %d commit %d progress %+v", id, st.Role, st.Term, st.Leader, st.FirstIndex, st.LastIndex, st.Commit, st.Progress)
			}
		}
	}
	record()
	nw.checkLogsMatch()
	for idx, e := range applied {
		if idx < nw.raft(lead).FirstIndex() {
			continue // compacted: covered by the snapshot
		}
		got, err := nw.raft(lead).Entries(idx, idx+1, 0)
		if err != nil || !proto.Equal(got[0], e) {
			t.Fatalf("seed %d: applied entry %d (%v) lost: leader has %v (%v)", seed, idx, e, got, err)
		}
	}
	if len(applied) < 3 {
		t.Logf("seed %d: only %d entries applied", seed, len(applied))
	}
	return nw.sent
}

// TestDeterminism: the same seed gives the same run, message for message.
func TestDeterminism(t *testing.T) {
	for _, seed := range []uint64{3, 17} {
		a := runCrashSchedule(t, seed)
		b := runCrashSchedule(t, seed)
		if len(a) != len(b) {
			t.Fatalf("seed %d: %d then %d messages", seed, len(a), len(b))
		}
		for i := range a {
			if !proto.Equal(a[i], b[i]) {
				t.Fatalf("seed %d: message %d differs:\n%v\n%v", seed, i, a[i], b[i])
			}
		}
	}
	// And different seeds of the same cluster elect at different times.
	ticksToElect := func(seed int64) []int {
		var out []int
		for id := uint64(1); id <= 3; id++ {
			cfg := testConfig(id, clusterConfig([]uint64{1, 2, 3}, nil))
			cfg.Seed = seed
			r, _ := New(cfg, InitialState{})
			n := 0
			for r.Role() == Follower {
				r.Tick()
				n++
			}
			out = append(out, n)
		}
		return out
	}
	if !slices.Equal(ticksToElect(5), ticksToElect(5)) {
		t.Fatal("same seed, different election timeouts")
	}
}

// TestSingleVoterLeadsOnlyOnceItsVoteIsDurable is a regression test for an
// Election Safety violation a seeded schedule found: a single voter won its
// election at once, before its new term and self-vote were durable, and
// sent entries of that term. Crashing, it came back at the old term, won
// the same term again and wrote different entries at the same indices; a
// follower holding the first ones took them for the second (same index
// and term) and applied different commands.
func TestSingleVoterLeadsOnlyOnceItsVoteIsDurable(t *testing.T) {
	nw := newNetworkConfig(t, clusterConfig([]uint64{1}, []uint64{2}), []uint64{1, 2})
	nw.stabilize()
	nd := nw.nodes[1]
	nd.hold = true
	nw.campaign(1)
	if r := nw.raft(1); r.Role() == Leader {
		t.Fatalf("leader of term %d before its vote is durable", r.Term())
	}
	if n := nw.countSent(mApp, 1, 2); n != 0 {
		t.Fatalf("%d appends sent before the term is durable", n)
	}
	nw.raft(1).Propose(&messages.Entry{Data: []byte("first")}) // refused: not leader
	nw.stabilize()
	nw.crash(1)
	nd.hold = false
	nw.elect(1)
	nw.propose(1, "second")
	nw.tick(2)
	if a, b := nw.nodes[1].appliedData(), nw.nodes[2].appliedData(); !slices.Equal(a, []string{"second"}) || !slices.Equal(a, b) {
		t.Fatalf("leader applied %v, learner applied %v", a, b)
	}
	// The same with the leader persisting: it leads once its vote is.
	nw.persist(1)
	if r := nw.raft(1); r.Role() != Leader {
		t.Fatalf("%s", r.Role())
	}
}
