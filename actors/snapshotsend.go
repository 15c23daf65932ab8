package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/scheduler"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
)

// The leader's side of InstallSnapshot in chunks, run by the peer's
// replicator. The core hands out a MSG_SNAPSHOT for the peer; the
// replicator first sends an empty chunk, which the follower answers with
// how many bytes of that snapshot it already holds (a resumed transfer
// starts there), then streams chunks from there, keeping at most
// Config.SnapshotWindowBytes unacknowledged and, with
// Config.SnapshotBandwidth, at most that many bytes a second. Without an
// acknowledgement of more bytes for Config.SnapshotResendTimeout (lost
// chunks or acknowledgements, a dropped connection) it asks again with an
// empty chunk, and streams nothing until an answer comes: one that shows
// no progress means the chunks in flight were lost, and they are sent
// again from the follower's offset (at most a window); one that shows
// progress means they were slow, and streaming goes on after them. The
// transfer ends when
// the follower holds every byte, when the core sends the peer an append
// (it is out of StateSnapshot), or when the core asks for the snapshot
// again (a stalled transfer: it starts over with the empty chunk, which
// still resumes where the follower is).

// chunkOptions are the Config's snapshot-transfer settings.
type chunkOptions struct {
	chunk, window uint64        // bytes
	bandwidth     uint64        // bytes per second; 0: no limit
	resend        time.Duration // go back after this long without progress
}

// sendTransfer is one snapshot being streamed to the peer.
//
// Invariant: acked <= sent <= info.Size, and sent-acked <= the window.
type sendTransfer struct {
	// base is the core's MSG_SNAPSHOT: addressing, term and trace
	// context for every chunk.
	base *messages.Message
	data persistence.SnapshotData
	info persistence.SnapshotInfo
	// waiting: an empty chunk asks where the follower is; nothing more is
	// sent until it answers. answered: it answered once.
	waiting, answered bool
	sent, acked       uint64
	// resumedFrom is the offset the follower held when it first answered.
	resumedFrom uint64
	// bytesSent counts chunk bytes handed to the transport, re-sent ones
	// included; rewinds the times sent went back to the follower's offset.
	bytesSent, rewinds uint64
	// lastProgress is when the transfer began or last progressed.
	lastProgress time.Time
}

// bucket is the bandwidth limit's token bucket of a replicator: it spans
// its transfers, so that one started again (a stalled transfer the core
// asked for anew) gets no fresh allowance. It starts with one chunk.
type bucket struct {
	tokens float64
	at     time.Time // zero: not used yet
}

// replicatorTimer wakes the replicator to pace or go back; gen tells a
// stale timer.
type replicatorTimer struct{ gen uint64 }

// snapshotOpenFailed tells the node that the replicator could not open
// the data of the snapshot in m.
type snapshotOpenFailed struct {
	m   *messages.Message
	err error
}

// snapshotSendProgress reports a transfer's progress to the node, which
// publishes it (SnapshotSendProgress) and shows it in Status.
type snapshotSendProgress struct{ p SnapshotSendProgress }

// startTransfer begins streaming the snapshot of m (the core's
// MSG_SNAPSHOT) to the peer, replacing any transfer under way.
func (r *replicator) startTransfer(ctx actor.Context, m *messages.Message) {
	old := r.xfer
	x := &sendTransfer{base: m, lastProgress: time.Now(), waiting: true}
	switch snap := m.GetSnapshot(); {
	case old != nil && old.base.GetSnapshot() == snap:
		x.data, x.info = old.data, old.info // the same snapshot: keep it open
	case len(snap.GetData()) == 0 && r.open != nil:
		r.endTransfer()
		d, err := r.open(snap.GetMetadata())
		if err != nil {
			ctx.Send(ctx.Parent(), &snapshotOpenFailed{m: m, err: err})
			return
		}
		x.data, x.info = d, d.Info()
	default:
		r.endTransfer()
		x.data = persistence.BytesSnapshotData(snap.GetData())
		x.info = x.data.Info()
	}
	r.xfer = x
	r.probe()
	r.arm(ctx, r.opts.resend)
}

// endTransfer ends the transfer under way.
func (r *replicator) endTransfer() {
	if x := r.xfer; x != nil {
		_ = x.data.Close()
		x.data = nil
		r.xfer, r.ended = nil, x
	}
}

// probe sends an empty chunk: the follower answers with the offset it
// holds.
func (r *replicator) probe() {
	m := r.chunk(r.xfer.acked, nil)
	r.metrics.sent(m)
	r.transmit(m)
}

// chunk builds the chunk of the current transfer holding data at offset.
func (r *replicator) chunk(offset uint64, data []byte) *messages.Message {
	x := r.xfer
	b := x.base
	return &messages.Message{Type: messages.MessageType_MSG_SNAPSHOT_CHUNK, ClusterId: b.ClusterId, From: b.From, To: b.To,
		Term: b.Term, FromAddress: b.FromAddress, TraceParent: b.TraceParent,
		SnapshotChunk: &messages.SnapshotChunk{Metadata: b.GetSnapshot().GetMetadata(), Size: uint64(x.info.Size),
			Checksum: x.info.Checksum, Offset: offset, Data: data, DataChecksum: persistence.SnapshotChecksum(data)}}
}

// onAck takes the follower's acknowledgement: it holds c.Offset bytes.
func (r *replicator) onAck(ctx actor.Context, m *messages.Message) {
	x, c := r.xfer, m.GetSnapshotChunk()
	if x == nil {
		x = r.ended
	}
	if x == nil || m.Term != x.base.Term || !sameSnapshot(x.base.GetSnapshot().GetMetadata(), uint64(x.info.Size), x.info.Checksum, c) {
		return
	}
	switch {
	case x == r.ended:
		// The core moved on (an append): only the news that the peer
		// holds every byte is worth telling.
		if c.Offset != uint64(x.info.Size) || x.acked == c.Offset {
			return
		}
		x.acked = c.Offset
	case x.waiting && !x.answered:
		// The first answer: the follower holds this much already.
		x.answered, x.resumedFrom = true, c.Offset
		x.waiting, x.acked, x.sent = false, c.Offset, c.Offset
	case x.waiting && c.Offset <= x.acked:
		// Nothing arrived since the timeout: what was in flight is lost.
		if x.sent > c.Offset {
			x.rewinds++
		}
		x.waiting, x.acked, x.sent = false, c.Offset, c.Offset
	case c.Offset > x.acked:
		// Progress (also an answer to the timeout's question: the chunks
		// in flight were slow, not lost, and are not sent again).
		x.waiting, x.acked, x.sent = false, c.Offset, max(x.sent, c.Offset)
	default:
		return // a duplicate or a late acknowledgement
	}
	x.lastProgress = time.Now()
	done := x.acked == uint64(x.info.Size)
	ctx.Send(ctx.Parent(), &snapshotSendProgress{SnapshotSendProgress{Peer: r.peer.ID,
		Index: x.base.GetSnapshot().GetMetadata().GetIndex(), Term: x.base.GetSnapshot().GetMetadata().GetTerm(),
		Size: uint64(x.info.Size), Sent: x.bytesSent, Acked: x.acked, ResumedFrom: x.resumedFrom, Rewinds: x.rewinds, Done: done}})
	if x == r.xfer {
		if done {
			r.endTransfer()
			return
		}
		r.fill(ctx)
	}
}

// onTimer asks the follower where it is when the transfer made no
// progress for the resend timeout, and sends what the window and the
// bandwidth allow.
func (r *replicator) onTimer(ctx actor.Context) {
	x := r.xfer
	if x == nil {
		return
	}
	if now := time.Now(); now.Sub(x.lastProgress) >= r.opts.resend {
		x.lastProgress, x.waiting = now, true
		r.probe()
	}
	r.fill(ctx)
	if r.xfer != nil && !r.timerPending {
		// Wake when the resend timeout runs out since the last progress.
		r.arm(ctx, max(r.opts.resend-time.Since(x.lastProgress), time.Millisecond))
	}
}

// fill sends chunks while the window and the bandwidth allow.
func (r *replicator) fill(ctx actor.Context) {
	x := r.xfer
	size := uint64(x.info.Size)
	for !x.waiting && x.sent < size {
		n := min(r.opts.chunk, size-x.sent)
		if x.sent+n-x.acked > r.opts.window {
			return
		}
		if wait := r.pace(n); wait > 0 {
			r.arm(ctx, wait)
			return
		}
		buf := make([]byte, n)
		if _, err := x.data.ReadAt(buf, int64(x.sent)); err != nil {
			// The core retries a transfer that makes no progress.
			r.log.Warn("snapshot read failed", "peer", r.peer.ID, "offset", x.sent, "err", err)
			r.endTransfer()
			return
		}
		m := r.chunk(x.sent, buf)
		r.metrics.sent(m)
		r.transmit(m)
		x.sent += n
		x.bytesSent += n
	}
}

// pace takes n bytes from the bandwidth bucket; it returns how long to
// wait first when the bucket holds fewer (0: send now).
func (r *replicator) pace(n uint64) time.Duration {
	bw := float64(r.opts.bandwidth)
	if bw == 0 {
		return 0
	}
	b, now := &r.bucket, time.Now()
	if b.at.IsZero() {
		b.tokens, b.at = float64(r.opts.chunk), now
	}
	b.tokens = min(b.tokens+now.Sub(b.at).Seconds()*bw, max(float64(r.opts.chunk), bw/10))
	b.at = now
	if b.tokens < float64(n) {
		return max(time.Duration((float64(n)-b.tokens)/bw*float64(time.Second)), time.Millisecond)
	}
	b.tokens -= float64(n)
	return 0
}

// arm sets the replicator's one timer to fire after d, replacing the
// pending one.
func (r *replicator) arm(ctx actor.Context, d time.Duration) {
	r.disarm()
	r.timerGen++
	r.timerPending = true
	r.cancelTimer = scheduler.NewTimerScheduler(ctx.ActorSystem().Root).SendOnce(d, ctx.Self(), &replicatorTimer{gen: r.timerGen})
}

// disarm cancels the pending timer (one that fires all the same is
// stale: its generation is past), so that none reaches a stopped
// replicator as a dead letter.
func (r *replicator) disarm() {
	if r.cancelTimer != nil {
		r.cancelTimer()
		r.cancelTimer = nil
	}
}

// sameSnapshot reports whether c names the snapshot (md, size, checksum).
func sameSnapshot(md *messages.SnapshotMetadata, size uint64, checksum uint32, c *messages.SnapshotChunk) bool {
	cm := c.GetMetadata()
	return cm.GetIndex() == md.GetIndex() && cm.GetTerm() == md.GetTerm() && c.GetSize() == size && c.GetChecksum() == checksum
}
