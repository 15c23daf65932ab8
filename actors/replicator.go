package actors

import (
	"log/slog"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/scheduler"
	"github.com/flotilla-raft/flotilla/cluster/transport"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
	"github.com/flotilla-raft/flotilla/tracing"
)

// replicator hands the leader's traffic for one peer to the transport, off
// the node actor. Flow control of the log (the in-flight window, probe and
// replicate modes) is decided by the core; the replicator only sends. A
// snapshot the core hands out for the peer (MSG_SNAPSHOT) it streams in
// chunks, with its own window of unacknowledged bytes (snapshotsend.go).
type replicator struct {
	peer    transport.Peer
	tr      transport.Transport
	log     *slog.Logger
	metrics *nodeMetrics
	opts    chunkOptions
	// open opens the data of a snapshot the core hands out without it
	// (the store keeps snapshot files); nil: the data is in the message.
	open func(*messages.SnapshotMetadata) (persistence.SnapshotData, error)
	// xfer is the snapshot being streamed to the peer; nil if none.
	// ended is the last one that ended (its data closed), whose final
	// acknowledgement may come after the core moved on.
	xfer, ended *sendTransfer
	// bucket paces the snapshot bytes sent (Config.SnapshotBandwidth).
	bucket bucket
	// timerGen tags the pending timer; a timer of another generation is
	// stale (a cancelled timer can still fire).
	timerGen     uint64
	timerPending bool
	cancelTimer  scheduler.CancelFunc
}

func (r *replicator) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *messages.Message:
		switch m.Type {
		case messages.MessageType_MSG_SNAPSHOT:
			r.startTransfer(ctx, m)
			return
		case messages.MessageType_MSG_SNAPSHOT_ACK:
			r.onAck(ctx, m)
			return
		case messages.MessageType_MSG_APPEND:
			// The core sends appends only once the peer is out of
			// StateSnapshot: a transfer under way is over.
			r.endTransfer()
		}
		r.transmit(m)
	case *replicatorTimer:
		if m.gen == r.timerGen {
			r.timerPending = false
			r.onTimer(ctx)
		}
	case *actor.Stopped:
		r.disarm()
		r.endTransfer()
	}
}

// transmit hands m to the transport, counting a failure.
func (r *replicator) transmit(m *messages.Message) {
	if err := r.tr.Send(r.peer, m); err != nil {
		r.log.Debug("send failed", "to", r.peer.ID, "type", m.Type, "err", err)
		r.metrics.drop(m, tracing.DropSendFailed)
	}
}
