package membership

import (
	"fmt"
	"slices"

	"github.com/flotilla-raft/flotilla/messages"
	"google.golang.org/protobuf/proto"
)

// Enter returns the configuration to propose to move from cur, the
// configuration in force (committed, not joint), to target: a copy of
// target, with cur's settings when target has none. When the voters
// change by more than one, it is the joint configuration (thesis §4.3):
// target's voters incoming, cur's outgoing; otherwise target itself, a
// single-server change (thesis §4.1). The result is validated; target
// must not be joint itself (outgoing voters are this package's to
// set). Errors wrap ErrInvalid.
func Enter(cur, target *messages.ClusterConfig) (*messages.ClusterConfig, error) {
	if IsJoint(target) {
		return nil, fmt.Errorf("%w: outgoing_voters is managed by the core", ErrInvalid)
	}
	cc := proto.Clone(target).(*messages.ClusterConfig)
	if cc.Settings == nil {
		cc.Settings = proto.Clone(cur.GetSettings()).(*messages.Settings)
	}
	if err := Validate(cc); err != nil {
		return nil, err
	}
	if voterChanges(cur, cc) > 1 {
		cc.OutgoingVoters = cloneMembers(cur.GetVoters())
	}
	return cc, nil
}

// LeaveJoint returns the joint configuration cc without its outgoing
// voters: joint consensus reached, the incoming voters go on alone
// (thesis §4.3). Outgoing voters that are learners stay learners (a
// demotion); the others leave. Errors wrap ErrInvalid.
func LeaveJoint(cc *messages.ClusterConfig) (*messages.ClusterConfig, error) {
	leave := proto.Clone(cc).(*messages.ClusterConfig)
	leave.OutgoingVoters = nil
	if err := Validate(leave); err != nil {
		return nil, err
	}
	return leave, nil
}

// voterChanges counts the voters added and removed from a's incoming
// voters to b's.
func voterChanges(a, b *messages.ClusterConfig) int {
	x, y := MajorityOf(a.GetVoters()), MajorityOf(b.GetVoters())
	n := 0
	for _, id := range x {
		if !y.Has(id) {
			n++
		}
	}
	for _, id := range y {
		if !x.Has(id) {
			n++
		}
	}
	return n
}

// AddLearner returns a copy of cc with m added as a learner.
func AddLearner(cc *messages.ClusterConfig, m *messages.Member) *messages.ClusterConfig {
	out := proto.Clone(cc).(*messages.ClusterConfig)
	out.Learners = append(out.Learners, proto.Clone(m).(*messages.Member))
	return out
}

// Remove returns a copy of cc without member id (neither voter nor
// learner) and not joint: the target of a removal, for Enter.
func Remove(cc *messages.ClusterConfig, id uint64) *messages.ClusterConfig {
	out := proto.Clone(cc).(*messages.ClusterConfig)
	out.Voters = without(out.Voters, id)
	out.Learners = without(out.Learners, id)
	out.OutgoingVoters = nil
	return out
}

// Promote returns a copy of cc with learner id made a voter; cc itself
// when id is no learner of it.
func Promote(cc *messages.ClusterConfig, id uint64) *messages.ClusterConfig {
	return move(cc, id, false)
}

// Demote returns a copy of cc with voter id made a learner; cc itself
// when id is no voter of it.
func Demote(cc *messages.ClusterConfig, id uint64) *messages.ClusterConfig {
	return move(cc, id, true)
}

// move returns a copy of cc with member id moved from the learners to the
// voters (toLearner: the other way); cc itself when id is not where it
// would move from.
func move(cc *messages.ClusterConfig, id uint64, toLearner bool) *messages.ClusterConfig {
	out := proto.Clone(cc).(*messages.ClusterConfig)
	from, to := &out.Learners, &out.Voters
	if toLearner {
		from, to = to, from
	}
	m := find(*from, id)
	if m == nil {
		return cc
	}
	*from = without(*from, id)
	*to = append(*to, m)
	return out
}

// without returns a copy of ms without the member with id.
func without(ms []*messages.Member, id uint64) []*messages.Member {
	return slices.DeleteFunc(slices.Clone(ms), func(m *messages.Member) bool { return m.GetId() == id })
}

func cloneMembers(ms []*messages.Member) []*messages.Member {
	out := make([]*messages.Member, len(ms))
	for i, m := range ms {
		out[i] = proto.Clone(m).(*messages.Member)
	}
	return out
}
