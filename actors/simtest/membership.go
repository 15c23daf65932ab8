package simtest

import (
	"fmt"
	"slices"
	"time"

	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/messages"
	"google.golang.org/protobuf/proto"
)

// This file holds configuration changes through the log: settings (PreVote,
// CheckQuorum), members (add a learner, promote it, remove a voter, replace
// one: joint consensus), and, after the heal, making the simulator's idea of
// the members the leader's configuration.

// changeConfig proposes cfg on the leader and waits for it to commit.
func (s *sim) changeConfig(lead uint64, cfg *messages.ClusterConfig, what string) bool {
	pid := s.pidOf(lead)
	if pid == nil {
		return false
	}
	r, err := actors.Request[*actors.ChangeConfigResponse](s.root, pid, &actors.ChangeConfig{Config: cfg}, 3*time.Second)
	if err != nil {
		s.tracef("%s on leader %d: %v", what, lead, err)
		return false
	}
	s.tracef("%s on leader %d: committed at %d", what, lead, r.Index)
	return true
}

func (s *sim) changeSettings() {
	lead, st := s.leader()
	if lead == 0 || st.Config == nil {
		return
	}
	cfg := proto.Clone(st.Config).(*messages.ClusterConfig)
	cfg.OutgoingVoters = nil
	if cfg.Settings == nil {
		cfg.Settings = &messages.Settings{}
	}
	if s.rng.IntN(2) == 0 {
		cfg.Settings.PreVote = !cfg.Settings.PreVote
	} else {
		cfg.Settings.CheckQuorum = !cfg.Settings.CheckQuorum
	}
	if s.changeConfig(lead, cfg, fmt.Sprintf("settings PreVote=%v CheckQuorum=%v", cfg.Settings.PreVote, cfg.Settings.CheckQuorum)) {
		s.count(func(st *Stats) { st.SettingsChanges++ })
	}
}

// changeMembers adds a learner, promotes one, removes a voter, or replaces
// a voter by a learner in one change (two voters changed: joint consensus).
func (s *sim) changeMembers() {
	lead, st := s.leader()
	if lead == 0 || st.Config == nil || len(st.Config.OutgoingVoters) > 0 {
		return
	}
	cfg := proto.Clone(st.Config).(*messages.ClusterConfig)
	var what string
	var added *simNode
	var removed uint64
	switch p := s.rng.IntN(4); {
	case p == 0 && len(cfg.Learners) == 0:
		added = s.newNode(false)
		added.member = true // maybe: the configuration decides at the end
		s.startNode(added, false)
		cfg.Learners = append(cfg.Learners, &messages.Member{Id: added.id, Address: addr(added.id)})
		what = fmt.Sprintf("add learner %d", added.id)
	case p == 1 && len(cfg.Learners) > 0:
		l := cfg.Learners[0]
		cfg.Learners = cfg.Learners[1:]
		cfg.Voters = append(cfg.Voters, l)
		what = fmt.Sprintf("promote learner %d", l.Id)
	case p == 2 && len(cfg.Voters) > 3:
		i := s.rng.IntN(len(cfg.Voters))
		removed = cfg.Voters[i].Id
		cfg.Voters = slices.Delete(cfg.Voters, i, i+1)
		what = fmt.Sprintf("remove voter %d", removed)
	case p == 3 && len(cfg.Learners) > 0:
		l := cfg.Learners[0]
		cfg.Learners = cfg.Learners[1:]
		i := s.rng.IntN(len(cfg.Voters))
		removed = cfg.Voters[i].Id
		cfg.Voters = append(slices.Delete(cfg.Voters, i, i+1), l)
		what = fmt.Sprintf("replace voter %d by learner %d (joint)", removed, l.Id)
	default:
		return
	}
	ok := s.changeConfig(lead, cfg, what)
	if ok {
		s.count(func(st *Stats) { st.MembershipChanges++ })
	}
	if removed != 0 && ok {
		s.mu.Lock()
		n := s.nodes[removed]
		n.member = false
		s.mu.Unlock()
		if n.state != down {
			s.halt(n, false)
		}
	}
}

// syncMembers makes the simulator's idea of the members the leader's
// configuration: a change whose outcome the simulator did not learn may
// have committed or not. Members that are down are started; others are
// stopped.
func (s *sim) syncMembers(cfg *messages.ClusterConfig) {
	in := map[uint64]bool{}
	for _, m := range append(append(slices.Clone(cfg.Voters), cfg.Learners...), cfg.OutgoingVoters...) {
		in[m.Id] = true
	}
	for _, id := range s.order {
		n := s.nodes[id]
		s.mu.Lock()
		was := n.member
		n.member = in[id]
		s.mu.Unlock()
		switch {
		case in[id] && n.state == down:
			s.startNode(n, false)
		case !in[id] && n.state != down:
			s.halt(n, false)
		}
		if was != in[id] {
			s.tracef("node %d is a member: %v (the leader's configuration)", id, in[id])
		}
	}
}
