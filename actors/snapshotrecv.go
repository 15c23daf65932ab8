package actors

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
)

// The follower's side of InstallSnapshot in chunks: the node hands the
// receiver, a child actor, each chunk the core accepted
// (Ready.SnapshotTransfers); the receiver writes the chunk that continues
// what it holds into a persistence.SnapshotSink, answers every chunk with
// the number of bytes it holds (MSG_SNAPSHOT_ACK, sent by the node), and,
// once it holds the whole snapshot and its CRC-32C matches, hands it to
// the node, which steps it into the core as a MSG_SNAPSHOT from the leader
// (install, persist, restore, as a snapshot sent whole). Data written
// into the store's files is checked first, here, as the node checks a
// snapshot sent whole (checkSnapshotData: the framing, the session table
// and the state machine's SnapshotValidator): a snapshot that fails is
// not installed, and the node counts it (Status.Dropped.CorruptSnapshot);
// its committed file is removed once a newer snapshot is current, or at
// the next start. A chunk of
// another snapshot (another index, term, size or checksum) discards the
// partial data and starts over; one of the same snapshot from a new
// leader continues it. Out-of-order chunks are not kept: the leader goes
// back to the acknowledged offset.

// receiver is the follower's snapshot receiver.
type receiver struct {
	log *slog.Logger
	// files, when the store keeps snapshot files, receives the data; nil:
	// it is gathered in memory and stepped with the snapshot.
	files persistence.SnapshotFileStore
	// check checks the data of a whole snapshot in files before the node
	// installs it (checkSnapshotData with the node's state machine).
	check func(persistence.SnapshotData) error
	cur   *recvTransfer
}

// recvTransfer is a snapshot being received.
//
// Invariant: held is the number of bytes written to sink, the first held
// bytes of the snapshot; crc is their CRC-32C.
type recvTransfer struct {
	term uint64 // the term of the leader sending it
	md   *messages.SnapshotMetadata
	size uint64
	sum  uint32
	sink persistence.SnapshotSink
	held uint64
	crc  uint32
	mem  *memSnapshotSink // the sink, when in memory
}

// snapshotChunkIn hands the receiver a chunk the core accepted.
type snapshotChunkIn struct{ m *messages.Message }

// snapshotAckOut asks the node to send the receiver's acknowledgement.
type snapshotAckOut struct{ m *messages.Message }

// snapshotReceivedAll hands the node a whole, checked snapshot to step
// into the core as the leader's MSG_SNAPSHOT.
type snapshotReceivedAll struct {
	m        *messages.Message // MSG_SNAPSHOT from the leader, with data
	progress SnapshotReceived
}

// snapshotCorrupt tells the node that a snapshot received whole failed
// its checksum (Status.Dropped.CorruptSnapshot).
type snapshotCorrupt struct{}

// snapshotRefused tells the node that a snapshot received in chunks into
// the store's files failed its check: it is not installed.
type snapshotRefused struct {
	from, index uint64
	err         error
}

// snapshotRecvProgress reports how much of a snapshot the receiver holds.
type snapshotRecvProgress struct{ p SnapshotReceiving }

func (r *receiver) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *snapshotChunkIn:
		r.onChunk(ctx, msg.m)
	case *actor.Stopped:
		r.discard()
	}
}

func (r *receiver) onChunk(ctx actor.Context, m *messages.Message) {
	c := m.GetSnapshotChunk()
	md := c.GetMetadata()
	x := r.cur
	if x == nil || !sameSnapshot(x.md, x.size, x.sum, c) {
		if x != nil && m.Term == x.term && md.GetIndex() < x.md.GetIndex() {
			return // a late chunk of the leader's previous snapshot
		}
		if x != nil {
			r.log.Info("snapshot transfer restarts: the leader sends another snapshot", "index", md.GetIndex(), "term", md.GetTerm(), "was", x.md.GetIndex(), "held", x.held)
		}
		r.discard()
		x = &recvTransfer{term: m.Term, md: md, size: c.Size, sum: c.Checksum}
		if r.files != nil {
			sink, err := r.files.CreateSnapshot(context.Background(), md)
			if err != nil {
				r.log.Warn("snapshot chunks refused: cannot create the snapshot file", "index", md.GetIndex(), "err", err)
				return
			}
			x.sink = sink
		} else {
			x.mem = &memSnapshotSink{}
			x.sink = x.mem
		}
		r.cur = x
	}
	x.term = max(x.term, m.Term)
	if md.GetConfig() != nil {
		x.md = md
	}
	if d := c.GetData(); len(d) > 0 && c.Offset == x.held {
		if _, err := x.sink.Write(d); err != nil {
			r.log.Warn("snapshot chunk write failed; the transfer restarts", "index", md.GetIndex(), "offset", c.Offset, "err", err)
			r.discard()
			r.ack(ctx, m, 0)
			return
		}
		x.crc = persistence.UpdateSnapshotChecksum(x.crc, d)
		x.held += uint64(len(d))
		ctx.Send(ctx.Parent(), &snapshotRecvProgress{SnapshotReceiving{From: m.From, Index: md.GetIndex(), Term: md.GetTerm(), Size: x.size, Received: x.held}})
	}
	if x.held < x.size {
		r.ack(ctx, m, x.held)
		return
	}
	// The last acknowledgement leaves before the install's answer, so
	// that the leader sees the transfer done.
	if sum := x.crc; sum != x.sum {
		r.log.Warn("snapshot refused; the transfer restarts", "from", m.From, "index", md.GetIndex(),
			"err", fmt.Errorf("%w: snapshot %d: checksum %08x, the leader's %08x", ErrCorruptSnapshot, md.GetIndex(), sum, x.sum))
		r.discard()
		ctx.Send(ctx.Parent(), snapshotCorrupt{})
		r.ack(ctx, m, 0)
		return
	}
	r.ack(ctx, m, x.held)
	if err := r.finish(ctx, m); err != nil {
		r.log.Warn("snapshot refused", "from", m.From, "index", md.GetIndex(), "err", err)
	}
}

// finish commits the whole, checked snapshot and hands it to the node.
func (r *receiver) finish(ctx actor.Context, m *messages.Message) error {
	x := r.cur
	r.cur = nil
	if _, err := x.sink.Commit(); err != nil {
		_ = x.sink.Abort()
		return err
	}
	s := &messages.Snapshot{Metadata: x.md} // in the store's files: stepped with its metadata
	if x.mem != nil {
		s.Data = x.mem.buf.Bytes() // checked by the node (checkSnapshot)
	} else if err := r.checkFile(x.md); err != nil {
		ctx.Send(ctx.Parent(), &snapshotRefused{from: m.From, index: x.md.GetIndex(), err: err})
		return nil
	}
	ctx.Send(ctx.Parent(), &snapshotReceivedAll{
		m: &messages.Message{Type: messages.MessageType_MSG_SNAPSHOT, ClusterId: m.ClusterId, From: m.From, To: m.To, Term: x.term,
			TraceParent: m.TraceParent, Snapshot: s},
		progress: SnapshotReceived{From: m.From, Index: x.md.GetIndex(), Term: x.md.GetTerm(), Size: x.size}})
	return nil
}

// checkFile checks the committed data of the snapshot at md.
func (r *receiver) checkFile(md *messages.SnapshotMetadata) error {
	d, err := r.files.OpenSnapshot(context.Background(), md.GetIndex(), md.GetTerm())
	if err != nil {
		return fmt.Errorf("%w: open the received snapshot: %w", ErrCorruptSnapshot, err)
	}
	defer d.Close()
	if r.check == nil {
		return nil
	}
	return r.check(d)
}

// ack asks the node to tell the leader that this node holds held bytes of
// m's snapshot.
func (r *receiver) ack(ctx actor.Context, m *messages.Message, held uint64) {
	c := m.GetSnapshotChunk()
	md := c.GetMetadata()
	ctx.Send(ctx.Parent(), &snapshotAckOut{&messages.Message{Type: messages.MessageType_MSG_SNAPSHOT_ACK, ClusterId: m.ClusterId,
		From: m.To, To: m.From, Term: m.Term, SnapshotChunk: &messages.SnapshotChunk{
			Metadata: &messages.SnapshotMetadata{Index: md.GetIndex(), Term: md.GetTerm()}, Size: c.Size, Checksum: c.Checksum, Offset: held}}})
}

// discard drops the partial snapshot.
func (r *receiver) discard() {
	if r.cur != nil {
		_ = r.cur.sink.Abort()
		r.cur = nil
	}
}

// memSnapshotSink is a persistence.SnapshotSink in memory.
type memSnapshotSink struct {
	buf                bytes.Buffer
	aborted, committed bool
}

var errSinkAborted = errors.New("actors: snapshot sink aborted")

func (s *memSnapshotSink) Write(p []byte) (int, error) {
	if s.aborted {
		return 0, errSinkAborted
	}
	return s.buf.Write(p)
}

func (s *memSnapshotSink) Commit() (persistence.SnapshotInfo, error) {
	if s.aborted {
		return persistence.SnapshotInfo{}, errSinkAborted
	}
	s.committed = true
	return persistence.SnapshotInfo{Size: int64(s.buf.Len()), Checksum: persistence.SnapshotChecksum(s.buf.Bytes())}, nil
}

func (s *memSnapshotSink) Abort() error {
	if s.committed {
		return nil
	}
	s.aborted = true
	s.buf = bytes.Buffer{}
	return nil
}
