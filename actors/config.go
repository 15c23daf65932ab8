package actors

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors/raft"
	"github.com/flotilla-raft/flotilla/cluster/transport"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
	"github.com/flotilla-raft/flotilla/tracing"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Config configures a node actor. Start from DefaultConfig.
//
// A node stops on a failure rather than restart (see Failures in the package
// doc): to restart it, spawn Props of the same Config (same LogStore or
// DataDir) again; it reloads its state from the store. The supervisor of
// the node actor never sees its panics: the node recovers them and stops
// with the panic as NodeStopped's Err.
type Config struct {
	// ID of this node, non-zero. Required.
	ID uint64
	// ClusterID is stamped on every message; messages of other clusters
	// are dropped and counted. Default 0.
	ClusterID uint64
	// Address is this node's transport address, as peers know it.
	Address string
	// Bootstrap is the founding configuration (voters with addresses, and
	// cluster-wide settings: PreVote, CheckQuorum, timeouts). Every founder
	// gets the same one; a node joining a running cluster leaves it nil.
	Bootstrap *messages.ClusterConfig
	// Transport carries Raft messages. Required. The node starts it and
	// closes it when it stops.
	Transport transport.Transport
	// LogStore holds the log. When nil: a Pebble store in DataDir if set
	// (durable; the default for real deployments), otherwise an in-memory
	// store (nothing survives the process).
	LogStore persistence.LogStore
	// DataDir is the directory of the node's Pebble database, used when
	// LogStore is nil. Nodes of one process given the same DataDir share
	// one database, each in the group of its ClusterID, so nodes of the
	// same cluster need different directories; each node syncs its own
	// writes (a Host shares one sync among its groups). The node closes
	// what it opened when it stops.
	DataDir string
	// StateMachine receives committed commands. Required.
	StateMachine StateMachine
	// TickInterval is one Raft tick; the election timeout and heartbeat
	// interval are counted in ticks (cluster settings). Default (and 0)
	// 100ms.
	TickInterval time.Duration
	// StartPaused loads state but joins nothing (no ticks, inbound messages
	// dropped) until a Resume message.
	StartPaused bool
	// Raft tunes the core; its ID, ClusterID, Bootstrap and Logger are set
	// from this Config. Default raft.DefaultConfig(); a zero field takes
	// its default, except MaxInflightBytes, whose 0 is no byte cap (see
	// raft.Config). The log's memory: EntryCacheBytes (default 4 MiB) of
	// persisted entries; MaxCommittedSizePerReady (default MaxSizePerMsg,
	// 1 MiB) per batch to the applier; MaxApplyingBytes, whose 0 here is
	// DefaultMaxApplyingBytes, of batches queued to the applier.
	// Quiescence of an idle group: QuiesceTicks (0, the default: off) and
	// QuiescedHeartbeatTicks (50); a quiesced node's tick timer fires once
	// per QuiescedHeartbeatTicks ticks.
	Raft raft.Config
	// Logger receives the node's logs. Default: Warn and above (storage
	// failures, a failed start, refused messages; LogLevel's level when
	// LogLevel is set) as text on os.Stderr; pass
	// slog.New(slog.DiscardHandler) to silence it.
	Logger *slog.Logger
	// LogLevel, when set, is the level of Logger's handler (the
	// application builds the handler with slog.HandlerOptions{Level:
	// LogLevel}); the SetLogLevel message changes it at run time. See
	// tracing.LevelFromEnv. Default nil: SetLogLevel answers an error.
	LogLevel *slog.LevelVar
	// Subscribers receive events from the start (before any can subscribe
	// with a message), e.g. the parent application actor.
	Subscribers []*actor.PID
	// SnapshotEvery takes a snapshot (when the StateMachine implements
	// Snapshotter or StreamSnapshotter) once this many entries were
	// applied after the node's latest snapshot (taken, found in the store
	// at start, or installed from the leader), and compacts the log
	// (keeping RetainEntries). Default (and 0) DefaultSnapshotEvery,
	// 10,000 entries (etcd's SnapshotCount; hashicorp/raft's
	// SnapshotThreshold is 8,192). NoAutoSnapshots turns automatic
	// snapshots off.
	//
	// A StateMachine that implements neither is never snapshotted
	// automatically: its log grows until the application compacts it
	// (CompactTo); the node logs a Warn at start saying so.
	SnapshotEvery uint64
	// SnapshotBytes also takes a snapshot once the entries committed
	// since the latest snapshot (counted from the node's start, so a
	// restart counts afresh) hold this many bytes of command data, so
	// that few large commands bound the log as many small ones do.
	// Default (and 0) DefaultSnapshotBytes, 64 MiB.
	SnapshotBytes uint64
	// NoAutoSnapshots turns automatic snapshots (SnapshotEvery,
	// SnapshotBytes) off: the log grows until a TakeSnapshot or CompactTo.
	// Default false.
	NoAutoSnapshots bool
	// RetainEntries is how many entries at or below a snapshot's index
	// (or a CompactTo index) the log keeps, in memory and in the store.
	// The trade-off: a follower that lags by fewer entries catches up
	// with cheap appends instead of a whole snapshot, at the cost of a
	// longer log (memory, store, restart). Default (and 0)
	// DefaultRetainEntries, 64; negative: none (the log starts right
	// after the snapshot). A leader keeps more while it sends a peer a
	// snapshot: the entries after that snapshot (see raft.Raft.Compact).
	RetainEntries int
	// RetainBytes, when non-zero, also caps the bytes of the retained
	// entries (their encoded size): fewer are kept when RetainEntries of
	// them would exceed it. Default 0: no byte cap.
	RetainBytes uint64
	// MaxPendingProposals caps the proposals of this node waiting for
	// their answer (appended by the leader, not yet applied) that a
	// sender waits for (ProposeAndWait, Request, a Propose sent from an
	// actor); one more is refused with ErrOverloaded (wrapped with
	// ErrRetry). Proposals sent without a sender are bounded by
	// raft.Config.MaxUncommittedBytes only. Default (and 0)
	// DefaultMaxPendingProposals, 16,384; negative: no cap.
	MaxPendingProposals int
	// MaxPendingReads caps the reads (Read) waiting on this node for
	// their read index or for the state machine to apply up to it; one
	// more is refused with ErrOverloaded (wrapped with ErrRetry). Default
	// (and 0) DefaultMaxPendingReads, 16,384; negative: no cap.
	MaxPendingReads int
	// MaxSessions caps the client sessions (client id → last sequence
	// and result, see Propose) the applier keeps and snapshots: past it,
	// the least recently used one expires. Default (and 0)
	// DefaultMaxSessions, 65,536; negative: no cap. Expiry is a function
	// of the log (every replica expires the same sessions at the same
	// index); give every member the same MaxSessions and SessionTTL. A
	// StateMachine that implements CommandDeduplicator keeps its own
	// table: neither applies.
	MaxSessions int
	// SessionTTL expires a session once this many log entries follow its
	// client's last entry: age measured in the log, so that every replica
	// agrees. A client that proposes again after its session expired is
	// answered ErrSessionExpired (when its Sequence is past 1) and
	// continues with a new client id. Default (and 0) DefaultSessionTTL,
	// 10,000,000 entries; math.MaxUint64: no age limit.
	SessionTTL uint64
	// TracerProvider receives the spans of every message flow (see
	// trace.go). Default nil: the global provider (otel.GetTracerProvider),
	// which records nothing until the application sets one; pass a
	// trace/noop provider to turn tracing off at no cost.
	TracerProvider trace.TracerProvider
	// MeterProvider receives the node's metrics (instruments listed in
	// tracing.Instruments: commit, apply, fsync and read latencies, messages
	// by type, elections, indexes, snapshots, per-peer lag). Default nil:
	// the global provider (otel.GetMeterProvider), which records nothing
	// until the application sets one.
	MeterProvider metric.MeterProvider
	// HistorySize bounds the state-transition history kept for GetHistory.
	// Default (and 0) 256.
	HistorySize int
	// CatchUpTimeout bounds how long AddMember and PromoteLearner wait for
	// a learner to catch up before failing with ErrCatchUpTimeout.
	// Default (and 0) 60s.
	CatchUpTimeout time.Duration
	// CatchUpLag, when non-zero, also counts a learner as caught up once
	// it is within this many entries of the leader's last index. Default
	// 0: only a catch-up round that ends within an election timeout
	// counts (thesis §4.2.1).
	CatchUpLag uint64

	// A leader sends a snapshot to a follower in chunks (see
	// snapshotsend.go), which resume from what the follower holds after
	// a lost connection or a new leader.

	// SnapshotChunkBytes is the data size of each chunk. Default (and 0)
	// 1 MiB, or SnapshotWindowBytes when that is smaller; at most 32 MiB
	// (a chunk must fit the transport's message size limit, 64 MiB by
	// default).
	SnapshotChunkBytes uint64
	// SnapshotWindowBytes bounds the chunk bytes sent to a peer and not
	// yet acknowledged. Default (and 0) 4 MiB; at least
	// SnapshotChunkBytes.
	SnapshotWindowBytes uint64
	// SnapshotBandwidth limits the snapshot bytes sent to each peer, in
	// bytes per second. Default 0: no limit.
	SnapshotBandwidth uint64
	// SnapshotResendTimeout: when no acknowledgement of more bytes came
	// for this long, the leader asks the follower where it is and sends
	// again from there what was lost. Keep it under the election timeout:
	// the leader gives up a transfer without progress for that long.
	// Default (and 0) 5 TickIntervals (half the default election timeout).
	SnapshotResendTimeout time.Duration
}

// DefaultMaxApplyingBytes is the node's Config.Raft.MaxApplyingBytes when
// left 0: committed entries queued to the applier, not yet applied.
const DefaultMaxApplyingBytes = 16 << 20

// Defaults of Config's snapshot, compaction, backpressure and session
// fields.
const (
	// DefaultSnapshotEvery is Config.SnapshotEvery's default: entries
	// applied since the latest snapshot.
	DefaultSnapshotEvery = 10_000
	// DefaultSnapshotBytes is Config.SnapshotBytes's default: bytes of
	// command data committed since the latest snapshot.
	DefaultSnapshotBytes = 64 << 20
	// DefaultRetainEntries is Config.RetainEntries's default: entries
	// kept below a snapshot for slightly lagging followers.
	DefaultRetainEntries = 64
	// DefaultMaxPendingProposals is Config.MaxPendingProposals's default.
	DefaultMaxPendingProposals = 16_384
	// DefaultMaxPendingReads is Config.MaxPendingReads's default.
	DefaultMaxPendingReads = 16_384
	// DefaultMaxSessions is Config.MaxSessions's default.
	DefaultMaxSessions = 65_536
	// DefaultSessionTTL is Config.SessionTTL's default, in log entries.
	DefaultSessionTTL = 10_000_000
	// DefaultSnapshotChunkBytes is Config.SnapshotChunkBytes's default.
	DefaultSnapshotChunkBytes = 1 << 20
	// DefaultSnapshotWindowBytes is Config.SnapshotWindowBytes's default.
	DefaultSnapshotWindowBytes = 4 << 20
	// MaxSnapshotChunkBytes bounds Config.SnapshotChunkBytes.
	MaxSnapshotChunkBytes = 32 << 20
)

// DefaultConfig returns a Config with defaults filled in.
func DefaultConfig() Config {
	return Config{TickInterval: 100 * time.Millisecond, Raft: raft.DefaultConfig(), HistorySize: tracing.DefaultHistoryCapacity,
		CatchUpTimeout: 60 * time.Second, RetainEntries: DefaultRetainEntries,
		SnapshotEvery: DefaultSnapshotEvery, SnapshotBytes: DefaultSnapshotBytes,
		MaxPendingProposals: DefaultMaxPendingProposals, MaxPendingReads: DefaultMaxPendingReads,
		MaxSessions: DefaultMaxSessions, SessionTTL: DefaultSessionTTL}
}

// Validate reports every problem at once, each naming the field.
func (c *Config) Validate() error {
	var errs []error
	if c.ID == 0 {
		errs = append(errs, errors.New("actors: Config.ID must be non-zero"))
	}
	if c.Transport == nil {
		errs = append(errs, errors.New("actors: Config.Transport is required"))
	}
	if c.StateMachine == nil {
		errs = append(errs, errors.New("actors: Config.StateMachine is required"))
	}
	if c.TickInterval < 0 {
		errs = append(errs, fmt.Errorf("actors: Config.TickInterval = %v, must be >= 0 (0: the default, 100ms)", c.TickInterval))
	}
	if c.CatchUpTimeout < 0 {
		errs = append(errs, fmt.Errorf("actors: Config.CatchUpTimeout = %v, must be >= 0 (0: the default, 60s)", c.CatchUpTimeout))
	}
	if c.SnapshotChunkBytes > MaxSnapshotChunkBytes {
		errs = append(errs, fmt.Errorf("actors: Config.SnapshotChunkBytes = %d, must be <= %d (0: the default, %d)", c.SnapshotChunkBytes, MaxSnapshotChunkBytes, DefaultSnapshotChunkBytes))
	}
	if w, ch := c.SnapshotWindowBytes, c.SnapshotChunkBytes; w != 0 && w < ch {
		errs = append(errs, fmt.Errorf("actors: Config.SnapshotWindowBytes = %d, must be >= SnapshotChunkBytes (%d)", w, ch))
	}
	if c.SnapshotResendTimeout < 0 {
		errs = append(errs, fmt.Errorf("actors: Config.SnapshotResendTimeout = %v, must be >= 0 (0: the default, 5 TickIntervals)", c.SnapshotResendTimeout))
	}
	if c.HistorySize < 0 {
		errs = append(errs, fmt.Errorf("actors: Config.HistorySize = %d, must be >= 0 (0: the default, 256)", c.HistorySize))
	}
	rc := c.raftConfig()
	if err := rc.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c *Config) raftConfig() raft.Config {
	rc := c.Raft
	rc.ID, rc.ClusterID, rc.Bootstrap = c.ID, c.ClusterID, c.Bootstrap
	if rc.MaxApplyingBytes == 0 {
		// The node acknowledges what its applier applied (appliedUpTo):
		// the applier's queue holds at most this much.
		rc.MaxApplyingBytes = DefaultMaxApplyingBytes
	}
	if rc.Logger == nil {
		rc.Logger = c.Logger
	}
	return rc
}

func (c *Config) ensureDefaults() {
	if c.Logger == nil {
		var level slog.Leveler = slog.LevelWarn
		if c.LogLevel != nil {
			level = c.LogLevel
		}
		c.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	}
	d := DefaultConfig()
	if c.TickInterval == 0 {
		c.TickInterval = d.TickInterval
	}
	if c.HistorySize == 0 {
		c.HistorySize = d.HistorySize
	}
	if c.CatchUpTimeout == 0 {
		c.CatchUpTimeout = d.CatchUpTimeout
	}
	if c.RetainEntries == 0 {
		c.RetainEntries = d.RetainEntries
	}
	if c.SnapshotEvery == 0 {
		c.SnapshotEvery = d.SnapshotEvery
	}
	if c.SnapshotBytes == 0 {
		c.SnapshotBytes = d.SnapshotBytes
	}
	if c.MaxPendingProposals == 0 {
		c.MaxPendingProposals = d.MaxPendingProposals
	}
	if c.MaxPendingReads == 0 {
		c.MaxPendingReads = d.MaxPendingReads
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = d.MaxSessions
	}
	if c.SessionTTL == 0 {
		c.SessionTTL = d.SessionTTL
	}
	if c.SnapshotChunkBytes == 0 {
		c.SnapshotChunkBytes = DefaultSnapshotChunkBytes
		if w := c.SnapshotWindowBytes; w != 0 {
			c.SnapshotChunkBytes = min(w, DefaultSnapshotChunkBytes)
		}
	}
	if c.SnapshotWindowBytes == 0 {
		c.SnapshotWindowBytes = max(DefaultSnapshotWindowBytes, c.SnapshotChunkBytes)
	}
	if c.SnapshotResendTimeout == 0 {
		c.SnapshotResendTimeout = 5 * c.TickInterval
	}
}

// chunkOptions are the snapshot chunk settings (after ensureDefaults).
func (c *Config) chunkOptions() chunkOptions {
	return chunkOptions{chunk: c.SnapshotChunkBytes, window: c.SnapshotWindowBytes, bandwidth: c.SnapshotBandwidth, resend: c.SnapshotResendTimeout}
}
