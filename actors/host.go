package actors

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flotilla-raft/flotilla/cluster/transport"
	"github.com/flotilla-raft/flotilla/persistence/pebblestore"
	"go.opentelemetry.io/otel/metric"
)

// Errors of a Host.
var (
	// ErrGroupExists: CreateGroup for a cluster id the host already runs.
	ErrGroupExists = errors.New("actors: group already on this host")
	// ErrNoGroup: RemoveGroup for a cluster id the host does not run.
	ErrNoGroup = errors.New("actors: no such group on this host")
	// ErrHostStopped: the host stopped (or could not open its database)
	// before the request completed.
	ErrHostStopped = errors.New("actors: host stopped")
)

// HostConfig configures a Host. Start from DefaultHostConfig.
type HostConfig struct {
	// DataDir is the directory of the host's Pebble database, which holds
	// every group of the host (keyed by cluster id). Required.
	DataDir string
	// FS is Pebble's filesystem. Default vfs.Default (the operating
	// system's); tests pass vfs.NewCrashableMem().
	FS vfs.FS
	// Join returns the transport of node nodeID of group clusterID: the
	// endpoint, on the host's one transport, that routes by (cluster id,
	// node id): remote.Host.HostJoin for the remote transport,
	// inmem.Network.HostJoin for the in-memory one (hcfg.Join =
	// rhost.HostJoin). A group's node starts its transport and closes it
	// when it stops. Required.
	Join func(clusterID, nodeID uint64) (transport.Transport, error)
	// Logger receives the host's logs, and the groups' when their Config
	// has none. Default: Warn and above as text on os.Stderr.
	Logger *slog.Logger
	// ActiveWindow: a group that wrote to the store within it counts as
	// active in HostStatus. Default (and 0) one second.
	ActiveWindow time.Duration
	// MeterProvider receives the host's metrics (instruments listed in
	// tracing.HostInstruments: groups, active groups, fsyncs, groups and
	// entries per fsync, fsync latency), each with the attribute raft.host
	// = Name. The groups' nodes report theirs through their own
	// Config.MeterProvider. Default nil: the global provider
	// (otel.GetMeterProvider), which records nothing until the application
	// sets one.
	MeterProvider metric.MeterProvider
	// Name is the value of the raft.host attribute of the host's metrics.
	// Default: DataDir.
	Name string
}

// DefaultHostConfig returns a HostConfig with every default set; DataDir
// and Join are still to set.
func DefaultHostConfig() HostConfig {
	var c HostConfig
	c.ensureDefaults()
	return c
}

func (c *HostConfig) ensureDefaults() {
	if c.FS == nil {
		c.FS = vfs.Default
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if c.ActiveWindow == 0 {
		c.ActiveWindow = time.Second
	}
	if c.Name == "" {
		c.Name = c.DataDir
	}
}

// Validate reports every problem of c at once, each naming the field and
// its value.
func (c *HostConfig) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("actors: HostConfig.DataDir is required"))
	}
	if c.Join == nil {
		errs = append(errs, errors.New("actors: HostConfig.Join is required"))
	}
	if c.ActiveWindow < 0 {
		errs = append(errs, fmt.Errorf("actors: HostConfig.ActiveWindow = %v, must be >= 0 (0: the default, 1s)", c.ActiveWindow))
	}
	return errors.Join(errs...)
}

// HostProps returns the props of a host actor, to spawn with the
// application's own context: many Raft groups in one process, one node of
// each group on this host. The host owns one Pebble database (opened when
// it starts, closed when it stops), reaches its one transport through
// HostConfig.Join, and runs one shared persister: every group's pending
// writes of a round go into one Pebble batch and one fsync
// (pebblestore.DB.SaveGroups). Its children are the groups' node actors,
// each a complete node (events, status, snapshots, membership: send it
// what a node of Props takes). Requests: CreateGroup, RemoveGroup,
// GetHostStatus; metrics go to HostConfig.MeterProvider (host_metrics.go).
// To stop in order, RemoveGroup every group, then stop the host actor
// (StopFuture(host).Wait() returns once its database is closed). Stopping a
// host that still runs groups stops their nodes at once, as a crash would
// but losing nothing they acknowledged: no hand-over of leadership, no
// answer to pending requests. To run one group, Props is simpler.
func HostProps(cfg HostConfig) (*actor.Props, error) {
	cfg.ensureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return actor.PropsFromProducer(func() actor.Actor { return newHost(cfg) }), nil
}

// CreateGroup asks a host to start its node of a group. Config is the
// node's, as for Props, except that the host sets its LogStore (the group
// of the host's database keyed by ClusterID) and Transport (HostConfig.
// Join): leave LogStore, DataDir and Transport unset. A ClusterID the host
// already runs is refused with ErrGroupExists. Answer:
// *CreateGroupResponse.
type CreateGroup struct{ Config Config }

// CreateGroupResponse answers CreateGroup with the group's node actor.
type CreateGroupResponse struct {
	PID *actor.PID
	Err error
}

// RemoveGroup asks a host to stop its node of the group ClusterID in order
// (as Stop does) and release the group's store. The group's data stays in
// the database: CreateGroup with the same ClusterID starts it again from
// there. Answer: *RemoveGroupResponse, once the node actor is gone.
type RemoveGroup struct{ ClusterID uint64 }

// RemoveGroupResponse answers RemoveGroup.
type RemoveGroupResponse struct{ Err error }

// GetHostStatus asks a host for *HostStatus.
type GetHostStatus struct{}

// HostStatus is a host's view of its groups and of its shared persister.
// Counters count from the host's start. A group's own state (role, term,
// commit, peers...) is the answer of its node to GetStatus.
type HostStatus struct {
	// Groups is the number of groups the host runs; ActiveGroups of them
	// wrote to the store within HostConfig.ActiveWindow.
	Groups, ActiveGroups int
	// Fsyncs counts the shared persister's synced batches; SavedUpdates
	// the groups' writes (one per group per batch) and SavedEntries the
	// log entries they held. UpdatesPerFsync and EntriesPerFsync are the
	// ratios (0 before the first), MaxUpdatesPerFsync the largest batch.
	Fsyncs, SavedUpdates, SavedEntries uint64
	UpdatesPerFsync, EntriesPerFsync   float64
	MaxUpdatesPerFsync                 int
	// FsyncsPerSecond is the rate of Fsyncs since the previous
	// GetHostStatus (or the host's start).
	FsyncsPerSecond float64
	// PerGroup is every group, by cluster id.
	PerGroup []HostGroupStatus
	// Err is why the host cannot run groups (its database did not open).
	Err error
}

// HostGroupStatus is one group of a host.
type HostGroupStatus struct {
	ClusterID, NodeID uint64
	PID               *actor.PID
	// Saves counts the group's writes through the shared persister and
	// Entries the log entries they held; LastSave is the latest (zero if
	// none).
	Saves, Entries uint64
	LastSave       time.Time
}

func (r *CreateGroupResponse) answerErr() error { return r.Err }

func (r *RemoveGroupResponse) answerErr() error { return r.Err }

func (r *HostStatus) answerErr() error { return r.Err }

// host is the host actor (HostProps).
type host struct {
	cfg      HostConfig
	log      *slog.Logger
	db       *pebblestore.DB
	openErr  error // why the database did not open; nil once open
	stopping bool
	root     *actor.RootContext
	stats    *hostStats
	metrics  *hostMetrics
	sp       *actor.PID    // the shared persister
	stopped  chan struct{} // closed when the shared persister stops
	groups   map[uint64]*hostGroup
	byActor  map[string]*hostGroup // node actor id -> its group

	lastStatus time.Time
	lastFsyncs uint64
}

// hostGroup is one group of the host.
type hostGroup struct {
	clusterID, nodeID uint64
	pid               *actor.PID
	store             *hostStore
	removing          []*actor.PID // RemoveGroup senders waiting for the node to go
}

func newHost(cfg HostConfig) *host {
	return &host{cfg: cfg, log: cfg.Logger.With("host", cfg.DataDir), stats: &hostStats{},
		groups: map[uint64]*hostGroup{}, byActor: map[string]*hostGroup{}}
}

func (h *host) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		h.start(ctx)
	case *CreateGroup:
		pid, err := h.create(ctx, msg.Config)
		ctx.Respond(&CreateGroupResponse{PID: pid, Err: err})
	case *RemoveGroup:
		h.remove(ctx, msg.ClusterID)
	case *GetHostStatus:
		ctx.Respond(h.status())
	case *Stopped:
		// A group's node answering the Stop of a RemoveGroup: its
		// Terminated follows.
	case *actor.Terminated:
		h.terminated(ctx, msg.Who)
	case *actor.Stopping:
		h.stopping = true
	case *actor.Stopped:
		h.close()
	}
}

// start opens the database and spawns the shared persister.
func (h *host) start(ctx actor.Context) {
	h.lastStatus = time.Now()
	h.root = ctx.ActorSystem().Root
	h.metrics = newHostMetrics(h.cfg.MeterProvider, h.cfg.Name, h.cfg.ActiveWindow, h.log)
	db, err := pebblestore.Open(h.cfg.DataDir, pebblestore.Options{FS: h.cfg.FS, Logger: h.cfg.Logger})
	if err != nil {
		h.openErr = fmt.Errorf("%w: open DataDir %q: %w", ErrHostStopped, h.cfg.DataDir, err)
		h.log.Error("host cannot start", "err", err)
		return
	}
	h.db = db
	h.stopped = make(chan struct{})
	// Not a child: it outlives the groups' nodes, which flush their
	// last writes through it as they stop with the host (close stops it).
	h.sp = ctx.ActorSystem().Root.Spawn(actor.PropsFromProducer(func() actor.Actor {
		return &sharedPersister{db: db, stats: h.stats, metrics: h.metrics, stopped: h.stopped}
	}))
}

// create starts the host's node of the group cfg.ClusterID.
func (h *host) create(ctx actor.Context, cfg Config) (*actor.PID, error) {
	if h.openErr != nil {
		return nil, h.openErr
	}
	var errs []error
	if cfg.LogStore != nil {
		errs = append(errs, errors.New("actors: CreateGroup: Config.LogStore must be nil: a host's group is stored in the host's database"))
	}
	if cfg.DataDir != "" {
		errs = append(errs, fmt.Errorf("actors: CreateGroup: Config.DataDir = %q, must be empty: a host's group is stored in the host's database", cfg.DataDir))
	}
	if cfg.Transport != nil {
		errs = append(errs, errors.New("actors: CreateGroup: Config.Transport must be nil: the host joins its transport (HostConfig.Join)"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if g, ok := h.groups[cfg.ClusterID]; ok {
		return nil, fmt.Errorf("%w: group (cluster id) %d runs as node %d", ErrGroupExists, cfg.ClusterID, g.nodeID)
	}
	if cfg.Logger == nil {
		cfg.Logger = h.cfg.Logger.With("group", cfg.ClusterID)
	}
	pg, err := h.db.Group(cfg.ClusterID)
	if err != nil {
		return nil, fmt.Errorf("actors: host: group %d: %w", cfg.ClusterID, err)
	}
	store := &hostStore{Group: pg, root: h.root, persister: h.sp, stopped: h.stopped, stats: &groupStats{}}
	t, err := h.cfg.Join(cfg.ClusterID, cfg.ID)
	if err != nil {
		_ = pg.Close()
		return nil, fmt.Errorf("actors: host: join the transport for group %d node %d: %w", cfg.ClusterID, cfg.ID, err)
	}
	cfg.LogStore, cfg.Transport = store, t
	props, err := Props(cfg)
	if err == nil {
		var pid *actor.PID
		pid, err = ctx.SpawnNamed(props, "group-"+strconv.FormatUint(cfg.ClusterID, 10))
		if err == nil {
			g := &hostGroup{clusterID: cfg.ClusterID, nodeID: cfg.ID, pid: pid, store: store}
			h.groups[cfg.ClusterID] = g
			h.byActor[pid.Id] = g
			h.metrics.setGroup(cfg.ClusterID, store.stats)
			return pid, nil
		}
	}
	_ = t.Close()
	_ = pg.Close()
	return nil, err
}

// remove stops the group's node in order; terminated answers.
func (h *host) remove(ctx actor.Context, clusterID uint64) {
	g, ok := h.groups[clusterID]
	if !ok {
		ctx.Respond(&RemoveGroupResponse{Err: fmt.Errorf("%w: group (cluster id) %d", ErrNoGroup, clusterID)})
		return
	}
	if len(g.removing) == 0 {
		ctx.Request(g.pid, &Stop{})
	}
	if s := ctx.Sender(); s != nil {
		g.removing = append(g.removing, s)
	}
}

// terminated forgets a group whose node actor is gone (removed, or stopped
// on a failure) and releases its store.
func (h *host) terminated(ctx actor.Context, who *actor.PID) {
	g, ok := h.byActor[who.Id]
	if !ok {
		return
	}
	delete(h.byActor, who.Id)
	delete(h.groups, g.clusterID)
	h.metrics.setGroup(g.clusterID, nil)
	err := g.store.Group.Close()
	if len(g.removing) == 0 && !h.stopping {
		h.log.Warn("a group's node stopped", "group", g.clusterID, "node", g.nodeID)
	}
	for _, s := range g.removing {
		ctx.Send(s, &RemoveGroupResponse{Err: err})
	}
}

// close closes what the host opened, once its children are gone.
func (h *host) close() {
	for _, g := range h.groups {
		_ = g.store.Group.Close()
	}
	h.groups = nil
	if h.metrics != nil {
		h.metrics.close()
	}
	if h.sp != nil {
		// Every node is gone: no Save waits on the shared persister.
		h.root.Stop(h.sp)
	}
	if h.db != nil {
		if err := h.db.Close(); err != nil {
			h.log.Warn("closing the host's database", "err", err)
		}
	}
}

// status answers GetHostStatus.
func (h *host) status() *HostStatus {
	now := time.Now()
	s := &HostStatus{Groups: len(h.groups), Err: h.openErr}
	st := h.stats
	s.Fsyncs, s.SavedUpdates, s.SavedEntries = st.fsyncs.Load(), st.updates.Load(), st.entries.Load()
	s.MaxUpdatesPerFsync = int(st.maxUpdates.Load())
	if s.Fsyncs > 0 {
		s.UpdatesPerFsync = float64(s.SavedUpdates) / float64(s.Fsyncs)
		s.EntriesPerFsync = float64(s.SavedEntries) / float64(s.Fsyncs)
	}
	if d := now.Sub(h.lastStatus).Seconds(); d > 0 {
		s.FsyncsPerSecond = float64(s.Fsyncs-h.lastFsyncs) / d
	}
	h.lastStatus, h.lastFsyncs = now, s.Fsyncs
	for _, g := range h.groups {
		gs := HostGroupStatus{ClusterID: g.clusterID, NodeID: g.nodeID, PID: g.pid,
			Saves: g.store.stats.saves.Load(), Entries: g.store.stats.entries.Load()}
		if ns := g.store.stats.lastSave.Load(); ns != 0 {
			gs.LastSave = time.Unix(0, ns)
		}
		if g.store.stats.activeAt(now, h.cfg.ActiveWindow) {
			s.ActiveGroups++
		}
		s.PerGroup = append(s.PerGroup, gs)
	}
	slices.SortFunc(s.PerGroup, func(a, b HostGroupStatus) int { return cmp.Compare(a.ClusterID, b.ClusterID) })
	return s
}
