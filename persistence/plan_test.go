package persistence_test

import (
	"errors"
	"testing"

	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
)

func TestPlanUpdate(t *testing.T) {
	// The log: [5, 10] after a compaction at 4 (term 1); entries 5..7 have
	// term 1, 8..10 term 2.
	cur := persistence.State{HardState: &messages.HardState{}, FirstIndex: 5, LastIndex: 10, StartTerm: 1}
	termAt := func(i uint64) (uint64, error) {
		if i <= 7 {
			return 1, nil
		}
		return 2, nil
	}
	ents := func(lo, hi uint64) []*messages.Entry {
		var out []*messages.Entry
		for i := lo; i <= hi; i++ {
			out = append(out, &messages.Entry{Index: i, Term: 3})
		}
		return out
	}
	snap := func(i, term uint64) *messages.Snapshot {
		return &messages.Snapshot{Metadata: &messages.SnapshotMetadata{Index: i, Term: term}}
	}
	cases := []struct {
		name                          string
		u                             persistence.Update
		first, last, start, discardAt uint64
		err                           error
	}{
		{"append", persistence.Update{Entries: ents(11, 12)}, 5, 12, 1, 11, nil},
		{"suffix overwrite", persistence.Update{Entries: ents(8, 8)}, 5, 8, 1, 8, nil},
		{"hard state only", persistence.Update{HardState: &messages.HardState{Term: 3}}, 5, 10, 1, 11, nil},
		{"snapshot matching", persistence.Update{Snapshot: snap(8, 2)}, 9, 10, 2, 11, nil},
		{"snapshot conflicting", persistence.Update{Snapshot: snap(8, 3)}, 9, 8, 3, 9, nil},
		{"snapshot at the start, same term", persistence.Update{Snapshot: snap(4, 1)}, 5, 10, 1, 11, nil},
		{"snapshot beyond, then entries", persistence.Update{Snapshot: snap(20, 3), Entries: ents(21, 22)}, 21, 22, 3, 11, nil},
		{"gap", persistence.Update{Entries: ents(12, 12)}, 0, 0, 0, 0, persistence.ErrInvalidUpdate},
		{"before the start", persistence.Update{Entries: ents(4, 6)}, 0, 0, 0, 0, persistence.ErrCompacted},
		{"stale snapshot", persistence.Update{Snapshot: snap(3, 1)}, 0, 0, 0, 0, persistence.ErrSnapshotOutOfDate},
		{"snapshot at 0", persistence.Update{Snapshot: snap(0, 0)}, 0, 0, 0, 0, persistence.ErrInvalidUpdate},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := persistence.PlanUpdate(cur, c.u, termAt)
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("error %v, want %v", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			n := p.Next
			if n.FirstIndex != c.first || n.LastIndex != c.last || n.StartTerm != c.start || p.DiscardFrom != c.discardAt {
				t.Fatalf("plan [%d, %d] start term %d discard from %d; want [%d, %d] %d %d",
					n.FirstIndex, n.LastIndex, n.StartTerm, p.DiscardFrom, c.first, c.last, c.start, c.discardAt)
			}
		})
	}
}
