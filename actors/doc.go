// Package actors is Flotilla's public face: a Raft node as a protoactor-go
// actor, spawned inside the application's own actor system.
//
//	props, err := actors.Props(cfg)       // cfg from actors.DefaultConfig()
//	node := ctx.Spawn(props)              // a child of the application's actor
//	res, err := actors.ProposeAndWait(ctx, node, &actors.Propose{Data: cmd}, time.Second)
//
// Example_threeNodes is a complete in-memory cluster (actor system,
// application actors, one shared network, proposals, a read, the status);
// ExampleProposeAndWait handles every answer; ExampleSnapshotter,
// ExampleStreamSnapshotter (a snapshot streamed while Apply goes on) and
// ExampleConfig_customTransport plug in a state machine with snapshots and
// a transport of one's own.
//
// # Architecture
//
// One node actor owns one Raft node. Its behavior is its role — follower,
// candidate (pre-candidate included) or leader — switched with protoactor's
// Become; every behavior calls the deterministic core in package
// actors/raft, which holds all of Raft's rules. The node actor adds no rule
// of its own: it turns actor messages into core inputs and the core's Ready
// into work for its children. The core reads the stable log from the
// LogStore (persistence.RaftStorage) and keeps in memory only the entries
// not yet durable and a cache of recent ones (Config.Raft.EntryCacheBytes);
// start-up reads the store's log in pages, never all of it at once:
//
//   - the persister owns the LogStore. It drains every pending write in its
//     mailbox into one Save (one sync: group commit) and reports back;
//     messages that promise durable state leave only after that report (the
//     core holds them). A storage error stops the node with a NodeStopped
//     event: never a silent restart. With the in-memory store (memstore,
//     the default without DataDir; any persistence.VolatileStore) the node
//     writes the core's updates in
//     its own turn instead, as nothing waits on a disk; the persister then
//     serves snapshots, compaction and the drain at stop.
//   - the applier owns the StateMachine. It applies committed entries in log
//     order, in batches of at most Config.Raft.MaxCommittedSizePerReady
//     bytes, with at most Config.Raft.MaxApplyingBytes queued, answers each proposer with the state machine's result, serves
//     linearizable reads, and publishes EntryApplied to subscribers. An
//     entry that cannot be applied (a panic, or a result wrapping
//     ErrApplyFailed, e.g. an application actor that did not answer) stops
//     the node: it is never skipped.
//   - a replicator per peer, while leader: it hands the AppendEntries and
//     heartbeats the core built for its peer to the Transport, off the
//     node actor's path (the transport encodes them), and streams the
//     snapshots the core hands out for the peer in chunks (see Snapshots
//     in chunks). Replicators restart on failure and are stopped on
//     step-down.
//   - a snapshot receiver, on a node that is sent a snapshot in chunks: it
//     writes them, answers each with the bytes it holds, checks the whole
//     and hands it to the node to install.
//
// The node and its children run on a small pool of goroutines of their own
// (dispatch.go), in a mailbox that allocates nothing per message
// (mailbox.go), instead of protoactor's goroutine per idle-to-busy mailbox:
// the workers keep their grown stacks, and exit once the pool has idled a
// second or two, or when the node stops.
//
// The node's internal messages (to and from its timer and children) are
// all in protocol.go. Its files follow its concerns: node.go (the node
// type, its state grouped by concern), roles.go (the behaviors),
// lifecycle.go (start, ticks, pause, stop, supervision), requests.go and
// accept.go (proposals, reads, transfers and the one mapping from a
// request to its error answer), membership.go, snapshot.go, ready.go
// (feeding the core, handing out its Ready), events.go (events, history,
// subscriptions, status), sessions.go (the session table and its expiry),
// trace*.go and metrics*.go. The children are
// persister.go, applier.go, replicator.go (with snapshotsend.go) and
// snapshotrecv.go; props.go and store.go make
// the node and open its store when it starts; dispatch.go and mailbox.go
// run it and its children. The public API is api.go, api_events.go,
// api_wait.go (with replybox.go, ProposeAndWait's reusable reply address),
// config.go, statemachine.go and snapshot_format.go.
//
// # Failures
//
// A node never restarts itself with part of its state lost: on a storage
// error, an apply failure, a panic of its persister or applier, or a panic
// in the node actor itself (recovered there, not left to the supervisor) it
// stops. Subscribers get NodeStopped with the true reason in Err, every
// pending request is answered ErrStopped wrapping it, and the failure is
// logged at Error (the default Logger writes Warn and above to stderr, so a
// node that cannot start says why). Starting a new node actor on the same
// store (Props again) is the restart: it reloads its state from the store.
// Requests to a node actor that is gone answer ErrStopped through
// ProposeAndWait and Request.
//
// # Membership
//
// AddMember, RemoveMember, PromoteLearner and ChangeConfig are served by
// the leader (membership.go): a new server joins as a learner and is
// promoted only once it has caught up (a catch-up round of thesis §4.2.1
// that ends within an election timeout, or Config.CatchUpLag), so the
// quorum never grows before the newcomer holds the log; a learner that
// does not catch up within Config.CatchUpTimeout fails the request with
// ErrCatchUpTimeout and blocks nothing. Every request may name the
// ExpectedConfigIndex it was decided on (compare-and-set, as hashicorp's
// prevIndex; ErrStaleConfig when another change came first) and is
// answered once its final, non-joint configuration is committed, with that
// entry's index; if leadership is lost first, with ErrOutcomeUnknown. The
// core keeps replicating to a removed member until it knows; it then
// publishes MemberRemoved and campaigns no more, as does a node that the
// members' gates refuse as a non-member. Learners serve linearizable reads
// through the leader and appear in the leader's Status with their Lag.
//
// Time arrives as tick messages from protoactor's timer scheduler, tagged
// with a generation so that a stale tick (after a restart) is ignored.
//
// # Applying commands: StateMachine or an application actor
//
// The applier calls a [StateMachine] (Apply, and optionally Query,
// Snapshot/Restore and AppliedIndex). An application that prefers to keep
// its state in one of its own actors uses [ActorStateMachine]: the applier
// then sends each entry as an [ApplyRequest] to that actor and waits for its
// [ApplyResult]; the actor way and the interface way are one mechanism.
//
// # Exactly once
//
// Each index is applied once per process lifetime, in order. Across
// restarts, a state machine that implements AppliedIndexer (its state and
// applied index are durable together, see persistence.AppliedIndexStore) is
// not given the entries it already has; one that does not is rebuilt from
// the log (and the latest snapshot) at start. Client id + sequence number on
// a proposal make retries idempotent: a repeated (client, sequence) is
// answered from the session table without being applied twice. The table
// is bounded: a session expires once it is the least recently used of
// more than Config.MaxSessions (65,536), or once Config.SessionTTL log
// entries (10,000,000) follow its client's last one. Both are measured in
// the log, so every replica, and one restored from a snapshot (which
// carries the table with each session's last use), expires the same
// sessions at the same index. A later sequence from an expired session is
// answered ErrSessionExpired, never applied silently twice; the first
// command of a session is the one a table cannot protect after expiry
// (see Propose).
//
// # Snapshots and compaction
//
// A snapshot's data holds two sections in a versioned framing: the
// library's session table and the state machine's own bytes
// (SplitSnapshot reads them; a SnapshotStore or a backup tool can keep
// the application's part alone). The node snapshots on TakeSnapshot and,
// by default, automatically: every Config.SnapshotEvery entries (10,000) or
// Config.SnapshotBytes of commands (64 MiB), whichever comes first
// (Config.NoAutoSnapshots turns that off; a StateMachine without
// Snapshotter is never snapshotted and its log grows: the node warns at
// start). An application that persists its own
// state instead tells the node how far it has durably captured it
// (CompactTo), and the leader asks it for snapshot bytes only when a
// follower needs them. Either way the log keeps a tail below the
// compaction point (Config.RetainEntries, RetainBytes) so that slightly
// lagging followers catch up with appends, and a leader keeps the entries
// after a snapshot it is sending to a peer while the transfer progresses
// (the peer goes on from there with appends once it installed it, however
// many snapshots the leader took meanwhile). A Snapshotter that implements
// SnapshotRestorer learns the index, term and configuration it restores.
//
// Snapshots stream when the store keeps snapshot files
// (persistence.SnapshotFileStore, as pebblestore and memstore do): the
// applier writes the framing, the session table and the state machine's
// data into a file (a StreamSnapshotter's view is written on a goroutine
// of its own while Apply goes on; a Snapshotter's bytes are written
// likewise), the core keeps only the snapshot's metadata, and restores (a
// follower installing, a node starting on a snapshot) read the file. A
// file whose checksum fails stops a start that needs it with
// ErrCorruptSnapshot. A store with SnapshotStore alone gets []byte
// snapshots, as before.
//
// # Snapshots in chunks
//
// A follower behind the leader's log gets the snapshot in chunks
// (MSG_SNAPSHOT_CHUNK, Config.SnapshotChunkBytes, 1 MiB) that it
// acknowledges with the number of bytes it holds (MSG_SNAPSHOT_ACK); the
// leader keeps at most Config.SnapshotWindowBytes (4 MiB) unacknowledged,
// sends at most Config.SnapshotBandwidth bytes a second when set, and,
// when no acknowledgement of more bytes came for
// Config.SnapshotResendTimeout, asks the follower where it is and goes on
// from there. A transfer resumes from what the follower holds after a
// dropped connection or on a new leader, as long as the snapshot is the
// same (index, term, size and CRC-32C); another snapshot makes the
// follower discard its partial copy and start over. Each chunk carries
// its own CRC-32C and the follower checks the whole before installing
// (its CRC-32C, then its framing, session table and the state machine's
// SnapshotValidator, as for a snapshot sent whole); bad chunks are
// refused and counted (Status.Dropped.Invalid), a whole that fails its
// check too (Status.Dropped.CorruptSnapshot). The leader
// gives a transfer up when it made no progress for an election timeout
// (the core's rule), never while it progresses. Subscribers see
// SnapshotSendProgress on the leader and SnapshotReceived on the follower;
// Status shows SnapshotSends and SnapshotReceiving.
//
// # Many groups per process: Host
//
// A process that runs many Raft groups (one node of each) spawns a host
// (HostProps, host.go) instead of a node per group: it owns one Pebble
// database (every group keyed by its cluster id), reaches one transport
// through HostConfig.Join (remote.Host.HostJoin, inmem.Network.HostJoin:
// inbound messages are routed by cluster id and node id) and runs one shared
// persister (host_persister.go). Each group's node keeps its own
// persister child, which drains the group's pending writes into one Save
// (group commit within the group); on a host that Save is a request to
// the shared persister, which drains every group's requests in its
// mailbox into one pebblestore.DB.SaveGroups: one batch and one fsync for
// all the groups that wrote in that round, each group answered once it is
// durable. Snapshots, compaction and the application's transactional
// applies go to the group's store directly. CreateGroup and RemoveGroup
// start and stop groups at run time (a cluster id the host runs already is
// refused with ErrGroupExists; a removed group's data stays for a later
// CreateGroup), and GetHostStatus counts groups, active groups, fsyncs
// and group writes and entries per fsync. A group's node is a whole node:
// send it what a node of Props takes (proposals, reads, membership,
// snapshots, GetStatus, Subscribe); client sessions (Propose's ClientID
// and Sequence) are per group. RemoveGroup every group before stopping
// the host for an orderly stop (leaders hand over); a host stopped with
// groups stops their nodes at once, losing nothing they acknowledged.
// ExampleHostProps runs three hosts with two groups each. Props remains
// the way to run one group.
//
// # Backpressure
//
// A node bounds what it holds for proposers and readers: the leader's
// uncommitted commands (raft.Config.MaxUncommittedBytes, 32 MiB), the
// proposals waiting for their answer (Config.MaxPendingProposals) and the
// reads waiting (Config.MaxPendingReads), 16,384 each. A request over a
// cap is refused at once, not appended or queued, with ErrOverloaded
// wrapped with ErrRetry: retry after a back-off, with the same client id
// and sequence. Status.Overloaded and the raft.requests.overloaded metric
// count the refusals by cause. Mailboxes themselves are unbounded.
//
// # Traces and metrics
//
// Every message flow is traced through Config.TracerProvider (trace.go) and
// measured through Config.MeterProvider (metrics.go); both default to
// OpenTelemetry's global providers, which record nothing until the
// application installs an SDK. The instruments, their units and attributes
// are listed in tracing.Instruments; a Host's own (groups, fsyncs, groups
// and entries per fsync) go to HostConfig.MeterProvider (host_metrics.go),
// listed in tracing.HostInstruments. This package imports the OpenTelemetry
// API only; tracing/otlp sets up an exporter.
package actors
