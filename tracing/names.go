package tracing

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of every span Flotilla starts.
const ScopeName = "github.com/flotilla-raft/flotilla"

// Span names. Each names one step of a Raft flow; see the package documentation for
// how they nest and link, and [kindOf] for their span kinds. A Raft message
// exchange is a client/server pair: the sender's span (client) lasts from the
// send until the answer arrives, the receiver's span (server) from the receipt
// until its answer is sent, so the receiver's span lies inside the sender's.
const (
	// SpanPropose (server, leader): from the receipt of a Propose until the
	// proposer is answered (the entry is applied on the leader, or the node
	// gives up). Child of Propose.TraceParent when given.
	SpanPropose = "raft.propose"
	// SpanLeaderAppend (internal, leader): the proposal is appended to the
	// leader's log (raft.index).
	SpanLeaderAppend = "raft.leader.append"
	// SpanPersist (internal): entries and hard state are made durable (one fsync);
	// linked to the entries of other traces it wrote.
	SpanPersist = "raft.persist"
	// SpanReplicate (client, leader): AppendEntries to one peer (raft.peer), from
	// the send until that peer's acknowledgement covering its last entry arrives
	// (raft.result: acked, rejected, abandoned).
	SpanReplicate = "raft.replicate"
	// SpanFollowerAppend (server, follower): the handling of AppendEntries from
	// the leader (raft.peer), from the receipt until the acknowledgement is sent
	// (after the entries are durable).
	SpanFollowerAppend = "raft.follower.append"
	// SpanCommit (internal, leader): the commit index reaches the entry (raft.index).
	SpanCommit = "raft.commit"
	// SpanApply (internal): an entry is applied to the state machine, on every node.
	SpanApply = "raft.apply"
	// SpanElection (internal, the (pre-)candidate): from the first campaign until
	// it wins or loses; raft.role, raft.term and raft.result are set when it ends.
	SpanElection = "raft.election"
	// SpanPreVote (client, pre-candidate): a pre-vote request to one peer, from the
	// send until the answer (raft.result: granted, rejected, unanswered).
	SpanPreVote = "raft.prevote"
	// SpanVote (client, candidate): a vote request to one peer, from the send
	// until the answer (raft.result: granted, rejected, unanswered).
	SpanVote = "raft.vote"
	// SpanVoteResponse (server, voter): the handling of a (pre-)vote request
	// (raft.msg.type), from the receipt until the answer is sent (raft.result).
	SpanVoteResponse = "raft.vote.response"
	// SpanRead (server): a linearizable read, from the receipt of a Read until
	// it is answered (raft.index: the read index).
	SpanRead = "raft.read"
	// SpanReadIndex (internal): the ReadIndex round of a read, until the read
	// index is known (the leader confirmed its leadership with a quorum).
	SpanReadIndex = "raft.read.index"
	// SpanReadIndexServe (server, leader): the leader serves a follower's read
	// index request, from the receipt until its answer is sent.
	SpanReadIndexServe = "raft.read.index.serve"
	// SpanReadWait (internal): a read waits until the state machine has applied
	// its read index.
	SpanReadWait = "raft.read.wait"
	// SpanSnapshotTake (internal): the state machine writes a snapshot (raft.index).
	SpanSnapshotTake = "raft.snapshot.take"
	// SpanSnapshotSend (client, leader): InstallSnapshot to one peer (raft.peer),
	// from the send until the peer's answer (raft.result).
	SpanSnapshotSend = "raft.snapshot.send"
	// SpanSnapshotInstall (server, follower): the handling of InstallSnapshot,
	// from the receipt until the answer is sent (after the snapshot is durable).
	SpanSnapshotInstall = "raft.snapshot.install"
	// SpanSnapshotRestore (internal, follower): the state machine is restored
	// from an installed snapshot.
	SpanSnapshotRestore = "raft.snapshot.restore"
	// SpanConfigChange (server, leader): a ChangeConfig, from the receipt until
	// the final configuration commits (through the joint one when more than one
	// voter changes); its entry's replication spans are its children.
	SpanConfigChange = "raft.config.change"
	// SpanLeaveJoint (internal, leader): from the commit of a joint
	// configuration until the final one commits.
	SpanLeaveJoint = "raft.config.leave_joint"
	// SpanTransfer (server, leader): a TransferLeadership, from the receipt until
	// it is answered; the transferee's election is its child (the TimeoutNow
	// message carries its context).
	SpanTransfer = "raft.transfer"
)

// Attribute keys. Node ids, terms and indexes are recorded as int64.
const (
	AttrNodeID     = attribute.Key("raft.node_id")     // the node that records the span
	AttrTerm       = attribute.Key("raft.term")        // the term of the step or message
	AttrIndexFirst = attribute.Key("raft.index.first") // first log index of a range
	AttrIndexLast  = attribute.Key("raft.index.last")  // last log index of a range
	AttrIndex      = attribute.Key("raft.index")       // one log index (commit, apply, ack)
	AttrPeer       = attribute.Key("raft.peer")        // the other node of a message
	AttrLeader     = attribute.Key("raft.leader")      // the known leader
	AttrBatchSize  = attribute.Key("raft.batch.size")  // entries or messages in a batch
	AttrRole       = attribute.Key("raft.role")        // follower, pre-candidate, candidate, leader
	AttrReason     = attribute.Key("raft.reason")      // why: election-timeout, transfer, ...
	AttrResult     = attribute.Key("raft.result")      // granted, rejected, won, lost, ...
	AttrMsgType    = attribute.Key("raft.msg.type")    // the Raft message type
	// AttrSnapshotBytes is the size of a snapshot's data, in bytes.
	AttrSnapshotBytes = attribute.Key("raft.snapshot.bytes")
)

// Attrs are the standard attributes of a span. Zero fields are left out (node ids
// and terms start at 1, log indexes at 1). The Tracer adds raft.node_id itself.
// Attrs is passed by value so that building it costs nothing when tracing is off.
type Attrs struct {
	Term        uint64 // raft.term
	First, Last uint64 // raft.index.first, raft.index.last
	Index       uint64 // raft.index
	Peer        uint64 // raft.peer
	Leader      uint64 // raft.leader
	BatchSize   int    // raft.batch.size
	Role        string // raft.role
	Reason      string // raft.reason
	Result      string // raft.result
	MsgType     string // raft.msg.type
}

// appendTo appends the non-zero attributes to kvs.
func (a Attrs) appendTo(kvs []attribute.KeyValue) []attribute.KeyValue {
	u := func(k attribute.Key, v uint64) {
		if v != 0 {
			kvs = append(kvs, k.Int64(int64(v)))
		}
	}
	s := func(k attribute.Key, v string) {
		if v != "" {
			kvs = append(kvs, k.String(v))
		}
	}
	u(AttrTerm, a.Term)
	u(AttrIndexFirst, a.First)
	u(AttrIndexLast, a.Last)
	u(AttrIndex, a.Index)
	u(AttrPeer, a.Peer)
	u(AttrLeader, a.Leader)
	if a.BatchSize != 0 {
		kvs = append(kvs, AttrBatchSize.Int(a.BatchSize))
	}
	s(AttrRole, a.Role)
	s(AttrReason, a.Reason)
	s(AttrResult, a.Result)
	s(AttrMsgType, a.MsgType)
	return kvs
}

// kindOf is the span kind of a standard span name: a message exchange is a
// client/server pair (the sender's span lasts until the answer, the
// receiver's until it answers); a request from the application is a server
// span; the rest is internal.
func kindOf(name string) trace.SpanKind {
	switch name {
	case SpanReplicate, SpanPreVote, SpanVote, SpanSnapshotSend:
		return trace.SpanKindClient
	case SpanFollowerAppend, SpanVoteResponse, SpanSnapshotInstall, SpanReadIndexServe,
		SpanPropose, SpanRead, SpanConfigChange, SpanTransfer:
		return trace.SpanKindServer
	default:
		return trace.SpanKindInternal
	}
}
