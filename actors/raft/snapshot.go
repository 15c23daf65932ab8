package raft

import (
	"fmt"
	"hash/crc32"

	"github.com/flotilla-raft/flotilla/cluster/membership"
	"github.com/flotilla-raft/flotilla/messages"
)

// This file holds snapshots (§7): compaction, the leader sending a
// snapshot to a peer behind its log, and the follower installing one.

// Compact records a snapshot of the application state at index (which
// must be applied, and not below the latest snapshot: ErrCompacted) and
// drops the log entries before it, keeping the last `keep` entries for
// followers that lag a little. data is kept to be sent to followers that
// need it. A leader also keeps the entries after a snapshot it is sending
// to a peer whose transfer progresses (acknowledged bytes): once the peer
// installed it, it goes on from there with appends, instead of needing a
// newer snapshot when the log moved on during a long transfer (etcd's
// server pauses compaction while a snapshot is in flight, likewise).
func (r *Raft) Compact(index uint64, data []byte, keep uint64) error {
	if index > r.log.applied {
		return fmt.Errorf("raft: compact at %d: only %d applied", index, r.log.applied)
	}
	if index <= r.log.snapIndex {
		return fmt.Errorf("%w: compact at %d: log compacted up to %d", ErrCompacted, index, r.log.snapIndex)
	}
	if si := r.snapshot.GetMetadata().GetIndex(); index < si {
		// The log may keep a tail below the snapshot: a snapshot never
		// goes back into it.
		return fmt.Errorf("%w: compact at %d: snapshot already at %d", ErrCompacted, index, si)
	}
	t, err := r.log.term(index)
	if err != nil {
		return err
	}
	var ci, ct uint64 // the log's new start, when it moves
	if index > keep {
		ci = r.keptForTransfers(index - keep)
	}
	if ci > r.log.snapIndex {
		if ct, err = r.log.term(ci); err != nil {
			return err // storage failed: Ready.StorageError; nothing changed
		}
	} else {
		ci = 0
	}
	r.snapshot = &messages.Snapshot{Metadata: &messages.SnapshotMetadata{Index: index, Term: t, Config: r.configAt(index)}, Data: data}
	if ci > 0 {
		r.log.compact(ci, ct)
		for len(r.ccHist) > 1 && r.ccHist[1].index <= ci {
			r.ccHist = r.ccHist[1:]
		}
	}
	return nil
}

// keptForTransfers lowers ci, a new start of a leader's log, to the
// snapshot being sent to a peer whose transfer progresses, if lower.
func (r *Raft) keptForTransfers(ci uint64) uint64 {
	if r.role != Leader {
		return ci
	}
	for _, pr := range r.prs {
		if pr.State == StateSnapshot && pr.SnapshotAcked > 0 && pr.PendingSnapshot < ci {
			ci = pr.PendingSnapshot
		}
	}
	return ci
}

// Snapshot returns the latest snapshot (nil if none). Do not mutate it.
// Its Data is nil when the driver compacted without data (Compact with nil
// data): the driver then supplies the data of a snapshot the core sends
// (see SnapshotMetadata).
func (r *Raft) Snapshot() *messages.Snapshot { return r.snapshot }

// SnapshotMetadata returns the metadata of a snapshot at index: its term
// and the configuration in force there. index must be applied and still
// in the log (or the snapshot's own index); otherwise the error wraps
// ErrCompacted or ErrUnavailable. A driver that compacted without data
// builds the snapshot a lagging peer needs with it, at the index its state
// machine has applied.
func (r *Raft) SnapshotMetadata(index uint64) (*messages.SnapshotMetadata, error) {
	if index > r.log.applied {
		return nil, fmt.Errorf("%w: snapshot at %d: only %d applied", ErrUnavailable, index, r.log.applied)
	}
	t, err := r.log.term(index)
	if err != nil {
		return nil, err
	}
	return &messages.SnapshotMetadata{Index: index, Term: t, Config: r.configAt(index)}, nil
}

// sendSnapshot hands out the latest snapshot for peer to: the driver
// sends it whole or streams it in chunks (see the package doc).
func (r *Raft) sendSnapshot(to uint64, pr *Progress) {
	if r.snapshot == nil {
		r.logger.Error("peer needs a snapshot but none is available", "peer", to)
		return
	}
	r.send(&messages.Message{Type: messages.MessageType_MSG_SNAPSHOT, To: to, Snapshot: r.snapshot, FromAddress: r.ownAddressFor(pr)})
	pr.becomeSnapshot(r.snapshot.Metadata.Index)
}

func (r *Raft) handleSnapshot(m *messages.Message) {
	s := m.GetSnapshot()
	md := s.GetMetadata()
	if md == nil || md.Index == 0 {
		return
	}
	if md.Index <= r.log.committed {
		r.sendAfterPersist(&messages.Message{Type: messages.MessageType_MSG_APPEND_RESP, To: m.From, Index: r.log.committed})
		return
	}
	if r.log.matchTerm(md.Index, md.Term) {
		// We have the snapshot's last entry: just fast-forward the commit.
		r.commitTo(md.Index)
		r.sendAfterPersist(&messages.Message{Type: messages.MessageType_MSG_APPEND_RESP, To: m.From, Index: md.Index})
		return
	}
	r.restore(s)
	r.sendAfterPersist(&messages.Message{Type: messages.MessageType_MSG_APPEND_RESP, To: m.From, Index: r.log.lastIndex()})
}

func (r *Raft) restore(s *messages.Snapshot) {
	md := s.Metadata
	r.capBatches(r.log.snapIndex + 1)
	r.log.restore(md.Index, md.Term)
	r.snapshot = s
	r.pendingSnapshot = s
	cc := md.Config
	if cc == nil {
		cc = r.cc
	}
	// As for a configuration entry (decodeConfig): a snapshot from the
	// wire may carry no settings.
	cc = membership.WithSettings(cc, nil)
	r.ccHist = []confAt{{md.Index, cc}}
	r.pendingConfIndex = md.Index
	r.setConfigAt(r.ccHist[0])
	r.event(Event{Kind: EventSnapshotRestored, Index: md.Index, Reason: fmt.Sprintf("snapshot at index %d term %d", md.Index, md.Term)})
}

// checkSnapshotChunk refuses a chunk or acknowledgement that is not well
// formed: no snapshot named, data past the snapshot's size, an
// acknowledgement past it, or a chunk whose data does not match its
// checksum.
func checkSnapshotChunk(m *messages.Message) error {
	switch m.Type {
	case messages.MessageType_MSG_SNAPSHOT_CHUNK, messages.MessageType_MSG_SNAPSHOT_ACK:
	default:
		return nil
	}
	c := m.GetSnapshotChunk()
	md := c.GetMetadata()
	switch {
	case md.GetIndex() == 0 || md.GetTerm() == 0:
		return fmt.Errorf("%w: %s names no snapshot", ErrInvalidMessage, m.Type)
	case c.GetOffset() > c.GetSize() || uint64(len(c.GetData())) > c.GetSize()-c.GetOffset():
		return fmt.Errorf("%w: %s of snapshot %d: %d bytes at offset %d past its size %d", ErrInvalidMessage, m.Type, md.GetIndex(), len(c.GetData()), c.GetOffset(), c.GetSize())
	case m.Type == messages.MessageType_MSG_SNAPSHOT_ACK && len(c.GetData()) > 0:
		return fmt.Errorf("%w: %s of snapshot %d carries data", ErrInvalidMessage, m.Type, md.GetIndex())
	case len(c.GetData()) > 0 && crc32.Checksum(c.GetData(), castagnoli) != c.GetDataChecksum():
		return fmt.Errorf("%w: %s of snapshot %d at offset %d: checksum mismatch", ErrInvalidMessage, m.Type, md.GetIndex(), c.GetOffset())
	}
	if cc := md.GetConfig(); cc != nil {
		if err := checkWireConfig(cc, nil); err != nil {
			return fmt.Errorf("%w: snapshot chunk configuration: %w", ErrInvalidMessage, err)
		}
	}
	return nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// handleSnapshotAck (leader) records that the peer holds more of the
// snapshot it is being sent: the transfer progresses, so it is not
// abandoned (tickSnapshots). An acknowledgement of an older snapshot, or
// one arriving once the peer left StateSnapshot (the last one may come
// after the install's answer), moves nothing. Every one goes on to the
// driver, which streams the bytes and knows which transfer it answers.
func (r *Raft) handleSnapshotAck(m *messages.Message, pr *Progress) {
	c := m.GetSnapshotChunk()
	// A driver that compacted without data sends a snapshot it makes at
	// its applied index, at or past PendingSnapshot (see SnapshotMetadata).
	if pr.State == StateSnapshot && c.GetMetadata().GetIndex() >= pr.PendingSnapshot && c.GetOffset() > pr.SnapshotAcked {
		pr.SnapshotAcked = c.GetOffset()
		pr.stateTicks = 0
	}
	r.snapTransfers = append(r.snapTransfers, m)
}

// tickSnapshots (leader, every tick) sends a peer whose snapshot transfer
// made no progress for an election timeout back to probing: the snapshot,
// or the connection, was lost. A transfer whose acknowledgements keep
// coming is never abandoned, however long it takes.
func (r *Raft) tickSnapshots() {
	for _, id := range r.peers {
		if pr := r.prs[id]; pr != nil && pr.State == StateSnapshot {
			if pr.stateTicks++; pr.stateTicks >= r.electionTimeout() {
				pr.becomeProbe()
				r.needBcast = true
			}
		}
	}
}
