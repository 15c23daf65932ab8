package membership

import "testing"

// TestQuorumMath: majorities and joint quorums.
func TestQuorumMath(t *testing.T) {
	match := map[uint64]uint64{1: 5, 2: 3, 3: 9, 4: 1, 5: 7, 6: 2, 7: 8, 8: 4}
	get := func(id uint64) uint64 { return match[id] }
	tests := []struct {
		in, out []uint64
		want    uint64
	}{
		{[]uint64{1}, nil, 5},
		{[]uint64{1, 2}, nil, 3},
		{[]uint64{1, 2, 3}, nil, 5},
		{[]uint64{1, 2, 3, 4}, nil, 3},
		{[]uint64{1, 2, 3, 4, 5, 6, 7, 8}, nil, 4},
		{[]uint64{1, 2, 3}, []uint64{4, 5, 6}, 2},
		{[]uint64{3, 5, 7}, []uint64{1, 3}, 5},
	}
	for _, tt := range tests {
		q := Joint{Incoming: tt.in, Outgoing: tt.out}
		if got := q.CommittedIndex(get); got != tt.want {
			t.Errorf("%v/%v: committed %d, want %d", tt.in, tt.out, got, tt.want)
		}
	}
	q := Joint{Incoming: Majority{1, 2, 3}, Outgoing: Majority{3, 4, 5}}
	for _, tt := range []struct {
		votes map[uint64]bool
		want  VoteResult
	}{
		{map[uint64]bool{1: true, 2: true}, VotePending},
		{map[uint64]bool{1: true, 2: true, 4: true, 5: true}, VoteWon},
		{map[uint64]bool{1: true, 2: true, 4: false, 5: false}, VoteLost},
		{map[uint64]bool{1: false, 2: false, 4: true, 5: true}, VoteLost},
		{map[uint64]bool{3: true}, VotePending},
	} {
		if got := q.VoteResult(tt.votes); got != tt.want {
			t.Errorf("votes %v: %v, want %v", tt.votes, got, tt.want)
		}
	}
	if got := q.Voters(); len(got) != 5 {
		t.Fatalf("voters %v", got)
	}
}
