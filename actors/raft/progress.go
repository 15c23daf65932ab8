package raft

import "fmt"

// ProgressState is how the leader replicates to one peer.
type ProgressState uint8

const (
	// StateProbe: one AppendEntries at a time until the peer's log position
	// is found (after an election, a rejection, or a lost connection).
	StateProbe ProgressState = iota
	// StateReplicate: AppendEntries are pipelined, up to the in-flight window.
	StateReplicate
	// StateSnapshot: a snapshot is on its way; appends wait for it.
	StateSnapshot
)

func (s ProgressState) String() string {
	switch s {
	case StateProbe:
		return "probe"
	case StateReplicate:
		return "replicate"
	case StateSnapshot:
		return "snapshot"
	}
	return fmt.Sprintf("ProgressState(%d)", uint8(s))
}

// Progress is the leader's view of one peer (thesis §3.5: nextIndex,
// matchIndex), plus flow control.
//
// Invariant: Match < Next.
type Progress struct {
	// Match is the highest index known to be replicated on the peer.
	Match uint64
	// Next is the index of the next entry to send.
	Next  uint64
	State ProgressState
	// PendingSnapshot is the index of the snapshot being sent (StateSnapshot).
	PendingSnapshot uint64
	// SnapshotAcked is how many bytes of the pending snapshot the peer
	// acknowledged holding (chunked transfer, MSG_SNAPSHOT_ACK).
	//
	// Invariant: SnapshotAcked == 0 unless State == StateSnapshot.
	SnapshotAcked uint64
	// RecentActive: the peer was heard from since the last check-quorum.
	// It starts true; with CheckQuorum on, the leader clears it every
	// election timeout (quorumActive); with CheckQuorum off nothing
	// clears it.
	RecentActive bool
	// probeSent pauses a probing peer until it answers or a heartbeat is due.
	probeSent bool
	// stateTicks counts ticks in StateSnapshot since the transfer last
	// progressed (an acknowledgement of more bytes), to retry a stalled
	// or lost snapshot.
	stateTicks int
	// leaseAck is the leader's clock when it sent the latest heartbeat the
	// peer acknowledged in this term (0: none); see Raft.leaseValid.
	leaseAck  uint64
	inflights inflights
	IsLearner bool
	// RemovedAt is non-zero for a departing peer: the index of the
	// committed configuration that removed it. The leader keeps
	// replicating to it until it answers with a commit index >= RemovedAt
	// (it then knows it is removed), or until it stays silent for
	// departTimeouts election timeouts.
	//
	// Invariant: RemovedAt != 0 implies IsLearner.
	RemovedAt uint64
	// departTimeouts counts election timeouts spent departing.
	departTimeouts int
}

func (p *Progress) becomeProbe() {
	if p.State == StateSnapshot {
		p.Next = max(p.Match+1, p.PendingSnapshot+1)
	} else {
		p.Next = p.Match + 1
	}
	p.State, p.PendingSnapshot, p.probeSent, p.stateTicks, p.SnapshotAcked = StateProbe, 0, false, 0, 0
	p.inflights.reset()
}

func (p *Progress) becomeReplicate() {
	p.State, p.PendingSnapshot, p.probeSent, p.stateTicks, p.SnapshotAcked = StateReplicate, 0, false, 0, 0
	p.Next = p.Match + 1
	p.inflights.reset()
}

func (p *Progress) becomeSnapshot(index uint64) {
	p.State, p.PendingSnapshot, p.probeSent, p.stateTicks, p.SnapshotAcked = StateSnapshot, index, false, 0, 0
	p.inflights.reset()
}

// maybeUpdate records an acknowledgement of index n; it reports whether
// Match moved.
func (p *Progress) maybeUpdate(n uint64) bool {
	updated := false
	if p.Match < n {
		p.Match = n
		updated = true
		p.probeSent = false
	}
	p.Next = max(p.Next, n+1)
	return updated
}

// maybeDecrTo handles a rejection of the probe at index rejected, with the
// follower's hint matchHint (the next index to try is matchHint+1). It
// reports whether the rejection was news (not stale).
func (p *Progress) maybeDecrTo(rejected, matchHint uint64) bool {
	if p.State == StateReplicate {
		// Stale if we already know a match at or after the rejected index.
		if rejected <= p.Match {
			return false
		}
		p.Next = p.Match + 1
		return true
	}
	// Probing: only the answer to the outstanding probe counts.
	if p.Next-1 != rejected {
		return false
	}
	p.Next = max(min(rejected, matchHint+1), p.Match+1)
	p.probeSent = false
	return true
}

// isPaused reports whether no AppendEntries may be sent to the peer now.
func (p *Progress) isPaused() bool {
	switch p.State {
	case StateProbe:
		return p.probeSent
	case StateReplicate:
		return p.inflights.full()
	default:
		return true
	}
}

// inflights is a ring of the last indices of the AppendEntries in flight.
type inflights struct {
	start, count int
	bytes        uint64
	maxCount     int
	maxBytes     uint64
	buf          []inflight
}

type inflight struct {
	index uint64
	bytes uint64
}

func (in *inflights) add(index, bytes uint64) {
	if in.buf == nil {
		in.buf = make([]inflight, in.maxCount)
	}
	in.buf[(in.start+in.count)%len(in.buf)] = inflight{index, bytes}
	in.count++
	in.bytes += bytes
}

// freeLE frees every in-flight message whose last index is <= to.
func (in *inflights) freeLE(to uint64) {
	for in.count > 0 && in.buf[in.start].index <= to {
		in.bytes -= in.buf[in.start].bytes
		in.start = (in.start + 1) % len(in.buf)
		in.count--
	}
	if in.count == 0 {
		in.start = 0
	}
}

// freeFirst frees the oldest in-flight message.
func (in *inflights) freeFirst() {
	if in.count > 0 {
		in.freeLE(in.buf[in.start].index)
	}
}

func (in *inflights) full() bool {
	return in.count >= in.maxCount || (in.maxBytes > 0 && in.bytes >= in.maxBytes)
}

func (in *inflights) reset() { in.start, in.count, in.bytes = 0, 0, 0 }
