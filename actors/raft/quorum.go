package raft

import (
	"slices"

	"github.com/flotilla-raft/flotilla/messages"
)

// VoteResult is the outcome of counting votes.
type VoteResult uint8

const (
	// VotePending: neither a quorum of grants nor of rejections yet.
	VotePending VoteResult = iota
	// VoteLost: a quorum can no longer be reached.
	VoteLost
	// VoteWon: a quorum granted.
	VoteWon
)

// majority is a set of voter ids, sorted ascending.
//
// Invariant: sorted, no duplicates.
type majority []uint64

func majorityOf(ms []*messages.Member) majority {
	ids := make(majority, 0, len(ms))
	for _, m := range ms {
		ids = append(ids, m.GetId())
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

func (m majority) has(id uint64) bool {
	_, ok := slices.BinarySearch(m, id)
	return ok
}

// committedIndex is the largest index that a majority of m has matched.
// An empty majority returns the maximum uint64, so that it does not
// constrain a joint configuration.
func (m majority) committedIndex(match func(id uint64) uint64) uint64 {
	n := len(m)
	if n == 0 {
		return ^uint64(0)
	}
	var stk [7]uint64
	var idx []uint64
	if n <= len(stk) {
		idx = stk[:n]
	} else {
		idx = make([]uint64, n)
	}
	for i, id := range m {
		idx[i] = match(id)
	}
	slices.Sort(idx)
	// The (n/2+1)-th largest value is matched by a majority.
	return idx[n-(n/2+1)]
}

// voteResult counts votes (true = granted); absent voters are pending.
func (m majority) voteResult(votes map[uint64]bool) VoteResult {
	if len(m) == 0 {
		return VoteWon
	}
	granted, missing := 0, 0
	for _, id := range m {
		v, ok := votes[id]
		switch {
		case !ok:
			missing++
		case v:
			granted++
		}
	}
	q := len(m)/2 + 1
	switch {
	case granted >= q:
		return VoteWon
	case granted+missing >= q:
		return VotePending
	default:
		return VoteLost
	}
}

// quorum is the voter side of a configuration: the incoming majority and,
// while joint, the outgoing one. A decision needs both.
type quorum struct {
	incoming, outgoing majority
}

func (q quorum) isVoter(id uint64) bool { return q.incoming.has(id) || q.outgoing.has(id) }

func (q quorum) committedIndex(match func(id uint64) uint64) uint64 {
	return min(q.incoming.committedIndex(match), q.outgoing.committedIndex(match))
}

func (q quorum) voteResult(votes map[uint64]bool) VoteResult {
	r1, r2 := q.incoming.voteResult(votes), q.outgoing.voteResult(votes)
	switch {
	case r1 == r2:
		return r1
	case r1 == VoteLost || r2 == VoteLost:
		return VoteLost
	default:
		return VotePending
	}
}

// voters returns every voter id (incoming and outgoing), sorted.
func (q quorum) voters() []uint64 {
	all := append(slices.Clone([]uint64(q.incoming)), q.outgoing...)
	slices.Sort(all)
	return slices.Compact(all)
}
