package actors

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/flotilla-raft/flotilla/tracing"
)

// hostMetrics are a Host's instruments (tracing.HostInstruments), recorded
// by the host actor (groups) and its shared persister (fsyncs); the gauges
// are observed on the reader's goroutine, hence the mutex.
type hostMetrics struct {
	fsyncs                    metric.Int64Counter
	fsyncGroups, fsyncEntries metric.Int64Histogram
	fsyncDur                  metric.Float64Histogram
	groups, active            metric.Int64ObservableGauge
	reg                       metric.Registration
	add                       []metric.AddOption
	rec                       []metric.RecordOption
	obs                       []metric.ObserveOption
	window                    time.Duration
	mu                        sync.Mutex
	stats                     map[uint64]*groupStats // cluster id -> the group's writes
}

// newHostMetrics builds the host's instruments on mp (nil: the global
// provider); an SDK that refuses them gets a warning and no metrics.
func newHostMetrics(mp metric.MeterProvider, name string, window time.Duration, log interface{ Warn(string, ...any) }) *hostMetrics {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m, err := buildHostMetrics(mp.Meter(tracing.ScopeName), name, window)
	if err != nil {
		log.Warn("host metrics disabled", "err", err)
		m, _ = buildHostMetrics(noop.NewMeterProvider().Meter(tracing.ScopeName), name, window)
	}
	return m
}

func buildHostMetrics(meter metric.Meter, name string, window time.Duration) (*hostMetrics, error) {
	set := metric.WithAttributeSet(attribute.NewSet(tracing.AttrHost.String(name)))
	m := &hostMetrics{add: []metric.AddOption{set}, rec: []metric.RecordOption{set},
		obs: []metric.ObserveOption{set}, window: window, stats: map[uint64]*groupStats{}}
	b := newInstruments(meter, tracing.HostInstruments)
	m.fsyncs = b.ctr(tracing.MetricHostFsyncs)
	m.fsyncGroups = b.ih(tracing.MetricHostFsyncGroups)
	m.fsyncEntries = b.ih(tracing.MetricHostFsyncEntries)
	m.fsyncDur = b.fh(tracing.MetricHostFsyncDuration)
	m.groups = b.gauge(tracing.MetricHostGroups)
	m.active = b.gauge(tracing.MetricHostGroupsActive)
	if err := errors.Join(b.errs...); err != nil {
		return nil, err
	}
	reg, err := meter.RegisterCallback(m.observe, m.groups, m.active)
	if err != nil {
		return nil, err
	}
	m.reg = reg
	return m, nil
}

// synced records one synced batch of the shared persister.
func (m *hostMetrics) synced(groups, entries int, took time.Duration) {
	ctx := context.Background()
	m.fsyncs.Add(ctx, 1, m.add...)
	m.fsyncGroups.Record(ctx, int64(groups), m.rec...)
	m.fsyncEntries.Record(ctx, int64(entries), m.rec...)
	m.fsyncDur.Record(ctx, took.Seconds(), m.rec...)
}

// setGroup adds (st != nil) or forgets a group of the host.
func (m *hostMetrics) setGroup(clusterID uint64, st *groupStats) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if st == nil {
		delete(m.stats, clusterID)
		return
	}
	m.stats[clusterID] = st
}

// observe is the gauges' callback: active groups are counted as
// GetHostStatus counts them (groupStats.activeAt).
func (m *hostMetrics) observe(_ context.Context, o metric.Observer) error {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	active := 0
	for _, st := range m.stats {
		if st.activeAt(now, m.window) {
			active++
		}
	}
	o.ObserveInt64(m.groups, int64(len(m.stats)), m.obs...)
	o.ObserveInt64(m.active, int64(active), m.obs...)
	return nil
}

// close unregisters the gauges: a stopped host reports nothing.
func (m *hostMetrics) close() {
	if m.reg != nil {
		_ = m.reg.Unregister()
	}
}
