package tracing

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of every span Flotilla starts.
const ScopeName = "github.com/flotilla-raft/flotilla"

// Span names. Each names one step of a Raft flow; see the package documentation for
// how they nest and link.
const (
	// SpanPropose: the leader receives a command (child of the client's context).
	SpanPropose = "raft.propose"
	// SpanLeaderAppend: the leader appends proposals to its log.
	SpanLeaderAppend = "raft.leader.append"
	// SpanPersist: entries and hard state are made durable (one fsync).
	SpanPersist = "raft.persist"
	// SpanReplicate: the leader sends AppendEntries to one peer (raft.peer).
	SpanReplicate = "raft.replicate"
	// SpanFollowerAppend: a follower handles AppendEntries from the leader (raft.peer).
	SpanFollowerAppend = "raft.follower.append"
	// SpanAck: a follower answers AppendEntries to the leader (raft.peer).
	SpanAck = "raft.ack"
	// SpanCommit: the commit index advances (raft.index).
	SpanCommit = "raft.commit"
	// SpanApply: committed entries are delivered to the application.
	SpanApply = "raft.apply"
	// SpanElection: a node starts an election (raft.reason, raft.term).
	SpanElection = "raft.election"
	// SpanPreVote: a pre-candidate asks one peer for a pre-vote.
	SpanPreVote = "raft.prevote"
	// SpanVote: a candidate asks one peer for its vote.
	SpanVote = "raft.vote"
	// SpanVoteResponse: a node answers a (pre-)vote request (raft.result).
	SpanVoteResponse = "raft.vote.response"
	// SpanHeartbeat: a leader's empty AppendEntries; only with WithHeartbeats.
	SpanHeartbeat = "raft.heartbeat"
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

// KeyValues returns the non-zero attributes of a, for callers that start spans
// themselves.
func (a Attrs) KeyValues() []attribute.KeyValue { return a.appendTo(nil) }

// kindOf is the span kind of a standard span name: a send is a producer, the
// handling of a received message a consumer (Raft messages are one-way).
func kindOf(name string) trace.SpanKind {
	switch name {
	case SpanReplicate, SpanAck, SpanPreVote, SpanVote, SpanVoteResponse, SpanHeartbeat:
		return trace.SpanKindProducer
	case SpanFollowerAppend:
		return trace.SpanKindConsumer
	case SpanPropose:
		return trace.SpanKindServer
	default:
		return trace.SpanKindInternal
	}
}
