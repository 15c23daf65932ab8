// Package remote is the protoactor remote assist: a [transport.Transport]
// over gRPC, with TLS or mutual TLS.
//
// A [Host] is one protoactor remote: one gRPC server on one listen address
// and the outbound connections, in an actor system of its own or the
// application's. It serves the transports of any number of local nodes,
// of one or several clusters ([Host.Join]; [Host.HostJoin] is the same in
// the form actors.HostConfig.Join takes); [New] is a Host with one node.
// Each node has a receiver actor named "<ReceiverPrefix>-<cluster id>-<node
// id>" (see [ReceiverName]). Send wraps the Raft message in the single
// registered wire type, [messages.Envelope], and sends it to the peer's
// receiver at the peer's host:port; protoactor's endpoint writer for that
// address batches it onto a gRPC stream. The receiver decodes the payload
// with a size limit and hands it to the Handler. The node actor lives in
// the application's actor system; the Handler is the bridge.
//
// Decisions worth knowing, each a sharp edge of the pinned protoactor
// version or of gRPC:
//
//   - RPCs: the transport uses only protoactor's Receive stream. Every
//     unary RPC (protoactor implements ListProcesses and
//     GetProcessDiagnostics as panic("implement me"), which crashed the
//     process) and every other stream is refused by gRPC interceptors with
//     Unimplemented; a panic in the stream handler's goroutine is recovered
//     as a last line. Counted: Stats.RefusedCalls, Stats.RecoveredPanics.
//   - Memory: gRPC's receive limit is MaxMessageSize plus 64 KiB of batch
//     framing; gRPC refuses a larger message from its length prefix, before
//     reading it, and the stream ends (Stats.DroppedOversized). Outbound
//     batches are split to stay under the peer's limit. A compressed
//     stream (gzip is registered in any binary linking the OTLP exporter)
//     is refused before a message is read, so nothing inflates
//     (Stats.RefusedCompressed). The server also allows 16 streams per
//     connection, 10 s for a connection's handshakes and 64 KiB of
//     headers (gRPC's defaults: unlimited, 120 s, 16 MiB).
//   - Wire safety: protoactor crashes on an unregistered type or a bad
//     index in a batch. A gRPC stream interceptor filters every inbound
//     batch so that only Envelopes addressed to a local receiver reach
//     protoactor; everything else is counted as undecodable.
//   - Identity: under mutual TLS each inbound stream is bound to the node
//     identities of the peer's certificate (by default its URI SANs
//     flotilla://<cluster-id>/<node-id>, see [URIIdentity] and
//     Config.PeerIdentity): a certificate without one is refused
//     (Stats.RefusedIdentity), and a message whose cluster id and sender
//     are not one of them is dropped (Stats.DroppedForged), so one node's
//     certificate cannot speak for another node. [CA] issues such
//     certificates. With plaintext or DisableClientAuth nothing binds the
//     sender: the gate's membership check is all there is.
//   - Logging: every refusal is logged at Warn, at most once a minute per
//     peer and cause, so a hostile peer cannot flood the log.
//   - TLS: CAFile, CertFile and KeyFile configure both sides: the gRPC
//     server (grpc.Creds, requiring and verifying client certificates
//     unless DisableClientAuth) and the dialer (verifying the peer's server
//     certificate and presenting ours). Plaintext needs Insecure: true;
//     protoactor's WithDialOptions replaces its insecure default, so the
//     transport always sets credentials explicitly. Refused handshakes are
//     counted (Stats.RejectedHandshakes) and logged. The files are
//     reloaded when a handshake finds one changed (or on
//     Host.ReloadCertificates): rotated certificates and CAs are used by
//     new connections without a restart.
//   - Listening: protoactor's Start panics when it cannot listen; NewHost
//     pre-checks the address and recovers, returning an error. Binding
//     every interface needs AdvertisedAddr.
//   - Connections and reconnects: protoactor connects lazily on the first
//     Send to an address, tries ConnectAttempts times (waiting 2 s after
//     each failure) and then drops what was queued. A lost connection
//     publishes EndpointTerminatedEvent and the next Send reconnects, so a
//     peer that restarts at the same address is reached again without
//     restarting this node. PeerStatus reports the state per peer from
//     EndpointConnectedEvent / EndpointTerminatedEvent, the last dial or
//     TLS error, and messages dead-lettered for the peer. The queue of
//     messages for a peer starts at 1,024 slots and doubles with what
//     waits (protoactor's default starts at 1 M slots: 16 MiB per peer).
//   - One Host per process: protoactor's Remote.Start writes a gRPC global
//     (grpclog.SetLoggerV2) without synchronisation while other gRPC
//     goroutines read it, so two Hosts in one process are a data race
//     under -race (Starts are serialised, which is all that can be done
//     from outside). One Host serves every node of the process, which has
//     no race; this package's tests that start a Host in-process run it in
//     a child process of their own, and its multi-process tests run each
//     node in a child process.
//   - Close does not use protoactor's graceful Shutdown, which can panic
//     in a connection goroutine (a nil map, unrecoverable). It tears every
//     outbound endpoint down through the endpoint manager, stops the gRPC
//     server (peers see a lost connection) and stops the actor system it
//     owns.
package remote
