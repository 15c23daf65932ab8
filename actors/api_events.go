package actors

import (
	"fmt"

	"github.com/flotilla-raft/flotilla/cluster/transport"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/tracing"
)

// EntryApplied: an entry was applied on this node (sent by the applier, in
// log order; configuration and no-op entries included, with Result nil).
type EntryApplied struct {
	NodeID uint64
	Entry  *messages.Entry
	Result any
}

// LeaderChanged: the known leader changed (Leader 0: none known).
type LeaderChanged struct {
	NodeID        uint64
	Term          uint64
	Leader        uint64
	LeaderAddress string
}

// RoleChanged: this node's role changed, with the reason.
type RoleChanged struct {
	NodeID   uint64
	Term     uint64
	From, To Role
	Reason   string
}

// TermChanged: this node's term changed, with the reason.
type TermChanged struct {
	NodeID uint64
	Term   uint64
	Reason string
}

// MembershipChanged: a configuration entry committed (published on every
// member that sees it, not only the one joining).
type MembershipChanged struct {
	NodeID uint64
	Index  uint64
	Config *messages.ClusterConfig
}

// MemberRemoved: this node learned that it is no member any more: a
// committed configuration (Index) leaves it out, or a member refused it as
// a non-member citing configuration Index (By). It campaigns no more and
// Status.Removed is set; it keeps running (its status and history stay
// readable) until the application stops it, and a leader that adds it
// back makes it a member again.
type MemberRemoved struct {
	NodeID uint64
	Index  uint64
	By     uint64 // the member that refused it, 0 if it saw the commit
	Reason string
}

// SnapshotTaken: this node snapshotted its state machine at Index.
type SnapshotTaken struct {
	NodeID uint64
	Index  uint64
}

// QuiescenceChanged: this node quiesced (Quiesced true: its group is idle,
// its tick timer slows to one per raft.Config.QuiescedHeartbeatTicks) or
// woke (false), with the core's reason. See raft.Config.QuiesceTicks.
type QuiescenceChanged struct {
	NodeID   uint64
	Term     uint64
	Quiesced bool
	Reason   string
}

// SnapshotInstalled: this node installed a snapshot from the leader.
type SnapshotInstalled struct {
	NodeID uint64
	Index  uint64
}

// SnapshotSendProgress: the leader's transfer of a snapshot to Peer in
// chunks progressed (published on the leader at each acknowledgement of
// more bytes). ResumedFrom > 0: the peer already held that many bytes
// when the transfer (re)started, and they were not sent again.
type SnapshotSendProgress struct {
	NodeID, Peer uint64
	Index, Term  uint64 // the snapshot's
	Size         uint64 // bytes
	// Sent counts the chunk bytes sent in this transfer, re-sent ones
	// included; Acked the bytes the peer holds.
	Sent, Acked uint64
	ResumedFrom uint64
	// Rewinds counts the times this transfer went back to the peer's
	// offset after chunks were lost (each sends again at most
	// Config.SnapshotWindowBytes).
	Rewinds uint64
	// Done: the peer holds every byte (it installs the snapshot next).
	Done bool
}

// SnapshotReceived: this node received, in chunks, the whole snapshot
// from the leader From and checked its CRC-32C; it installs it next
// (SnapshotInstalled).
type SnapshotReceived struct {
	NodeID, From uint64
	Index, Term  uint64
	Size         uint64
}

// SnapshotReceiving is a snapshot being received in chunks
// (Status.SnapshotReceiving).
type SnapshotReceiving struct {
	From        uint64
	Index, Term uint64
	// Size is the snapshot's size, Received the bytes held so far.
	Size, Received uint64
}

// NodeStopped: the node stopped, with the reason (Err non-nil when it
// stopped on a failure, e.g. a storage error).
type NodeStopped struct {
	NodeID uint64
	Reason string
	Err    error
}

// Status answers GetStatus.
type Status struct {
	ID            uint64
	Role          Role
	Term          uint64
	Leader        uint64
	LeaderAddress string
	Commit        uint64
	Applied       uint64 // applied by the state machine
	LastIndex     uint64
	FirstIndex    uint64
	Config        *messages.ClusterConfig
	// ConfigIndex is the index of Config's entry: pass it as
	// ExpectedConfigIndex of a membership change. Config is committed when
	// ConfigIndex <= Commit.
	ConfigIndex uint64
	// Removed: this node knows it is no member (see MemberRemoved).
	Removed bool
	// Progress is the leader's view of each member, learners with their
	// Lag (leader only).
	Progress []PeerProgress
	// Log says what the core's log holds in memory (entries not yet
	// persisted, the entry cache: Config.Raft.EntryCacheBytes) and how
	// often it read the store.
	Log    LogStats
	Paused bool
	// Quiesced: the group is quiet (raft.Config.QuiesceTicks; the raft
	// package doc, "Quiescence"): this node's tick timer fires once per
	// raft.Config.QuiescedHeartbeatTicks ticks instead of every
	// TickInterval. TimerFires counts the tick timers it handled since it
	// started.
	Quiesced   bool
	TimerFires uint64
	// Dropped counts inbound messages refused: wrong cluster, non-member,
	// wrong target, invalid (refused by the core), corrupt snapshots, or
	// while paused, stopping or failed (Paused). What the transport
	// refused before delivering (undecodable, oversized) is in Transport.
	Dropped DropCounts
	// CorruptSnapshotFiles counts the times this node's own snapshot data
	// (a file of its persistence.SnapshotFileStore) was found damaged
	// (size or checksum) when read to send to a lagging peer: the peer is
	// not sent it, the node runs on and takes its snapshot again, which
	// the peer then gets (see ErrCorruptSnapshot for a restart on such a
	// file).
	CorruptSnapshotFiles uint64
	// Overloaded counts the requests refused with ErrOverloaded, by
	// cause, since the node started.
	Overloaded OverloadCounts
	// Peers is the transport's per-peer connection state, when the
	// transport reports it.
	Peers map[uint64]string
	// Transport is the transport's counters (refused connections, RPCs and
	// compressed streams, forged senders, oversized and undecodable
	// input), when the transport reports them (transport.StatsReporter);
	// nil otherwise.
	Transport *transport.Stats
	// SnapshotSends is the latest progress of the snapshot transfer to
	// each peer that was sent one in chunks since this node became leader
	// (leader only), sorted by peer.
	SnapshotSends []SnapshotSendProgress
	// SnapshotReceiving is the snapshot this node is receiving in chunks;
	// nil if none.
	SnapshotReceiving *SnapshotReceiving
}

// DropCounts counts refused inbound messages by cause.
type DropCounts struct {
	WrongCluster, NonMember, WrongTarget, Paused, Invalid uint64
	// CorruptSnapshot: snapshots from a member whose data the state
	// machine cannot restore, or, received in chunks, whose whole does not
	// match its checksum, refused before the core installs them.
	CorruptSnapshot uint64
}

// OverloadCounts counts the requests refused with ErrOverloaded by cause:
// proposals over raft.Config.MaxUncommittedBytes (UncommittedBytes) or
// Config.MaxPendingProposals (PendingProposals), reads over
// Config.MaxPendingReads (PendingReads).
type OverloadCounts struct {
	UncommittedBytes, PendingProposals, PendingReads uint64
}

func (s *Status) String() string {
	return fmt.Sprintf("node %d: %s term %d leader %d (%s) commit %d applied %d last %d",
		s.ID, s.Role, s.Term, s.Leader, s.LeaderAddress, s.Commit, s.Applied, s.LastIndex)
}

// Transition is one entry of the state-transition history (the type of
// package tracing, which keeps the history).
type Transition = tracing.Transition

// History answers GetHistory: recent transitions, oldest first.
type History struct {
	NodeID      uint64
	Transitions []Transition
}
