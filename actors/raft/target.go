package raft

// TransferTarget returns the voter a leader hands leadership to when none
// is named (a TransferLeadership to 0, a leader that stops): of the voters
// that acknowledged a heartbeat sent within the last two heartbeat
// intervals (and a tick), the one with the longest log, so that a peer gone
// silent is never chosen. It returns 0 when there is none, or when this
// node is not the leader.
func (r *Raft) TransferTarget() uint64 {
	if r.role != Leader {
		return 0
	}
	recent := uint64(2*max(r.heartbeatTimeout(), 1) + 1)
	var best, bestMatch uint64
	for _, id := range r.peers {
		pr := r.prs[id]
		if id == r.id || pr == nil || pr.IsLearner || pr.leaseAck == 0 || r.ticks-pr.leaseAck > recent {
			continue
		}
		if best == 0 || pr.Match > bestMatch {
			best, bestMatch = id, pr.Match
		}
	}
	return best
}
