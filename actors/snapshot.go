package actors

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors/raft"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
	"google.golang.org/protobuf/proto"
)

// Snapshots and compaction: automatic (Config.SnapshotEvery,
// SnapshotBytes) and requested (TakeSnapshot) snapshots, CompactTo, and
// the data of a snapshot a leader sends a lagging peer when the core holds
// none (lazySnapshot): read from the store's files, or made by the applier
// after a CompactTo. The requests and their answers are in api.go.
//
// With a store that keeps snapshot files (persistence.SnapshotFileStore),
// a snapshot is streamed by the applier into a file (snapshotToFile, while
// Apply goes on for a StreamSnapshotter); once the file is committed the
// core compacts with its metadata only (Raft.Compact with nil data: the
// core never holds snapshot bytes), and the persister saves that metadata,
// which makes the file the store's current snapshot. Without files the
// snapshot is a []byte the core keeps and the persister saves.

// maybeSnapshot takes a snapshot once Config.SnapshotEvery entries were
// applied after the core's latest snapshot (the one taken in this run,
// found in the store at start, or installed from the leader), or once
// the entries handed to the applier since then hold Config.SnapshotBytes
// of command data. Neither, with Config.NoAutoSnapshots or a
// StateMachine that implements neither Snapshotter nor StreamSnapshotter.
func (n *node) maybeSnapshot(ctx actor.Context) {
	if n.cfg.NoAutoSnapshots || n.snap.snapshotting {
		return
	}
	last := n.r.Snapshot().GetMetadata().GetIndex()
	if n.applied < last+n.cfg.SnapshotEvery && n.snap.bytesSince < n.cfg.SnapshotBytes {
		return
	}
	if !snapshotCapable(n.cfg.StateMachine) {
		return
	}
	n.requestSnapshot(ctx, nil)
}

// committedBytes counts the command bytes of committed entries handed to
// the applier (SnapshotBytes); a snapshot installed from the leader
// restarts the count.
func (n *node) committedBytes(installed bool, ents []*messages.Entry) {
	if installed {
		n.snap.bytesSince = 0
	}
	for _, e := range ents {
		n.snap.bytesSince += uint64(len(e.Data))
	}
}

// requestSnapshot asks the applier for a snapshot at the index the core
// handed it last: into a file when the store has them.
func (n *node) requestSnapshot(ctx actor.Context, reply *actor.PID) {
	if !snapshotCapable(n.cfg.StateMachine) {
		if reply != nil {
			ctx.Send(reply, &TakeSnapshotResponse{Err: errNotSnapshotter})
		}
		return
	}
	req := &snapshotRequest{reply: reply}
	if n.snap.files != nil && n.r.Applied() > 0 {
		// The applier has applied exactly this far when the request
		// reaches it: every batch before it is in its mailbox first.
		if md, err := n.r.SnapshotMetadata(n.r.Applied()); err == nil {
			req.md = md
		}
	}
	n.snap.snapshotting = true
	// The applier makes the snapshot after every batch sent before: it
	// covers exactly the bytes counted so far.
	n.snap.bytesAsked, n.snap.bytesSince = n.snap.bytesSince, 0
	ctx.Send(n.kids.applier, req)
}

func (n *node) snapshotMade(ctx actor.Context, msg *snapshotMade) {
	n.snap.snapshotting = false
	err := msg.err
	if err == nil && n.life.stop != nil && n.life.stop.draining {
		// The compaction would queue behind the drain, and reach a store
		// that the end of the stop releases: the log stays uncompacted.
		err = n.stoppedErr()
	}
	if err != nil {
		n.snap.bytesSince += n.snap.bytesAsked // not covered by a snapshot after all
	}
	if err == nil && msg.index > n.r.FirstIndex()-1 {
		// A snapshot in a file: the core keeps its metadata only.
		err = n.r.Compact(msg.index, msg.data, n.retention(msg.index))
		if err == nil {
			ctx.Send(n.kids.persister, &compactRequest{snapshot: n.r.Snapshot(), compactTo: n.r.FirstIndex() - 1})
			n.publish(ctx, &SnapshotTaken{NodeID: n.cfg.ID, Index: msg.index})
		}
	} else if err == nil && msg.file && msg.index == n.r.Snapshot().GetMetadata().GetIndex() {
		// The current snapshot written again (its file was found damaged,
		// see lazySnapshotDone) with no entry applied since: saving its
		// metadata makes the new file current.
		ctx.Send(n.kids.persister, &compactRequest{snapshot: n.r.Snapshot(), compactTo: n.r.FirstIndex() - 1})
		n.publish(ctx, &SnapshotTaken{NodeID: n.cfg.ID, Index: msg.index})
	}
	if msg.reply != nil {
		ctx.Send(msg.reply, &TakeSnapshotResponse{Index: msg.index, Err: err})
	}
}

// retention is how many entries at or below a snapshot at index the log
// keeps: Config.RetainEntries of them, fewer when Config.RetainBytes caps
// their bytes.
func (n *node) retention(index uint64) uint64 {
	if n.cfg.RetainEntries < 0 {
		return 0
	}
	keep := min(uint64(n.cfg.RetainEntries), index) // 0 became DefaultRetainEntries (ensureDefaults)
	if n.cfg.RetainBytes == 0 || keep == 0 {
		return keep
	}
	// The longest suffix of [lo, index] within RetainBytes, found in one
	// paged pass: window holds the sizes of the suffix so far.
	var window []uint64
	var size uint64
	for lo := max(index-keep+1, n.r.FirstIndex()); lo <= index; {
		ents, err := n.r.Entries(lo, index+1, scanLogPageBytes)
		if err != nil || len(ents) == 0 {
			return 0
		}
		for _, e := range ents {
			es := uint64(proto.Size(e))
			window, size = append(window, es), size+es
			for len(window) > 0 && size > n.cfg.RetainBytes {
				size -= window[0]
				window = window[1:]
			}
		}
		lo += uint64(len(ents))
	}
	return uint64(len(window))
}

func (n *node) compactTo(ctx actor.Context, msg *CompactTo) {
	err := n.compactToErr(msg.Index)
	if err == nil {
		err = n.r.Compact(msg.Index, nil, n.retention(msg.Index))
		if err == nil {
			ctx.Send(n.kids.persister, &compactRequest{snapshot: n.r.Snapshot(), compactTo: n.r.FirstIndex() - 1})
		}
	}
	n.respond(ctx, &CompactToResponse{FirstIndex: n.r.FirstIndex(), Err: err})
}

func (n *node) compactToErr(index uint64) error {
	if n.life.failed || n.life.stop != nil || n.life.exiting {
		return n.stoppedErr()
	}
	sm := n.cfg.StateMachine
	snap := snapshotCapable(sm)
	_, ai := sm.(AppliedIndexer)
	_, dd := sm.(CommandDeduplicator)
	if !snap || !ai || !dd {
		return fmt.Errorf("actors: CompactTo needs a StateMachine that implements Snapshotter or StreamSnapshotter (%t), AppliedIndexer (%t) and CommandDeduplicator (%t)", snap, ai, dd)
	}
	if index > n.applied {
		return fmt.Errorf("%w: CompactTo %d, applied %d", ErrBeyondApplied, index, n.applied)
	}
	if index < n.r.FirstIndex() || n.r.Snapshot() != nil && index <= n.r.Snapshot().GetMetadata().GetIndex() {
		return fmt.Errorf("%w: CompactTo %d, first index %d", ErrCompacted, index, n.r.FirstIndex())
	}
	return nil
}

// lazySnapshot takes over an outbound snapshot without data when the
// store keeps no snapshot files (the log was compacted by CompactTo): the
// applier makes the data, and lazySnapshotDone sends it. With snapshot
// files it leaves m to the peer's replicator, which streams the file
// (snapshotOpenFailed has the applier make the data of a snapshot that has
// none). It reports whether it took m.
func (n *node) lazySnapshot(ctx actor.Context, m *messages.Message) bool {
	if m.Type != messages.MessageType_MSG_SNAPSHOT || len(m.GetSnapshot().GetData()) > 0 {
		return false
	}
	if n.snap.files != nil && m.GetSnapshot().GetMetadata() != nil {
		return false // the peer's replicator streams it from the file
	}
	n.makeLazySnapshot(ctx, m)
	return true
}

// makeLazySnapshot has the applier make the data of m's snapshot, once
// per peer at a time.
func (n *node) makeLazySnapshot(ctx actor.Context, m *messages.Message) {
	if n.snap.lazyPending == nil {
		n.snap.lazyPending = map[uint64]bool{}
	}
	if !n.snap.lazyPending[m.To] {
		n.snap.lazyPending[m.To] = true
		ctx.Send(n.kids.applier, &snapshotRequest{lazy: m})
	}
}

// snapshotOpenFailed handles a replicator that could not open the file of
// the snapshot for its peer: a snapshot without data (CompactTo) is made
// by the applier; damaged data is counted (Status.CorruptSnapshotFiles)
// and not sent, the node takes a new snapshot to replace it, and the
// leader tries again when the transfer times out.
func (n *node) snapshotOpenFailed(ctx actor.Context, msg *snapshotOpenFailed) {
	if errors.Is(msg.err, persistence.ErrNoSnapshot) {
		n.makeLazySnapshot(ctx, msg.m)
		return
	}
	if errors.Is(msg.err, persistence.ErrCorrupt) || errors.Is(msg.err, ErrCorruptSnapshot) {
		n.snap.corruptFiles++
		if !n.snap.snapshotting && n.life.stop == nil && !n.life.failed {
			n.requestSnapshot(ctx, nil) // a new snapshot replaces the damaged one
		}
	}
	n.log.Warn("snapshot for a lagging peer failed", "peer", msg.m.To, "err", msg.err)
}

// openSnapshot opens the data of the snapshot at md in the store's files
// (persistence.ErrNoSnapshot when the store has no files, or the snapshot
// no data: CompactTo). The caller closes it. Safe on any goroutine.
func (n *node) openSnapshot(md *messages.SnapshotMetadata) (persistence.SnapshotData, error) {
	if n.snap.files == nil {
		return nil, fmt.Errorf("actors: the store keeps no snapshot files: %w", persistence.ErrNoSnapshot)
	}
	return n.snap.files.OpenSnapshot(bg, md.GetIndex(), md.GetTerm())
}

// lazySnapshotDone sends the snapshot the applier made for a peer, with
// the metadata of the index it covers. Should the node have lost its
// leadership meanwhile, or the index left the log, nothing is sent: the
// leader asks again when the peer's snapshot times out.
func (n *node) lazySnapshotDone(ctx actor.Context, msg *lazySnapshotMade) {
	delete(n.snap.lazyPending, msg.msg.To)
	if msg.err != nil || n.r.Role() != raft.Leader || n.r.Term() != msg.msg.Term {
		if msg.err != nil {
			n.log.Warn("snapshot for a lagging peer failed", "peer", msg.msg.To, "err", msg.err)
		}
		return
	}
	md, err := n.r.SnapshotMetadata(msg.index)
	if err != nil {
		n.log.Warn("snapshot for a lagging peer is out of the log", "peer", msg.msg.To, "index", msg.index, "err", err)
		return
	}
	m := msg.msg
	m.Snapshot = &messages.Snapshot{Metadata: md, Data: msg.data}
	n.send(ctx, m)
}

// snapshotTransfer hands a snapshot chunk the core accepted to the
// receiver (spawned at the first), and an acknowledgement to the
// replicator of the peer that sent it.
func (n *node) snapshotTransfer(ctx actor.Context, m *messages.Message) {
	switch m.Type {
	case messages.MessageType_MSG_SNAPSHOT_CHUNK:
		if n.kids.receiver == nil {
			log, files, sm := n.log, n.snap.files, n.cfg.StateMachine
			check := func(d persistence.SnapshotData) error { return checkSnapshotData(sm, d) }
			n.kids.receiver = ctx.Spawn(n.sh.pool.props(func() actor.Actor { return &receiver{log: log, files: files, check: check} }))
			if n.life.exiting {
				ctx.Stop(n.kids.receiver) // the actor already stopped its children: stop this one too
			}
		}
		ctx.Send(n.kids.receiver, &snapshotChunkIn{m})
	case messages.MessageType_MSG_SNAPSHOT_ACK:
		if pid, ok := n.kids.replicators[m.From]; ok {
			ctx.Send(pid, m)
		}
	}
}

// stopReceiver ends a snapshot being received in chunks (this node
// became leader): the receiver discards what it holds.
func (n *node) stopReceiver(ctx actor.Context) {
	if n.kids.receiver != nil {
		ctx.Stop(n.kids.receiver)
		n.kids.receiver = nil
	}
	n.snap.receiving = nil
}

// snapshotSendProgress records and publishes a replicator's progress.
func (n *node) snapshotSendProgress(ctx actor.Context, p SnapshotSendProgress) {
	if n.r.Role() != raft.Leader {
		return
	}
	p.NodeID = n.cfg.ID
	if n.snap.sends == nil {
		n.snap.sends = map[uint64]SnapshotSendProgress{}
	}
	n.snap.sends[p.Peer] = p
	if p.Done {
		n.obs.metrics.snapshotSent(p.Size)
	}
	n.publish(ctx, &p)
}

// snapshotSends is Status.SnapshotSends.
func (n *node) snapshotSends() []SnapshotSendProgress {
	var out []SnapshotSendProgress
	for _, p := range n.snap.sends {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b SnapshotSendProgress) int { return cmp.Compare(a.Peer, b.Peer) })
	return out
}

// snapshotRefused counts a snapshot received in chunks whose data failed
// its check, as a snapshot sent whole that checkSnapshot refuses.
func (n *node) snapshotRefused(msg *snapshotRefused) {
	n.snap.receiving = nil
	n.inbox.drops.CorruptSnapshot++
	n.log.Warn("snapshot refused", "from", msg.from, "index", msg.index, "err", msg.err)
}

// snapshotReceived steps a snapshot received whole in chunks into the
// core, as the leader's MSG_SNAPSHOT: it is checked and installed as one
// sent whole.
func (n *node) snapshotReceived(ctx actor.Context, msg *snapshotReceivedAll) {
	n.snap.receiving = nil
	p := msg.progress
	p.NodeID = n.cfg.ID
	n.publish(ctx, &p)
	n.stepInbound(ctx, msg.m, true)
}
