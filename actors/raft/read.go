package raft

import (
	"github.com/flotilla-raft/flotilla/cluster/membership"
	"github.com/flotilla-raft/flotilla/messages"
)

// ReadState answers a ReadIndex request: a read for Context is
// linearizable once the state machine has applied Index.
type ReadState struct {
	Index   uint64
	Context []byte
}

type readRequest struct {
	from uint64 // 0 or self: local
	ctx  []byte
}

type readStatus struct {
	index uint64
	req   readRequest
	acks  map[uint64]bool
}

// readOnly tracks read index requests waiting for a heartbeat quorum.
type readOnly struct {
	pending map[string]*readStatus
	queue   []string
}

func (ro *readOnly) init() { ro.pending, ro.queue = map[string]*readStatus{}, nil }

func (ro *readOnly) lastContext() []byte {
	if len(ro.queue) == 0 {
		return nil
	}
	return []byte(ro.queue[len(ro.queue)-1])
}

// ReadIndex asks for a linearizable read point (thesis §6.4). ctx must be
// unique per request; the answer arrives as a ReadState in a later Ready
// (on this node, also when it is a follower: it asks the leader).
func (r *Raft) ReadIndex(ctx []byte) error {
	r.wake("read request", true)
	if r.role == Leader {
		r.readIndex(r.id, ctx)
		return nil
	}
	if r.lead == 0 {
		return ErrNoLeader
	}
	r.send(&messages.Message{Type: messages.MessageType_MSG_READ_INDEX, To: r.lead, Context: ctx})
	return nil
}

func (r *Raft) readIndex(from uint64, ctx []byte) {
	req := readRequest{from: from, ctx: ctx}
	if t, _ := r.log.term(r.log.committed); t != r.term {
		// The leader does not know the commit index until it has
		// committed an entry of its own term (§6.4 step 1).
		r.pendingReads = append(r.pendingReads, req)
		return
	}
	r.serveRead(req)
}

func (r *Raft) releasePendingReads() {
	if len(r.pendingReads) == 0 {
		return
	}
	if t, _ := r.log.term(r.log.committed); t != r.term {
		return
	}
	reqs := r.pendingReads
	r.pendingReads = nil
	for _, req := range reqs {
		r.serveRead(req)
	}
}

func (r *Raft) serveRead(req readRequest) {
	single := len(r.quorum.Voters()) == 1 && r.quorum.IsVoter(r.id)
	if single || r.leaseValid() {
		r.answerRead(req, r.log.committed)
		return
	}
	key := string(req.ctx)
	if _, dup := r.reads.pending[key]; dup {
		return
	}
	r.reads.pending[key] = &readStatus{index: r.log.committed, req: req, acks: map[uint64]bool{r.id: true}}
	r.reads.queue = append(r.reads.queue, key)
	r.bcastHeartbeat(req.ctx)
}

// leaseValid reports whether a read may be answered on the leader's lease
// alone (ReadOnlyLeaseBased), without a heartbeat round. Every follower
// that acknowledged a heartbeat sent at the leader's clock k reset its
// election timer after k, and with CheckQuorum on refuses to elect anyone
// (inLease) for an election timeout of its own ticks from then: at least
// ElectionTicks-1 of the leader's ticks when ticks run at one rate. So the
// lease holds while a quorum (the leader counting as at now) acknowledged
// heartbeats sent less than ElectionTicks-1 ticks ago, in this term. It is
// refused when CheckQuorum is off in the settings in force (followers then
// promise nothing), and after this leader sent a TimeoutNow in its term
// (the transferee's forced election ignores leases). Tick rates that drift
// apart by more than a tick per election timeout break it: use
// ReadOnlySafe where ticks are not regular.
func (r *Raft) leaseValid() bool {
	if r.cfg.ReadOnly != ReadOnlyLeaseBased || !r.settings().CheckQuorum || r.leaseBroken || r.leadTransferee != 0 {
		return false
	}
	acked := r.quorum.CommittedIndex(func(id uint64) uint64 {
		if id == r.id {
			return r.ticks
		}
		if pr := r.prs[id]; pr != nil {
			return pr.leaseAck
		}
		return 0
	})
	return acked != 0 && r.ticks-acked < uint64(r.electionTimeout())-1
}

func (r *Raft) ackRead(from uint64, ctx []byte) {
	rs, ok := r.reads.pending[string(ctx)]
	if !ok {
		return
	}
	rs.acks[from] = true
	if r.quorum.VoteResult(rs.acks) != membership.VoteWon {
		return
	}
	// Every request queued up to this one is confirmed too.
	i := 0
	for ; i < len(r.reads.queue); i++ {
		key := r.reads.queue[i]
		st := r.reads.pending[key]
		delete(r.reads.pending, key)
		r.answerRead(st.req, st.index)
		if key == string(ctx) {
			break
		}
	}
	r.reads.queue = r.reads.queue[i+1:]
}

func (r *Raft) answerRead(req readRequest, index uint64) {
	if req.from == r.id || req.from == 0 {
		r.readStates = append(r.readStates, ReadState{Index: index, Context: req.ctx})
		return
	}
	r.send(&messages.Message{Type: messages.MessageType_MSG_READ_INDEX_RESP, To: req.from, Index: index, Context: req.ctx})
}
