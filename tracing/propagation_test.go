package tracing_test

import (
	"context"
	"regexp"
	"testing"

	"github.com/flotilla-raft/flotilla/tracing"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

var traceparentRE = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$`)

func TestInjectExtractRoundTrip(t *testing.T) {
	tp, rec := newRecorded(t)
	ctx, span := tp.Tracer("test").Start(context.Background(), "sender")
	tpHeader := tracing.Inject(ctx)
	span.End()
	if !traceparentRE.MatchString(tpHeader) {
		t.Fatalf("Inject = %q, want a W3C traceparent", tpHeader)
	}

	got := trace.SpanContextFromContext(tracing.Extract(context.Background(), tpHeader))
	want := span.SpanContext()
	if !got.IsValid() || !got.IsRemote() || got.TraceID() != want.TraceID() || got.SpanID() != want.SpanID() || !got.IsSampled() {
		t.Fatalf("Extract(Inject) = %+v, want remote copy of %+v", got, want)
	}

	// A span started from the extracted context is the sender's child.
	_, child := tp.Tracer("test").Start(tracing.Extract(context.Background(), tpHeader), "receiver")
	child.End()
	c := one(t, rec, "receiver")
	if c.Parent().SpanID() != want.SpanID() || c.SpanContext().TraceID() != want.TraceID() {
		t.Fatalf("receiver parent = %v in trace %v, want %v in %v", c.Parent().SpanID(), c.SpanContext().TraceID(), want.SpanID(), want.TraceID())
	}
}

func TestInjectWithoutSpan(t *testing.T) {
	for name, ctx := range map[string]context.Context{
		"background": context.Background(),
		"noop span":  trace.ContextWithSpan(context.Background(), noop.Span{}),
	} {
		if got := tracing.Inject(ctx); got != "" {
			t.Errorf("%s: Inject = %q, want \"\"", name, got)
		}
	}
}

func TestExtractRejectsMalformed(t *testing.T) {
	for _, tp := range []string{
		"",
		"garbage",
		"00-00000000000000000000000000000000-0000000000000000-01", // zero ids
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",    // no flags
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // version ff is invalid
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", // upper case
	} {
		ctx := tracing.Extract(context.Background(), tp)
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			t.Errorf("Extract(%q) = valid %v, want no span context", tp, sc)
		}
		if _, ok := tracing.LinkFrom(tp); ok {
			t.Errorf("LinkFrom(%q) ok, want false", tp)
		}
	}
}

func TestLinkFrom(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	l, ok := tracing.LinkFrom(tp)
	if !ok {
		t.Fatalf("LinkFrom(%q) not ok", tp)
	}
	if l.SpanContext.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || l.SpanContext.SpanID().String() != "00f067aa0ba902b7" || !l.SpanContext.IsSampled() {
		t.Fatalf("LinkFrom(%q) = %+v", tp, l.SpanContext)
	}
}

func TestNoAllocationsWhenOff(t *testing.T) {
	ctx := context.Background()
	off := tracing.NewTracer(noop.NewTracerProvider(), 1)
	var nilTracer *tracing.Tracer
	for name, f := range map[string]func(){
		"Inject":               func() { _ = tracing.Inject(ctx) },
		"Extract":              func() { _ = tracing.Extract(ctx, "") },
		"LinkFrom":             func() { _, _ = tracing.LinkFrom("") },
		"Start/noop":           func() { _, s := off.Start(ctx, tracing.SpanPropose, tracing.Attrs{Term: 3}); s.End() },
		"Start/nil":            func() { _, s := nilTracer.Start(ctx, tracing.SpanPropose, tracing.Attrs{Term: 3}); s.End() },
		"StartRemote/noop":     func() { _, s := off.StartRemote(ctx, "", tracing.SpanFollowerAppend, tracing.Attrs{}); s.End() },
		"StartLinked/noop":     func() { _, s := off.StartLinked(ctx, tracing.SpanApply, tracing.Attrs{}, []string{"", ""}); s.End() },
		"End/noop with no err": func() { tracing.End(noop.Span{}, nil) },
	} {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s allocates %v times per call with tracing off, want 0", name, n)
		}
	}
}

func FuzzExtract(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
	f.Add("")
	f.Add("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-future")
	f.Fuzz(func(t *testing.T, tp string) {
		ctx := tracing.Extract(context.Background(), tp)
		sc := trace.SpanContextFromContext(ctx)
		if _, ok := tracing.LinkFrom(tp); ok != sc.IsValid() {
			t.Fatalf("LinkFrom(%q) ok=%v, Extract valid=%v", tp, ok, sc.IsValid())
		}
		if !sc.IsValid() {
			return
		}
		// A valid context survives a second trip unchanged.
		again := trace.SpanContextFromContext(tracing.Extract(context.Background(), tracing.Inject(ctx)))
		if again.TraceID() != sc.TraceID() || again.SpanID() != sc.SpanID() || again.TraceFlags() != sc.TraceFlags() {
			t.Fatalf("round trip of %q: %v then %v", tp, sc, again)
		}
	})
}

// BenchmarkInject compares tracing off (no span in the context) with on.
func BenchmarkInject(b *testing.B) {
	b.Run("off", func(b *testing.B) {
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			_ = tracing.Inject(ctx)
		}
	})
	b.Run("on", func(b *testing.B) {
		tp, _ := newRecorded(b)
		ctx, span := tp.Tracer("bench").Start(context.Background(), "bench")
		defer span.End()
		b.ReportAllocs()
		for b.Loop() {
			_ = tracing.Inject(ctx)
		}
	})
}

// BenchmarkExtract compares an empty traceparent (tracing off) with a valid one.
func BenchmarkExtract(b *testing.B) {
	for _, bc := range []struct{ name, tp string }{
		{"off", ""},
		{"on", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				_ = tracing.Extract(ctx, bc.tp)
			}
		})
	}
}

// BenchmarkLinkFrom compares an empty traceparent (tracing off) with a valid one.
func BenchmarkLinkFrom(b *testing.B) {
	for _, bc := range []struct{ name, tp string }{
		{"off", ""},
		{"on", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = tracing.LinkFrom(bc.tp)
			}
		})
	}
}
