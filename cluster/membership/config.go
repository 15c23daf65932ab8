package membership

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/flotilla-raft/flotilla/messages"
	"google.golang.org/protobuf/proto"
)

// ErrInvalid: a configuration breaks a rule of Validate or of a
// transition. The error names the member or field and its value.
var ErrInvalid = errors.New("membership: invalid configuration")

// DefaultSettings are the cluster-wide settings of a configuration that
// carries none (a bootstrap configuration that leaves them unset, or an
// entry or snapshot from a peer that omits them).
func DefaultSettings() *messages.Settings {
	return &messages.Settings{PreVote: true, CheckQuorum: true, ElectionTicks: 10, HeartbeatTicks: 1}
}

// Validate checks a configuration: at least one voter, non-zero ids, no id
// twice in a list, no incoming voter that is also a learner (an outgoing
// voter may be one: it is being demoted), and settings, when present,
// with HeartbeatTicks >= 1 and ElectionTicks > HeartbeatTicks. It reports
// every problem at once, wrapped in ErrInvalid.
func Validate(cc *messages.ClusterConfig) error {
	var errs []error
	if len(cc.GetVoters()) == 0 {
		errs = append(errs, errors.New("voters is empty"))
	}
	unique := func(kind string, ms []*messages.Member) map[uint64]bool {
		ids := make(map[uint64]bool, len(ms))
		for _, m := range ms {
			switch {
			case m.GetId() == 0:
				errs = append(errs, fmt.Errorf("%s has a member with id 0", kind))
			case ids[m.GetId()]:
				errs = append(errs, fmt.Errorf("member %d is listed twice in %s", m.GetId(), kind))
			}
			ids[m.GetId()] = true
		}
		return ids
	}
	voters := unique("voters", cc.GetVoters())
	unique("outgoing_voters", cc.GetOutgoingVoters())
	learners := unique("learners", cc.GetLearners())
	for _, id := range slices.Sorted(maps.Keys(learners)) {
		if voters[id] {
			errs = append(errs, fmt.Errorf("member %d is listed in both voters and learners", id))
		}
	}
	if s := cc.GetSettings(); s != nil {
		if s.HeartbeatTicks < 1 {
			errs = append(errs, fmt.Errorf("settings.heartbeat_ticks = %d, must be >= 1", s.HeartbeatTicks))
		}
		if s.ElectionTicks <= s.HeartbeatTicks {
			errs = append(errs, fmt.Errorf("settings.election_ticks = %d, must be > heartbeat_ticks (%d)", s.ElectionTicks, s.HeartbeatTicks))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalid, errors.Join(errs...))
}

// Decode reads a configuration from the data of a configuration entry and
// fills absent settings with DefaultSettings. It does not validate.
func Decode(data []byte) (*messages.ClusterConfig, error) {
	cc := &messages.ClusterConfig{}
	if err := proto.Unmarshal(data, cc); err != nil {
		return nil, err
	}
	if cc.Settings == nil {
		cc.Settings = DefaultSettings()
	}
	return cc, nil
}

// WithSettings returns cc when it carries settings, otherwise a copy of
// it with s (DefaultSettings when s is nil).
func WithSettings(cc *messages.ClusterConfig, s *messages.Settings) *messages.ClusterConfig {
	if cc.GetSettings() != nil {
		return cc
	}
	if s == nil {
		s = DefaultSettings()
	}
	cc = proto.Clone(cc).(*messages.ClusterConfig)
	cc.Settings = proto.Clone(s).(*messages.Settings)
	return cc
}

// IsMember reports whether id is a voter, an outgoing voter or a learner
// of cc.
func IsMember(cc *messages.ClusterConfig, id uint64) bool {
	return find(cc.GetVoters(), id) != nil || find(cc.GetOutgoingVoters(), id) != nil || find(cc.GetLearners(), id) != nil
}

// IsVoter reports whether id is an incoming voter of cc (a voter of the
// configuration cc moves to when joint).
func IsVoter(cc *messages.ClusterConfig, id uint64) bool { return find(cc.GetVoters(), id) != nil }

// IsLearner reports whether id is a learner of cc.
func IsLearner(cc *messages.ClusterConfig, id uint64) bool { return find(cc.GetLearners(), id) != nil }

// IsJoint reports whether cc is a joint configuration (it has outgoing
// voters).
func IsJoint(cc *messages.ClusterConfig) bool { return len(cc.GetOutgoingVoters()) > 0 }

// find returns the member of ms with id, nil if none.
func find(ms []*messages.Member, id uint64) *messages.Member {
	for _, m := range ms {
		if m.GetId() == id {
			return m
		}
	}
	return nil
}
