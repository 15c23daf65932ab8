package raft

import (
	"encoding/binary"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/flotilla-raft/flotilla/messages"
)

// fuzzNode returns node 1 of a 3-voter cluster (PreVote, CheckQuorum) in
// the role chosen by b: follower, (pre-)candidate or leader.
func fuzzNode(t *testing.T, b byte) *Raft {
	r := newTestRaft(t, 1, []uint64{1, 2, 3}, withPreVote, withCheckQuorum)
	drain(r)
	switch b % 4 {
	case 1: // pre-candidate
		r.Campaign()
	case 2, 3: // leader (3: with a proposal in flight)
		r.Campaign()
		drain(r)
		r.Step(&messages.Message{Type: messages.MessageType_MSG_PRE_VOTE_RESP, ClusterId: 7, From: 2, To: 1, Term: r.term + 1})
		drain(r)
		r.Step(&messages.Message{Type: messages.MessageType_MSG_VOTE_RESP, ClusterId: 7, From: 2, To: 1, Term: r.term})
		drain(r)
		if b%4 == 3 {
			r.Propose(&messages.Entry{Data: []byte("x")})
			drain(r)
		}
	}
	return r
}

// fuzzSeeds are messages of every type, including snapshots whose
// metadata and configuration are corrupt, and snapshot chunks and
// acknowledgements at the edges of their offsets.
func fuzzSeeds() []*messages.Message {
	var out []*messages.Message
	for ty := range messages.MessageType_name {
		out = append(out, &messages.Message{Type: messages.MessageType(ty), ClusterId: 7, From: 2, To: 1, Term: 5, Index: 3, LogTerm: 1, Commit: 9})
	}
	snap := func(md *messages.SnapshotMetadata) *messages.Message {
		return &messages.Message{Type: messages.MessageType_MSG_SNAPSHOT, ClusterId: 7, From: 2, To: 1, Term: 5,
			Snapshot: &messages.Snapshot{Metadata: md, Data: []byte{0xff, 0xff, 0xff}}}
	}
	chunk := func(ty messages.MessageType, c *messages.SnapshotChunk) *messages.Message {
		return &messages.Message{Type: ty, ClusterId: 7, From: 2, To: 1, Term: 5, SnapshotChunk: c}
	}
	md := &messages.SnapshotMetadata{Index: 100, Term: 5, Config: &messages.ClusterConfig{Voters: members(1, 2, 3)}}
	out = append(out,
		chunk(messages.MessageType_MSG_SNAPSHOT_CHUNK, nil),
		chunk(messages.MessageType_MSG_SNAPSHOT_CHUNK, &messages.SnapshotChunk{Metadata: md, Size: 3, Data: []byte("abc"), DataChecksum: 0x364b3fb7}),
		chunk(messages.MessageType_MSG_SNAPSHOT_CHUNK, &messages.SnapshotChunk{Metadata: md, Size: 1<<64 - 1, Offset: 1<<64 - 2, Data: []byte("abc")}),
		chunk(messages.MessageType_MSG_SNAPSHOT_ACK, &messages.SnapshotChunk{Metadata: md, Size: 10, Offset: 10}),
		chunk(messages.MessageType_MSG_SNAPSHOT_ACK, &messages.SnapshotChunk{Metadata: md, Size: 10, Offset: 11}),
		snap(nil),
		snap(&messages.SnapshotMetadata{Index: 100, Term: 5}),
		snap(&messages.SnapshotMetadata{Index: 100, Term: 5, Config: &messages.ClusterConfig{}}),
		snap(&messages.SnapshotMetadata{Index: 100, Term: 9, Config: &messages.ClusterConfig{Voters: members(2, 3)}}),
		snap(&messages.SnapshotMetadata{Index: 100, Term: 5, Config: &messages.ClusterConfig{Voters: members(1, 2), Settings: &messages.Settings{}}}),
		snap(&messages.SnapshotMetadata{Index: 1<<64 - 1, Term: 1<<64 - 1}),
		&messages.Message{Type: messages.MessageType_MSG_APPEND, ClusterId: 7, From: 2, To: 1, Term: 5, Index: 1, LogTerm: 1,
			Entries: []*messages.Entry{{Index: 2, Term: 5, Type: messages.EntryType_ENTRY_CONFIG, Data: []byte{0xff}}}, Commit: 2},
		&messages.Message{Type: messages.MessageType_MSG_APPEND, ClusterId: 7, From: 2, To: 1, Term: 5, Index: 1<<64 - 2, LogTerm: 5,
			Entries: []*messages.Entry{{Index: 1<<64 - 1, Term: 5}}, Commit: 1<<64 - 1},
	)
	return out
}

// encodeFuzz packs messages as the fuzz input: a role byte, then
// length-prefixed marshalled messages.
func encodeFuzz(role byte, ms ...*messages.Message) []byte {
	out := []byte{role}
	for _, m := range ms {
		b, _ := proto.Marshal(m)
		out = binary.AppendUvarint(out, uint64(len(b)))
		out = append(out, b...)
	}
	return out
}

// FuzzStep: whatever decoded message a peer sends, in whatever role, Step
// returns (an error or nil) and the node keeps working: it never panics,
// and Ready, Persisted, Tick and Status keep working afterwards.
func FuzzStep(f *testing.F) {
	seeds := fuzzSeeds()
	for role := range byte(4) {
		for _, m := range seeds {
			f.Add(encodeFuzz(role, m))
		}
		f.Add(encodeFuzz(role, seeds...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		r := fuzzNode(t, data[0])
		data = data[1:]
		for len(data) > 0 {
			n, k := binary.Uvarint(data)
			if k <= 0 || n > uint64(len(data)-k) {
				return
			}
			m := new(messages.Message)
			if proto.Unmarshal(data[k:k+int(n)], m) != nil {
				return
			}
			data = data[k+int(n):]
			_ = r.Step(m)
			drain(r)
			r.Tick()
			drain(r)
			_ = r.Status()
		}
	})
}
