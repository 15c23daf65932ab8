package raft

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/flotilla-raft/flotilla/cluster/membership"
	"github.com/flotilla-raft/flotilla/messages"
)

// ReadOnlyOption chooses how ReadIndex confirms leadership.
type ReadOnlyOption uint8

const (
	// ReadOnlySafe confirms leadership with a round of heartbeats to a
	// quorum for every read index (thesis §6.4). The default.
	ReadOnlySafe ReadOnlyOption = iota
	// ReadOnlyLeaseBased answers at once while the leader's lease holds
	// (thesis §6.4.1): a quorum acknowledged its heartbeats sent less than
	// ElectionTicks-1 ticks ago in this term, CheckQuorum is on in the
	// settings in force, and no leadership transfer began in this term;
	// otherwise the read takes a heartbeat round as with ReadOnlySafe. It
	// relies on ticks running at one rate on every node (bounded drift);
	// Validate refuses it unless Bootstrap's CheckQuorum is on.
	ReadOnlyLeaseBased
)

// Config configures one Raft node. Start from DefaultConfig.
type Config struct {
	// ID of this node; must be non-zero. Required.
	ID uint64
	// ClusterID is stamped on every outgoing message. Default 0.
	ClusterID uint64
	// Bootstrap is the initial cluster configuration (voters, learners and
	// settings), used only when storage is empty. Every founding member
	// must be given the same one. A node that joins a running cluster
	// leaves it nil and waits for the leader to contact it.
	Bootstrap *messages.ClusterConfig
	// Seed seeds the randomized election timeout. Default 0; give each
	// node a different one (the node actor derives it from ID and time).
	Seed int64
	// MaxSizePerMsg caps the bytes of entries in one AppendEntries.
	// Default 1 MiB. Always at least one entry is sent.
	MaxSizePerMsg uint64
	// MaxEntriesPerMsg caps the entries in one AppendEntries. Default 4096.
	MaxEntriesPerMsg int
	// MaxInflightMsgs caps the AppendEntries in flight to one peer in
	// replicate mode. Default 256.
	MaxInflightMsgs int
	// MaxInflightBytes caps the bytes of entries in flight to one peer.
	// DefaultConfig sets 32 MiB; 0, the zero value, is no byte cap (unlike
	// the fields above, whose 0 is their default): start from
	// DefaultConfig to keep the cap.
	MaxInflightBytes uint64
	// MaxProposalBytes refuses larger proposals. Default 8 MiB.
	MaxProposalBytes int
	// MaxUncommittedBytes caps the command bytes (Entry.Data) a leader
	// holds in entries of its term that are appended but not yet handed
	// out as committed: a proposal that would pass it is refused with
	// ErrProposalDropped (etcd-io/raft's MaxUncommittedEntriesSize). One
	// proposal is always accepted when nothing is uncommitted, whatever
	// its size (MaxProposalBytes bounds it). Default (and 0) 32 MiB; no
	// cap: math.MaxUint64.
	MaxUncommittedBytes uint64
	// ReadOnly chooses the ReadIndex mode. Default ReadOnlySafe.
	ReadOnly ReadOnlyOption
	// EntryCacheBytes caps the bytes (entries' data and trace context plus
	// 24 each) of the entry cache: the most recent stable entries, kept in
	// memory so that replication to followers that keep up and the
	// applier are served without reading Storage. Default 4 MiB. Evicted
	// entries may stay reachable from the cache's array until it moves
	// (at most as many as it holds: memory up to twice this). Entries not
	// yet persisted are in memory whatever this says; with no Storage
	// (InitialState.Storage nil) the whole log is.
	EntryCacheBytes uint64
	// MaxCommittedSizePerReady caps the bytes of the committed entries one
	// Ready hands out for applying (always at least one entry); the rest
	// follows in the next Ready. Default: MaxSizePerMsg, as etcd-io/raft.
	MaxCommittedSizePerReady uint64
	// MaxApplyingBytes caps the bytes of committed entries handed out for
	// applying (Ready.CommittedEntries) and not yet acknowledged with
	// AppliedTo: Ready hands out no more until the driver acknowledges
	// some, so a slow application (or a replay of a long log at start)
	// holds at most this much in its queue. A batch is always handed out
	// when none is pending. 0, the default: no cap, and the driver need
	// not call AppliedTo (the node actor sets it: actors.Config.Raft).
	MaxApplyingBytes uint64
	// CommitNewsTicks bounds how many ticks a leader lets the news of a
	// commit-index advance wait for the next append or heartbeat to carry
	// it to the followers (their apply lag). Waiting saves messages: a
	// commit advance no longer costs an append, and its acknowledgement,
	// per follower. 0 (the default): until the next heartbeat, so
	// followers learn a commit within one heartbeat interval
	// (Settings.HeartbeatTicks). A positive value below HeartbeatTicks
	// sends an append carrying the commit index once that many ticks
	// passed without one. -1: no wait; every advance broadcasts an
	// append to every follower at once (lowest follower apply latency,
	// most messages).
	CommitNewsTicks int
	// QuiesceTicks turns quiescence on (see the package doc,
	// "Quiescence"): a leader that has been idle this many ticks in a row
	// (every entry committed and held by every peer, nothing pending)
	// quiesces the group. 0, the default: never (a follower still obeys a
	// leader that quiesces). Give every member the same value.
	QuiesceTicks int
	// QuiescedHeartbeatTicks is the period of a quiesced leader's rare
	// heartbeat, and the stride at which a driver may tick a quiesced node
	// (QuiesceStride); a quiesced follower that hears none for 3 periods
	// wakes and runs its election timer. Default (and 0) 50 ticks. Give
	// every member the same value.
	QuiescedHeartbeatTicks int
	// Logger receives the core's deterministic log lines. Default: a
	// logger that discards.
	Logger *slog.Logger
}

// DefaultQuiescedHeartbeatTicks is the default Config.QuiescedHeartbeatTicks.
const DefaultQuiescedHeartbeatTicks = 50

// DefaultConfig returns a Config with every default filled in; set ID (and
// Bootstrap for a founding member).
func DefaultConfig() Config {
	return Config{
		MaxSizePerMsg:    1 << 20,
		MaxEntriesPerMsg: 4096,
		MaxInflightMsgs:  256,
		MaxInflightBytes: 32 << 20,
		MaxProposalBytes: 8 << 20,
		EntryCacheBytes:  4 << 20,

		MaxUncommittedBytes: 32 << 20,
	}
}

func (c *Config) ensureDefaults() {
	d := DefaultConfig()
	if c.MaxSizePerMsg == 0 {
		c.MaxSizePerMsg = d.MaxSizePerMsg
	}
	if c.MaxEntriesPerMsg == 0 {
		c.MaxEntriesPerMsg = d.MaxEntriesPerMsg
	}
	if c.MaxInflightMsgs == 0 {
		c.MaxInflightMsgs = d.MaxInflightMsgs
	}
	if c.MaxProposalBytes == 0 {
		c.MaxProposalBytes = d.MaxProposalBytes
	}
	if c.EntryCacheBytes == 0 {
		c.EntryCacheBytes = d.EntryCacheBytes
	}
	if c.MaxCommittedSizePerReady == 0 {
		c.MaxCommittedSizePerReady = c.MaxSizePerMsg
	}
	if c.MaxUncommittedBytes == 0 {
		c.MaxUncommittedBytes = d.MaxUncommittedBytes
	}
	if c.QuiescedHeartbeatTicks == 0 {
		c.QuiescedHeartbeatTicks = DefaultQuiescedHeartbeatTicks
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every problem of c at once, each naming the field and
// its value.
func (c *Config) Validate() error {
	var errs []error
	if c.ID == 0 {
		errs = append(errs, errors.New("raft: Config.ID must be non-zero"))
	}
	if c.MaxEntriesPerMsg < 0 {
		errs = append(errs, fmt.Errorf("raft: Config.MaxEntriesPerMsg = %d, must be >= 0", c.MaxEntriesPerMsg))
	}
	if c.MaxInflightMsgs < 0 {
		errs = append(errs, fmt.Errorf("raft: Config.MaxInflightMsgs = %d, must be >= 0", c.MaxInflightMsgs))
	}
	if c.MaxProposalBytes < 0 {
		errs = append(errs, fmt.Errorf("raft: Config.MaxProposalBytes = %d, must be >= 0", c.MaxProposalBytes))
	}
	if c.CommitNewsTicks < -1 {
		errs = append(errs, fmt.Errorf("raft: Config.CommitNewsTicks = %d, must be >= -1 (-1: broadcast every commit advance at once)", c.CommitNewsTicks))
	}
	if c.QuiesceTicks < 0 {
		errs = append(errs, fmt.Errorf("raft: Config.QuiesceTicks = %d, must be >= 0 (0: quiescence off)", c.QuiesceTicks))
	}
	if c.QuiescedHeartbeatTicks < 0 {
		errs = append(errs, fmt.Errorf("raft: Config.QuiescedHeartbeatTicks = %d, must be >= 0 (0: the default, %d)", c.QuiescedHeartbeatTicks, DefaultQuiescedHeartbeatTicks))
	}
	if c.ReadOnly > ReadOnlyLeaseBased {
		errs = append(errs, fmt.Errorf("raft: Config.ReadOnly = %d is not a ReadOnlyOption", c.ReadOnly))
	}
	if c.Bootstrap != nil {
		if err := membership.Validate(c.Bootstrap); err != nil {
			errs = append(errs, fmt.Errorf("raft: Config.Bootstrap: %w", err))
		}
		if c.ReadOnly == ReadOnlyLeaseBased && (c.Bootstrap.Settings == nil || !c.Bootstrap.Settings.CheckQuorum) {
			errs = append(errs, errors.New("raft: Config.ReadOnly = ReadOnlyLeaseBased needs Bootstrap.Settings.CheckQuorum = true"))
		}
	}
	return errors.Join(errs...)
}
