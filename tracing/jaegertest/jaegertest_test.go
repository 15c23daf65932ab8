package jaegertest_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-raft/flotilla/tracing"
	"github.com/flotilla-raft/flotilla/tracing/jaegertest"
	"github.com/flotilla-raft/flotilla/tracing/otlp"
)

// sameID compares hex ids, ignoring the leading zeros Jaeger may drop.
func sameID(a, b string) bool { return strings.TrimLeft(a, "0") == strings.TrimLeft(b, "0") }

// TestSpanTreeRoundTrip exports a parent, its child and a span linked to the parent
// (in a second trace) through otlp.Setup to a real Jaeger, and reads back the
// CHILD_OF and FOLLOWS_FROM structure and the resource.
func TestSpanTreeRoundTrip(t *testing.T) {
	j := jaegertest.Start(t)
	ctx := context.Background()
	shutdown, tp, err := otlp.Setup(ctx, otlp.Options{
		ServiceName: "flotilla-jaegertest", NodeID: 1,
		Endpoint: j.OTLPEndpoint(), Insecure: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	tr := tracing.NewTracer(tp, 1)

	pctx, parent := tr.Start(ctx, tracing.SpanPropose, tracing.Attrs{Term: 2})
	_, child := tr.Start(pctx, tracing.SpanLeaderAppend, tracing.Attrs{Term: 2, First: 4, Last: 4})
	child.End()
	parent.End()
	_, linked := tr.StartLinked(ctx, tracing.SpanApply, tracing.Attrs{First: 4, Last: 4}, []string{tracing.Inject(pctx)})
	linked.End()

	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := shutdown(sctx); err != nil {
		t.Fatalf("flushing spans to Jaeger: %v", err)
	}

	first := j.WaitForTrace(t, parent.SpanContext().TraceID().String(), 2)
	p, ok := first.Span(tracing.SpanPropose)
	if !ok {
		t.Fatalf("no %s span in %v", tracing.SpanPropose, first.OperationNames())
	}
	c, ok := first.Span(tracing.SpanLeaderAppend)
	if !ok {
		t.Fatalf("no %s span in %v", tracing.SpanLeaderAppend, first.OperationNames())
	}
	if p.Parent() != "" {
		t.Errorf("propose has parent %s, want a root", p.Parent())
	}
	if !sameID(c.Parent(), parent.SpanContext().SpanID().String()) || !sameID(p.SpanID, c.Parent()) {
		t.Errorf("leader.append CHILD_OF %q, want propose %s", c.Parent(), p.SpanID)
	}
	if v, _ := c.Tag(string(tracing.AttrIndexFirst)); v != float64(4) {
		t.Errorf("leader.append %s = %v, want 4", tracing.AttrIndexFirst, v)
	}
	proc := first.Process(p)
	if proc.ServiceName != "flotilla-jaegertest" {
		t.Errorf("process service = %q, want flotilla-jaegertest", proc.ServiceName)
	}
	if v, _ := proc.Tag("service.instance.id"); v != "n1" {
		t.Errorf("process service.instance.id = %v, want n1 (tags %v)", v, proc.Tags)
	}

	second := j.WaitForTrace(t, linked.SpanContext().TraceID().String(), 1)
	a, ok := second.Span(tracing.SpanApply)
	if !ok {
		t.Fatalf("no %s span in %v", tracing.SpanApply, second.OperationNames())
	}
	if a.Parent() != "" {
		t.Errorf("apply has parent %s, want a root linked to propose", a.Parent())
	}
	links := a.Links()
	if len(links) != 1 || !sameID(links[0].SpanID, p.SpanID) || !sameID(links[0].TraceID, first.TraceID) {
		t.Fatalf("apply FOLLOWS_FROM %+v, want propose %s in trace %s", links, p.SpanID, first.TraceID)
	}

	traces, err := j.Traces("flotilla-jaegertest")
	if err != nil || len(traces) != 2 {
		t.Fatalf("Traces(service) = %d traces, %v; want 2", len(traces), err)
	}
	if svcs, err := j.Services(); err != nil || !slices.Contains(svcs, "flotilla-jaegertest") {
		t.Fatalf("Services() = %v, %v", svcs, err)
	}
	if _, err := j.Trace("0000000000000000000000000000abcd"); err != jaegertest.ErrNotFound {
		t.Fatalf("Trace(unknown) error = %v, want ErrNotFound", err)
	}
}
