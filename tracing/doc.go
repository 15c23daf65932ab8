// Package tracing is Flotilla's OpenTelemetry wiring: the span and attribute names
// every part of the node uses, the propagation of W3C trace context inside Raft
// messages and log entries, a [Tracer] for the node actor, the state-transition
// [History] that GetHistory answers, and [RenderMermaid], which turns the spans of a
// test into a sequence diagram.
//
// This package, and so the actors package, imports the OpenTelemetry API only. The
// SDK and the OTLP/gRPC exporter live in [github.com/flotilla-raft/flotilla/tracing/otlp]
// (otlp.Setup), and the SDK-based test helpers in tracingtest: an application that
// does not export spans links neither.
//
// # Where tracing lives
//
// Tracing stays in the actor shell. The deterministic Raft core (actors/raft) never
// imports this package or OpenTelemetry: the node actor starts spans around the
// core's inputs and outputs, and carries trace context in the Raft messages it sends
// (messages.Message.TraceParent) and in the log entries it appends
// (messages.Entry.TraceParent), so any transport carries the context and any node
// can link its apply span back to the proposal.
//
// # Span shape
//
// One message causing one handling step is a parent/child pair; one step that
// handles many messages (an AppendEntries carrying many proposals, one fsync for many
// appends, applying a batch) starts its own span with span links to each cause
// (Jaeger shows them as FOLLOWS_FROM):
//
//	raft.propose            (leader, child of the client's context)
//	└ raft.leader.append    (child of propose, or linked to every proposal in a batch)
//	  ├ raft.persist        (linked to each append it made durable)
//	  └ raft.replicate      (one per peer; its traceparent travels in the message)
//	    └ raft.follower.append (follower, child of the message's traceparent)
//	      ├ raft.persist
//	      └ raft.ack        (its traceparent travels in the response)
//	raft.commit             (leader, linked to the acks that formed the quorum)
//	raft.apply              (every node, linked to the entries' traceparents)
//	raft.election → raft.prevote / raft.vote per peer → raft.vote.response
//
// Heartbeats are not traced unless [WithHeartbeats] is given.
//
// # Propagation
//
// [Inject], [Extract] and [LinkFrom] use propagation.TraceContext directly, never the
// global propagator (which does nothing until an application sets one). Only the
// traceparent is carried; tracestate is dropped. When tracing is off (no valid span
// in the context, or an empty traceparent) they return at once without allocating.
//
// # Costs when off
//
// A [Tracer] built on a noop TracerProvider (trace/noop), or a nil *Tracer, starts no
// spans, builds no attributes and allocates nothing. A Tracer built on the global
// provider while no SDK is installed costs a few small allocations per span.
package tracing
