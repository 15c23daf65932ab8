package raft

import (
	"errors"
	"fmt"
)

// Sentinel errors. Check them with errors.Is.
var (
	// ErrNotLeader: this node is not the leader; see [NotLeaderError] for
	// who is.
	ErrNotLeader = errors.New("raft: not the leader")
	// ErrTransferInProgress: a leadership transfer is under way; proposals
	// are refused until it ends. Retryable.
	ErrTransferInProgress = errors.New("raft: leadership transfer in progress")
	// ErrConfigChangePending: a configuration change is not yet committed;
	// only one may be in flight. Retryable.
	ErrConfigChangePending = errors.New("raft: configuration change pending")
	// ErrProposalTooLarge: the proposal exceeds Config.MaxProposalBytes.
	ErrProposalTooLarge = errors.New("raft: proposal too large")
	// ErrProposalDropped: the leader holds Config.MaxUncommittedBytes of
	// uncommitted commands already; the proposal was not appended.
	// Retryable once entries commit.
	ErrProposalDropped = errors.New("raft: proposal dropped (too many uncommitted bytes)")
	// ErrInvalidConfigChange: the requested configuration is not valid
	// (empty voters, unknown learner, duplicate ids...).
	ErrInvalidConfigChange = errors.New("raft: invalid configuration change")
	// ErrNoLeader: no leader is known; a read index cannot be served. Retryable.
	ErrNoLeader = errors.New("raft: no leader known")
	// ErrInvalidMessage: a message failed validation and was not stepped.
	ErrInvalidMessage = errors.New("raft: invalid message")
	// ErrCompacted: a requested index is before the first index of the log.
	ErrCompacted = errors.New("raft: index compacted")
	// ErrUnavailable: a requested index is after the last index of the log.
	ErrUnavailable = errors.New("raft: index unavailable")
)

// NotLeaderError is returned (wrapping ErrNotLeader) when an operation needs
// the leader. Leader is 0 when no leader is known.
type NotLeaderError struct {
	Leader        uint64
	LeaderAddress string
}

func (e *NotLeaderError) Error() string {
	if e.Leader == 0 {
		return "raft: not the leader (no leader known)"
	}
	return fmt.Sprintf("raft: not the leader (leader is %d at %q)", e.Leader, e.LeaderAddress)
}

// Unwrap makes errors.Is(err, ErrNotLeader) hold.
func (e *NotLeaderError) Unwrap() error { return ErrNotLeader }
