package tracing

import "go.opentelemetry.io/otel/attribute"

// Metric instrument names. Every measurement carries raft.node_id; the other
// attributes each instrument adds are listed with it. Durations are in seconds,
// sizes in bytes, counts of log entries in {entry} (UCUM annotations, as the
// OpenTelemetry semantic conventions write them).
const (
	// MetricProposalCommitDuration: on the leader, from accepting a proposal to
	// its commit (histogram, s).
	MetricProposalCommitDuration = "raft.proposal.commit.duration"
	// MetricProposalApplyDuration: on the leader, from accepting a proposal to its
	// application by the state machine, which answers the proposer (histogram, s).
	MetricProposalApplyDuration = "raft.proposal.apply.duration"
	// MetricStorageSyncDuration: one group commit of the persister: a LogStore.Save
	// that writes and syncs every pending update (histogram, s).
	MetricStorageSyncDuration = "raft.storage.sync.duration"
	// MetricStorageSyncEntries: log entries written by one group commit
	// (histogram, {entry}).
	MetricStorageSyncEntries = "raft.storage.sync.entries"
	// MetricAppendEntries: log entries in one AppendEntries message the leader
	// sends (histogram, {entry}; heartbeats and probes carry none).
	MetricAppendEntries = "raft.append.entries"
	// MetricMessagesSent: Raft messages handed to the transport (counter,
	// {message}; raft.msg.type).
	MetricMessagesSent = "raft.messages.sent"
	// MetricMessagesReceived: inbound Raft messages admitted (counter, {message};
	// raft.msg.type).
	MetricMessagesReceived = "raft.messages.received"
	// MetricMessagesDropped: Raft messages refused or lost on this node (counter,
	// {message}; raft.msg.type and raft.drop.cause: wrong-cluster, non-member,
	// wrong-target, invalid, paused, send-failed).
	MetricMessagesDropped = "raft.messages.dropped"
	// MetricLeaderChanges: times this node learned of a new leader (counter,
	// {change}).
	MetricLeaderChanges = "raft.leader.changes"
	// MetricElectionsStarted: campaigns this node started (counter, {election};
	// raft.role: pre-candidate for a pre-vote round, candidate for a real one).
	MetricElectionsStarted = "raft.elections.started"
	// MetricElectionsWon: elections this node won (counter, {election}).
	MetricElectionsWon = "raft.elections.won"
	// MetricTerm: the node's current term (gauge, {term}).
	MetricTerm = "raft.term"
	// MetricCommitIndex: the node's commit index (gauge, {index}).
	MetricCommitIndex = "raft.commit.index"
	// MetricAppliedIndex: the last index the state machine applied (gauge,
	// {index}).
	MetricAppliedIndex = "raft.applied.index"
	// MetricApplyLag: entries committed but not yet applied (gauge, {entry}).
	MetricApplyLag = "raft.apply.lag"
	// MetricPeerMatchLag: on the leader, per peer (raft.peer), how many entries
	// its log is behind the leader's last index (gauge, {entry}). Reported only
	// while the node leads; refreshed every tick.
	MetricPeerMatchLag = "raft.peer.match.lag"
	// MetricSnapshotSize: the size of a snapshot taken, sent (per transfer
	// in chunks that the peer acknowledged whole) or installed (histogram, By; raft.snapshot.op: take, send, install).
	MetricSnapshotSize = "raft.snapshot.size"
	// MetricSnapshotDuration: the time to take a snapshot of the state machine or
	// to install one into it (histogram, s; raft.snapshot.op: take, install).
	MetricSnapshotDuration = "raft.snapshot.duration"
	// MetricReadDuration: a linearizable read, from its arrival to its answer
	// (histogram, s).
	MetricReadDuration = "raft.read.duration"
	// MetricRequestsOverloaded: proposals and reads refused because the node
	// holds as much as it may (counter, {request}; raft.overload.cause:
	// uncommitted-bytes, pending-proposals, pending-reads).
	MetricRequestsOverloaded = "raft.requests.overloaded"
)

// Metric instrument names of an actors.Host (many groups in one process).
// Every measurement carries raft.host (HostConfig.Name) instead of
// raft.node_id; the groups' nodes report the instruments above themselves.
const (
	// MetricHostGroups: the groups the host runs (gauge, {group}).
	MetricHostGroups = "raft.host.groups"
	// MetricHostGroupsActive: the host's groups that wrote to the store
	// within HostConfig.ActiveWindow (gauge, {group}).
	MetricHostGroupsActive = "raft.host.groups.active"
	// MetricHostFsyncs: synced batches of the host's shared persister
	// (counter, {fsync}); its rate is the host's fsyncs per second.
	MetricHostFsyncs = "raft.host.fsyncs"
	// MetricHostFsyncGroups: groups whose writes one synced batch held
	// (histogram, {group}).
	MetricHostFsyncGroups = "raft.host.fsync.groups"
	// MetricHostFsyncEntries: log entries one synced batch held, all groups
	// together (histogram, {entry}).
	MetricHostFsyncEntries = "raft.host.fsync.entries"
	// MetricHostFsyncDuration: the time of one batch of the shared persister
	// (write and sync; histogram, s).
	MetricHostFsyncDuration = "raft.host.fsync.duration"
)

// Attribute keys of metrics (beside AttrNodeID, AttrMsgType, AttrPeer, AttrRole).
const (
	AttrDropCause  = attribute.Key("raft.drop.cause")  // why a message was dropped
	AttrSnapshotOp = attribute.Key("raft.snapshot.op") // take, send, install
	AttrOverload   = attribute.Key("raft.overload.cause")
	AttrHost       = attribute.Key("raft.host") // a host's metrics: HostConfig.Name
)

// Overload causes (AttrOverload): which cap refused a request.
const (
	OverloadUncommittedBytes = "uncommitted-bytes" // raft.Config.MaxUncommittedBytes
	OverloadPendingProposals = "pending-proposals" // actors.Config.MaxPendingProposals
	OverloadPendingReads     = "pending-reads"     // actors.Config.MaxPendingReads
)

// Drop causes (AttrDropCause).
const (
	DropWrongCluster = "wrong-cluster" // another cluster's message
	DropNonMember    = "non-member"    // from a node that is not a member
	DropWrongTarget  = "wrong-target"  // addressed to another node
	DropInvalid      = "invalid"       // malformed, or refused by the Raft core
	DropPaused       = "paused"        // arrived while the node was paused or stopping
	DropSendFailed   = "send-failed"   // the transport refused to send it
)

// InstrumentKind is the kind of a metric instrument.
type InstrumentKind int

const (
	KindCounter   InstrumentKind = iota + 1 // monotonic sum
	KindHistogram                           // distribution
	KindGauge                               // last value, observed when collected
)

// Instrument describes one metric instrument.
type Instrument struct {
	Name        string
	Kind        InstrumentKind
	Unit        string
	Description string
	// Buckets are the histogram's explicit bucket boundaries (histograms only).
	Buckets []float64
}

var (
	secondsBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	entryBuckets   = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096}
	groupBuckets   = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096}
	byteBuckets    = []float64{1 << 10, 1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20, 1 << 22, 1 << 24, 1 << 26, 1 << 28, 1 << 30}
)

// Instruments lists every metric instrument a node records, in the order of the
// constants above (a host's are in HostInstruments).
var Instruments = []Instrument{
	{MetricProposalCommitDuration, KindHistogram, "s", "Time from a proposal's arrival at the leader to its commit.", secondsBuckets},
	{MetricProposalApplyDuration, KindHistogram, "s", "Time from a proposal's arrival at the leader to its application.", secondsBuckets},
	{MetricStorageSyncDuration, KindHistogram, "s", "Time of one group commit (write and sync) of the log store.", secondsBuckets},
	{MetricStorageSyncEntries, KindHistogram, "{entry}", "Log entries written by one group commit.", entryBuckets},
	{MetricAppendEntries, KindHistogram, "{entry}", "Log entries per AppendEntries message sent.", entryBuckets},
	{MetricMessagesSent, KindCounter, "{message}", "Raft messages handed to the transport.", nil},
	{MetricMessagesReceived, KindCounter, "{message}", "Inbound Raft messages admitted.", nil},
	{MetricMessagesDropped, KindCounter, "{message}", "Raft messages refused or lost, by cause.", nil},
	{MetricLeaderChanges, KindCounter, "{change}", "Times a new leader became known.", nil},
	{MetricElectionsStarted, KindCounter, "{election}", "Campaigns started (pre-vote and real).", nil},
	{MetricElectionsWon, KindCounter, "{election}", "Elections won.", nil},
	{MetricTerm, KindGauge, "{term}", "Current term.", nil},
	{MetricCommitIndex, KindGauge, "{index}", "Commit index.", nil},
	{MetricAppliedIndex, KindGauge, "{index}", "Last index applied by the state machine.", nil},
	{MetricApplyLag, KindGauge, "{entry}", "Entries committed but not yet applied.", nil},
	{MetricPeerMatchLag, KindGauge, "{entry}", "Entries a peer's log is behind the leader's (leader only).", nil},
	{MetricSnapshotSize, KindHistogram, "By", "Size of a snapshot taken, sent or installed.", byteBuckets},
	{MetricSnapshotDuration, KindHistogram, "s", "Time to take or install a snapshot.", secondsBuckets},
	{MetricReadDuration, KindHistogram, "s", "Time from a linearizable read's arrival to its answer.", secondsBuckets},
	{MetricRequestsOverloaded, KindCounter, "{request}", "Proposals and reads refused by a cap, by cause.", nil},
}

// HostInstruments lists every metric instrument an actors.Host records
// through HostConfig.MeterProvider, in the order of the constants above.
var HostInstruments = []Instrument{
	{MetricHostGroups, KindGauge, "{group}", "Groups the host runs.", nil},
	{MetricHostGroupsActive, KindGauge, "{group}", "Groups of the host that wrote to the store recently.", nil},
	{MetricHostFsyncs, KindCounter, "{fsync}", "Synced batches of the host's shared persister.", nil},
	{MetricHostFsyncGroups, KindHistogram, "{group}", "Groups whose writes one synced batch held.", groupBuckets},
	{MetricHostFsyncEntries, KindHistogram, "{entry}", "Log entries one synced batch held.", entryBuckets},
	{MetricHostFsyncDuration, KindHistogram, "s", "Time of one batch (write and sync) of the shared persister.", secondsBuckets},
}
