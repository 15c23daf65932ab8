package actors

import (
	"errors"
	"log/slog"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors/raft"
	"github.com/flotilla-raft/flotilla/messages"
)

// Errors answered to requests. Check them with errors.Is.
var (
	// ErrNotLeader: see NotLeaderError (re-exported from the core) for who
	// leads. Retry there.
	ErrNotLeader = raft.ErrNotLeader
	// ErrStopped: the node stopped before the request completed. The
	// outcome of a proposal answered with ErrStopped is unknown unless it
	// was never appended; retry with the same client id and sequence.
	ErrStopped = errors.New("actors: node stopped")
	// ErrOutcomeUnknown: the caller's wait expired, or the proposer, a
	// leader since deposed, installed a snapshot from the new leader that
	// covers the proposal's index. The proposal may have committed (or
	// may still); retry with the same client id and sequence to find out.
	ErrOutcomeUnknown = errors.New("actors: outcome unknown (wait expired)")
	// ErrPaused: the node was started paused and has not been resumed.
	ErrPaused = errors.New("actors: node paused")
	// ErrRetry: a transient condition; retry later. It answers a request
	// while a leadership transfer or a configuration change is under way, a
	// read while no leader is known or when the leader changed before the
	// read was served, a transfer with no other voter to take over or one
	// that timed out. A proposal, configuration change or transfer sent to
	// a node that knows no leader is answered *NotLeaderError{Leader: 0}
	// (ErrNotLeader) instead.
	//
	// An overloaded node (see ErrOverloaded) answers ErrRetry too.
	ErrRetry = errors.New("actors: retry later")
	// ErrOverloaded: the node holds as much as it may, and refused the
	// request without appending or queueing it (nothing to find out:
	// retry, with the same client id and sequence, after a back-off):
	// the leader's uncommitted commands reached
	// raft.Config.MaxUncommittedBytes (raft.ErrProposalDropped), the
	// proposals waiting for their answer Config.MaxPendingProposals, or
	// the reads waiting Config.MaxPendingReads. It always comes wrapped
	// with ErrRetry; Status.Overloaded counts the refusals by cause.
	ErrOverloaded = errors.New("actors: overloaded")
	// ErrStaleConfig: a membership change named an ExpectedConfigIndex
	// that is no longer the index of the configuration in force (another
	// change came first). Read Status.ConfigIndex and decide again.
	ErrStaleConfig = errors.New("actors: configuration changed since the expected index")
	// ErrCatchUpTimeout: AddMember or PromoteLearner gave up because the
	// learner did not catch up with the leader's log within
	// Config.CatchUpTimeout. It stays a learner; remove it or try again.
	ErrCatchUpTimeout = errors.New("actors: learner did not catch up in time")
	// ErrInvalidMembership: the change names no member, a member twice, or
	// would leave no voter.
	ErrInvalidMembership = errors.New("actors: invalid membership change")
	// ErrStoreInUse: the node could not start because another node of
	// this process holds its store: the same Props spawned while their
	// node runs, or two Configs naming the same DataDir and ClusterID. It
	// is NodeStopped's Err (wrapped), and every request is answered
	// ErrStopped.
	ErrStoreInUse = errors.New("actors: store in use by another node")

	// ErrBeyondApplied: CompactTo named an index the state machine has not
	// applied.
	ErrBeyondApplied = errors.New("actors: index not applied yet")

	// ErrCompacted: the log is already compacted at or past the index asked.
	ErrCompacted = errors.New("actors: already compacted")
)

// NotLeaderError says who leads (0 and "" if unknown).
type NotLeaderError = raft.NotLeaderError

// Role is a node's role, re-exported from the core (actors/raft) so that
// applications compare roles (Status.Role, RoleChanged) without importing
// it.
type Role = raft.Role

// PeerProgress is the leader's view of one peer (Status.Progress),
// re-exported from the core.
type PeerProgress = raft.PeerProgress

// LogStats is what the core's log holds in memory and how it was read
// (Status.Log).
type LogStats = raft.LogStats

// The roles.
const (
	Follower     = raft.Follower
	PreCandidate = raft.PreCandidate
	Candidate    = raft.Candidate
	Leader       = raft.Leader
)

// Propose asks the leader to replicate Data and apply it. Answer:
// *ProposeResponse. ClientID+Sequence (optional, both non-zero) make
// retries idempotent: a client's session starts at Sequence 1, and its
// sequences grow, one command under way at a time. Sessions are per group
// (cluster id): a client of several groups numbers its commands of each
// from 1. Sessions expire
// (Config.MaxSessions, SessionTTL): a later sequence of a client without
// a session is answered ErrSessionExpired. A session's first command
// retried after the session expired cannot be told from a new client's
// and is applied again: a client that must never repeat a command makes
// its sequence 1 a registration (a command with no effect).
type Propose struct {
	Data     []byte
	ClientID uint64
	Sequence uint64
	// ReplyOnAppend: the leader first answers *ProposeAccepted (the
	// entry's index and term) as soon as it appends the entry to its log,
	// then *ProposeResponse once it is applied, both to the sender. A
	// retry of a (ClientID, Sequence) already in the log or applied gets
	// no second ProposeAccepted, only its ProposeResponse. A refused
	// proposal gets only its ProposeResponse. A future (ProposeAndWait,
	// Request) completes with the first answer: send from an actor to
	// receive both.
	ReplyOnAppend bool
	// TraceParent (W3C) links the proposal's spans to the caller's trace.
	TraceParent string
}

// ProposeAccepted is the first answer to a Propose with ReplyOnAppend:
// the leader appended the entry at Index in Term (to its log in memory:
// not yet durable, not committed). It commits only if it stays in the log
// at Index with Term; the ProposeResponse that follows says what happened.
type ProposeAccepted struct {
	Index uint64
	Term  uint64
}

// ProposeResponse answers Propose. Err is nil, or wraps one of:
//   - ErrNotLeader (*NotLeaderError): not the leader (Leader 0 while none is
//     known), or another leader's entry took the proposal's index;
//   - ErrDuplicate: this (ClientID, Sequence) was applied before and its
//     result is no longer known: success without a result;
//   - ErrSessionExpired: the client has no session (it expired) and
//     Sequence is past 1: not applied now, an earlier attempt may have
//     been; continue with a new ClientID;
//   - ErrRetry: a leadership transfer is under way, or the node is
//     overloaded (then also ErrOverloaded): the proposal was not appended;
//   - ErrStopped: the node stopped (or failed) first;
//   - ErrOutcomeUnknown: this node, a leader since deposed, installed a
//     snapshot that covers the proposal's index;
//   - ErrPaused: the node was started paused and not resumed;
//   - raft.ErrProposalTooLarge: Data is over raft.Config.MaxProposalBytes.
type ProposeResponse struct {
	Index  uint64
	Term   uint64
	Result any // the StateMachine's result for this entry
	Err    error
}

// Read asks for a linearizable read (ReadIndex, thesis §6.4): once the
// state machine has applied everything committed when the read arrived,
// Query is passed to the StateMachine's Query method. Answer:
// *ReadResponse. Served on the leader or, via the leader, on a follower.
// A Read sent without a sender (Send rather than Request) is served and
// its answer dropped.
type Read struct {
	Query any
}

// ReadResponse answers Read. Err is nil or wraps ErrRetry (no leader
// known, the leader changed, or the node is overloaded: then also
// ErrOverloaded), NotLeaderError, ErrStopped, ErrPaused, or the
// StateMachine's Query error.
type ReadResponse struct {
	Index  uint64 // the read index
	Result any
	Err    error
}

// ChangeConfig proposes a whole new configuration (members and
// settings). More than one voter changed at once goes through joint
// consensus. Answer: *ChangeConfigResponse once the final, non-joint
// configuration is committed (Index is its entry's index), or with an
// error: ErrStaleConfig when ExpectedConfigIndex (non-zero) is not the
// index of the configuration in force (compare-and-set, as hashicorp's
// prevIndex); ErrRetry while another change is under way;
// ErrOutcomeUnknown when leadership was lost before it committed.
type ChangeConfig struct {
	Config              *messages.ClusterConfig
	ExpectedConfigIndex uint64
}

// ChangeConfigResponse answers ChangeConfig.
type ChangeConfigResponse struct {
	Index  uint64
	Config *messages.ClusterConfig
	Err    error
}

// AddMember adds ID (reachable at Address) as a learner; when Voter, waits
// until it has caught up with the leader's log (a catch-up round of thesis
// §4.2.1 that ends within an election timeout, or a lag of at most
// Config.CatchUpLag entries) and then promotes it, so that the quorum
// never grows before the newcomer has the log. Served by the leader.
// Answer: *MembershipResponse once the final configuration is committed,
// or with ErrCatchUpTimeout after Config.CatchUpTimeout (the learner stays
// a learner), ErrStaleConfig (see ChangeConfig), ErrInvalidMembership,
// ErrRetry, NotLeaderError or ErrOutcomeUnknown. Adding a member that is
// already one with that role answers at once.
type AddMember struct {
	ID                  uint64
	Address             string
	Voter               bool
	ExpectedConfigIndex uint64
}

// RemoveMember removes voter or learner ID (the leader too: it hands over
// once the removal commits). Answer: *MembershipResponse once the final
// configuration is committed, or an error as for AddMember.
type RemoveMember struct {
	ID                  uint64
	ExpectedConfigIndex uint64
}

// PromoteLearner makes learner ID a voter once it has caught up (as
// AddMember). Answer: *MembershipResponse.
type PromoteLearner struct {
	ID                  uint64
	ExpectedConfigIndex uint64
}

// MembershipResponse answers AddMember, RemoveMember and PromoteLearner:
// Index is the index of the final configuration entry, committed.
type MembershipResponse struct {
	Index  uint64
	Config *messages.ClusterConfig
	Err    error
}

// TransferLeadership asks the leader to hand over to To (0: the voter with
// the longest log among those that answered its recent heartbeats).
// Answer: *TransferLeadershipResponse once another node leads, or ErrRetry
// when the core gives up after an election timeout (EventTransferAborted),
// or when this node, having stepped down, campaigns again because no new
// leader appeared.
type TransferLeadership struct{ To uint64 }

// TransferLeadershipResponse answers TransferLeadership.
type TransferLeadershipResponse struct {
	Leader uint64
	Err    error
}

// Campaign asks the node to start an election now (no answer). With
// CheckQuorum on, a node that heard from a live leader within an election
// timeout (or restarted less than one ago) ignores it: it keeps the lease
// it gave that leader.
type Campaign struct{}

// Resume starts a node that was started paused. Answer: *Resumed.
type Resume struct{}

// Resumed answers Resume.
type Resumed struct{}

// Stop stops the node in order: a leader hands leadership over first, to
// the voter with the longest log among those that answered its recent
// heartbeats (raft.Raft.TransferTarget; none: no hand-over), waiting until
// another node leads or the core gives up after an election timeout;
// pending writes are flushed, pending requests are answered with
// ErrStopped, subscribers get NodeStopped. Answer: *Stopped; the actor then
// stops.
type Stop struct{}

// Stopped answers Stop.
type Stopped struct{}

// Subscribe registers PID (or the sender, when PID is nil) for events:
// EntryApplied, LeaderChanged, RoleChanged, TermChanged, MembershipChanged,
// MemberRemoved, SnapshotTaken, SnapshotInstalled, QuiescenceChanged,
// NodeStopped. Events
// arrive in order.
type Subscribe struct{ PID *actor.PID }

// Unsubscribe removes a subscriber.
type Unsubscribe struct{ PID *actor.PID }

// GetStatus asks for *Status.
type GetStatus struct{}

// GetHistory asks for *History.
type GetHistory struct{}

// SetLogLevel changes the node's log level at run time (Config.LogLevel).
// Answer: *SetLogLevelResponse.
type SetLogLevel struct{ Level slog.Level }

// SetLogLevelResponse answers SetLogLevel with the level before.
type SetLogLevelResponse struct {
	Previous slog.Level
	Err      error
}

// TakeSnapshot snapshots the state machine (it must implement
// Snapshotter or StreamSnapshotter) at its applied index and compacts the log, keeping the tail
// that Config.RetainEntries and RetainBytes ask for. Answer:
// *TakeSnapshotResponse with the snapshot's index, or its Err (the state
// machine can take no snapshot, or taking it failed). With a store that
// keeps snapshot files, the answer comes once the file is committed (a
// StreamSnapshotter's WriteTo has finished). Subscribers also get
// SnapshotTaken. An application that keeps its own durable state and
// chooses the index uses CompactTo instead.
type TakeSnapshot struct{}

// TakeSnapshotResponse answers TakeSnapshot.
type TakeSnapshotResponse struct {
	Index uint64
	Err   error
}

// CompactTo tells the node that the application has durably captured its
// state up to Index (Index <= applied): the log is compacted up to Index
// (less the retained tail, Config.RetainEntries and RetainBytes), without
// asking the state machine for a snapshot now. When a follower later needs
// a snapshot, the leader asks the state machine for one (Snapshot, on the
// applier) at the index it has applied by then, and sends that. Answer:
// *CompactToResponse.
//
// The StateMachine must implement Snapshotter or StreamSnapshotter (data
// on demand),
// AppliedIndexer (after a restart its state covers Index: no snapshot is
// stored to restore) and CommandDeduplicator (the library's session table
// is not stored with the compaction, so retries must be deduplicated by
// the application's own durable table). Refused otherwise, with
// ErrBeyondApplied when Index is not applied yet, and with ErrCompacted
// when the log is already compacted at or past Index.
type CompactTo struct{ Index uint64 }

// CompactToResponse answers CompactTo: FirstIndex is the log's first index
// after the compaction.
type CompactToResponse struct {
	FirstIndex uint64
	Err        error
}
