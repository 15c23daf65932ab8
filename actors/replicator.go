package actors

import (
	"log/slog"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/cluster/transport"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/tracing"
)

// replicator hands the leader's traffic for one peer to the transport, off
// the node actor. Flow control (the in-flight window, probe and replicate
// modes) is decided by the core; the replicator only sends.
type replicator struct {
	peer    transport.Peer
	tr      transport.Transport
	log     *slog.Logger
	metrics *nodeMetrics
}

func (r *replicator) Receive(ctx actor.Context) {
	if m, ok := ctx.Message().(*messages.Message); ok {
		if err := r.tr.Send(r.peer, m); err != nil {
			r.log.Debug("send failed", "to", r.peer.ID, "type", m.Type, "err", err)
			r.metrics.drop(m, tracing.DropSendFailed)
		}
	}
}
