package raft

import (
	"fmt"
	"slices"

	"github.com/flotilla-raft/flotilla/cluster/membership"
	"github.com/flotilla-raft/flotilla/messages"
	"google.golang.org/protobuf/proto"
)

// Ready is everything the core hands out at once. See the package doc for
// the order in which the driver must act on it.
type Ready struct {
	// PersistID is non-zero when HardState, Snapshot or Entries must be
	// persisted; report it to Persisted once durable.
	PersistID uint64
	// HardState to persist; nil if unchanged.
	HardState *messages.HardState
	// Snapshot received from the leader: persist it (the log restarts
	// after it) and, once persisted, restore the application from it
	// before applying CommittedEntries.
	Snapshot *messages.Snapshot
	// Entries to append to stable storage. Entries[0].Index may be <= the
	// stored last index: the stored suffix from there is replaced.
	Entries []*messages.Entry
	// Messages to send now, in order.
	Messages []*messages.Message
	// CommittedEntries to apply, in log order; all durable locally.
	CommittedEntries []*messages.Entry
	// ReadStates answer ReadIndex requests: once the application has
	// applied up to Index, a read for Context is linearizable.
	ReadStates []ReadState
	// Events says what changed, in order: role, term, leader, elections,
	// configuration, snapshots.
	Events []Event
}

// IsEmpty reports whether rd holds nothing.
func (rd *Ready) IsEmpty() bool {
	return rd.PersistID == 0 && len(rd.Messages) == 0 && len(rd.CommittedEntries) == 0 &&
		len(rd.ReadStates) == 0 && len(rd.Events) == 0
}

// HasReady reports whether Ready would hand out anything.
func (r *Raft) HasReady() bool {
	return r.needBcast || len(r.msgs) > 0 || len(r.msgsAfterPersist) > 0 || r.log.unstable <= r.log.lastIndex() ||
		r.pendingSnapshot != nil || r.hardStateChanged() || r.nextApplyIndex() > r.log.applied ||
		len(r.readStates) > 0 || len(r.events) > 0
}

func (r *Raft) hardState() *messages.HardState {
	return &messages.HardState{Term: r.term, Vote: r.vote, Commit: r.log.committed}
}

// hardStateChanged reports a change of term or vote. A change of commit
// alone is not worth a sync: it rides along with the next write (a stale
// commit index after a crash is safe: the leader tells it again).
func (r *Raft) hardStateChanged() bool { return r.term != r.prevHS.term || r.vote != r.prevHS.vote }

func (r *Raft) nextApplyIndex() uint64 { return min(r.log.committed, r.log.persisted) }

// Ready hands out what is ready; each output is handed out once.
func (r *Raft) Ready() Ready {
	if r.needBcast {
		news := r.bcastNews
		r.needBcast, r.bcastNews = false, false
		if r.role == Leader {
			r.bcastAppend(news)
		}
	}
	var rd Ready
	ents := r.log.slice(r.log.unstable, r.log.lastIndex()+1, 0, 0)
	if len(ents) > 0 || r.pendingSnapshot != nil || r.hardStateChanged() {
		r.persistSeq++
		b := persistBatch{id: r.persistSeq, msgs: r.msgsAfterPersist}
		rd.HardState = r.hardState()
		r.prevHS = termVote{r.term, r.vote}
		b.hs = r.prevHS
		if r.pendingSnapshot != nil {
			rd.Snapshot = r.pendingSnapshot
			b.snapIndex = r.pendingSnapshot.Metadata.Index
			r.pendingSnapshot = nil
		}
		if len(ents) > 0 {
			rd.Entries = ents
			b.lastIndex = ents[len(ents)-1].Index
			r.log.unstable = b.lastIndex + 1
		}
		r.msgsAfterPersist = nil
		r.batches = append(r.batches, b)
		rd.PersistID = b.id
	} else if len(r.msgsAfterPersist) > 0 {
		if n := len(r.batches); n > 0 {
			// What they promise is in a batch not yet durable.
			r.batches[n-1].msgs = append(r.batches[n-1].msgs, r.msgsAfterPersist...)
		} else {
			r.msgs = append(r.msgs, r.msgsAfterPersist...)
		}
		r.msgsAfterPersist = nil
	}
	rd.Messages, r.msgs = r.msgs, nil
	if hi := r.nextApplyIndex(); hi > r.log.applied {
		rd.CommittedEntries = r.log.slice(r.log.applied+1, hi+1, 0, 0)
		r.log.applied = hi
	}
	rd.ReadStates, r.readStates = r.readStates, nil
	rd.Events, r.events = r.events, nil
	return rd
}

// Persisted reports that the batch with this PersistID (and every earlier
// one) is durable. Messages held for it are handed out by the next Ready.
func (r *Raft) Persisted(id uint64) {
	n := 0
	for ; n < len(r.batches) && r.batches[n].id <= id; n++ {
		b := r.batches[n]
		if b.snapIndex > 0 && b.snapIndex <= r.log.lastIndex() && b.snapIndex >= r.log.snapIndex {
			r.log.persisted = max(r.log.persisted, b.snapIndex)
		}
		if b.lastIndex > 0 {
			r.log.persisted = max(r.log.persisted, b.lastIndex)
		}
		r.msgs = append(r.msgs, b.msgs...)
		r.durableHS = b.hs
	}
	if n == 0 {
		return
	}
	r.batches = slices.Delete(r.batches, 0, n)
	if r.role == Leader {
		if pr := r.prs[r.id]; pr != nil && pr.maybeUpdate(r.log.persisted) {
			if r.maybeCommit() {
				r.commitAdvanced()
			}
		}
	}
	if r.role == Candidate && r.durableHS == (termVote{r.term, r.id}) && r.poll(r.id, true) == membership.VoteWon {
		r.electionWon() // a single voter, or the others answered first
	}
}

// ---- proposals ----

// Propose appends an application command to the leader's log and returns
// its index and term. The entry is sent to followers by the next Ready. e
// is owned by the core from now on (Term and Index are set).
func (r *Raft) Propose(e *messages.Entry) (index, term uint64, err error) {
	if err := r.checkProposal(); err != nil {
		return 0, 0, err
	}
	if len(e.Data) > r.cfg.MaxProposalBytes {
		return 0, 0, fmt.Errorf("%w: %d bytes, limit %d", ErrProposalTooLarge, len(e.Data), r.cfg.MaxProposalBytes)
	}
	if e.Type == messages.EntryType_ENTRY_CONFIG {
		return 0, 0, fmt.Errorf("%w: use ProposeConfig for configuration entries", ErrInvalidConfigChange)
	}
	r.appendEntries(e)
	return e.Index, e.Term, nil
}

func (r *Raft) checkProposal() error {
	if r.role != Leader {
		return &NotLeaderError{Leader: r.lead, LeaderAddress: r.addrs[r.lead]}
	}
	if r.leadTransferee != 0 {
		return ErrTransferInProgress
	}
	return nil
}

// ProposeConfig proposes a new cluster configuration (members and
// settings). A change of more than one voter goes through joint consensus
// (§4.3) automatically: the entry proposed is the joint configuration, and
// the leader leaves it once it commits. One change at a time.
func (r *Raft) ProposeConfig(target *messages.ClusterConfig) (index uint64, err error) {
	if err := r.checkProposal(); err != nil {
		return 0, err
	}
	if membership.IsJoint(target) {
		return 0, fmt.Errorf("%w: outgoing_voters is managed by the core", ErrInvalidConfigChange)
	}
	if r.pendingConfIndex > r.log.committed || membership.IsJoint(r.cc) {
		return 0, fmt.Errorf("%w: entry %d not yet committed (commit %d)", ErrConfigChangePending, r.pendingConfIndex, r.log.committed)
	}
	cc, err := membership.Enter(r.cc, target)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrInvalidConfigChange, err)
	}
	return r.appendConfig(cc)
}

// appendConfig appends configuration cc (validated) to the leader's log,
// in force at once; the next change waits for its commit.
func (r *Raft) appendConfig(cc *messages.ClusterConfig) (uint64, error) {
	data, err := proto.Marshal(cc)
	if err != nil {
		return 0, fmt.Errorf("raft: marshal configuration: %w", err)
	}
	e := &messages.Entry{Type: messages.EntryType_ENTRY_CONFIG, Data: data}
	r.appendEntries(e)
	r.pendingConfIndex = e.Index
	return e.Index, nil
}

// TransferLeadership hands leadership to voter to (thesis §3.10): the
// leader stops accepting proposals, brings to's log up to date, then tells
// it to campaign at once. It is aborted after an election timeout.
func (r *Raft) TransferLeadership(to uint64) error {
	if r.role != Leader {
		return &NotLeaderError{Leader: r.lead, LeaderAddress: r.addrs[r.lead]}
	}
	if to == r.id {
		return nil
	}
	pr := r.prs[to]
	if pr == nil || pr.IsLearner {
		return fmt.Errorf("%w: %d is not a voter", ErrInvalidConfigChange, to)
	}
	r.startTransfer(to, pr, "transfer requested")
	return nil
}

func (r *Raft) startTransfer(to uint64, pr *Progress, reason string) {
	r.leadTransferee = to
	r.electionElapsed = 0
	r.event(Event{Kind: EventTransferStarted, Peer: to, Reason: reason})
	if pr.Match == r.log.lastIndex() {
		r.sendTimeoutNow(to)
	} else {
		r.sendAppend(to, pr)
	}
}

// handOff starts a transfer to the voter with the longest log. A leader
// that a committed configuration removed from the voters keeps leading
// the cluster it left (thesis §4.2.2) until a voter holds its whole log:
// stepping down at once could leave the voters, which may not know yet
// that the change committed, needing the vote of the old leader, which
// refuses them for its longer log.
func (r *Raft) handOff() {
	var to uint64
	for _, id := range r.quorum.Voters() {
		if pr := r.prs[id]; pr != nil && (to == 0 || pr.Match > r.prs[to].Match) {
			to = id
		}
	}
	if to != 0 {
		r.startTransfer(to, r.prs[to], "removed from the voters by a committed configuration")
	}
}

func (r *Raft) sendTimeoutNow(to uint64) {
	r.leaseBroken = true
	r.send(&messages.Message{Type: messages.MessageType_MSG_TIMEOUT_NOW, To: to})
	if !r.promotable() {
		// Handing off after a removal: to has the whole log and can win
		// an election even if the timeout-now is lost.
		r.becomeFollower(r.term, 0, fmt.Sprintf("removed from the voters: handed over to %d", to))
	}
}

// ---- snapshots ----

// Compact records a snapshot of the application state at index (which
// must be applied) and drops the log entries before it, keeping the last
// `keep` entries for followers that lag a little. data is kept to be sent
// to followers that need it.
func (r *Raft) Compact(index uint64, data []byte, keep uint64) error {
	if index > r.log.applied {
		return fmt.Errorf("raft: compact at %d: only %d applied", index, r.log.applied)
	}
	if index <= r.log.snapIndex {
		return fmt.Errorf("%w: compact at %d: snapshot already at %d", ErrCompacted, index, r.log.snapIndex)
	}
	t, err := r.log.term(index)
	if err != nil {
		return err
	}
	r.snapshot = &messages.Snapshot{Metadata: &messages.SnapshotMetadata{Index: index, Term: t, Config: r.configAt(index)}, Data: data}
	if index > keep {
		if ci := index - keep; ci > r.log.snapIndex {
			ct, _ := r.log.term(ci)
			r.log.compact(ci, ct)
			for len(r.ccHist) > 1 && r.ccHist[1].index <= ci {
				r.ccHist = r.ccHist[1:]
			}
		}
	}
	return nil
}

// Snapshot returns the latest snapshot (nil if none). Do not mutate it.
// Its Data is nil when the driver compacted without data (Compact with nil
// data): the driver then supplies the data of a snapshot the core sends
// (see SnapshotMetadata).
func (r *Raft) Snapshot() *messages.Snapshot { return r.snapshot }

// SnapshotMetadata returns the metadata of a snapshot at index: its term
// and the configuration in force there. index must be applied and still
// in the log (or the snapshot's own index); otherwise the error wraps
// ErrCompacted or ErrUnavailable. A driver that compacted without data
// builds the snapshot a lagging peer needs with it, at the index its state
// machine has applied.
func (r *Raft) SnapshotMetadata(index uint64) (*messages.SnapshotMetadata, error) {
	if index > r.log.applied {
		return nil, fmt.Errorf("%w: snapshot at %d: only %d applied", ErrUnavailable, index, r.log.applied)
	}
	t, err := r.log.term(index)
	if err != nil {
		return nil, err
	}
	return &messages.SnapshotMetadata{Index: index, Term: t, Config: r.configAt(index)}, nil
}

// configAt returns the configuration in force at index (<= committed).
func (r *Raft) configAt(index uint64) *messages.ClusterConfig {
	cc := r.cc
	for i := len(r.ccHist) - 1; i >= 0; i-- {
		cc = r.ccHist[i].cc
		if r.ccHist[i].index <= index {
			return cc
		}
	}
	if r.snapshot != nil && r.snapshot.Metadata.Config != nil && r.snapshot.Metadata.Index <= index {
		return r.snapshot.Metadata.Config
	}
	return cc
}

// FirstIndex is the first index still in the in-memory log.
func (r *Raft) FirstIndex() uint64 { return r.log.firstIndex() }

// LastIndex is the last index of the log.
func (r *Raft) LastIndex() uint64 { return r.log.lastIndex() }

// Committed is the commit index.
func (r *Raft) Committed() uint64 { return r.log.committed }

// Applied is the index up to which entries were handed out for applying.
func (r *Raft) Applied() uint64 { return r.log.applied }

// Entries returns the log entries [lo, hi) still in memory (for tests and
// diagnostics). Do not mutate them.
func (r *Raft) Entries(lo, hi uint64) ([]*messages.Entry, error) {
	if lo < r.log.firstIndex() {
		return nil, ErrCompacted
	}
	if hi > r.log.lastIndex()+1 {
		return nil, ErrUnavailable
	}
	return r.log.slice(lo, hi, 0, 0), nil
}

// PeerProgress is the leader's view of one peer, for status.
type PeerProgress struct {
	ID           uint64
	Match, Next  uint64
	State        ProgressState
	RecentActive bool
	IsLearner    bool
	Inflight     int
	// Lag is how many entries the peer's log is behind the leader's last
	// index (LastIndex - Match).
	Lag uint64
	// Departing: a committed configuration removed the peer; it is sent
	// the log until it knows.
	Departing bool
}

// Status is a point-in-time view of the node.
type Status struct {
	ID, Term, Vote, Leader     uint64
	Role                       Role
	Commit, Applied, LastIndex uint64
	FirstIndex                 uint64
	LeadTransferee             uint64
	// Config is the configuration in force (the latest in the log),
	// ConfigIndex the index of its entry; it is committed when
	// ConfigIndex <= Commit.
	Config      *messages.ClusterConfig
	ConfigIndex uint64
	// Removed: this node knows it is no member (see Raft.Removed).
	Removed bool
	// Progress is set on the leader only, sorted by id.
	Progress []PeerProgress
}

// Status returns a view of the node.
func (r *Raft) Status() Status {
	s := Status{ID: r.id, Term: r.term, Vote: r.vote, Leader: r.lead, Role: r.role,
		Commit: r.log.committed, Applied: r.log.applied, LastIndex: r.log.lastIndex(), FirstIndex: r.log.firstIndex(),
		LeadTransferee: r.leadTransferee, Config: r.cc, ConfigIndex: r.ccIndex, Removed: r.removed}
	if r.role == Leader {
		for _, id := range r.peers {
			if pr := r.prs[id]; pr != nil {
				s.Progress = append(s.Progress, PeerProgress{ID: id, Match: pr.Match, Next: pr.Next, State: pr.State,
					RecentActive: pr.RecentActive, IsLearner: pr.IsLearner, Inflight: pr.inflights.count,
					Lag: r.log.lastIndex() - min(pr.Match, r.log.lastIndex()), Departing: pr.RemovedAt != 0})
			}
		}
	}
	return s
}
