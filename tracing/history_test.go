package tracing_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flotilla-raft/flotilla/tracing"
)

func terms(ts []tracing.Transition) []uint64 {
	out := make([]uint64, len(ts))
	for i, t := range ts {
		out[i] = t.Term
	}
	return out
}

func TestHistoryRing(t *testing.T) {
	for _, tc := range []struct {
		capacity, adds int
		want           []uint64 // terms kept, oldest first
	}{
		{capacity: 3, adds: 0, want: []uint64{}},
		{capacity: 3, adds: 2, want: []uint64{1, 2}},
		{capacity: 3, adds: 3, want: []uint64{1, 2, 3}},
		{capacity: 3, adds: 4, want: []uint64{2, 3, 4}},
		{capacity: 3, adds: 7, want: []uint64{5, 6, 7}},
		{capacity: 3, adds: 9, want: []uint64{7, 8, 9}}, // wrapped exactly to slot 0
		{capacity: 1, adds: 5, want: []uint64{5}},
	} {
		t.Run(fmt.Sprintf("cap%d/adds%d", tc.capacity, tc.adds), func(t *testing.T) {
			h := tracing.NewHistory(tc.capacity)
			for i := 1; i <= tc.adds; i++ {
				h.Add(tracing.Transition{Term: uint64(i), Kind: "term-changed"})
			}
			got := terms(h.Snapshot())
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("Snapshot terms = %v, want %v", got, tc.want)
			}
			if h.Len() != len(tc.want) {
				t.Fatalf("Len=%d, want %d", h.Len(), len(tc.want))
			}
		})
	}
}

func TestHistoryDefaultCapacity(t *testing.T) {
	if tracing.DefaultHistoryCapacity != 256 {
		t.Fatalf("DefaultHistoryCapacity = %d, documented as 256", tracing.DefaultHistoryCapacity)
	}
	for _, c := range []int{0, -1} {
		h := tracing.NewHistory(c)
		for range 300 {
			h.Add(tracing.Transition{})
		}
		if got := h.Len(); got != 256 {
			t.Errorf("NewHistory(%d) keeps %d of 300 transitions, want 256", c, got)
		}
	}
}

func TestHistorySnapshotIsACopy(t *testing.T) {
	h := tracing.NewHistory(2)
	h.Add(tracing.Transition{Term: 1})
	snap := h.Snapshot()
	snap[0].Term = 99
	h.Add(tracing.Transition{Term: 2})
	h.Add(tracing.Transition{Term: 3})
	if snap[0].Term != 99 || terms(h.Snapshot())[0] != 2 {
		t.Fatalf("snapshot and ring share memory: snap=%v ring=%v", terms(snap), terms(h.Snapshot()))
	}
}

func TestHistoryConcurrentSnapshot(t *testing.T) {
	// One actor adds; another goroutine (a debug endpoint) reads. Run with -race.
	h := tracing.NewHistory(8)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 1000 {
			h.Add(tracing.Transition{Term: uint64(i + 1)})
		}
	})
	for range 100 {
		s := h.Snapshot()
		for i := 1; i < len(s); i++ {
			if s[i].Term != s[i-1].Term+1 {
				t.Fatalf("snapshot not in order: %v", terms(s))
			}
		}
	}
	wg.Wait()
}

func TestTransitionString(t *testing.T) {
	tr := tracing.Transition{
		Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Term: 4, From: "candidate", To: "leader",
		Leader: 1, Kind: "became-leader", Reason: "won 2 of 3 votes",
	}
	const want = "2026-01-02T03:04:05Z t4 became-leader candidate->leader leader=1 (won 2 of 3 votes)"
	if got := tr.String(); got != want {
		t.Fatalf("String() =\n %s\nwant\n %s", got, want)
	}
	if strings.Contains((tracing.Transition{}).String(), "(") {
		t.Fatal("empty reason printed")
	}
}

func BenchmarkHistoryAdd(b *testing.B) {
	h := tracing.NewHistory(0)
	tr := tracing.Transition{Term: 1, From: "follower", To: "candidate", Kind: "election-timeout"}
	b.ReportAllocs()
	for b.Loop() {
		h.Add(tr)
	}
}
