package remote

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/flotilla-raft/flotilla/cluster/transport"
	"github.com/flotilla-raft/flotilla/messages"
)

// Transport is the protoactor remote transport of one node, on a Host
// (its own, from New, or a shared one, from Host.Join). It implements
// transport.Transport, transport.PeerStatuser and transport.StatsReporter.
type Transport struct {
	h         *Host
	ownsHost  bool // New: Close closes the host
	clusterID uint64
	id        uint64
	name      string // receiver actor name
	codec     transport.Codec
	lc        transport.Lifecycle
	receiver  *actor.PID

	mu     sync.Mutex
	ids    map[uint64]string // peer id → last address used
	sentTo map[uint64]uint64 // peer id → messages queued

	sent, sendErrs, received, oversized, late, unexpected atomic.Uint64
}

var (
	_ transport.Transport     = (*Transport)(nil)
	_ transport.PeerStatuser  = (*Transport)(nil)
	_ transport.StatsReporter = (*Transport)(nil)
)

// New validates cfg, loads the TLS files, starts a Host of its own
// listening on cfg.ListenAddr and joins node cfg.ID of cluster
// cfg.ClusterID to it. Inbound messages are counted as DroppedClosed until
// Start. Close closes the host. To run several nodes in one process, use
// one Host and Join (see Host).
func New(cfg Config) (*Transport, error) {
	cfg.ensureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	h, err := NewHost(cfg, nil)
	if err != nil {
		return nil, err
	}
	t, err := h.Join(cfg.ClusterID, cfg.ID)
	if err != nil {
		h.Close()
		return nil, err
	}
	t.ownsHost = true
	return t, nil
}

// Addr returns the address peers use to reach this node (the host's).
func (t *Transport) Addr() string { return t.h.Addr() }

// ID returns the local node id.
func (t *Transport) ID() uint64 { return t.id }

// Host returns the host the transport runs on.
func (t *Transport) Host() *Host { return t.h }

// ReloadCertificates reloads the host's TLS files now (see
// Host.ReloadCertificates).
func (t *Transport) ReloadCertificates() error { return t.h.ReloadCertificates() }

// Start implements transport.Transport.
func (t *Transport) Start(_ context.Context, h transport.Handler) error {
	return t.lc.Start(h)
}

// Send implements transport.Transport: it wraps m in an Envelope and hands
// it to protoactor, which queues it for the peer's endpoint writer. The
// peer's receiver is addressed by this transport's cluster id and to.ID.
func (t *Transport) Send(to transport.Peer, m *messages.Message) error {
	err := t.send(to, m)
	if err != nil {
		t.sendErrs.Add(1)
		return err
	}
	t.sent.Add(1)
	return nil
}

func (t *Transport) send(to transport.Peer, m *messages.Message) error {
	if t.lc.Closed() {
		return transport.ErrClosed
	}
	env, err := t.codec.Wrap(m)
	if err != nil {
		return err
	}
	if h, p, err := splitHostPort(to.Address); err != nil || isWildcard(h) || p == 0 {
		return fmt.Errorf("%w: peer %d at %q", transport.ErrInvalidAddress, to.ID, to.Address)
	}
	t.h.sendMu.RLock()
	defer t.h.sendMu.RUnlock()
	if t.lc.Closed() {
		return transport.ErrClosed
	}
	t.mu.Lock()
	t.ids[to.ID] = to.Address
	t.sentTo[to.ID]++
	t.mu.Unlock()
	t.h.system.Root.Send(actor.NewPID(to.Address, ReceiverName(t.h.cfg.ReceiverPrefix, t.clusterID, to.ID)), env)
	return nil
}

// receive is the receiver actor: it decodes envelopes and delivers them.
func (t *Transport) receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *messages.Envelope:
		t.inbound(msg)
	case actor.SystemMessage, actor.AutoReceiveMessage:
	default:
		t.unexpected.Add(1)
	}
}

func (t *Transport) inbound(e *messages.Envelope) {
	m, err := t.codec.Unwrap(e)
	switch {
	case err == nil:
	case isOversized(err):
		t.oversized.Add(1)
		return
	default:
		t.h.undecodable.Add(1)
		return
	}
	if t.lc.Deliver(m) {
		t.received.Add(1)
	} else {
		t.late.Add(1)
	}
}

// Close implements transport.Transport: it stops delivering and removes
// the node from its host (stopping its receiver); when the transport came
// from New, it also closes the host.
func (t *Transport) Close() error {
	if !t.lc.Close() {
		return nil
	}
	t.h.leave(t)
	if t.receiver != nil {
		t.h.system.Root.Stop(t.receiver)
	}
	if t.ownsHost {
		return t.h.Close()
	}
	return nil
}

// Stats implements transport.StatsReporter. Sent, SendErrors, Received,
// DroppedClosed, DroppedUnexpected and the codec's DroppedOversized are
// this node's; refusals that happen before a message is routed to a node
// (RejectedHandshakes, RefusedCalls, RefusedCompressed, RefusedIdentity,
// DroppedForged, RecoveredPanics, undecodable batch entries, over-limit
// gRPC messages) are the host's, reported by each of its transports, and
// so are BatchesSent, BatchedMessages and SharedBatches: protoactor's endpoint writer
// puts every envelope waiting for one peer address, whichever node or
// group sent it, into one gRPC message (split only past MaxMessageSize).
func (t *Transport) Stats() transport.Stats {
	h := t.h
	return transport.Stats{
		Sent:               t.sent.Load(),
		SendErrors:         t.sendErrs.Load(),
		Received:           t.received.Load(),
		DroppedUndecodable: h.undecodable.Load(),
		DroppedOversized:   t.oversized.Load() + h.oversized.Load(),
		DroppedClosed:      t.late.Load(),
		DroppedUnexpected:  t.unexpected.Load(),
		RejectedHandshakes: h.rejected.Load(),
		RefusedCalls:       h.refusedCalls.Load(),
		RefusedCompressed:  h.refusedCompression.Load(),
		RefusedIdentity:    h.refusedIdentity.Load(),
		DroppedForged:      h.forged.Load(),
		RecoveredPanics:    h.recovered.Load(),
		BatchesSent:        h.batches.Load(),
		BatchedMessages:    h.batched.Load(),
		SharedBatches:      h.shared.Load(),
	}
}

// PeerStatus implements transport.PeerStatuser for every peer sent to.
// State, Since, LastError and Dropped (messages protoactor dead-lettered
// because the connection to the peer's address was not established) are
// per address, shared by the host's nodes; Sent is this node's.
func (t *Transport) PeerStatus() map[uint64]transport.PeerState {
	t.mu.Lock()
	ids := make(map[uint64]string, len(t.ids))
	sent := make(map[uint64]uint64, len(t.ids))
	for id, a := range t.ids {
		ids[id], sent[id] = a, t.sentTo[id]
	}
	t.mu.Unlock()
	t.h.mu.Lock()
	defer t.h.mu.Unlock()
	out := make(map[uint64]transport.PeerState, len(ids))
	for id, addr := range ids {
		p := t.h.peer(addr)
		out[id] = transport.PeerState{ID: id, Address: addr, State: p.state, Since: p.since,
			LastError: p.lastErr, Sent: sent[id], Dropped: p.dropped}
	}
	return out
}
