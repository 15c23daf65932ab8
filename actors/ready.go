package actors

import (
	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors/raft"
	"github.com/flotilla-raft/flotilla/cluster/transport"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
	"github.com/flotilla-raft/flotilla/tracing"
)

// Feeding the core and handing out its Ready: inbound messages through
// the gate into Step, the Ready's writes to the persister, its messages to
// the transport (a leader's through each peer's replicator), its committed
// entries to the applier, its events to events.go.

// scheduleFlush queues one flushNode, which hands out the core's Ready.
func (n *node) scheduleFlush(ctx actor.Context) {
	if !n.life.flushQueued {
		n.life.flushQueued = true
		// Everything already in the mailbox is handled before this, so one
		// Ready covers all of it (batching without a timer).
		ctx.Send(n.self, &flushNode{})
	}
}

// processReady hands the core's outputs to the children and the transport.
func (n *node) processReady(ctx actor.Context) {
	if n.r == nil || n.life.failed {
		return
	}
	for n.r.HasReady() {
		rd := n.r.Ready()
		if rd.StorageError != nil {
			// The core cannot read its log: stop, never answer from a
			// log that could not be read (the rest of rd is dropped, as
			// in a crash).
			n.failStop(ctx, "reading the log failed", rd.StorageError)
			return
		}
		n.noteClientSeqs(rd.Snapshot, rd.Entries)
		if rd.PersistID != 0 {
			req := persistRequest{id: rd.PersistID, trace: n.obs.tr.takePersistParent(),
				u: persistence.Update{HardState: rd.HardState, Snapshot: rd.Snapshot, Entries: rd.Entries}}
			if p := n.kids.inline; p != nil {
				p.buf = append(p.buf, req)
				if _, err := p.write(); err != nil {
					n.failStop(ctx, "storage failure", err)
					return
				}
				n.r.Persisted(rd.PersistID)
			} else {
				ctx.Send(n.kids.persister, &req)
			}
		}
		// A won election's span ends before the winner's first message
		// leaves: a peer hearing it may end the span the election is a
		// child of (raft.transfer).
		traced := n.traceUntilWon(rd.Events)
		for _, m := range rd.Messages {
			n.send(ctx, m)
		}
		if rd.Snapshot != nil {
			n.proposalsCovered(ctx, rd.Snapshot.GetMetadata().GetIndex())
		}
		if rd.Snapshot != nil || len(rd.CommittedEntries) > 0 {
			n.committedBytes(rd.Snapshot != nil, rd.CommittedEntries)
			b := &applyBatch{snapshot: rd.Snapshot, entries: rd.CommittedEntries, trace: n.applyTrace(rd.CommittedEntries, rd.Snapshot)}
			b.waiters = b.one[:0]
			for _, e := range rd.CommittedEntries {
				if w, ok := n.pend.proposals[e.Index]; ok {
					b.waiters = append(b.waiters, indexedWaiter{index: e.Index, w: w})
					delete(n.pend.proposals, e.Index)
				}
			}
			if len(rd.CommittedEntries) > 0 {
				n.handedToApplier(rd.CommittedEntries[len(rd.CommittedEntries)-1].Index, len(b.waiters))
			}
			ctx.Send(n.kids.applier, b)
		}
		for _, m := range rd.SnapshotTransfers {
			n.snapshotTransfer(ctx, m)
		}
		for _, rs := range rd.ReadStates {
			n.readIndexKnown(rs)
		}
		for i, ev := range rd.Events {
			n.onEvent(ctx, ev, i < traced)
		}
	}
	n.traceCommits()
	n.obs.metrics.afterReady(n.r)
	n.serveReads(ctx)
	n.adjustTickRate()
}

// inbound feeds a message from the transport to the core: through the
// gate (cluster id, addressee, and membership as the core's Admits
// decides it), a snapshot's data checked first. The gate is where the node decides on the cluster id and the
// addressee: it runs before any work (snapshot check, tracing, the core)
// and counts each drop by cause (Status.Dropped, the drop metric). The
// core's Step refuses such a message too, as a guard on its own input
// (the simulator drives it without a gate); from here it never fires.
func (n *node) inbound(ctx actor.Context, m *messages.Message) { n.stepInbound(ctx, m, false) }

// stepInbound is inbound for a message from the transport, or (chunked)
// for a snapshot the receiver assembled from chunks.
func (n *node) stepInbound(ctx actor.Context, m *messages.Message, chunked bool) {
	if n.life.paused || n.life.stop != nil && n.life.stop.draining || n.life.failed {
		n.inbox.drops.Paused++
		n.obs.metrics.drop(m, tracing.DropPaused)
		return
	}
	if !n.obs.metrics.admit(n.inbox.gate, m) {
		// A non-member campaigning is told so (it learns its removal).
		n.r.RefuseNonMember(m)
		n.scheduleFlush(ctx)
		return
	}
	// A snapshot received in chunks into the store's files comes without
	// data: its checksum was checked as it arrived, its framing is read
	// at restore.
	if m.Type == messages.MessageType_MSG_SNAPSHOT && !(chunked && len(m.GetSnapshot().GetData()) == 0) {
		if err := checkSnapshot(n.cfg.StateMachine, m.GetSnapshot()); err != nil {
			n.inbox.drops.CorruptSnapshot++
			n.log.Warn("snapshot refused", "from", m.From, "index", m.GetSnapshot().GetMetadata().GetIndex(), "err", err)
			return
		}
	}
	n.traceInbound(m)
	if err := n.r.Step(m); err != nil {
		n.inbox.drops.Invalid++
		n.obs.metrics.drop(m, tracing.DropInvalid)
		n.log.Warn("message refused", "from", m.From, "type", m.Type, "err", err)
		return
	}
	n.scheduleFlush(ctx)
}

// send hands m to the transport: leader traffic through the peer's
// replicator, the rest directly.
func (n *node) send(ctx actor.Context, m *messages.Message) {
	if n.lazySnapshot(ctx, m) {
		return
	}
	n.traceOutbound(m)
	n.obs.metrics.sent(m)
	peer := transport.Peer{ID: m.To, Address: n.r.Address(m.To)}
	if n.r.Role() == raft.Leader {
		switch m.Type {
		case messages.MessageType_MSG_APPEND, messages.MessageType_MSG_SNAPSHOT, messages.MessageType_MSG_HEARTBEAT:
			ctx.Send(n.replicator(ctx, peer), m)
			return
		}
	}
	if err := n.cfg.Transport.Send(peer, m); err != nil {
		n.log.Debug("send failed", "to", m.To, "type", m.Type, "err", err)
		n.obs.metrics.drop(m, tracing.DropSendFailed)
	}
}

func (n *node) replicator(ctx actor.Context, peer transport.Peer) *actor.PID {
	if pid, ok := n.kids.replicators[peer.ID]; ok {
		return pid
	}
	tr, opts := n.cfg.Transport, n.cfg.chunkOptions()
	var open func(*messages.SnapshotMetadata) (persistence.SnapshotData, error)
	if n.snap.files != nil {
		open = n.openSnapshot
	}
	pid := ctx.Spawn(n.sh.pool.props(func() actor.Actor {
		return &replicator{peer: peer, tr: tr, log: n.log, metrics: n.obs.metrics, opts: opts, open: open}
	}))
	n.kids.replicators[peer.ID] = pid
	if n.life.exiting {
		ctx.Stop(pid) // the actor already stopped its children: stop this one too
	}
	return pid
}

func (n *node) stopReplicators(ctx actor.Context) {
	for id, pid := range n.kids.replicators {
		ctx.Stop(pid)
		delete(n.kids.replicators, id)
	}
	clear(n.snap.sends)
}

// appliedUpTo handles the applier's progress: reads waiting for it are
// served, and a snapshot may be due.
func (n *node) appliedUpTo(ctx actor.Context, index uint64) {
	n.applied = max(n.applied, index)
	n.appliedWaiters(index)
	n.traceApplied(index)
	n.obs.metrics.appliedUpTo(index)
	n.serveReads(ctx)
	n.maybeSnapshot(ctx)
}
