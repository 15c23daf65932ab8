package main

import (
	"errors"
	"slices"
	"testing"

	"github.com/flotilla-raft/flotilla/messages"
)

func apply(t *testing.T, tb *Table, index uint64, c Command) error {
	t.Helper()
	res := tb.Apply(&messages.Entry{Index: index, Data: c.Encode()})
	if res == nil {
		return nil
	}
	err, ok := res.(error)
	if !ok {
		t.Fatalf("Apply answered %T", res)
	}
	return err
}

// TestTableCompareAndSet: an assign names each partition's epoch; one stale
// move refuses the whole entry, and every applied move sets the epoch to
// its entry's index and clears Ready.
func TestTableCompareAndSet(t *testing.T) {
	tb := NewTable()
	if err := apply(t, tb, 5, Command{Op: OpCreate, Topic: "orders", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	if err := apply(t, tb, 6, Command{Op: OpCreate, Topic: "orders", Partitions: 2}); !errors.Is(err, ErrTopicExists) {
		t.Fatalf("second create: %v, want ErrTopicExists", err)
	}
	for _, bad := range []Command{{Op: OpCreate, Topic: "a b", Partitions: 1}, {Op: OpCreate, Topic: "x", Partitions: 0},
		{Op: OpCreate, Topic: "x", Partitions: MaxPartitions + 1}, {Op: "nope"}, {Op: OpRegister, Broker: 1}} {
		if err := apply(t, tb, 7, bad); !errors.Is(err, ErrBadCommand) {
			t.Errorf("%+v: %v, want ErrBadCommand", bad, err)
		}
	}
	ok := Move{Partition: "orders/0", Epoch: 5, Owner: 1, Follower: 2}
	stale := Move{Partition: "orders/1", Epoch: 4, Owner: 2, Follower: 1}
	if err := apply(t, tb, 8, Command{Op: OpAssign, Moves: []Move{ok, stale}}); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("assign with a stale move: %v, want ErrStaleEpoch", err)
	}
	if p, _ := tb.View().Get("orders/0"); p.Owner != 0 || p.Epoch != 5 {
		t.Fatalf("a refused assign changed orders/0: %+v", p)
	}
	if err := apply(t, tb, 9, Command{Op: OpAssign, Moves: []Move{ok}}); err != nil {
		t.Fatal(err)
	}
	if err := apply(t, tb, 10, Command{Op: OpReady, Partition: "orders/0", Epoch: 5, Holders: []uint64{1, 2}}); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("ready at the old epoch: %v, want ErrStaleEpoch", err)
	}
	if err := apply(t, tb, 11, Command{Op: OpReady, Partition: "orders/0", Epoch: 9, Holders: []uint64{1, 2}}); err != nil {
		t.Fatal(err)
	}
	p, _ := tb.View().Get("orders/0")
	if p.Owner != 1 || p.Follower != 2 || p.Epoch != 9 || !p.Ready || !slices.Equal(p.Holders, []uint64{1, 2}) {
		t.Fatalf("orders/0 = %+v", p)
	}
	// Snapshot and restore keep everything.
	snap, err := tb.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	tb2 := NewTable()
	if err := tb2.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if p2, _ := tb2.View().Get("orders/0"); p2.Epoch != 9 || !p2.Ready {
		t.Fatalf("restored orders/0 = %+v", p2)
	}
}

// TestPlan: which events lead to which moves.
func TestPlan(t *testing.T) {
	part := func(name string, owner, follower, epoch uint64, ready bool, holders ...uint64) Partition {
		return Partition{Name: name, Topic: "t", Owner: owner, Follower: follower, Epoch: epoch, Ready: ready, Holders: holders}
	}
	find := func(ms []Move, name string) (Move, bool) {
		for _, m := range ms {
			if m.Partition == name {
				return m, true
			}
		}
		return Move{}, false
	}
	t.Run("new partitions are spread", func(t *testing.T) {
		ms := Plan([]Partition{part("t/0", 0, 0, 3, false), part("t/1", 0, 0, 3, false), part("t/2", 0, 0, 3, false)}, []uint64{1, 2, 3})
		owners := map[uint64]int{}
		for _, m := range ms {
			owners[m.Owner]++
			if m.Follower == 0 || m.Follower == m.Owner || m.Epoch != 3 {
				t.Errorf("move %+v", m)
			}
		}
		if len(ms) != 3 || len(owners) != 3 {
			t.Fatalf("moves %v: want one partition per broker", ms)
		}
	})
	t.Run("a dead owner's partition goes to its follower", func(t *testing.T) {
		ms := Plan([]Partition{part("t/0", 1, 2, 7, true, 1, 2)}, []uint64{2, 3})
		m, ok := find(ms, "t/0")
		if !ok || m.Owner != 2 || m.Follower != 3 || m.Epoch != 7 {
			t.Fatalf("moves %v: want t/0 → 2, follower 3, at epoch 7", ms)
		}
	})
	t.Run("no live holder: the partition stays", func(t *testing.T) {
		if ms := Plan([]Partition{part("t/0", 1, 2, 7, true, 1, 2)}, []uint64{3, 4}); len(ms) != 0 {
			t.Fatalf("moves %v: want none (its data is on dead brokers only)", ms)
		}
	})
	t.Run("a dead follower is replaced", func(t *testing.T) {
		ms := Plan([]Partition{part("t/0", 1, 2, 7, true, 1, 2)}, []uint64{1, 3})
		if m, ok := find(ms, "t/0"); !ok || m.Owner != 1 || m.Follower != 3 {
			t.Fatalf("moves %v: want t/0 → 1, follower 3", ms)
		}
	})
	t.Run("a joining broker gets ready partitions, the old owner follows", func(t *testing.T) {
		ps := []Partition{part("t/0", 1, 2, 7, true, 1, 2), part("t/1", 1, 2, 7, true, 1, 2), part("t/2", 2, 1, 7, true, 2, 1), part("t/3", 2, 1, 7, true, 2, 1)}
		ms := Plan(ps, []uint64{1, 2, 3})
		if len(ms) != 1 || ms[0].Owner != 3 || !slices.Contains([]uint64{1, 2}, ms[0].Follower) {
			t.Fatalf("moves %v: want one partition to broker 3, followed by its old owner", ms)
		}
		if !Balanced(ps, ms, []uint64{1, 2, 3}) {
			t.Fatalf("moves %v do not balance", ms)
		}
	})
	t.Run("balanced: nothing", func(t *testing.T) {
		if ms := Plan([]Partition{part("t/0", 1, 2, 7, true, 1, 2), part("t/1", 2, 1, 7, true, 2, 1)}, []uint64{1, 2}); ms != nil {
			t.Fatalf("moves %v, want none", ms)
		}
	})
}

// Balanced reports whether applying moves to ps leaves the live brokers'
// owned counts within one of each other.
func Balanced(ps []Partition, moves []Move, live []uint64) bool {
	owner := map[string]uint64{}
	for _, p := range ps {
		owner[p.Name] = p.Owner
	}
	for _, m := range moves {
		owner[m.Partition] = m.Owner
	}
	count := map[uint64]int{}
	for _, o := range owner {
		count[o]++
	}
	lo, hi := len(ps), 0
	for _, id := range live {
		lo, hi = min(lo, count[id]), max(hi, count[id])
	}
	return hi-lo <= 1
}
