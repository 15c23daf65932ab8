package actors

import (
	"fmt"
	"testing"

	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
)

func ents(term uint64, lo, hi uint64) []*messages.Entry {
	var out []*messages.Entry
	for i := lo; i <= hi; i++ {
		out = append(out, &messages.Entry{Index: i, Term: term})
	}
	return out
}

// mergeUpdates must leave the store as applying each update in turn would.
func TestMergeUpdates(t *testing.T) {
	snap := &messages.Snapshot{Metadata: &messages.SnapshotMetadata{Index: 10, Term: 2}}
	hs1, hs2 := &messages.HardState{Term: 1}, &messages.HardState{Term: 2}
	for _, tc := range []struct {
		name string
		in   []persistence.Update
		want string // term/index list
		snap bool
		hs   *messages.HardState
	}{
		{"contiguous", []persistence.Update{{Entries: ents(1, 1, 3), HardState: hs1}, {Entries: ents(1, 4, 5)}}, "1/1 1/2 1/3 1/4 1/5", false, hs1},
		{"suffix overwrite", []persistence.Update{{Entries: ents(1, 1, 5)}, {Entries: ents(2, 3, 4), HardState: hs2}}, "1/1 1/2 2/3 2/4", false, hs2},
		{"overwrite from the start", []persistence.Update{{Entries: ents(1, 4, 6)}, {Entries: ents(2, 2, 3)}}, "2/2 2/3", false, nil},
		{"snapshot restarts the log", []persistence.Update{{Entries: ents(1, 1, 3)}, {Snapshot: snap}, {Entries: ents(2, 11, 12)}}, "2/11 2/12", true, nil},
		{"hard state only", []persistence.Update{{HardState: hs1}, {HardState: hs2}}, "", false, hs2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var reqs []persistRequest
			for i, u := range tc.in {
				reqs = append(reqs, persistRequest{id: uint64(i + 1), u: u})
			}
			got := mergeUpdates(reqs)
			s := ""
			for _, e := range got.Entries {
				if s != "" {
					s += " "
				}
				s += fmt.Sprintf("%d/%d", e.Term, e.Index)
			}
			if s != tc.want || (got.Snapshot != nil) != tc.snap || got.HardState != tc.hs {
				t.Fatalf("merged: entries %q snapshot %v hard state %v; want %q %v %v", s, got.Snapshot != nil, got.HardState, tc.want, tc.snap, tc.hs)
			}
		})
	}
}
