// Package raft holds the Raft rules of Flotilla as deterministic code: the
// follower, candidate (with its pre-candidate sub-state) and leader logic of
// the Raft paper and of Ongaro's thesis, with PreVote (§9.6), CheckQuorum,
// leadership transfer (§3.10), ReadIndex (§6.4), snapshots (§5) and
// configuration changes through joint consensus (§4). The configuration
// as a value, its validation, the quorum math and the transitions between
// configurations live in package cluster/membership; this package puts
// configurations in force and counts with them.
//
// The package never reads the wall clock, starts a goroutine, sleeps or does
// I/O, and imports no protoactor, Pebble or OpenTelemetry package. Time
// arrives as calls to [Raft.Tick]; randomness comes from the seed in
// [Config]; every output is data handed out by [Raft.Ready]. This is what
// lets the simulator in package sim drive thousands of seeded runs with
// faults and check the safety properties after every step, and it is what
// the node actor in package actors drives in production.
//
// # Driving a Raft
//
// The driver (the node actor, or the simulator) loops:
//
//	r.Step(msg) / r.Tick() / r.Propose(...)   // inputs
//	rd := r.Ready()                            // outputs, handed out once
//	if rd.PersistID != 0 {
//	    persist rd.Snapshot, rd.Entries, rd.HardState atomically and durably
//	    ...then, later and in PersistID order: r.Persisted(rd.PersistID)
//	}
//	send rd.Messages                           // may happen at once
//	apply rd.Snapshot (if any), then rd.CommittedEntries, in order
//	    ...then r.AppliedTo(index) (with Config.MaxApplyingBytes)
//	stop on rd.StorageError
//
// # The log: memory and Storage
//
// The core reads its stable log through the [Storage] given in
// [InitialState] (the driver's store, read synchronously): entries not yet
// reported persisted stay in memory, persisted ones leave it for an entry
// cache of at most Config.EntryCacheBytes, and older ones are read from
// Storage when a lagging follower or the applier needs them. New finds the
// log's bounds and configurations with a paged scan. Committed entries are
// handed out in batches of at most Config.MaxCommittedSizePerReady bytes,
// and with Config.MaxApplyingBytes no more than that many bytes wait for
// the driver's AppliedTo. A failed read of Storage stops the log: Ready
// hands out Ready.StorageError once, and the driver stops the node. Without
// a Storage the core keeps the whole log in memory (tests).
//
// # Durability ordering (the contract)
//
// Messages in Ready.Messages may be sent immediately, even before the
// Ready's own persistence finishes: the core holds back, inside itself,
// every message that promises durable state (a vote grant, an append
// acknowledgement, a vote request carrying a new term) until the driver has
// reported, through Persisted, that the batch holding that state is on
// stable storage. Persistence batches must be made durable and reported in
// PersistID order (a later batch may be reported alone: it implies the
// earlier ones). The leader's own entries count towards commitment only once
// persisted, but the leader sends them to followers first (thesis §10.2.1).
// Committed entries are handed out for applying only once they are durable
// locally, so a node never applies an entry it could lose in a crash.
// Followers learn a new commit index from the next append or heartbeat,
// within Config.CommitNewsTicks (default: one heartbeat interval), not from
// a broadcast per advance (§5.3 asks no more).
//
// # Configurations
//
// A configuration (voters, learners, settings) is a log entry, and it is
// in force as soon as it is in the log, committed or not (thesis §4.1); a
// truncation of the log reverts to the one before. A restarted node thus
// finds its configuration in its own log whatever its (lazily synced)
// commit index says. Changes of more than one voter go through a joint
// configuration that the leader leaves once it is committed (§4.3). The
// leader replicates to the members of the last committed configuration
// and of every later one, and to members removed by a committed
// configuration until they answer with that commit index: a removed node
// learns its removal (EventRemoved) and campaigns no more, as does a node
// that a member refuses: the driver drops the messages of senders the
// core does not admit (Admits) and hands them to RefuseNonMember, which
// answers a vote request with MSG_NOT_MEMBER. A node may
// campaign when it is a voter of the configuration in force or of the last
// committed one; in the second case only, it always runs a pre-vote first.
// Each of these rules closed a way for randomized configuration changes to
// leave a cluster leaderless (TestRandomConfigChangesAreSafe).
//
// # Snapshots in chunks
//
// When a peer needs a snapshot, the leader hands out a MSG_SNAPSHOT
// addressed to it. A driver may send it as it is (the follower steps it
// whole), or stream the snapshot's bytes in MSG_SNAPSHOT_CHUNK messages
// that the follower acknowledges with MSG_SNAPSHOT_ACK. The core keeps
// Raft's rules for the chunks and holds none of their bytes: a follower
// steps each chunk (term checks; a chunk in the current term comes from
// the leader and resets the election timer; one from another node of the
// term is refused as forged), and hands the accepted ones out in
// Ready.SnapshotTransfers for the driver to write; once the driver holds
// the whole snapshot and has checked it, it steps a MSG_SNAPSHOT from the
// leader with the data (or with the metadata alone, when the data is in
// the driver's snapshot files), which installs it as before. The leader steps
// acknowledgements: each that reports more bytes keeps the peer in
// StateSnapshot for another election timeout, and it is handed out for
// the driver that streams; a transfer without progress for an election
// timeout goes back to probing, which asks for the snapshot again.
//
// # Quiescence
//
// An idle group need not heartbeat (Config.QuiesceTicks; off by default).
// The rule follows CockroachDB's quiescence (pkg/kv/kvserver
// replica_raft_quiesce.go: a leader quiesces when every follower is caught
// up, sending a quiesce heartbeat with its term and commit; a follower
// unquiesces on any other message, a proposal, or when its liveness view
// says the leader is gone, from node liveness shared by all groups) and
// dragonboat's Config.Quiesce (quiesce.go, quiesceManager: each node
// quiesces on its own after ten election timeouts with no activity but
// heartbeats, and leaves on any other message). Unlike dragonboat, only
// the leader decides here, and only with every peer caught up; unlike
// CockroachDB, there is no shared liveness to detect a dead leader, so a
// quiesced leader keeps a rare heartbeat.
//
// Who and when: only a leader decides. It quiesces after QuiesceTicks
// ticks in a row in which every entry is committed, one of its own term
// among them, and every peer (voters and learners) holds every entry in
// StateReplicate, with no read, leadership transfer, configuration change
// (pending or joint), departing member or snapshot transfer in flight. It
// sends every peer a heartbeat with Quiesce set; a follower that receives
// it from its leader of its term quiesces too, whatever its own
// QuiesceTicks. A quiesced node's ticks do nothing but count: the leader
// neither heartbeats nor checks its quorum, the follower's election timer
// stands still. A driver may therefore tick a quiesced node in strides of
// QuiesceStride ticks (the node actor does: an idle group has no timer
// firing at the heartbeat rate).
//
// What wakes: the leader wakes on a proposal, a configuration change, a
// read, a leadership transfer, or any message but a heartbeat answer of
// its term (one that echoes its clock and confirms no read); it then
// heartbeats at once, which wakes its followers. A follower wakes on any
// message but its leader's quiesce heartbeat (or an older heartbeat of
// the leader, delivered late), on a local read or campaign request, and
// when it heard no quiesce heartbeat for 3 QuiescedHeartbeatTicks
// periods; woken by anything but its leader, it sends the leader a
// heartbeat answer without a clock, which wakes a live leader, and runs
// its election timer from zero.
//
// A leader that dies while quiesced: a quiesced leader keeps sending its
// quiesce heartbeat every QuiescedHeartbeatTicks (a few messages per
// group per period instead of one per heartbeat), so over any transport
// its followers detect a dead leader: within 3 periods plus a stride they
// wake, and an election follows after an election timeout (two, with
// CheckQuorum, as quiesced peers woken by the vote request keep the lease
// they promised for an election timeout). In one process a host could
// know at once that a group's leader is gone; nothing uses that yet: the
// rare heartbeat is the one detector, transport-independent (a
// connection's state alone would not say that a live process's group
// actor died).
//
// Safety: quiescence changes only timers, never terms, votes or the log,
// so Raft's safety (election safety, log matching, leader completeness)
// is untouched; a follower that missed the quiesce heartbeat merely
// campaigns, and its pre-vote or vote wakes the leader. Leases
// (ReadOnlyLeaseBased) rest on time: a follower's frozen election timer
// only lengthens the lease it promised (it still refuses votes inside it,
// and on waking waits a full election timeout), while a leader ticked in
// strides may see its clock lag; so a waking leader trusts only heartbeat
// answers sent after its next tick (reads meanwhile take a heartbeat
// round). PreVote and CheckQuorum are unchanged once awake; a woken
// leader starts a fresh check-quorum period. A quiesced leader checks no
// quorum: cut off while quiet, it still reports itself leader (Status)
// until something wakes it, while its followers elect another; anything
// it is then asked (a proposal, a read) wakes it first, and it commits or
// confirms nothing without a quorum, and steps down after an election
// timeout. Snapshots and membership
// changes keep a group awake until done: a peer that needs a snapshot, a
// learner catching up or a joint configuration is not caught up.
//
// Ready consumes: each output is handed out once. Entries and messages are
// never mutated after they are handed out; the driver must not mutate them
// either.
package raft
