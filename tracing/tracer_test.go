package tracing_test

import (
	"context"
	"errors"
	"testing"

	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/tracing"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

func attrMap(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

func TestTracerStartAttributes(t *testing.T) {
	tp, rec := newRecorded(t)
	tr := tracing.NewTracer(tp, 7)
	if !tr.Enabled() || tr.NodeID() != 7 {
		t.Fatalf("Enabled=%v NodeID=%d, want true 7", tr.Enabled(), tr.NodeID())
	}
	_, span := tr.Start(context.Background(), tracing.SpanReplicate, tracing.Attrs{Term: 3, First: 5, Last: 7, Peer: 2, MsgType: "MSG_APPEND"})
	span.End()

	s := one(t, rec, tracing.SpanReplicate)
	got := attrMap(s)
	want := map[attribute.Key]attribute.Value{
		tracing.AttrNodeID:     attribute.Int64Value(7),
		tracing.AttrTerm:       attribute.Int64Value(3),
		tracing.AttrIndexFirst: attribute.Int64Value(5),
		tracing.AttrIndexLast:  attribute.Int64Value(7),
		tracing.AttrPeer:       attribute.Int64Value(2),
		tracing.AttrMsgType:    attribute.StringValue("MSG_APPEND"),
	}
	if len(got) != len(want) {
		t.Errorf("attributes = %v, want exactly %v (zero fields left out)", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k].String(), v.String())
		}
	}
	if s.SpanKind() != trace.SpanKindClient {
		t.Errorf("kind = %v, want client for a send that awaits an answer", s.SpanKind())
	}
	if s.InstrumentationScope().Name != tracing.ScopeName {
		t.Errorf("scope = %q, want %q", s.InstrumentationScope().Name, tracing.ScopeName)
	}
}

func TestTracerStartRemote(t *testing.T) {
	tp, rec := newRecorded(t)
	leader, follower := tracing.NewTracer(tp, 1), tracing.NewTracer(tp, 2)

	ctx, rep := leader.Start(context.Background(), tracing.SpanReplicate, tracing.Attrs{Peer: 2})
	msg := &messages.Message{Type: messages.MessageType_MSG_APPEND, From: 1, To: 2, TraceParent: tracing.Inject(ctx)}
	rep.End()

	// The follower has its own, unrelated context: the parent comes from the message.
	fctx, own := tp.Tracer("other").Start(context.Background(), "unrelated")
	_, fa := follower.StartRemote(fctx, msg.GetTraceParent(), tracing.SpanFollowerAppend, tracing.Attrs{Peer: msg.From})
	fa.End()
	own.End()
	if p := one(t, rec, tracing.SpanFollowerAppend).Parent(); p.SpanID() != rep.SpanContext().SpanID() || !p.IsRemote() {
		t.Fatalf("follower.append parent = %v (remote %v), want the replicate span %v", p.SpanID(), p.IsRemote(), rep.SpanContext().SpanID())
	}

	// Without a traceparent the span is a child of ctx.
	_, orphan := follower.StartRemote(fctx, "", tracing.SpanCommit, tracing.Attrs{})
	orphan.End()
	if p := one(t, rec, tracing.SpanCommit).Parent(); p.SpanID() != own.SpanContext().SpanID() {
		t.Fatalf("commit parent = %v, want the span in ctx %v", p.SpanID(), own.SpanContext().SpanID())
	}
}

func TestTracerStartLinked(t *testing.T) {
	tp, rec := newRecorded(t)
	tr := tracing.NewTracer(tp, 1)
	var parents []string
	var ids []trace.SpanID
	for range 3 {
		ctx, p := tr.Start(context.Background(), tracing.SpanPropose, tracing.Attrs{})
		parents = append(parents, tracing.Inject(ctx))
		ids = append(ids, p.SpanContext().SpanID())
		p.End()
	}
	parents = append(parents, "", "not-a-traceparent") // entries proposed with tracing off

	_, span := tr.StartLinked(context.Background(), tracing.SpanLeaderAppend, tracing.Attrs{First: 1, Last: 5}, parents)
	span.End()
	s := one(t, rec, tracing.SpanLeaderAppend)
	if s.Parent().IsValid() {
		t.Errorf("linked span has parent %v, want a root", s.Parent())
	}
	links := s.Links()
	if len(links) != 3 {
		t.Fatalf("links = %d, want 3 (empty and malformed skipped)", len(links))
	}
	for i, l := range links {
		if l.SpanContext.SpanID() != ids[i] {
			t.Errorf("link %d = %v, want %v", i, l.SpanContext.SpanID(), ids[i])
		}
	}
	if got := attrMap(s)[tracing.AttrBatchSize]; got.AsInt64() != 5 {
		t.Errorf("batch size = %v, want 5 (len(traceparents))", got.String())
	}
}

// A batch's links stay across traces: a link to the parent's own trace is
// dropped (the parent already ties the span to it).
func TestTracerStartLinkedSkipsOwnTrace(t *testing.T) {
	tp, rec := newRecorded(t)
	tr := tracing.NewTracer(tp, 1)
	ctx, mine := tr.Start(context.Background(), tracing.SpanPropose, tracing.Attrs{})
	octx, other := tr.Start(context.Background(), tracing.SpanPropose, tracing.Attrs{})
	_, span := tr.StartLinked(ctx, tracing.SpanPersist, tracing.Attrs{}, []string{tracing.Inject(ctx), tracing.Inject(octx)})
	span.End()
	mine.End()
	other.End()
	links := one(t, rec, tracing.SpanPersist).Links()
	if len(links) != 1 || links[0].SpanContext.SpanID() != other.SpanContext().SpanID() {
		t.Fatalf("links = %+v, want only the other trace's proposal", links)
	}
}

func TestTracerOff(t *testing.T) {
	var nilTracer *tracing.Tracer
	for name, tr := range map[string]*tracing.Tracer{
		"noop": tracing.NewTracer(noop.NewTracerProvider(), 1),
		"nil":  nilTracer,
	} {
		if tr.Enabled() {
			t.Errorf("%s: Enabled, want false", name)
		}
		// A recording parent from elsewhere is neither ended nor replaced.
		tp, rec := newRecorded(t)
		ctx, parent := tp.Tracer("app").Start(context.Background(), "app")
		got, span := tr.Start(ctx, tracing.SpanPropose, tracing.Attrs{})
		if got != ctx || span.IsRecording() {
			t.Errorf("%s: Start changed ctx or returned a recording span", name)
		}
		span.End()
		if len(rec.Ended()) != 0 {
			t.Errorf("%s: ending the off span ended the application's span", name)
		}
		parent.End()
	}
}

func TestGlobalProviderByDefault(t *testing.T) {
	// With no SDK installed the global provider records nothing but still works,
	// at no cost.
	tr := tracing.NewTracer(nil, 1)
	ctx, span := tr.Start(context.Background(), tracing.SpanPropose, tracing.Attrs{})
	span.End()
	if span.IsRecording() || tracing.Inject(ctx) != "" || tr.Enabled() {
		t.Fatal("global provider without an SDK recorded a span")
	}
	if n := testing.AllocsPerRun(100, func() {
		_, span := tr.Start(context.Background(), tracing.SpanPropose, tracing.Attrs{Term: 1})
		tracing.End(span, nil)
	}); n != 0 {
		t.Errorf("a span of the unset global provider allocated %v times, want 0", n)
	}
	// The application installs an SDK after the node started: its spans flow.
	// (This sets the process's global provider; no later test uses it unset.)
	tp, rec := newRecorded(t)
	otel.SetTracerProvider(tp)
	if !tr.Enabled() {
		t.Fatal("not enabled after the application set the global provider")
	}
	_, span = tr.Start(context.Background(), tracing.SpanPropose, tracing.Attrs{})
	span.End()
	one(t, rec, tracing.SpanPropose)
}

func TestEndRecordsError(t *testing.T) {
	tp, rec := newRecorded(t)
	tr := tracing.NewTracer(tp, 1)
	_, span := tr.Start(context.Background(), tracing.SpanPersist, tracing.Attrs{})
	tracing.End(span, errors.New("disk full"))
	s := one(t, rec, tracing.SpanPersist)
	if s.Status().Code != codes.Error || s.Status().Description != "disk full" || len(s.Events()) != 1 {
		t.Fatalf("status = %+v, events = %d, want Error \"disk full\" and one exception event", s.Status(), len(s.Events()))
	}
}

// BenchmarkTracerStart compares a noop provider (tracing off) with the SDK.
func BenchmarkTracerStart(b *testing.B) {
	tp, rec := newRecorded(b)
	for _, bc := range []struct {
		name string
		tr   *tracing.Tracer
	}{
		{"off", tracing.NewTracer(noop.NewTracerProvider(), 1)},
		{"on", tracing.NewTracer(tp, 1)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				_, s := bc.tr.Start(ctx, tracing.SpanReplicate, tracing.Attrs{Term: 3, First: 5, Last: 7, Peer: 2})
				s.End()
				rec.Reset()
			}
		})
	}
}
