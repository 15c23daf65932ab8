package tracing

import (
	"context"
	"reflect"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Tracer starts the spans of one Raft node, each with the node's raft.node_id and
// the standard attributes. It is used by the node actor (one goroutine at a time),
// but is safe for concurrent use since it holds no mutable state.
//
// A nil *Tracer is valid and traces nothing.
type Tracer struct {
	tracer trace.Tracer
	nodeID uint64
	off    bool // the provider is a noop: skip everything
	// globalDelegate is otel's global provider as it was before the
	// application installed one, when that is t's provider: while
	// otel.GetTracerProvider() still returns it, no SDK is installed and
	// every span would be non-recording, so t skips them as when off.
	globalDelegate trace.TracerProvider
}

// NewTracer returns the Tracer of node nodeID. A nil provider means
// otel.GetTracerProvider() (the global one, a no-op until the application sets one,
// and free until then; spans flow once it sets one, also after the node started);
// a trace/noop provider turns tracing off at no cost.
func NewTracer(provider trace.TracerProvider, nodeID uint64) *Tracer {
	if provider == nil {
		provider = otel.GetTracerProvider()
	}
	t := &Tracer{nodeID: nodeID}
	switch provider.(type) {
	case noop.TracerProvider, *noop.TracerProvider:
		t.off = true
	}
	if isGlobalDelegate(provider) {
		t.globalDelegate = provider
	}
	t.tracer = provider.Tracer(ScopeName)
	return t
}

// isGlobalDelegate reports whether p is otel's global provider before the
// application set one (an internal type of otel that forwards to the
// provider set later and records nothing until then).
func isGlobalDelegate(p trace.TracerProvider) bool {
	return p == otel.GetTracerProvider() && reflect.TypeOf(p).String() == "*global.tracerProvider"
}

// NodeID is the node whose spans t starts.
func (t *Tracer) NodeID() uint64 {
	if t == nil {
		return 0
	}
	return t.nodeID
}

// Enabled reports whether t may record spans. It is false for a nil Tracer, for
// a noop provider, and for the global provider while the application has not
// set one; callers use it to skip collecting link traceparents.
func (t *Tracer) Enabled() bool {
	return t != nil && !t.off && (t.globalDelegate == nil || otel.GetTracerProvider() != t.globalDelegate)
}

// Start starts span name as a child of the span in ctx (or a new root) with the
// standard attributes a. When tracing is off it returns ctx unchanged and a
// non-recording span, without allocating.
func (t *Tracer) Start(ctx context.Context, name string, a Attrs) (context.Context, trace.Span) {
	if !t.Enabled() {
		return ctx, noop.Span{}
	}
	return t.start(ctx, name, a, nil)
}

// StartRemote starts span name as a child of the remote span that traceparent names
// (a received message's TraceParent), or of the span in ctx when traceparent is
// empty or malformed.
func (t *Tracer) StartRemote(ctx context.Context, traceparent, name string, a Attrs) (context.Context, trace.Span) {
	if !t.Enabled() {
		return ctx, noop.Span{}
	}
	return t.start(Extract(ctx, traceparent), name, a, nil)
}

// StartLinked starts span name as a child of the span in ctx (or a new root), linked
// to every valid traceparent of another trace: the step that handles many causes at
// once (a batch of proposals, one fsync for many appends). Links stay across
// traces: empty traceparents and those of the parent's own trace are skipped
// (the parent already ties the span to that trace). BatchSize defaults to
// len(traceparents).
func (t *Tracer) StartLinked(ctx context.Context, name string, a Attrs, traceparents []string) (context.Context, trace.Span) {
	if !t.Enabled() {
		return ctx, noop.Span{}
	}
	var links []trace.Link
	own := trace.SpanContextFromContext(ctx).TraceID()
	for _, tp := range traceparents {
		if l, ok := LinkFrom(tp); ok && l.SpanContext.TraceID() != own {
			links = append(links, l)
		}
	}
	if a.BatchSize == 0 {
		a.BatchSize = len(traceparents)
	}
	return t.start(ctx, name, a, links)
}

// StartRemoteAt is StartRemote for a span whose start is already past: a
// receiver's span started only when its answer is sent (so that a message the
// node ignores leaves no span), dated from the message's receipt.
func (t *Tracer) StartRemoteAt(ctx context.Context, traceparent, name string, a Attrs, start time.Time) (context.Context, trace.Span) {
	if !t.Enabled() {
		return ctx, noop.Span{}
	}
	return t.start(Extract(ctx, traceparent), name, a, nil, trace.WithTimestamp(start))
}

// start starts the span, then sets its attributes only if it records: a
// provider that records nothing (the global one before the application
// installs an SDK) costs no attribute building on the hot path. Samplers
// therefore see the span's name, kind and links, not its attributes.
func (t *Tracer) start(ctx context.Context, name string, a Attrs, links []trace.Link, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	var ctx2 context.Context
	var span trace.Span
	switch {
	case len(opts) > 0:
		opts = append(opts, trace.WithSpanKind(kindOf(name)), trace.WithLinks(links...))
		ctx2, span = t.tracer.Start(ctx, name, opts...)
	case len(links) > 0:
		ctx2, span = t.tracer.Start(ctx, name, trace.WithSpanKind(kindOf(name)), trace.WithLinks(links...))
	default:
		ctx2, span = t.tracer.Start(ctx, name, trace.WithSpanKind(kindOf(name)))
	}
	if span.IsRecording() {
		kvs := make([]attribute.KeyValue, 0, 8)
		kvs = append(kvs, AttrNodeID.Int64(int64(t.nodeID)))
		span.SetAttributes(a.appendTo(kvs)...)
	}
	return ctx2, span
}

// End ends span, first recording err (when not nil) as an exception event and an
// Error status.
func End(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
