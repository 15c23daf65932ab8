package raft

import (
	"fmt"

	"github.com/flotilla-raft/flotilla/messages"
)

// EventKind names a state transition.
type EventKind uint8

const (
	EventRoleChanged EventKind = iota + 1
	EventTermChanged
	EventLeaderChanged
	EventPreVoteWon
	EventVoteGranted  // this node granted its vote to Peer
	EventVoteReceived // this candidate received a vote from Peer
	EventConfigChanged
	EventSnapshotRestored
	EventTransferStarted
	EventTransferAborted
	EventTransferTimeoutNow
	// EventRemoved: this node learned it is no member (Index: the
	// committed configuration that leaves it out, or the one a member
	// cited when refusing it). It campaigns no more.
	EventRemoved
	// EventMemberDeparted: the leader stopped replicating to Peer, removed
	// by a committed configuration, because it learned its removal (or
	// stayed silent for departTimeouts election timeouts).
	EventMemberDeparted
	// EventQuiesced: this node quiesced (leader: idle with every peer
	// caught up, Index its commit; follower: its leader Peer told it).
	EventQuiesced
	// EventWoke: this node left quiescence (Reason says why).
	EventWoke
)

var eventNames = map[EventKind]string{
	EventRoleChanged: "role-changed", EventTermChanged: "term-changed", EventLeaderChanged: "leader-changed",
	EventPreVoteWon: "pre-vote-won", EventVoteGranted: "vote-granted", EventVoteReceived: "vote-received",
	EventConfigChanged: "config-changed", EventSnapshotRestored: "snapshot-restored",
	EventTransferStarted: "transfer-started", EventTransferAborted: "transfer-aborted", EventTransferTimeoutNow: "transfer-timeout-now",
	EventRemoved: "removed", EventMemberDeparted: "member-departed",
	EventQuiesced: "quiesced", EventWoke: "woke",
}

func (k EventKind) String() string {
	if s, ok := eventNames[k]; ok {
		return s
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Event is one state transition, with the reason for it. Which fields are
// set depends on Kind.
type Event struct {
	Kind     EventKind
	Term     uint64 // the term after the transition
	From, To Role   // EventRoleChanged
	Leader   uint64 // EventLeaderChanged: the new leader (0: none known)
	Peer     uint64 // the other node involved, if any
	Index    uint64 // EventConfigChanged, EventSnapshotRestored, EventRemoved
	Config   *messages.ClusterConfig
	Reason   string
}

func (e Event) String() string {
	switch e.Kind {
	case EventRoleChanged:
		return fmt.Sprintf("term %d: %s -> %s (%s)", e.Term, e.From, e.To, e.Reason)
	case EventLeaderChanged:
		return fmt.Sprintf("term %d: leader %d -> %d (%s)", e.Term, e.Peer, e.Leader, e.Reason)
	}
	return fmt.Sprintf("term %d: %s peer=%d index=%d (%s)", e.Term, e.Kind, e.Peer, e.Index, e.Reason)
}

func (r *Raft) event(e Event) {
	e.Term = r.term
	r.events = append(r.events, e)
	r.logger.Debug(e.Kind.String(), "term", e.Term, "peer", e.Peer, "leader", e.Leader, "reason", e.Reason)
}

// noteChanges emits the events of a role transition.
func (r *Raft) noteChanges(oldRole Role, oldTerm, oldLead uint64, reason string) {
	if r.term != oldTerm {
		r.event(Event{Kind: EventTermChanged, Reason: reason})
	}
	if r.role != oldRole {
		r.event(Event{Kind: EventRoleChanged, From: oldRole, To: r.role, Reason: reason})
	}
	if r.lead != oldLead {
		r.event(Event{Kind: EventLeaderChanged, Leader: r.lead, Peer: oldLead, Reason: reason})
	}
}
