package actors_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/tracing"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// A host's metrics (tracing.HostInstruments), read through the SDK's
// manual reader after a few groups commit on three hosts: the group
// gauges, and fsyncs with groups and entries per fsync that agree with
// GetHostStatus; idle groups leave the active gauge; a removed group
// leaves the groups gauge; a stopped host reports no gauges.
func TestHostMetrics(t *testing.T) {
	const groups = 8
	synctest.Test(t, func(t *testing.T) {
		var readers [3]*sdkmetric.ManualReader
		var meters [3]metric.MeterProvider
		for i := range readers {
			readers[i] = sdkmetric.NewManualReader()
			meters[i] = sdkmetric.NewMeterProvider(sdkmetric.WithReader(readers[i]))
		}
		r := newHostRigWith(t, "", meters)
		gs := groupIDs(1, groups)
		for _, g := range gs {
			r.create(g)
		}
		for round := range 2 {
			r.proposeAll(gs, "cmd"+string(rune('0'+round)))
		}
		r.waitApplied(gs)

		host := tracing.AttrHost.String("db") // HostConfig.Name defaults to DataDir
		for i := range r.hosts {
			all := collectMetrics(t, readers[i])
			for _, in := range tracing.HostInstruments {
				if len(where(all, in.Name, host)) == 0 {
					t.Errorf("host %d: no %s with %v", i+1, in.Name, host)
				}
			}
			if n, _ := total(where(all, tracing.MetricHostGroups, host)); n != groups {
				t.Errorf("host %d: %s = %v, want %d", i+1, tracing.MetricHostGroups, n, groups)
			}
			if n, _ := total(where(all, tracing.MetricHostGroupsActive, host)); n < 1 || n > groups {
				t.Errorf("host %d: %s = %v just after commits, want 1..%d", i+1, tracing.MetricHostGroupsActive, n, groups)
			}
		}

		// Idle for longer than ActiveWindow (1 s): no group writes, so
		// none is active, and the fsync figures stand still to compare
		// with GetHostStatus.
		time.Sleep(3 * time.Second)
		for i := range r.hosts {
			s := r.status(i)
			all := collectMetrics(t, readers[i])
			fsyncs, _ := total(where(all, tracing.MetricHostFsyncs, host))
			perGroups, nGroups := total(where(all, tracing.MetricHostFsyncGroups, host))
			perEntries, nEntries := total(where(all, tracing.MetricHostFsyncEntries, host))
			_, nDur := total(where(all, tracing.MetricHostFsyncDuration, host))
			active, _ := total(where(all, tracing.MetricHostGroupsActive, host))
			t.Logf("host %d: %v fsyncs, %v group writes and %v entries in them; status: %d fsyncs, %d writes, %d entries",
				i+1, fsyncs, perGroups, perEntries, s.Fsyncs, s.SavedUpdates, s.SavedEntries)
			if fsyncs == 0 || uint64(fsyncs) != s.Fsyncs || nGroups != s.Fsyncs || nEntries != s.Fsyncs || nDur != s.Fsyncs {
				t.Errorf("host %d: %s %v, histogram counts %d/%d/%d, want all = status Fsyncs %d > 0",
					i+1, tracing.MetricHostFsyncs, fsyncs, nGroups, nEntries, nDur, s.Fsyncs)
			}
			if uint64(perGroups) != s.SavedUpdates || uint64(perEntries) != s.SavedEntries {
				t.Errorf("host %d: fsyncs held %v group writes and %v entries, status says %d and %d",
					i+1, perGroups, perEntries, s.SavedUpdates, s.SavedEntries)
			}
			if perGroups <= fsyncs {
				t.Errorf("host %d: %v group writes in %v fsyncs: no fsync covered several groups", i+1, perGroups, fsyncs)
			}
			if perEntries < 2*groups {
				t.Errorf("host %d: %v entries in fsyncs, want at least the %d commands", i+1, perEntries, 2*groups)
			}
			if active != 0 || s.ActiveGroups != 0 {
				t.Errorf("host %d: %v active groups (status %d) after 3 idle seconds, want 0", i+1, active, s.ActiveGroups)
			}
		}

		// A removed group leaves the host's groups gauge.
		if _, err := actors.Request[*actors.RemoveGroupResponse](r.sys.Root, r.hosts[0], &actors.RemoveGroup{ClusterID: groups}, 15*time.Second); err != nil {
			t.Fatalf("RemoveGroup %d: %v", groups, err)
		}
		if n, _ := total(where(collectMetrics(t, readers[0]), tracing.MetricHostGroups, host)); n != groups-1 {
			t.Errorf("host 1 after RemoveGroup: %s = %v, want %d", tracing.MetricHostGroups, n, groups-1)
		}

		// A stopped host reports no gauges.
		r.stop()
		if ps := where(collectMetrics(t, readers[1]), tracing.MetricHostGroups); len(ps) != 0 {
			t.Errorf("stopped host 2 still reports %s: %v", tracing.MetricHostGroups, ps)
		}
	})
}
