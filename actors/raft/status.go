package raft

import (
	"github.com/flotilla-raft/flotilla/messages"
)

// This file holds the read-only views of a node: Status and the
// accessors the driver uses.

// PeerProgress is the leader's view of one peer, for status.
type PeerProgress struct {
	ID           uint64
	Match, Next  uint64
	State        ProgressState
	RecentActive bool
	IsLearner    bool
	Inflight     int
	// Lag is how many entries the peer's log is behind the leader's last
	// index (LastIndex - Match).
	Lag uint64
	// Departing: a committed configuration removed the peer; it is sent
	// the log until it knows.
	Departing bool
	// PendingSnapshot is the index of the snapshot being sent
	// (StateSnapshot), SnapshotAcked how many of its bytes the peer
	// acknowledged (chunked transfer).
	PendingSnapshot, SnapshotAcked uint64
}

// Status is a point-in-time view of the node.
type Status struct {
	ID, Term, Vote, Leader     uint64
	Role                       Role
	Commit, Applied, LastIndex uint64
	FirstIndex                 uint64
	LeadTransferee             uint64
	// Config is the configuration in force (the latest in the log),
	// ConfigIndex the index of its entry; it is committed when
	// ConfigIndex <= Commit.
	Config      *messages.ClusterConfig
	ConfigIndex uint64
	// Removed: this node knows it is no member (see Raft.Removed).
	Removed bool
	// Quiesced: see Raft.Quiesced.
	Quiesced bool
	// Progress is set on the leader only, sorted by id.
	Progress []PeerProgress
	// Log says what the log holds in memory and how it was read.
	Log LogStats
}

// Status returns a view of the node.
func (r *Raft) Status() Status {
	s := Status{ID: r.id, Term: r.term, Vote: r.vote, Leader: r.lead, Role: r.role,
		Commit: r.log.committed, Applied: r.log.applied, LastIndex: r.log.lastIndex(), FirstIndex: r.log.firstIndex(),
		LeadTransferee: r.leadTransferee, Config: r.cc, ConfigIndex: r.ccIndex, Removed: r.removed, Quiesced: r.quiesced, Log: r.LogStats()}
	if r.role == Leader {
		for _, id := range r.peers {
			if pr := r.prs[id]; pr != nil {
				s.Progress = append(s.Progress, PeerProgress{ID: id, Match: pr.Match, Next: pr.Next, State: pr.State,
					RecentActive: pr.RecentActive, IsLearner: pr.IsLearner, Inflight: pr.inflights.count,
					Lag: r.log.lastIndex() - min(pr.Match, r.log.lastIndex()), Departing: pr.RemovedAt != 0,
					PendingSnapshot: pr.PendingSnapshot, SnapshotAcked: pr.SnapshotAcked})
			}
		}
	}
	return s
}

// ID returns this node's id.
func (r *Raft) ID() uint64 { return r.id }

// Role returns the current role.
func (r *Raft) Role() Role { return r.role }

// Term returns the current term.
func (r *Raft) Term() uint64 { return r.term }

// Leader returns the id of the known leader, 0 if none.
func (r *Raft) Leader() uint64 { return r.lead }

// LeaderAddress returns the address of the known leader, "" if none.
func (r *Raft) LeaderAddress() string { return r.Address(r.lead) }

// Address returns the address of member id in the configurations of the
// log or, for a node that no configuration here names yet (this node is
// joining), the address that id's messages carried.
func (r *Raft) Address(id uint64) string {
	if a, ok := r.addrs[id]; ok {
		return a
	}
	return r.hintAddrs[id]
}

// ClusterConfig returns the configuration in force: the latest in the
// log, committed or not (ConfigIndex in Status says which entry). Do not
// mutate it.
func (r *Raft) ClusterConfig() *messages.ClusterConfig { return r.cc }

// Members returns every member id, sorted: those of the last committed
// configuration and of every later one, and, on the leader, departing
// members that do not know of their removal yet. Do not mutate it.
func (r *Raft) Members() []uint64 { return r.peers }

// IsMember reports whether id is one of Members.
func (r *Raft) IsMember(id uint64) bool { _, ok := r.addrs[id]; return ok }

// FirstIndex is the first index of the log (the entry after the
// snapshot's, or an earlier one when Compact kept a tail).
func (r *Raft) FirstIndex() uint64 { return r.log.firstIndex() }

// LastIndex is the last index of the log.
func (r *Raft) LastIndex() uint64 { return r.log.lastIndex() }

// Committed is the commit index.
func (r *Raft) Committed() uint64 { return r.log.committed }

// Applied is the index up to which entries were handed out for applying.
func (r *Raft) Applied() uint64 { return r.log.applied }

// Entries returns the log entries [lo, hi), at most about maxBytes of
// them (0: no limit; always at least one), read from memory, the entry
// cache or Storage. The error wraps ErrCompacted below FirstIndex,
// ErrUnavailable past LastIndex, ErrStorage when Storage fails. Do not
// mutate them.
func (r *Raft) Entries(lo, hi, maxBytes uint64) ([]*messages.Entry, error) {
	if lo < r.log.firstIndex() {
		return nil, ErrCompacted
	}
	if hi > r.log.lastIndex()+1 {
		return nil, ErrUnavailable
	}
	return r.log.slice(lo, hi, maxBytes, 0)
}
