package membership

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

func (v VoteResult) String() string {
	switch v {
	case VotePending:
		return "pending"
	case VoteLost:
		return "lost"
	case VoteWon:
		return "won"
	}
	return "VoteResult(?)"
}

// Majority is a set of voter ids whose decisions need more than half of
// them.
//
// Invariant: sorted ascending, no duplicates.
type Majority []uint64

// MajorityOf returns the ids of ms as a Majority.
func MajorityOf(ms []*messages.Member) Majority {
	ids := make(Majority, 0, len(ms))
	for _, m := range ms {
		ids = append(ids, m.GetId())
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// Has reports whether id is in m.
func (m Majority) Has(id uint64) bool {
	_, ok := slices.BinarySearch(m, id)
	return ok
}

// CommittedIndex is the largest index that a majority of m has matched,
// match giving each voter's. An empty Majority returns the maximum
// uint64, so that it does not constrain a joint configuration.
func (m Majority) CommittedIndex(match func(id uint64) uint64) uint64 {
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

// VoteResult counts votes (true = granted); voters absent from votes are
// pending. An empty Majority has won.
func (m Majority) VoteResult(votes map[uint64]bool) VoteResult {
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

// Joint is the voter side of a configuration: the incoming majority and,
// while joint, the outgoing one (empty otherwise). A decision needs both
// (thesis §4.3).
type Joint struct {
	Incoming, Outgoing Majority
}

// JointOf returns the voter side of cc.
func JointOf(cc *messages.ClusterConfig) Joint {
	return Joint{Incoming: MajorityOf(cc.GetVoters()), Outgoing: MajorityOf(cc.GetOutgoingVoters())}
}

// IsVoter reports whether id votes in either half.
func (j Joint) IsVoter(id uint64) bool { return j.Incoming.Has(id) || j.Outgoing.Has(id) }

// CommittedIndex is the largest index matched by a majority of each half.
func (j Joint) CommittedIndex(match func(id uint64) uint64) uint64 {
	return min(j.Incoming.CommittedIndex(match), j.Outgoing.CommittedIndex(match))
}

// VoteResult is won when both halves won, lost when either lost.
func (j Joint) VoteResult(votes map[uint64]bool) VoteResult {
	r1, r2 := j.Incoming.VoteResult(votes), j.Outgoing.VoteResult(votes)
	switch {
	case r1 == r2:
		return r1
	case r1 == VoteLost || r2 == VoteLost:
		return VoteLost
	default:
		return VotePending
	}
}

// Voters returns every voter id (incoming and outgoing), sorted.
func (j Joint) Voters() []uint64 {
	all := append(slices.Clone([]uint64(j.Incoming)), j.Outgoing...)
	slices.Sort(all)
	return slices.Compact(all)
}
