package actors_test

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flotilla-raft/flotilla/tracing"
	"github.com/flotilla-raft/flotilla/tracing/tracingtest"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func nodeOf(s sdktrace.ReadOnlySpan) int64 {
	for _, kv := range s.Attributes() {
		if kv.Key == tracing.AttrNodeID {
			return kv.Value.AsInt64()
		}
	}
	return 0
}

// One proposal is one trace: propose and append on the leader, persist,
// replicate to each follower, each follower's append and persist, the
// acknowledgements, the commit, and the apply on every node.
func TestProposalIsOneTrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tp, rec := tracingtest.NewProvider(t) // saves a Mermaid diagram if the test fails
		c := newClusterWith(t, 3, func(c *cluster) { c.tp = tp })
		lead := c.waitLeader()
		res, err := c.propose(lead, "traced")
		if err != nil {
			t.Fatal(err)
		}
		c.waitApplied(1, c.ids...)
		// The followers' acks and applies land asynchronously: poll the
		// recorder until the trace is whole, or fail with what is missing.
		deadline := time.Now().Add(10 * time.Second)
		for {
			missing := checkTrace(rec, lead, res.Index)
			if len(missing) == 0 {
				return
			}
			if time.Now().After(deadline) {
				for _, m := range missing {
					t.Error(m)
				}
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func checkTrace(rec *tracetest.SpanRecorder, lead, index uint64) (missing []string) {
	{
		var root trace.SpanContext
		for _, s := range rec.Ended() {
			if s.Name() == tracing.SpanPropose {
				root = s.SpanContext()
			}
		}
		if !root.IsValid() {
			return []string{"no propose span"}
		}
		count := map[string]map[int64]int{}
		for _, s := range rec.Ended() {
			if s.SpanContext().TraceID() != root.TraceID() {
				continue
			}
			if count[s.Name()] == nil {
				count[s.Name()] = map[int64]int{}
			}
			count[s.Name()][nodeOf(s)]++
			if s.Name() == tracing.SpanApply {
				for _, kv := range s.Attributes() {
					if kv.Key == tracing.AttrIndex && kv.Value != attribute.Int64Value(int64(index)) {
						missing = append(missing, fmt.Sprintf("apply span of index %v, want %d", kv.Value.AsInt64(), index))
					}
				}
			}
		}
		L := int64(lead)
		want := []struct {
			name  string
			nodes int // distinct nodes that must have it
			on    int64
		}{
			{tracing.SpanPropose, 1, L}, {tracing.SpanLeaderAppend, 1, L}, {tracing.SpanPersist, 3, 0},
			{tracing.SpanReplicate, 1, L}, {tracing.SpanFollowerAppend, 2, 0}, {tracing.SpanAck, 1, L},
			{tracing.SpanCommit, 1, L}, {tracing.SpanApply, 3, 0},
		}
		for _, w := range want {
			got := count[w.name]
			if len(got) < w.nodes || (w.on != 0 && got[w.on] == 0) {
				missing = append(missing, fmt.Sprintf("span %s on nodes %v, want on %d nodes (leader %d)", w.name, got, w.nodes, L))
			}
		}
		if got := count[tracing.SpanReplicate][L]; got < 2 {
			missing = append(missing, fmt.Sprintf("%d replicate spans on the leader, want one per follower", got))
		}
	}
	return missing
}
