package tracing

import (
	"context"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

const traceparentHeader = "traceparent"

// carrier holds one traceparent for propagation.TraceContext. Tracestate is dropped:
// Raft messages carry only the traceparent.
type carrier struct{ traceparent string }

func (c *carrier) Get(key string) string {
	if key == traceparentHeader {
		return c.traceparent
	}
	return ""
}

func (c *carrier) Set(key, value string) {
	if key == traceparentHeader {
		c.traceparent = value
	}
}

func (c *carrier) Keys() []string { return []string{traceparentHeader} }

// Inject returns the W3C traceparent of the span in ctx, for a Raft message's or
// entry's TraceParent field, or "" when ctx holds no valid span context (tracing
// off). The "" path does not allocate.
func Inject(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	var c carrier
	propagation.TraceContext{}.Inject(ctx, &c)
	return c.traceparent
}

// Extract returns ctx with the remote span context of traceparent as its span, so
// that a span started from it is a child of the sender's span. An empty or malformed
// traceparent (it comes from the network) returns ctx unchanged; "" does not
// allocate.
func Extract(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	c := carrier{traceparent: traceparent}
	return propagation.TraceContext{}.Extract(ctx, &c)
}

// SpanContextFrom parses traceparent. The result is invalid (IsValid false) for an
// empty or malformed traceparent.
func SpanContextFrom(traceparent string) trace.SpanContext {
	if traceparent == "" {
		return trace.SpanContext{}
	}
	return trace.SpanContextFromContext(Extract(context.Background(), traceparent))
}

// LinkFrom returns a span link to the span that traceparent names, and false when
// traceparent is empty or malformed. The "" path does not allocate.
func LinkFrom(traceparent string) (trace.Link, bool) {
	sc := SpanContextFrom(traceparent)
	if !sc.IsValid() {
		return trace.Link{}, false
	}
	return trace.Link{SpanContext: sc}, true
}
