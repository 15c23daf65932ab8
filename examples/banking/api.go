package main

// The client API: HTTP/1.1 with JSON bodies, on each server's API address.
// See README.md for the full description; these are its bodies.

// Paths of the client API.
const (
	pathCommands = "/v1/commands" // POST CommandRequest → CommandResponse
	pathBalance  = "/v1/balance"  // GET ?account=NAME → BalanceResponse (linearizable)
	pathBalances = "/v1/balances" // GET [?stale=true] → BalancesResponse
	pathStatus   = "/v1/status"   // GET → StatusResponse
	pathMembers  = "/v1/members"  // POST MemberRequest → MemberResponse; DELETE ?id=N[&expected_config_index=I] → MemberResponse (leader)
)

// Error codes of ErrorResponse.
const (
	errNotLeader      = "not_leader"       // 307: retry at LeaderAPI
	errNoLeader       = "no_leader"        // 503: no leader known; retry shortly, anywhere
	errRetry          = "retry"            // 503: transient (election, node stopping); retry
	errOutcomeUnknown = "outcome_unknown"  // 504: the command may or may not commit; retry with the same client id and seq
	errInvalid        = "invalid_request"  // 400: do not retry
	errNoSuchAccount  = "no_such_account"  // 404 (balance)
	errInternal       = "internal"         // 500
	errStaleConfig    = "stale_config"     // 409: expected_config_index is not the configuration in force; read status, decide again
	errCatchUpTimeout = "catch_up_timeout" // 422: the new server did not catch up in time; it stays a learner
)

// CommandRequest is the body of POST /v1/commands. ClientID and Seq make
// retries idempotent: a client numbers its commands 1, 2, 3, ... and
// retries a command with the same pair until it gets an answer. Zero means
// no deduplication.
type CommandRequest struct {
	ClientID uint64 `json:"client_id"`
	Seq      uint64 `json:"seq"`
	Command
}

// CommandResponse answers an applied command (whatever its Result.Code).
type CommandResponse struct {
	Index  uint64 `json:"index"`
	Term   uint64 `json:"term"`
	Node   uint64 `json:"node"`
	Result Result `json:"result"`
}

// ErrorResponse is the body of every non-200 answer.
type ErrorResponse struct {
	Error   string `json:"error"`
	Message string `json:"message"`
	// LeaderID and LeaderAPI name the leader on not_leader (LeaderAPI is
	// the leader's client API address).
	LeaderID  uint64 `json:"leader_id,omitempty"`
	LeaderAPI string `json:"leader_api,omitempty"`
}

// BalanceResponse answers GET /v1/balance.
type BalanceResponse struct {
	Account   string `json:"account"`
	Balance   int64  `json:"balance"`
	ReadIndex uint64 `json:"read_index"`
	Node      uint64 `json:"node"`
}

// BalancesResponse answers GET /v1/balances.
type BalancesResponse struct {
	Balances  map[string]int64 `json:"balances"`
	ReadIndex uint64           `json:"read_index,omitempty"`
	Stale     bool             `json:"stale,omitempty"`
	Node      uint64           `json:"node"`
}

// StatusResponse answers GET /v1/status: this node's view.
type StatusResponse struct {
	ID        uint64            `json:"id"`
	RaftAddr  string            `json:"raft_addr"`
	APIAddr   string            `json:"api_addr"`
	Role      string            `json:"role"`
	Term      uint64            `json:"term"`
	Leader    uint64            `json:"leader"`
	LeaderAPI string            `json:"leader_api,omitempty"`
	Commit    uint64            `json:"commit"`
	Applied   uint64            `json:"applied"`
	LastIndex uint64            `json:"last_index"`
	Members   []MemberInfo      `json:"members"`            // voters
	Learners  []MemberInfo      `json:"learners,omitempty"` // non-voting members
	Peers     map[uint64]string `json:"peers,omitempty"`    // transport connection state
	// ConfigIndex is the log index of the configuration in force: give it
	// as expected_config_index to change membership only if nobody else
	// did meanwhile.
	ConfigIndex uint64 `json:"config_index"`
	// Removed: this server knows it is no member any more.
	Removed bool `json:"removed,omitempty"`
}

// MemberRequest is the body of POST /v1/members: add server ID (its Raft
// address) as a learner, and, when Voter, promote it once it has caught
// up. ExpectedConfigIndex (optional) makes it conditional.
type MemberRequest struct {
	ID                  uint64 `json:"id"`
	RaftAddr            string `json:"raft_addr"`
	Voter               bool   `json:"voter"`
	ExpectedConfigIndex uint64 `json:"expected_config_index,omitempty"`
}

// MemberResponse answers a membership change once its final configuration
// is committed at ConfigIndex.
type MemberResponse struct {
	ConfigIndex uint64       `json:"config_index"`
	Node        uint64       `json:"node"`
	Voters      []MemberInfo `json:"voters"`
	Learners    []MemberInfo `json:"learners,omitempty"`
}

// MemberInfo is one member with both of its addresses.
type MemberInfo struct {
	ID       uint64 `json:"id"`
	RaftAddr string `json:"raft_addr"`
	APIAddr  string `json:"api_addr"`
	// Lag is how many entries the member's log is behind the leader's
	// (in the leader's status only).
	Lag *uint64 `json:"lag,omitempty"`
}
