package transport

import (
	"context"
	"errors"
	"time"

	"github.com/flotilla-raft/flotilla/messages"
)

// Sentinel errors. Implementations wrap them with %w; test with errors.Is.
var (
	// ErrClosed: Send or Start after Close.
	ErrClosed = errors.New("transport: closed")
	// ErrOversized: the encoded message is larger than the configured limit.
	ErrOversized = errors.New("transport: message too large")
	// ErrUnknownPeer: the transport has no route to the peer id.
	ErrUnknownPeer = errors.New("transport: unknown peer")
	// ErrInvalidAddress: the peer address cannot be used (for example not
	// host:port).
	ErrInvalidAddress = errors.New("transport: invalid peer address")
	// ErrInvalidMessage: Send was given a nil message.
	ErrInvalidMessage = errors.New("transport: invalid message")
	// ErrDecode: inbound bytes are not a valid envelope or Raft message.
	ErrDecode = errors.New("transport: undecodable message")
	// ErrVersion: the envelope has an unsupported version. It also matches
	// ErrDecode.
	ErrVersion = errors.New("transport: unsupported envelope version")
	// ErrAlreadyStarted: Start was called twice.
	ErrAlreadyStarted = errors.New("transport: already started")
	// ErrNilHandler: Start was given a nil handler.
	ErrNilHandler = errors.New("transport: nil handler")
)

// Peer names a member of the cluster: its Raft node id and its transport
// address (host:port for network transports; transports that route by id,
// like inmem, ignore it).
type Peer struct {
	ID      uint64
	Address string
}

// Handler receives inbound messages addressed to the local node.
//
// It must not block and must be safe to call from several goroutines at
// once (some transports deliver from one goroutine per connection). The
// message is owned by the receiver and must not be mutated by anyone.
type Handler func(m *messages.Message)

// Transport sends Raft messages to peers and delivers inbound ones.
// All methods are safe for concurrent use.
type Transport interface {
	// Start begins delivering inbound messages addressed to the local node
	// to h. Called once; a second call returns ErrAlreadyStarted.
	Start(ctx context.Context, h Handler) error
	// Send queues m for peer `to` and returns without waiting for the
	// network. m is immutable and may be retained. An error means the
	// message was not queued (ErrClosed, ErrUnknownPeer, ErrInvalidAddress,
	// ErrOversized, ErrInvalidMessage); it is never a delivery guarantee.
	Send(to Peer, m *messages.Message) error
	// Close stops sending and delivering: it waits for running Handler
	// calls to return, and no Handler call starts after it returns.
	// Idempotent: later calls return nil. A Handler must not call Close.
	Close() error
}

// ConnState is a transport's view of its connection to a peer.
type ConnState int

const (
	// ConnUnknown: nothing sent to or heard about the peer yet.
	ConnUnknown ConnState = iota
	// ConnConnected: the last connection attempt succeeded and has not been
	// lost since.
	ConnConnected
	// ConnDisconnected: the connection failed or was lost. The transport
	// reconnects on the next Send.
	ConnDisconnected
)

func (s ConnState) String() string {
	switch s {
	case ConnConnected:
		return "connected"
	case ConnDisconnected:
		return "disconnected"
	default:
		return "unknown"
	}
}

// PeerState is the status of one peer, as reported by a PeerStatuser.
type PeerState struct {
	ID      uint64
	Address string
	State   ConnState
	// Since is when State last changed (zero if never).
	Since time.Time
	// LastError is the last connection or send error, if any.
	LastError string
	// Sent counts messages queued for the peer (Send returned nil).
	Sent uint64
	// Dropped counts queued messages the transport knows it discarded
	// (connection failed, peer gone, partition, ...).
	Dropped uint64
}

// PeerStatuser is implemented by transports that track per-peer state.
type PeerStatuser interface {
	// PeerStatus returns a snapshot keyed by peer id; the caller owns it.
	PeerStatus() map[uint64]PeerState
}

// Stats counts what a transport refused or discarded. Counters only grow.
type Stats struct {
	// Sent: Send calls that returned nil.
	Sent uint64
	// SendErrors: Send calls that returned an error (oversized, closed, ...).
	SendErrors uint64
	// Received: inbound messages decoded and handed to the Handler.
	Received uint64
	// DroppedUndecodable: inbound input that was not a valid envelope or
	// Raft message (includes unsupported versions).
	DroppedUndecodable uint64
	// DroppedOversized: inbound input over the size limit.
	DroppedOversized uint64
	// DroppedClosed: inbound messages that arrived after Close, or before
	// Start.
	DroppedClosed uint64
	// DroppedUnexpected: inbound values of the wrong type (not an Envelope).
	DroppedUnexpected uint64
	// RejectedHandshakes: inbound connections refused during the TLS
	// handshake (untrusted or missing certificate).
	RejectedHandshakes uint64
	// RefusedCalls: inbound RPCs the transport does not serve (network
	// transports that expose an RPC service).
	RefusedCalls uint64
	// RefusedCompressed: inbound streams refused because they were
	// compressed (decompression could inflate a small input).
	RefusedCompressed uint64
	// RefusedIdentity: inbound connections or streams refused because the
	// peer's certificate names no node identity.
	RefusedIdentity uint64
	// DroppedForged: inbound messages whose sender or cluster id did not
	// match the identity in the sender's certificate.
	DroppedForged uint64
	// RecoveredPanics: panics the transport recovered while handling input
	// (a defect, counted rather than crashing the process).
	RecoveredPanics uint64
	// BatchesSent: transport batches written to peers (for the remote
	// transport, gRPC messages each carrying a batch of envelopes; it
	// counts the host's, shared by every node and group on it); 0 where a
	// transport does not batch.
	BatchesSent uint64
	// BatchedMessages: messages those batches carried (the host's, like
	// BatchesSent). BatchedMessages / BatchesSent is the mean batch size:
	// messages of many groups to one peer process share a batch.
	BatchedMessages uint64
	// SharedBatches: batches that carried messages for more than one
	// receiving node (of different groups, or different nodes of one
	// host): the batches that shared their peer's connection across nodes.
	SharedBatches uint64
}

// StatsReporter is implemented by transports that count drops.
type StatsReporter interface {
	Stats() Stats
}
