package simtest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"
)

// This file holds what a run reports: the counters of what it exercised
// (Stats), the step trace (with the nodes' warnings and errors), and the
// violations found.

// Stats counts what a run exercised.
type Stats struct {
	Seeds                 int
	Crashes               int // abrupt stops, unsynced data dropped
	Stops                 int // orderly stops
	Restarts              int
	RestartsAfterSnapshot int // restarts of a node whose store holds a snapshot
	CrashesAfterSnapshot  int // crashes right after a TakeSnapshot answered
	SnapshotsTaken        int
	SnapshotsInstalled    int
	SnapshotsReceived     int // received whole in chunks
	TransfersResumed      int // chunked transfers that resumed where the follower was
	MembershipChanges     int // committed ChangeConfig of members
	SettingsChanges       int // committed ChangeConfig of settings
	Transfers             int // leadership transfers that completed
	Pauses                int // starts paused, later resumed
	Partitions            int
	SlowBeyondWait        int // application actor answers slower than the applier waits
	NodeFailures          int // nodes that stopped themselves with an error (and were restarted)
	ReadsChecked          int
	OpsChecked            int // operations given to porcupine
	Unknown               int // appends whose outcome stayed unknown
	Acked                 int // acknowledged appends checked on every replica
	HealTicks             int // ticks from heal to the first committed proposal, summed
	Overloaded            int // appends and reads refused with ErrOverloaded (Options.Backpressure)
	SessionsExpired       int // appends answered ErrSessionExpired (Options.SessionExpiry)
	Quiesced              int // nodes that quiesced (Options.Quiesce)
}

// Add adds o to s.
func (s *Stats) Add(o Stats) {
	s.Seeds += o.Seeds
	s.Crashes += o.Crashes
	s.Stops += o.Stops
	s.Restarts += o.Restarts
	s.RestartsAfterSnapshot += o.RestartsAfterSnapshot
	s.CrashesAfterSnapshot += o.CrashesAfterSnapshot
	s.SnapshotsTaken += o.SnapshotsTaken
	s.SnapshotsInstalled += o.SnapshotsInstalled
	s.SnapshotsReceived += o.SnapshotsReceived
	s.TransfersResumed += o.TransfersResumed
	s.Quiesced += o.Quiesced
	s.MembershipChanges += o.MembershipChanges
	s.SettingsChanges += o.SettingsChanges
	s.Transfers += o.Transfers
	s.Pauses += o.Pauses
	s.Partitions += o.Partitions
	s.SlowBeyondWait += o.SlowBeyondWait
	s.NodeFailures += o.NodeFailures
	s.ReadsChecked += o.ReadsChecked
	s.OpsChecked += o.OpsChecked
	s.Unknown += o.Unknown
	s.Acked += o.Acked
	s.HealTicks += o.HealTicks
	s.Overloaded += o.Overloaded
	s.SessionsExpired += o.SessionsExpired
}

func (s *sim) tracef(format string, args ...any) {
	if s.parent != nil {
		s.parent.tracef("group %d: "+format, append([]any{s.cluster}, args...)...)
		return
	}
	line := fmt.Sprintf("%7.3fs ", time.Since(s.start).Seconds()) + fmt.Sprintf(format, args...)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.trace = append(s.trace, line)
	if debugTrace {
		println(line)
	}
}

func (s *sim) violation(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.tracef("VIOLATION: %s", msg)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, msg)
}

func (s *sim) count(f func(*Stats)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.stats)
}

// traceHandler puts the nodes' warnings and errors into the step trace.
type traceHandler struct {
	s     *sim
	node  uint64
	attrs []slog.Attr
}

func (h *traceHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h *traceHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	for _, a := range h.attrs {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	h.s.tracef("log %s: %s%s", r.Level, r.Message, b.String())
	return nil
}

func (h *traceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &traceHandler{s: h.s, node: h.node, attrs: append(slices.Clone(h.attrs), as...)}
}

func (h *traceHandler) WithGroup(string) slog.Handler { return h }

// String prints the counters a sweep reports.
func (s Stats) String() string {
	return fmt.Sprintf("%d seeds; %d crashes (%d right after a snapshot), %d orderly stops, %d restarts (%d with a snapshot in the store), "+
		"%d snapshots taken, %d installed (%d received in chunks, %d transfers resumed); %d membership changes, %d settings changes, %d leadership transfers, %d pauses, %d partitions; "+
		"%d slow applies beyond the wait, %d nodes stopped themselves; %d operations checked by porcupine (%d reads, %d unknown outcomes), "+
		"%d acknowledged appends checked on every replica; %d ticks from heal to progress (total); %d requests refused as overloaded, %d appends from expired sessions; %d quiescences",
		s.Seeds, s.Crashes, s.CrashesAfterSnapshot, s.Stops, s.Restarts, s.RestartsAfterSnapshot,
		s.SnapshotsTaken, s.SnapshotsInstalled, s.SnapshotsReceived, s.TransfersResumed, s.MembershipChanges, s.SettingsChanges, s.Transfers, s.Pauses, s.Partitions,
		s.SlowBeyondWait, s.NodeFailures, s.OpsChecked, s.ReadsChecked, s.Unknown, s.Acked, s.HealTicks, s.Overloaded, s.SessionsExpired, s.Quiesced)
}

// debugTrace (SIMSHELL_DEBUG=1) also prints the step trace as it grows, to
// see where a run that never ends is stuck.
var debugTrace = os.Getenv("SIMSHELL_DEBUG") != ""
