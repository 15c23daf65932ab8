package main

import (
	"github.com/flotilla-raft/flotilla/actors"
)

// The broker API: HTTP/1.1 with JSON bodies, on each broker's --api
// address. Clients use the public paths; brokers use the internal ones
// among themselves (replication and handover).

// Paths of the broker API.
const (
	pathProduce   = "/v1/produce"         // POST ProduceRequest → ProduceResponse (owner; others redirect)
	pathConsume   = "/v1/consume"         // GET ?partition=T/N&from=O&max=M → ConsumeResponse (owner; others redirect)
	pathTable     = "/v1/table"           // GET → View (linearizable)
	pathMove      = "/v1/move"            // POST MoveRequest → View of the partition's row
	pathMembers   = "/v1/members"         // POST MemberRequest: add (learner, caught up, voter) or remove (leader; others redirect)
	pathStatus    = "/v1/status"          // GET → StatusResponse
	pathPropose   = "/internal/propose"   // POST Command → ProposeResult (leader; others redirect)
	pathReplicate = "/internal/replicate" // POST ReplicateRequest → ReplicateResponse (follower)
	pathFetch     = "/internal/fetch"     // POST FetchRequest → FetchResponse (a holder; seals it)
)

// Error codes of ErrorResponse.
const (
	errRedirect = "redirect"        // 307: ask Broker at API (the owner, or the Raft leader)
	errRetry    = "retry"           // 503: transient (handover, election, replication); retry
	errFenced   = "fenced"          // 409: a newer epoch sealed the partition here
	errGap      = "gap"             // 409: replication must start at Next
	errInvalid  = "invalid_request" // 400: do not retry
	errNotFound = "not_found"       // 404
	errInternal = "internal"        // 500
)

// ErrorResponse is the body of every non-200 answer.
type ErrorResponse struct {
	Error   string `json:"error"`
	Message string `json:"message"`
	Broker  uint64 `json:"broker,omitempty"` // redirect: where to go
	API     string `json:"api,omitempty"`
	Next    uint64 `json:"next,omitempty"` // gap: the follower's end
}

// ProduceRequest appends Payload to a partition of Topic: Partition, or
// Seq modulo the topic's partition count when Partition is negative.
// Producer (non-zero) and Seq (1, 2, 3, ... per partition) make retries
// idempotent: the owner answers a retry of the last message it stored for
// Producer with the offset it stored; a Seq below that one is refused
// (invalid_request), so a producer sends its next message to a partition
// only once the previous one is acknowledged. An unknown topic is created
// with the broker's --partitions.
type ProduceRequest struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	Producer  uint64 `json:"producer"`
	Seq       uint64 `json:"seq"`
	Payload   string `json:"payload"`
}

// ProduceResponse acknowledges a message: it is stored on the owner and
// on the follower.
type ProduceResponse struct {
	Partition string `json:"partition"`
	Offset    uint64 `json:"offset"`
	Epoch     uint64 `json:"epoch"`
	Broker    uint64 `json:"broker"`
	Duplicate bool   `json:"duplicate,omitempty"`
}

// ConsumeResponse holds acknowledged records from the requested offset;
// HighWatermark is the partition's end.
type ConsumeResponse struct {
	Partition     string   `json:"partition"`
	Records       []Record `json:"records"`
	HighWatermark uint64   `json:"high_watermark"`
	Broker        uint64   `json:"broker"`
}

// MoveRequest asks the leader to give Partition to Broker.
type MoveRequest struct {
	Partition string `json:"partition"`
	Broker    uint64 `json:"broker"`
}

// MemberRequest adds (Raft and API addresses) or removes (Remove) a broker.
type MemberRequest struct {
	ID     uint64 `json:"id"`
	Raft   string `json:"raft,omitempty"`
	API    string `json:"api,omitempty"`
	Remove bool   `json:"remove,omitempty"`
}

// StatusResponse answers GET /v1/status.
type StatusResponse struct {
	ID         uint64   `json:"id"`
	Role       string   `json:"role"`
	Term       uint64   `json:"term"`
	Leader     uint64   `json:"leader"`
	Commit     uint64   `json:"commit"`
	Applied    uint64   `json:"applied"`
	Voters     []uint64 `json:"voters"`
	Learners   []uint64 `json:"learners,omitempty"`
	Rebalances uint64   `json:"rebalances"` // assign entries this broker proposed as leader
	// Progress is the leader's view of each member; Peers the transport's
	// connections; Dropped the inbound Raft messages refused, by cause.
	Progress []actors.PeerProgress `json:"progress,omitempty"`
	Peers    map[uint64]string     `json:"peers,omitempty"`
	Dropped  actors.DropCounts     `json:"dropped"`
	// Removed: this broker learned that it is no member any more.
	Removed bool `json:"removed,omitempty"`
	// BadRequests counts the requests this broker refused as invalid.
	BadRequests uint64 `json:"bad_requests"`
}

// ProposeResult answers POST /internal/propose.
type ProposeResult struct {
	Index uint64 `json:"index"`
	Error string `json:"error,omitempty"` // the table refused the command
}

// ReplicateRequest stores Records (from offset From) on the follower at Epoch.
type ReplicateRequest struct {
	Partition string   `json:"partition"`
	Epoch     uint64   `json:"epoch"`
	From      uint64   `json:"from"`
	Records   []Record `json:"records"`
}

// ReplicateResponse: the follower's end after storing.
type ReplicateResponse struct {
	Next uint64 `json:"next"`
}

// FetchRequest asks a holder for every record of Partition and seals it at
// Epoch (the new owner's).
type FetchRequest struct {
	Partition string `json:"partition"`
	Epoch     uint64 `json:"epoch"`
}

// FetchResponse holds the records.
type FetchResponse struct {
	Records []Record `json:"records"`
}
