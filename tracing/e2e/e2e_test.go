package e2e

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/flotilla-raft/flotilla/tracing"
	"github.com/flotilla-raft/flotilla/tracing/jaegertest"
)

// TestMain runs this binary as a node process when asked to.
func TestMain(m *testing.M) {
	if id := os.Getenv(envNode); id != "" {
		if err := runNode(id); err != nil {
			fmt.Fprintln(os.Stderr, "node:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestTracesInJaeger: three processes over gRPC, each exporting under its
// own service name to a real Jaeger, run a proposal, a read on a follower,
// a configuration change, a snapshot install and a leadership transfer;
// the test reads each flow's trace back through Jaeger's query API and
// checks its structure (parents, kinds, services, no Jaeger warnings,
// cross-process children inside their parents), and that no pre-vote or
// vote is a trace of its own.
func TestTracesInJaeger(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: three processes and a real Jaeger")
	}
	j := jaegertest.Start(t) // skips when the binary is absent, unless FLOTILLA_REQUIRE_JAEGER is set
	p := startProcs(t, j)
	sc := runScenario(t, p)
	findTraces(t, j, sc)
}

// renderTree prints the trace as an indented tree (children by start time;
// links shown as "follows").
func renderTree(tr jaegertest.Trace) string {
	children := map[string][]jaegertest.Span{}
	var roots []jaegertest.Span
	ids := map[string]bool{}
	for _, s := range tr.Spans {
		ids[s.SpanID] = true
	}
	for _, s := range tr.Spans {
		p := ""
		for _, r := range s.References {
			if r.RefType == jaegertest.ChildOf && ids[r.SpanID] {
				p = r.SpanID
			}
		}
		if p == "" {
			roots = append(roots, s)
		} else {
			children[p] = append(children[p], s)
		}
	}
	var b strings.Builder
	var walk func(s jaegertest.Span, depth int)
	walk = func(s jaegertest.Span, depth int) {
		extra := ""
		if k := tag(s, "span.kind"); k != "" && k != "internal" {
			extra += " " + k
		}
		if p := tag(s, string(tracing.AttrPeer)); p != "" {
			extra += " peer=" + p
		}
		if i := tag(s, string(tracing.AttrIndex)); i != "" {
			extra += " index=" + i
		}
		if r := tag(s, string(tracing.AttrResult)); r != "" {
			extra += " " + r
		}
		extra += fmt.Sprintf(" %.1fms", float64(s.Duration)/1000)
		links := 0
		for _, r := range s.References {
			if r.RefType == jaegertest.FollowsFrom {
				links++
			}
		}
		if links > 0 {
			extra += fmt.Sprintf(" links=%d", links)
		}
		fmt.Fprintf(&b, "%s%s [%s]%s\n", strings.Repeat("  ", depth), s.OperationName, tr.Process(s).ServiceName, extra)
		kids := children[s.SpanID]
		sort.Slice(kids, func(i, j int) bool { return kids[i].StartTime < kids[j].StartTime })
		for _, k := range kids {
			walk(k, depth+1)
		}
	}
	sort.Slice(roots, func(i, j int) bool { return roots[i].StartTime < roots[j].StartTime })
	for _, r := range roots {
		walk(r, 0)
	}
	return b.String()
}
