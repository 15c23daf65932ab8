package actors

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors/raft"
	"github.com/flotilla-raft/flotilla/cluster/transport"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
	"go.opentelemetry.io/otel/trace"
)

// Config configures a node actor. Start from DefaultConfig.
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
	// same cluster need different directories. The node closes what it
	// opened when it stops.
	DataDir string
	// StateMachine receives committed commands. Required.
	StateMachine StateMachine
	// TickInterval is one Raft tick; the election timeout and heartbeat
	// interval are counted in ticks (cluster settings). Default 100ms.
	TickInterval time.Duration
	// StartPaused loads state but joins nothing (no ticks, inbound messages
	// dropped) until a Resume message.
	StartPaused bool
	// Raft tunes the core; its ID, ClusterID, Bootstrap and Logger are set
	// from this Config. Default raft.DefaultConfig().
	Raft raft.Config
	// Logger receives the node's logs. Default: discard.
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
	// Snapshotter) each time this many entries were applied since the last
	// one, and compacts the log. 0: never. Default 0.
	SnapshotEvery uint64
	// TracerProvider receives the spans of every message flow (see
	// trace.go). Default nil: the global provider (otel.GetTracerProvider),
	// which records nothing until the application sets one; pass a
	// trace/noop provider to turn tracing off at no cost.
	TracerProvider trace.TracerProvider
	// HistorySize bounds the state-transition history kept for GetHistory.
	// Default 256.
	HistorySize int
}

// DefaultConfig returns a Config with defaults filled in.
func DefaultConfig() Config {
	return Config{TickInterval: 100 * time.Millisecond, Raft: raft.DefaultConfig(), HistorySize: 256}
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
	if c.TickInterval <= 0 {
		errs = append(errs, fmt.Errorf("actors: Config.TickInterval = %v, must be > 0", c.TickInterval))
	}
	if c.HistorySize < 0 {
		errs = append(errs, fmt.Errorf("actors: Config.HistorySize = %d, must be >= 0", c.HistorySize))
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
	if rc.Logger == nil {
		rc.Logger = c.Logger
	}
	return rc
}

func (c *Config) ensureDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.HistorySize == 0 {
		c.HistorySize = 256
	}
}
