// Package remote is the protoactor remote assist: a [transport.Transport]
// over gRPC, with TLS or mutual TLS.
//
// Each node runs, inside a protoactor actor system owned by the transport,
// a receiver actor named "<ReceiverPrefix>-<node id>" (see [ReceiverName]).
// Send wraps the Raft message in the single registered wire type,
// [messages.Envelope], and sends it to the receiver's PID at the peer's
// host:port; protoactor's endpoint writer for that address batches it onto
// a gRPC stream. The receiver decodes the payload with a size limit and
// hands it to the Handler. The node actor lives in the application's own
// actor system; the Handler is the bridge.
//
// Decisions worth knowing, each a sharp edge of the pinned protoactor
// version:
//
//   - Wire safety: protoactor crashes on an unregistered type or a bad
//     index in a batch. A gRPC stream interceptor filters every inbound
//     batch so that only Envelopes addressed to the receiver reach
//     protoactor; everything else is counted as undecodable.
//   - TLS: CAFile, CertFile and KeyFile configure both sides: the gRPC
//     server (grpc.Creds, requiring and verifying client certificates
//     unless DisableClientAuth) and the dialer (verifying the peer's server
//     certificate and presenting ours). Plaintext needs Insecure: true;
//     protoactor's WithDialOptions replaces its insecure default, so the
//     transport always sets credentials explicitly. Refused handshakes are
//     counted (Stats.RejectedHandshakes) and logged.
//   - Listening: protoactor's Start panics when it cannot listen; New
//     pre-checks the address and recovers, returning an error. Binding
//     every interface needs AdvertisedAddr.
//   - Connections and reconnects: protoactor connects lazily on the first
//     Send to an address, tries ConnectAttempts times (waiting 2 s after
//     each failure) and then drops what was queued. A lost connection
//     publishes EndpointTerminatedEvent and the next Send reconnects, so a
//     peer that restarts at the same address is reached again without
//     restarting this node. PeerStatus reports the state per peer from
//     EndpointConnectedEvent / EndpointTerminatedEvent, the last dial or
//     TLS error, and messages dead-lettered for the peer.
//   - gRPC's 4 MiB receive limit is raised (protoactor batches many
//     envelopes into one gRPC message); the per-message limit is
//     MaxMessageSize, checked on Send and on receipt.
//   - One transport per process: protoactor's Remote.Start writes a gRPC
//     global (grpclog.SetLoggerV2) without synchronisation while other
//     gRPC goroutines read it. Several remote transports in one process
//     work, but are a data race under -race; this package's multi-node
//     tests therefore run each node in a child process.
//   - Close does not use protoactor's graceful Shutdown, which can panic
//     in a connection goroutine (a nil map, unrecoverable). It tears every
//     outbound endpoint down through the endpoint manager, stops the gRPC
//     server (peers see a lost connection) and stops the actor system.
package remote
