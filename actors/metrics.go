package actors

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/flotilla-raft/flotilla/actors/raft"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/tracing"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// Metrics of a node (names, units and attributes in package tracing, see
// tracing.Instruments). The node actor, its persister, applier and
// replicators record them through one nodeMetrics, kept in shared so that a
// node restarted by its supervisor keeps its instruments and its gauge
// callback. Every method is safe on a nil *nodeMetrics (children built
// without one record nothing).
//
// Gauges (term, commit and applied index, apply lag, per-peer match lag) are
// observed when the application's reader collects: the node actor publishes
// their values under mu after each step, and the callback reads only those.
type nodeMetrics struct {
	node attrs // raft.node_id

	commitDur, applyDur, syncDur, snapDur, readDur metric.Float64Histogram
	syncEntries, appendEntries, snapSize           metric.Int64Histogram
	sentCount, received, dropped, overloads        metric.Int64Counter
	leaderChanges, electionsStarted, electionsWon  metric.Int64Counter
	term, commit, applied, applyLag, peerLag       metric.Int64ObservableGauge

	// Attribute sets built once: read-only after newNodeMetrics, so the
	// replicators may use them too.
	byType        map[messages.MessageType]attrs
	byTypeCause   map[dropKey]attrs
	byRole        map[raft.Role]attrs
	snapTake      attrs
	snapSend      attrs
	snapInstall   attrs
	nodeAttribute attribute.KeyValue

	// Owned by the node actor: proposals accepted as leader, waiting for
	// their commit, then for their application (indexes increase).
	pendingCommit, pendingApply []proposalTime

	reg metric.Registration

	mu sync.Mutex // guards g
	g  gaugeValues
}

type dropKey struct {
	t     messages.MessageType
	cause string
}

type proposalTime struct {
	index uint64
	at    time.Time
}

type gaugeValues struct {
	term, commit, applied uint64
	peers                 map[uint64]uint64 // leader only: peer -> match lag
	peerAttrs             map[uint64]attrs
}

// attrs is one attribute set as ready-made option slices: passing a slice
// (opts...) to Add, Record or Observe allocates nothing, where a single
// option would be boxed in a new slice on every call.
type attrs struct {
	add []metric.AddOption
	rec []metric.RecordOption
	obs []metric.ObserveOption
}

func newAttrs(kvs ...attribute.KeyValue) attrs {
	o := metric.WithAttributeSet(attribute.NewSet(kvs...))
	return attrs{add: []metric.AddOption{o}, rec: []metric.RecordOption{o}, obs: []metric.ObserveOption{o}}
}

// maxTimedProposals bounds the proposals timed at once; beyond it new ones
// are not timed (backpressure keeps the real number far lower).
const maxTimedProposals = 1 << 16

// nodeMetrics returns the node's metrics, creating them (and registering the
// gauge callback) on the node's first start.
func (sh *shared) nodeMetrics() *nodeMetrics {
	if sh.metrics == nil {
		sh.metrics = newNodeMetrics(sh.cfg.MeterProvider, sh.cfg.ID, sh.cfg.Logger)
	}
	sh.metrics.pendingCommit, sh.metrics.pendingApply = nil, nil
	return sh.metrics
}

func newNodeMetrics(mp metric.MeterProvider, id uint64, log interface{ Warn(string, ...any) }) *nodeMetrics {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m, err := buildMetrics(mp.Meter(tracing.ScopeName), id)
	if err != nil {
		// Only an SDK that refuses our names gets here; record nothing then.
		log.Warn("metrics disabled", "err", err)
		m, _ = buildMetrics(noop.NewMeterProvider().Meter(tracing.ScopeName), id)
	}
	return m
}

func buildMetrics(meter metric.Meter, id uint64) (*nodeMetrics, error) {
	nodeAttr := tracing.AttrNodeID.Int64(int64(id))
	with := func(kvs ...attribute.KeyValue) attrs { return newAttrs(append(kvs, nodeAttr)...) }
	m := &nodeMetrics{
		node: with(), nodeAttribute: nodeAttr,
		byType:      map[messages.MessageType]attrs{},
		byTypeCause: map[dropKey]attrs{},
		byRole:      map[raft.Role]attrs{},
		snapTake:    with(tracing.AttrSnapshotOp.String("take")),
		snapSend:    with(tracing.AttrSnapshotOp.String("send")),
		snapInstall: with(tracing.AttrSnapshotOp.String("install")),
	}
	causes := []string{tracing.DropWrongCluster, tracing.DropNonMember, tracing.DropWrongTarget,
		tracing.DropInvalid, tracing.DropPaused, tracing.DropSendFailed}
	for v := range messages.MessageType_name {
		t := messages.MessageType(v)
		m.byType[t] = with(tracing.AttrMsgType.String(msgTypeName(t)))
		for _, c := range causes {
			m.byTypeCause[dropKey{t, c}] = with(tracing.AttrMsgType.String(msgTypeName(t)), tracing.AttrDropCause.String(c))
		}
	}
	for _, r := range []raft.Role{raft.PreCandidate, raft.Candidate} {
		m.byRole[r] = with(tracing.AttrRole.String(r.String()))
	}

	b := newInstruments(meter, tracing.Instruments)
	fh, ih, ctr, gauge := b.fh, b.ih, b.ctr, b.gauge
	m.commitDur = fh(tracing.MetricProposalCommitDuration)
	m.applyDur = fh(tracing.MetricProposalApplyDuration)
	m.syncDur = fh(tracing.MetricStorageSyncDuration)
	m.syncEntries = ih(tracing.MetricStorageSyncEntries)
	m.appendEntries = ih(tracing.MetricAppendEntries)
	m.sentCount = ctr(tracing.MetricMessagesSent)
	m.received = ctr(tracing.MetricMessagesReceived)
	m.dropped = ctr(tracing.MetricMessagesDropped)
	m.leaderChanges = ctr(tracing.MetricLeaderChanges)
	m.electionsStarted = ctr(tracing.MetricElectionsStarted)
	m.electionsWon = ctr(tracing.MetricElectionsWon)
	m.term = gauge(tracing.MetricTerm)
	m.commit = gauge(tracing.MetricCommitIndex)
	m.applied = gauge(tracing.MetricAppliedIndex)
	m.applyLag = gauge(tracing.MetricApplyLag)
	m.peerLag = gauge(tracing.MetricPeerMatchLag)
	m.snapSize = ih(tracing.MetricSnapshotSize)
	m.snapDur = fh(tracing.MetricSnapshotDuration)
	m.readDur = fh(tracing.MetricReadDuration)
	m.overloads = ctr(tracing.MetricRequestsOverloaded)
	if err := errors.Join(b.errs...); err != nil {
		return nil, err
	}
	reg, err := meter.RegisterCallback(m.observe, m.term, m.commit, m.applied, m.applyLag, m.peerLag)
	if err != nil {
		return nil, err
	}
	m.reg = reg
	return m, nil
}

// instruments creates the instruments of a list (tracing.Instruments,
// tracing.HostInstruments) by name, with the list's unit, description and
// buckets, and gathers the SDK's refusals in errs.
type instruments struct {
	meter metric.Meter
	desc  map[string]tracing.Instrument
	errs  []error
}

func newInstruments(meter metric.Meter, list []tracing.Instrument) *instruments {
	b := &instruments{meter: meter, desc: map[string]tracing.Instrument{}}
	for _, in := range list {
		b.desc[in.Name] = in
	}
	return b
}

func (b *instruments) fh(name string) metric.Float64Histogram {
	d := b.desc[name]
	h, err := b.meter.Float64Histogram(name, metric.WithUnit(d.Unit), metric.WithDescription(d.Description),
		metric.WithExplicitBucketBoundaries(d.Buckets...))
	b.errs = append(b.errs, err)
	return h
}

func (b *instruments) ih(name string) metric.Int64Histogram {
	d := b.desc[name]
	h, err := b.meter.Int64Histogram(name, metric.WithUnit(d.Unit), metric.WithDescription(d.Description),
		metric.WithExplicitBucketBoundaries(d.Buckets...))
	b.errs = append(b.errs, err)
	return h
}

func (b *instruments) ctr(name string) metric.Int64Counter {
	d := b.desc[name]
	c, err := b.meter.Int64Counter(name, metric.WithUnit(d.Unit), metric.WithDescription(d.Description))
	b.errs = append(b.errs, err)
	return c
}

func (b *instruments) gauge(name string) metric.Int64ObservableGauge {
	d := b.desc[name]
	g, err := b.meter.Int64ObservableGauge(name, metric.WithUnit(d.Unit), metric.WithDescription(d.Description))
	b.errs = append(b.errs, err)
	return g
}

// msgTypeName is the raft.msg.type value: "append" for MSG_APPEND.
func msgTypeName(t messages.MessageType) string {
	s := t.String()
	if len(s) > 4 && s[:4] == "MSG_" {
		s = s[4:]
	}
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'A' && c <= 'Z':
			b[i] = c + 'a' - 'A'
		case c == '_':
			b[i] = '-'
		}
	}
	return string(b)
}

// observe is the gauge callback, run on the reader's goroutine.
func (m *nodeMetrics) observe(_ context.Context, o metric.Observer) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	g := &m.g
	o.ObserveInt64(m.term, int64(g.term), m.node.obs...)
	o.ObserveInt64(m.commit, int64(g.commit), m.node.obs...)
	o.ObserveInt64(m.applied, int64(g.applied), m.node.obs...)
	o.ObserveInt64(m.applyLag, int64(g.commit-min(g.applied, g.commit)), m.node.obs...)
	for peer, lag := range g.peers {
		a, ok := g.peerAttrs[peer]
		if !ok {
			a = newAttrs(m.nodeAttribute, tracing.AttrPeer.Int64(int64(peer)))
			if g.peerAttrs == nil {
				g.peerAttrs = map[uint64]attrs{}
			}
			g.peerAttrs[peer] = a
		}
		o.ObserveInt64(m.peerLag, int64(lag), a.obs...)
	}
	return nil
}

// closeMetrics unregisters the gauge callback: a stopped node reports
// nothing.
func (sh *shared) closeMetrics() {
	if m := sh.metrics; m != nil && m.reg != nil {
		_ = m.reg.Unregister()
	}
	sh.metrics = nil
}
