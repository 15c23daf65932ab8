// Package transport is the contract between a Raft node and the network.
//
// A [Transport] moves [messages.Message] values between the members of one
// Raft cluster. The contract is deliberately the weakest one Raft needs, so
// that anything from a gRPC stream to a message queue can serve:
//
//   - one-way: there is no request/response; answers are ordinary messages;
//   - asynchronous: [Transport.Send] queues and returns, it never waits for
//     the network;
//   - at-most-once, unordered: a message may be lost, duplicated or
//     delivered out of order, and Raft copes with all three;
//   - a Send error only means "not queued" (closed, unknown peer, invalid
//     address, oversized); a nil error is never a delivery guarantee.
//
// Inbound messages are handed to a [Handler] that must not block: the node
// actor's adapter just performs a non-blocking actor Send. Every transport
// runs what it receives through [Codec] (envelope, version and size checks)
// and the node runs it through a [Gate] (cluster id, membership, addressee),
// so messages from other clusters, from non-members (except a leader's
// append, heartbeat and snapshot, which Raft must accept from a leader not
// yet in its configuration), and undecodable or oversized input are dropped
// and counted, never a crash.
//
// Extra capabilities are optional interfaces, in the style of
// database/sql/driver: [PeerStatuser] for per-peer connection state and
// [StatsReporter] for drop counters. Callers test for them with a type
// assertion.
//
// Implementations ("assists"): [github.com/flotilla-raft/flotilla/cluster/transport/inmem]
// (in-memory, with fault injection, for tests and simulations) and
// [github.com/flotilla-raft/flotilla/cluster/transport/remote] (protoactor
// remote over gRPC with TLS). Any implementation proves itself with the
// conformance suite in
// [github.com/flotilla-raft/flotilla/cluster/transport/transporttest]; the
// package example test shows a user transport over plain TCP in a few
// dozen lines.
package transport
