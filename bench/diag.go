package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/flotilla-raft/flotilla/persistence"
)

// counters are a cluster's cumulative internal counts, by name; runCell
// takes them at the start and the end of the window and reports the
// difference per operation.
type counters map[string]float64

// diagnoser is implemented by clusters that count their internals
// (storage writes, messages), to explain a cell's numbers.
type diagnoser interface {
	counters() counters
}

// diagnose renders the window's counter deltas: per operation, and the
// per-second rate for write counts.
func diagnose(before, after counters, ops int, window time.Duration) string {
	if before == nil || after == nil || ops == 0 {
		return ""
	}
	var keys []string
	for k := range after {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		d := after[k] - before[k]
		switch {
		case strings.HasSuffix(k, "_ns"):
			// Time spent: mean per write of the matching counter.
			n := after[strings.TrimSuffix(k, "_ns")] - before[strings.TrimSuffix(k, "_ns")]
			if n > 0 {
				parts = append(parts, fmt.Sprintf("%s mean %v", strings.TrimSuffix(k, "_ns"), round(time.Duration(d/n))))
			}
		case strings.HasSuffix(k, "writes"):
			parts = append(parts, fmt.Sprintf("%s %.0f/s (%.1f ops each)", k, d/window.Seconds(), float64(ops)/max(d, 1)))
		default:
			parts = append(parts, fmt.Sprintf("%s %.2f/op", k, d/float64(ops)))
		}
	}
	return strings.Join(parts, "; ")
}

// countingStore counts a LogStore's Saves (each one synced write in
// pebblestore), the entries they carry and the time they take.
type countingStore struct {
	persistence.LogStore
	saves, entries, nanos atomic.Uint64
}

func (s *countingStore) Save(ctx context.Context, u persistence.Update) error {
	t0 := time.Now()
	err := s.LogStore.Save(ctx, u)
	s.nanos.Add(uint64(time.Since(t0)))
	s.saves.Add(1)
	s.entries.Add(uint64(len(u.Entries)))
	return err
}
