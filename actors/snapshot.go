package actors

import (
	"errors"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors/raft"
	"github.com/flotilla-raft/flotilla/messages"
	"google.golang.org/protobuf/proto"
)

// Snapshots and compaction: automatic (Config.SnapshotEvery,
// SnapshotBytes) and requested (TakeSnapshot) snapshots, CompactTo, and
// the snapshot a leader has the applier make for a lagging peer after a
// CompactTo (lazySnapshot). The requests and their answers are in api.go.

// maybeSnapshot takes a snapshot once Config.SnapshotEvery entries were
// applied after the core's latest snapshot (the one taken in this run,
// found in the store at start, or installed from the leader), or once
// the entries handed to the applier since then hold Config.SnapshotBytes
// of command data. Neither, with Config.NoAutoSnapshots or a
// StateMachine without Snapshotter.
func (n *node) maybeSnapshot(ctx actor.Context) {
	if n.cfg.NoAutoSnapshots || n.snap.snapshotting {
		return
	}
	last := n.r.Snapshot().GetMetadata().GetIndex()
	if n.applied < last+n.cfg.SnapshotEvery && n.snap.bytesSince < n.cfg.SnapshotBytes {
		return
	}
	if _, ok := n.cfg.StateMachine.(Snapshotter); !ok {
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

func (n *node) requestSnapshot(ctx actor.Context, reply *actor.PID) {
	if _, ok := n.cfg.StateMachine.(Snapshotter); !ok {
		if reply != nil {
			ctx.Send(reply, &TakeSnapshotResponse{Err: errors.New("actors: the StateMachine does not implement Snapshotter")})
		}
		return
	}
	n.snap.snapshotting = true
	// The applier makes the snapshot after every batch sent before: it
	// covers exactly the bytes counted so far.
	n.snap.bytesAsked, n.snap.bytesSince = n.snap.bytesSince, 0
	ctx.Send(n.kids.applier, &snapshotRequest{reply: reply})
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
		err = n.r.Compact(msg.index, msg.data, n.retention(msg.index))
		if err == nil {
			ctx.Send(n.kids.persister, &compactRequest{snapshot: n.r.Snapshot(), compactTo: n.r.FirstIndex() - 1})
			n.publish(ctx, &SnapshotTaken{NodeID: n.cfg.ID, Index: msg.index})
		}
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
	lo := max(index-keep+1, n.r.FirstIndex())
	ents, err := n.r.Entries(lo, index+1)
	if err != nil {
		return 0
	}
	var size uint64
	kept := uint64(0)
	for i := len(ents) - 1; i >= 0; i-- {
		if size += uint64(proto.Size(ents[i])); size > n.cfg.RetainBytes {
			break
		}
		kept++
	}
	return kept
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
	_, snap := sm.(Snapshotter)
	_, ai := sm.(AppliedIndexer)
	_, dd := sm.(CommandDeduplicator)
	if !snap || !ai || !dd {
		return fmt.Errorf("actors: CompactTo needs a StateMachine that implements Snapshotter (%t), AppliedIndexer (%t) and CommandDeduplicator (%t)", snap, ai, dd)
	}
	if index > n.applied {
		return fmt.Errorf("%w: CompactTo %d, applied %d", ErrBeyondApplied, index, n.applied)
	}
	if index < n.r.FirstIndex() || n.r.Snapshot() != nil && index <= n.r.Snapshot().GetMetadata().GetIndex() {
		return fmt.Errorf("%w: CompactTo %d, first index %d", ErrCompacted, index, n.r.FirstIndex())
	}
	return nil
}

// lazySnapshot takes over an outbound snapshot without data (the log was
// compacted by CompactTo): the applier makes the data, and
// lazySnapshotDone sends it. It reports whether it took m.
func (n *node) lazySnapshot(ctx actor.Context, m *messages.Message) bool {
	if m.Type != messages.MessageType_MSG_SNAPSHOT || len(m.GetSnapshot().GetData()) > 0 {
		return false
	}
	if n.snap.lazyPending == nil {
		n.snap.lazyPending = map[uint64]bool{}
	}
	if !n.snap.lazyPending[m.To] {
		n.snap.lazyPending[m.To] = true
		ctx.Send(n.kids.applier, &snapshotRequest{lazy: m})
	}
	return true
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
