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
// A Raft message exchange is a client/server pair: the sender's span (kind client)
// lasts from the send until the answer arrives, the receiver's (kind server) from
// the receipt until it sends its answer, so in Jaeger the receiver's bar lies
// inside the sender's. A request from the application (Propose, Read, ChangeConfig,
// TransferLeadership) is a server span that lasts until it is answered. Attributes
// that describe an outcome (raft.result, and an election's raft.role and raft.term)
// are set when the span ends. One step that handles many causes (an AppendEntries
// carrying many proposals, one fsync for many appends) is the child of its first
// cause and carries span links to the others (Jaeger shows them as FOLLOWS_FROM);
// links only ever point to other traces. The node actor records these trees
// (actors/trace*.go):
//
//	raft.propose                server, leader: until the proposer is answered
//	├ raft.leader.append        internal, leader
//	├ raft.persist              internal, leader
//	├ raft.replicate            client, leader → peer: until the peer acknowledges
//	│ └ raft.follower.append    server, follower: until it sends the acknowledgement
//	│   ├ raft.persist          internal, follower
//	│   └ raft.apply            internal, follower, once committed
//	├ raft.commit               internal, leader
//	└ raft.apply                internal, leader
//
//	raft.election               internal, (pre-)candidate: until won or lost
//	├ raft.prevote              client, pre-candidate → peer: until answered
//	│ └ raft.vote.response      server, voter: until it answers
//	└ raft.vote                 client, candidate → peer: until answered
//	  └ raft.vote.response      server, voter: from the request's receipt to the answer
//
//	raft.read                   server: until the read is answered
//	├ raft.read.index           internal: the ReadIndex round
//	│ └ raft.read.index.serve   server, leader: for a read on a follower
//	└ raft.read.wait            internal: until the read index is applied
//
//	raft.snapshot.take          internal: the state machine writes a snapshot
//	raft.snapshot.send          client, leader → peer: until the peer answers
//	└ raft.snapshot.install     server, follower: until it answers
//	  ├ raft.persist            internal, follower
//	  └ raft.snapshot.restore   internal, follower
//
//	raft.config.change          server, leader: until the final configuration commits
//	├ raft.replicate … raft.commit, raft.apply   (of the configuration entry, as above)
//	└ raft.config.leave_joint   internal, leader: joint commit → final commit
//
//	raft.transfer               server, leader: until answered
//	└ raft.election             the transferee's, through the TimeoutNow message
//
// A follower's acknowledgement that the quorum did not need may arrive after the
// proposer was answered: that raft.replicate ends after raft.propose (on the same
// node, so Jaeger does not adjust its clock). Heartbeats are never traced: a leader
// sends one per peer every heartbeat interval and they carry no entries.
//
// # Resource: one service name per node
//
// Jaeger colours and names rows by service. Give each node its own service name
// (recommended: OTEL_SERVICE_NAME=flotilla-node-<id>, or otlp.Options.ServiceName),
// so a trace reads "Services 3" with one colour per node rather than one service
// whose nodes differ only in process tags; otlp.Setup also records
// service.instance.id ("n<id>") and raft.node_id in the resource, and every span
// carries raft.node_id.
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
//
// # Metrics
//
// [Instruments] lists every metric a node records through actors.Config.MeterProvider,
// with its unit and attributes (names in metrics.go): proposal commit and apply
// latency, group-commit (fsync) latency and entries, entries per AppendEntries,
// messages sent, received and dropped (by raft.msg.type and raft.drop.cause), leader
// changes, elections started and won, and gauges of term, commit and applied index,
// apply lag and the leader's per-peer match lag; snapshot sizes and durations; read
// latency. Every measurement carries raft.node_id.
//
// [HostInstruments] lists what an actors.Host records through
// HostConfig.MeterProvider, each measurement with raft.host: gauges of its
// groups and active groups, a counter of its shared persister's fsyncs (their
// rate is fsyncs per second), histograms of groups and entries per fsync and of
// the fsync's duration.
package tracing
