package raft

import (
	"errors"
	"hash/crc32"
	"testing"

	"github.com/flotilla-raft/flotilla/messages"
)

// Snapshots sent in chunks (MSG_SNAPSHOT_CHUNK, MSG_SNAPSHOT_ACK): the
// core keeps Raft's rules, the driver moves the bytes.

var (
	mChunk = messages.MessageType_MSG_SNAPSHOT_CHUNK
	mAck   = messages.MessageType_MSG_SNAPSHOT_ACK
)

// chunkMsg is a chunk of a 100-byte snapshot at index 9, term 3, from ->
// to at term, holding data at offset.
func chunkMsg(from, to, term, offset uint64, data []byte) *messages.Message {
	m := msg(mChunk, from, to, term)
	m.SnapshotChunk = &messages.SnapshotChunk{Metadata: &messages.SnapshotMetadata{Index: 9, Term: 3},
		Size: 100, Checksum: 1, Offset: offset, Data: data, DataChecksum: crc32.Checksum(data, castagnoli)}
	return m
}

// TestSnapshotChunkFollowerRules: a follower takes a chunk of its term as
// word from the leader (its election timer restarts) and hands it out;
// malformed, forged and stale chunks are refused or answered as Figure 2
// says, and never handed out.
func TestSnapshotChunkFollowerRules(t *testing.T) {
	r := newTestRaft(t, 1, []uint64{1, 2, 3})
	drain(r)
	// A chunk of a newer term: 2 is its leader.
	for range r.randomizedElectionTimeout - 1 {
		r.Tick()
	}
	mustStep(t, r, chunkMsg(2, 1, 3, 0, []byte("abc")))
	rd := r.Ready()
	if r.Term() != 3 || r.Leader() != 2 || len(rd.SnapshotTransfers) != 1 || string(rd.SnapshotTransfers[0].SnapshotChunk.Data) != "abc" {
		t.Fatalf("term %d leader %d transfers %v", r.Term(), r.Leader(), rd.SnapshotTransfers)
	}
	// The election timer restarted: the follower does not campaign an
	// election timeout after the previous message, only after the chunk.
	for range r.randomizedElectionTimeout - 1 {
		r.Tick()
		mustStep(t, r, chunkMsg(2, 1, 3, 3, nil))
	}
	if r.Role() != Follower {
		t.Fatalf("role %s while chunks arrive", r.Role())
	}
	drain(r)
	bad := []struct {
		name string
		m    *messages.Message
	}{
		{"checksum", func() *messages.Message {
			m := chunkMsg(2, 1, 3, 0, []byte("abc"))
			m.SnapshotChunk.DataChecksum++
			return m
		}()},
		{"past the size", chunkMsg(2, 1, 3, 98, []byte("abc"))},
		{"offset past the size", chunkMsg(2, 1, 3, 101, nil)},
		{"no snapshot", func() *messages.Message { m := chunkMsg(2, 1, 3, 0, nil); m.SnapshotChunk.Metadata = nil; return m }()},
		{"forged sender", chunkMsg(3, 1, 3, 0, []byte("abc"))},
		{"ack with data", func() *messages.Message { m := chunkMsg(2, 1, 3, 0, []byte("x")); m.Type = mAck; return m }()},
	}
	for _, b := range bad {
		if err := r.Step(b.m); !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("%s: Step = %v, want ErrInvalidMessage", b.name, err)
		}
	}
	if rd := r.Ready(); len(rd.SnapshotTransfers) != 0 || r.Leader() != 2 || r.Term() != 3 {
		t.Fatalf("after refused chunks: transfers %v leader %d term %d", rd.SnapshotTransfers, r.Leader(), r.Term())
	}
	// A stale leader's chunk is answered with our term, not handed out.
	mustStep(t, r, chunkMsg(3, 1, 2, 0, []byte("abc")))
	rd = r.Ready()
	if len(rd.SnapshotTransfers) != 0 || len(msgsOfType(rd.Messages, mAppResp)) != 1 || rd.Messages[0].Term != 3 {
		t.Fatalf("stale chunk: transfers %v messages %v", rd.SnapshotTransfers, rd.Messages)
	}
	// A candidate hearing a chunk of its term follows its sender.
	c := newTestRaft(t, 1, []uint64{1, 2, 3})
	c.Campaign()
	drain(c)
	mustStep(t, c, chunkMsg(3, 1, c.Term(), 0, []byte("abc")))
	if rd := c.Ready(); c.Role() != Follower || c.Leader() != 3 || len(rd.SnapshotTransfers) != 1 {
		t.Fatalf("candidate: role %s leader %d transfers %d", c.Role(), c.Leader(), len(rd.SnapshotTransfers))
	}
}

// TestSnapshotTransferKeptWhileItProgresses: the leader keeps a peer in
// StateSnapshot as long as its acknowledgements report more bytes, however
// many election timeouts that takes; once they stop, it goes back to
// probing after an election timeout, and asks for the snapshot again.
func TestSnapshotTransferKeptWhileItProgresses(t *testing.T) {
	nw := lagBehind(t, 3)
	nw.compact(1, "state", 0)
	nw.heal()
	asked := 0 // MSG_SNAPSHOT handed out for 3: the driver streams it
	nw.filter = func(m *messages.Message) bool {
		if m.Type == mSnap && m.To == 3 {
			asked++
			return false
		}
		return true
	}
	nw.tick(1, 1)
	l := nw.raft(1)
	idx := l.Snapshot().Metadata.Index
	ack := func(offset uint64) {
		m := msg(mAck, 3, 1, l.Term())
		m.SnapshotChunk = &messages.SnapshotChunk{Metadata: &messages.SnapshotMetadata{Index: idx, Term: l.Snapshot().Metadata.Term}, Size: 1 << 30, Offset: offset}
		mustStep(t, l, m)
		nw.stabilize()
	}
	et := l.electionTimeout()
	offset := uint64(0)
	for range 3 * et {
		nw.tick(1, 1)
		offset += 1000
		ack(offset)
	}
	pr := l.Status().Progress[2]
	if pr.State != StateSnapshot || pr.SnapshotAcked != offset || pr.PendingSnapshot != idx || asked != 1 {
		t.Fatalf("after %d ticks of progress: snapshot asked for %d times, progress %+v", 3*et, asked, pr)
	}
	if n := len(nw.nodes[1].transfers); n != 3*et {
		t.Fatalf("%d acknowledgements handed out, want %d", n, 3*et)
	}
	// Acknowledgements of no more bytes, or of another snapshot, are no
	// progress: the stalled transfer is abandoned.
	sent := asked
	for range et - 1 {
		nw.tick(1, 1)
		ack(offset)
	}
	if pr := l.Status().Progress[2]; pr.State != StateSnapshot {
		t.Fatalf("abandoned before an election timeout without progress: %+v", pr)
	}
	nw.tick(1, 1)
	if got := asked; got != sent+1 {
		t.Fatalf("snapshot asked for %d times after the stall, want 1 (progress %+v)", got-sent, l.Status().Progress[2])
	}
	if pr := l.Status().Progress[2]; pr.State != StateSnapshot || pr.SnapshotAcked != 0 {
		t.Fatalf("after the retry: %+v", pr)
	}
}

// TestCompactKeepsEntriesAfterASnapshotBeingSent: while a transfer to a
// peer progresses (acknowledged bytes), the leader's compaction keeps the
// entries after the snapshot being sent: the peer needs them once it
// installed it. Without an acknowledged byte, compaction is not held.
func TestCompactKeepsEntriesAfterASnapshotBeingSent(t *testing.T) {
	for _, acked := range []bool{true, false} {
		nw := lagBehind(t, 3)
		nw.compact(1, "state", 0)
		nw.heal()
		nw.filter = func(m *messages.Message) bool { return !(m.Type == mSnap && m.To == 3) }
		nw.tick(1, 1)
		l := nw.raft(1)
		pending := l.Status().Progress[2].PendingSnapshot
		if acked {
			m := msg(mAck, 3, 1, l.Term())
			m.SnapshotChunk = &messages.SnapshotChunk{Metadata: &messages.SnapshotMetadata{Index: pending, Term: l.Snapshot().Metadata.Term}, Size: 1 << 20, Offset: 4096}
			mustStep(t, l, m)
			nw.stabilize()
		}
		for range 4 {
			nw.propose(1, "meanwhile")
		}
		nw.compact(1, "state", 0)
		want := l.Applied() + 1
		if acked {
			want = pending + 1
		}
		if first := l.FirstIndex(); first != want {
			t.Fatalf("acknowledged bytes %t: compaction while the snapshot at %d is sent: first index %d, want %d", acked, pending, first, want)
		}
		if pr := l.Status().Progress[2]; pr.State != StateSnapshot || pr.PendingSnapshot != pending {
			t.Fatalf("progress of 3: %+v", pr)
		}
	}
}
