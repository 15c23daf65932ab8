package raft

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"

	"github.com/flotilla-raft/flotilla/messages"
	"google.golang.org/protobuf/proto"
)

// Role is the role of a node. PreCandidate is the pre-vote sub-state of
// candidate (thesis §9.6): it campaigns without raising its term.
type Role uint8

const (
	Follower Role = iota
	PreCandidate
	Candidate
	Leader
)

func (r Role) String() string {
	switch r {
	case Follower:
		return "follower"
	case PreCandidate:
		return "pre-candidate"
	case Candidate:
		return "candidate"
	case Leader:
		return "leader"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// campaignTransfer marks vote requests of a leadership transfer: they are
// granted even inside a leader lease.
var campaignTransfer = []byte("flotilla/transfer")

// InitialState is what the driver loaded from stable storage. The zero
// value is an empty node.
type InitialState struct {
	HardState *messages.HardState
	// Snapshot is the latest snapshot (nil when none); its data is kept to
	// be sent to followers that fall behind the log's first index.
	Snapshot *messages.Snapshot
	// Entries are the stored entries, contiguous, up to the last one. They
	// must continue the snapshot (the first at or below Snapshot's index
	// + 1); those at or below its index are covered by it and skipped.
	Entries []*messages.Entry
	// Applied is the index up to which the application's state is already
	// durable (transactional apply); entries up to it are not handed out
	// again. 0 when the application keeps no durable applied index.
	Applied uint64
}

// Raft is one node's Raft state machine. It is not safe for concurrent use:
// one goroutine (one actor) owns it.
type Raft struct {
	id        uint64
	clusterID uint64
	cfg       Config

	term uint64
	vote uint64
	lead uint64
	role Role

	log raftLog

	// Membership and settings, as of the last committed config entry.
	cc       *messages.ClusterConfig
	ccIndex  uint64   // index of the entry cc came from (snapshot index or 0 for bootstrap)
	ccHist   []confAt // committed configs newer than the log start, for snapshots
	quorum   quorum
	learners majority
	peers    []uint64 // every member id, sorted, self included
	addrs    map[uint64]string
	prs      map[uint64]*Progress // leader only; every member including self

	// pendingConfIndex is the index of the last config entry proposed; a
	// new one waits until applied >= it.
	pendingConfIndex uint64

	votes map[uint64]bool

	electionElapsed           int
	heartbeatElapsed          int
	randomizedElectionTimeout int
	rand                      *rand.Rand

	leadTransferee uint64

	snapshot        *messages.Snapshot // latest snapshot, sent to lagging peers
	pendingSnapshot *messages.Snapshot // received, to hand out in Ready

	reads        readOnly
	pendingReads []readRequest // asked before the leader committed in its term
	readStates   []ReadState

	msgs             []*messages.Message // send now
	msgsAfterPersist []*messages.Message // send once everything handed out so far is durable
	batches          []persistBatch      // handed out, not yet reported persisted
	persistSeq       uint64
	prevHS           termVote // last term and vote handed out
	durableHS        termVote // last term and vote reported durable
	needBcast        bool     // leader: flush appends in Ready

	events []Event
	logger *slog.Logger
}

type termVote struct{ term, vote uint64 }

type confAt struct {
	index uint64
	cc    *messages.ClusterConfig
}

type persistBatch struct {
	id        uint64
	lastIndex uint64   // last entry index written by the batch (capped by later truncations); 0: none
	snapIndex uint64   // snapshot installed by the batch; 0: none
	hs        termVote // term and vote written by the batch
	msgs      []*messages.Message
}

// New returns a Raft restored from st. cfg is validated.
func New(cfg Config, st InitialState) (*Raft, error) {
	cfg.ensureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Raft{
		id:        cfg.ID,
		clusterID: cfg.ClusterID,
		cfg:       cfg,
		rand:      rand.New(rand.NewPCG(uint64(cfg.Seed), cfg.ID)),
		logger:    cfg.Logger.With("raft", cfg.ID),
	}
	r.reads.init()
	hs := st.HardState
	if hs == nil {
		hs = &messages.HardState{}
	}
	r.term, r.vote = hs.Term, hs.Vote
	cc := &messages.ClusterConfig{Settings: DefaultSettings()}
	if s := st.Snapshot; s != nil {
		md := s.GetMetadata()
		r.log.snapIndex, r.log.snapTerm = md.GetIndex(), md.GetTerm()
		r.snapshot = s
		if md.GetConfig() != nil {
			cc, r.ccIndex = md.GetConfig(), md.GetIndex()
		}
	}
	ents, err := entriesAfter(st.Entries, r.log.snapIndex, r.log.snapTerm)
	if err != nil {
		return nil, err
	}
	r.log.entries = ents
	for i, e := range r.log.entries {
		if e.Index != r.log.snapIndex+1+uint64(i) {
			return nil, fmt.Errorf("%w: stored entry %d has index %d, want %d", ErrInvalidMessage, i, e.Index, r.log.snapIndex+1+uint64(i))
		}
	}
	last := r.log.lastIndex()
	r.log.persisted = last
	r.log.unstable = last + 1
	r.log.committed = min(max(hs.Commit, st.Applied, r.log.snapIndex), last)
	r.log.applied = min(max(st.Applied, r.log.snapIndex), r.log.committed)

	if last == 0 && r.term == 0 && cfg.Bootstrap != nil {
		// A founding member: the bootstrap configuration is entry 1 of term
		// 1, identical on every founder, hence committed.
		boot := proto.Clone(cfg.Bootstrap).(*messages.ClusterConfig)
		if boot.Settings == nil {
			boot.Settings = DefaultSettings()
		}
		data, err := proto.Marshal(boot)
		if err != nil {
			return nil, fmt.Errorf("raft: marshal bootstrap configuration: %w", err)
		}
		r.log.entries = []*messages.Entry{{Term: 1, Index: 1, Type: messages.EntryType_ENTRY_CONFIG, Data: data}}
		r.log.unstable = 1
		r.term = 1
		r.log.committed = 1
	}
	// The configuration is the last config entry that is committed.
	for i := r.log.firstIndex(); i <= r.log.committed; i++ {
		if e := r.log.entry(i); e.Type == messages.EntryType_ENTRY_CONFIG {
			c, err := decodeConfig(e)
			if err != nil {
				return nil, err
			}
			r.ccHist = append(r.ccHist, confAt{i, c})
			cc, r.ccIndex = c, i
		}
	}
	r.pendingConfIndex = r.log.committed
	r.setConfig(cc)
	r.prevHS = termVote{hs.Term, hs.Vote}
	r.durableHS = r.prevHS
	r.becomeFollower(r.term, 0, "started")
	r.events = r.events[:0] // starting is not a change
	return r, nil
}

// entriesAfter returns a copy of the stored entries that follow the
// snapshot at (snapIndex, snapTerm). A store may hold entries at or below
// the snapshot's index (Compact keeps a tail of the log for lagging
// followers): they are covered by the snapshot and skipped, but the one at
// the snapshot's index, when stored, must have the snapshot's term.
func entriesAfter(ents []*messages.Entry, snapIndex, snapTerm uint64) ([]*messages.Entry, error) {
	i := 0
	for ; i < len(ents) && ents[i].GetIndex() <= snapIndex; i++ {
		if e := ents[i]; e.GetIndex() == snapIndex && e.GetTerm() != snapTerm {
			return nil, fmt.Errorf("%w: stored entry %d has term %d, the snapshot at that index has term %d", ErrInvalidMessage, e.GetIndex(), e.GetTerm(), snapTerm)
		}
	}
	return slices.Clone(ents[i:]), nil
}

func decodeConfig(e *messages.Entry) (*messages.ClusterConfig, error) {
	cc := &messages.ClusterConfig{}
	if err := proto.Unmarshal(e.Data, cc); err != nil {
		return nil, fmt.Errorf("%w: config entry %d: %v", ErrInvalidMessage, e.Index, err)
	}
	if cc.Settings == nil {
		cc.Settings = DefaultSettings()
	}
	return cc, nil
}

// setConfig makes cc the configuration in force.
func (r *Raft) setConfig(cc *messages.ClusterConfig) {
	r.cc = cc
	r.quorum = quorum{incoming: majorityOf(cc.Voters), outgoing: majorityOf(cc.OutgoingVoters)}
	r.learners = majorityOf(cc.Learners)
	r.addrs = make(map[uint64]string)
	for _, ms := range [][]*messages.Member{cc.OutgoingVoters, cc.Learners, cc.Voters} {
		for _, m := range ms {
			r.addrs[m.Id] = m.Address
		}
	}
	r.peers = r.peers[:0]
	for id := range r.addrs {
		r.peers = append(r.peers, id)
	}
	slices.Sort(r.peers)
	if r.role == Leader {
		// Track new members, forget removed ones.
		for _, id := range r.peers {
			if _, ok := r.prs[id]; !ok {
				r.prs[id] = r.newProgress(id)
			}
		}
		for id := range r.prs {
			if _, ok := r.addrs[id]; !ok {
				delete(r.prs, id)
			}
		}
		for id, pr := range r.prs {
			pr.IsLearner = !r.quorum.isVoter(id)
		}
	}
	if r.leadTransferee != 0 && !r.quorum.isVoter(r.leadTransferee) {
		r.leadTransferee = 0
	}
}

func (r *Raft) settings() *messages.Settings { return r.cc.Settings }
func (r *Raft) electionTimeout() int         { return int(r.settings().ElectionTicks) }
func (r *Raft) heartbeatTimeout() int        { return int(r.settings().HeartbeatTicks) }

// promotable reports whether this node may campaign: it is a voter.
func (r *Raft) promotable() bool { return r.quorum.isVoter(r.id) }

func (r *Raft) newProgress(id uint64) *Progress {
	pr := &Progress{Next: r.log.lastIndex() + 1, IsLearner: !r.quorum.isVoter(id), RecentActive: true}
	pr.inflights.maxCount, pr.inflights.maxBytes = r.cfg.MaxInflightMsgs, r.cfg.MaxInflightBytes
	if id == r.id {
		pr.Match = r.log.persisted
	}
	return pr
}

// ---- role transitions ----

func (r *Raft) reset(term uint64) {
	if r.term != term {
		r.term = term
		r.vote = 0
	}
	r.lead = 0
	r.electionElapsed, r.heartbeatElapsed = 0, 0
	r.resetRandomizedElectionTimeout()
	r.leadTransferee = 0
	r.votes = map[uint64]bool{}
	r.prs = nil
	r.reads.init()
	r.pendingReads = nil
}

func (r *Raft) resetRandomizedElectionTimeout() {
	et := r.electionTimeout()
	r.randomizedElectionTimeout = et + r.rand.IntN(et)
}

func (r *Raft) becomeFollower(term, lead uint64, reason string) {
	oldRole, oldTerm, oldLead := r.role, r.term, r.lead
	r.reset(term)
	r.lead = lead
	r.role = Follower
	r.noteChanges(oldRole, oldTerm, oldLead, reason)
}

func (r *Raft) becomePreCandidate(reason string) {
	oldRole, oldTerm, oldLead := r.role, r.term, r.lead
	// Pre-vote changes neither the term nor the vote (§9.6).
	r.votes = map[uint64]bool{}
	r.prs = nil
	r.lead = 0
	r.role = PreCandidate
	r.noteChanges(oldRole, oldTerm, oldLead, reason)
}

func (r *Raft) becomeCandidate(reason string) {
	oldRole, oldTerm, oldLead := r.role, r.term, r.lead
	r.reset(r.term + 1)
	r.vote = r.id
	r.role = Candidate
	r.noteChanges(oldRole, oldTerm, oldLead, reason)
}

func (r *Raft) becomeLeader(reason string) {
	oldRole, oldTerm, oldLead := r.role, r.term, r.lead
	r.reset(r.term)
	r.lead = r.id
	r.role = Leader
	r.prs = make(map[uint64]*Progress, len(r.peers))
	for _, id := range r.peers {
		r.prs[id] = r.newProgress(id)
	}
	// Config changes wait until everything of earlier terms is applied
	// (this closes the single-server change hazard of thesis §4.1).
	r.pendingConfIndex = r.log.lastIndex()
	// A no-op entry of the new term commits the entries of earlier terms
	// (§5.4.2, Figure 8).
	r.appendEntries(&messages.Entry{Type: messages.EntryType_ENTRY_NOOP})
	if len(r.cc.OutgoingVoters) > 0 {
		// The joint configuration in force committed under a leader that
		// did not get to leave it: nobody else will.
		r.leaveJoint()
	}
	r.noteChanges(oldRole, oldTerm, oldLead, reason)
}

// ---- ticks ----

// Tick advances logical time by one tick.
func (r *Raft) Tick() {
	if r.role == Leader {
		r.tickHeartbeat()
	} else {
		r.tickElection()
	}
}

func (r *Raft) tickElection() {
	r.electionElapsed++
	if r.promotable() && r.electionElapsed >= r.randomizedElectionTimeout {
		r.electionElapsed = 0
		r.campaignStart("election timeout")
	}
}

func (r *Raft) campaignStart(reason string) {
	if r.settings().PreVote {
		r.campaign(PreCandidate, reason, false)
	} else {
		r.campaign(Candidate, reason, false)
	}
}

func (r *Raft) tickHeartbeat() {
	r.heartbeatElapsed++
	r.electionElapsed++
	if r.electionElapsed >= r.electionTimeout() {
		r.electionElapsed = 0
		if r.settings().CheckQuorum {
			if !r.quorumActive() {
				r.becomeFollower(r.term, 0, "check-quorum: no quorum heard within an election timeout")
				return
			}
		}
		if r.leadTransferee != 0 {
			r.event(Event{Kind: EventTransferAborted, Peer: r.leadTransferee, Reason: "transferee did not take over within an election timeout"})
			r.leadTransferee = 0
			if !r.promotable() {
				r.handOff() // try again, maybe another voter
			}
		}
	}
	for _, id := range r.peers {
		if pr := r.prs[id]; pr != nil && pr.State == StateSnapshot {
			if pr.stateTicks++; pr.stateTicks >= r.electionTimeout() {
				pr.becomeProbe() // the snapshot was lost: probe again
				r.needBcast = true
			}
		}
	}
	if r.heartbeatElapsed >= r.heartbeatTimeout() {
		r.heartbeatElapsed = 0
		r.bcastHeartbeat(r.reads.lastContext())
	}
}

// quorumActive reports whether a quorum was heard from since the last
// check, and resets the marks.
func (r *Raft) quorumActive() bool {
	votes := make(map[uint64]bool, len(r.prs))
	for id, pr := range r.prs {
		if id == r.id {
			votes[id] = true
			continue
		}
		votes[id] = pr.RecentActive
		pr.RecentActive = false
	}
	return r.quorum.voteResult(votes) == VoteWon
}

// ---- elections ----

// Campaign starts an election at once (with a pre-vote when PreVote is on).
// Only a voter campaigns; a leader does nothing.
func (r *Raft) Campaign() {
	if r.role != Leader && r.promotable() {
		r.campaignStart("campaign requested")
	}
}

func (r *Raft) campaign(role Role, reason string, transfer bool) {
	if !r.promotable() {
		return
	}
	var voteType messages.MessageType
	var term uint64
	if role == PreCandidate {
		r.becomePreCandidate(reason)
		voteType, term = messages.MessageType_MSG_PRE_VOTE, r.term+1
	} else {
		r.becomeCandidate(reason)
		voteType, term = messages.MessageType_MSG_VOTE, r.term
	}
	if role == PreCandidate && r.poll(r.id, true) == VoteWon {
		// A single voter: no one to ask.
		r.electionWon()
		return
	}
	// A candidate's own vote counts once durable, like any other (see
	// Persisted): a single voter that won at once could otherwise lead
	// the same term twice across a crash, with different entries.
	var ctx []byte
	if transfer {
		ctx = campaignTransfer
	}
	for _, id := range r.quorum.voters() {
		if id == r.id {
			continue
		}
		m := &messages.Message{Type: voteType, To: id, Term: term, Index: r.log.lastIndex(), LogTerm: r.log.lastTerm(), Context: ctx}
		if voteType == messages.MessageType_MSG_VOTE {
			// The candidate's term and self-vote must be durable first.
			r.sendAfterPersist(m)
		} else {
			r.send(m)
		}
	}
}

func (r *Raft) poll(id uint64, granted bool) VoteResult {
	if _, ok := r.votes[id]; !ok {
		r.votes[id] = granted
	}
	return r.quorum.voteResult(r.votes)
}

func (r *Raft) electionWon() {
	if r.role == PreCandidate {
		r.event(Event{Kind: EventPreVoteWon, Reason: "a quorum would vote"})
		r.campaign(Candidate, "pre-vote won", false)
		return
	}
	r.becomeLeader("won the election")
}

// ---- Step ----

// Step feeds a message from a peer. Messages of the wrong cluster or not
// addressed to this node are refused with ErrInvalidMessage; stale and
// unexpected messages are ignored (Raft tolerates loss, duplication and
// reordering).
func (r *Raft) Step(m *messages.Message) error {
	if m == nil {
		return fmt.Errorf("%w: nil message", ErrInvalidMessage)
	}
	if m.ClusterId != r.clusterID {
		return fmt.Errorf("%w: cluster id %d, this is cluster %d", ErrInvalidMessage, m.ClusterId, r.clusterID)
	}
	if m.To != r.id || m.From == 0 || m.From == r.id {
		return fmt.Errorf("%w: %s from %d to %d at node %d", ErrInvalidMessage, m.Type, m.From, m.To, r.id)
	}
	if m.Type == messages.MessageType_MSG_APPEND {
		// The log is built from these entries as they are: they must
		// continue the previous entry, with terms that never decrease
		// and never pass the leader's.
		prevTerm := m.LogTerm
		for i, e := range m.Entries {
			if e.GetIndex() != m.Index+1+uint64(i) || e.GetTerm() < prevTerm || e.GetTerm() > m.Term {
				return fmt.Errorf("%w: append after %d/%d at term %d: entry %d is %d/%d", ErrInvalidMessage, m.Index, m.LogTerm, m.Term, i, e.GetIndex(), e.GetTerm())
			}
			prevTerm = e.GetTerm()
		}
	}
	switch {
	case m.Term > r.term:
		if m.Type == messages.MessageType_MSG_VOTE || m.Type == messages.MessageType_MSG_PRE_VOTE {
			force := string(m.Context) == string(campaignTransfer)
			inLease := r.settings().CheckQuorum && r.lead != 0 && r.electionElapsed < r.electionTimeout()
			if !force && inLease {
				// A live leader is known: do not let a disconnected node
				// disrupt it (thesis §4.2.3).
				return nil
			}
		}
		switch {
		case m.Type == messages.MessageType_MSG_PRE_VOTE:
			// Never change term for a pre-vote.
		case m.Type == messages.MessageType_MSG_PRE_VOTE_RESP && !m.Reject:
			// The term of a granted pre-vote is the one we would campaign in.
		default:
			lead := uint64(0)
			switch m.Type {
			case messages.MessageType_MSG_APPEND, messages.MessageType_MSG_HEARTBEAT, messages.MessageType_MSG_SNAPSHOT:
				lead = m.From
			}
			r.becomeFollower(m.Term, lead, fmt.Sprintf("saw term %d from %d (%s)", m.Term, m.From, m.Type))
		}
	case m.Term < r.term:
		switch m.Type {
		case messages.MessageType_MSG_APPEND, messages.MessageType_MSG_HEARTBEAT:
			// A stale leader (maybe one whose pre-votes keep failing)
			// learns our term and steps down (§5.1: a stale request is
			// rejected). Whatever our settings: settings change through the
			// log, so the leader may hold a CheckQuorum lease that ignores
			// our vote requests while we, behind, still have it off.
			r.send(&messages.Message{Type: messages.MessageType_MSG_APPEND_RESP, To: m.From})
		case messages.MessageType_MSG_PRE_VOTE:
			r.send(&messages.Message{Type: messages.MessageType_MSG_PRE_VOTE_RESP, To: m.From, Term: r.term, Reject: true})
		}
		return nil
	}

	switch m.Type {
	case messages.MessageType_MSG_VOTE, messages.MessageType_MSG_PRE_VOTE:
		r.handleVoteRequest(m)
		return nil
	}
	switch r.role {
	case Leader:
		r.stepLeader(m)
	case Candidate, PreCandidate:
		r.stepCandidate(m)
	default:
		r.stepFollower(m)
	}
	return nil
}

func (r *Raft) handleVoteRequest(m *messages.Message) {
	pre := m.Type == messages.MessageType_MSG_PRE_VOTE
	respType := messages.MessageType_MSG_VOTE_RESP
	if pre {
		respType = messages.MessageType_MSG_PRE_VOTE_RESP
	}
	canVote := r.vote == m.From ||
		(r.vote == 0 && r.lead == 0) ||
		(pre && m.Term > r.term)
	if canVote && r.log.isUpToDate(m.Index, m.LogTerm) {
		resp := &messages.Message{Type: respType, To: m.From, Term: m.Term}
		if pre {
			r.send(resp)
			return
		}
		r.electionElapsed = 0
		r.vote = m.From
		r.event(Event{Kind: EventVoteGranted, Peer: m.From, Reason: "candidate's log is up to date"})
		r.sendAfterPersist(resp) // the vote must be durable first
		return
	}
	resp := &messages.Message{Type: respType, To: m.From, Term: r.term, Reject: true}
	r.send(resp)
}

func (r *Raft) stepFollower(m *messages.Message) {
	switch m.Type {
	case messages.MessageType_MSG_APPEND:
		r.electionElapsed = 0
		r.setLeader(m.From)
		r.handleAppendEntries(m)
	case messages.MessageType_MSG_HEARTBEAT:
		r.electionElapsed = 0
		r.setLeader(m.From)
		r.handleHeartbeat(m)
	case messages.MessageType_MSG_SNAPSHOT:
		r.electionElapsed = 0
		r.setLeader(m.From)
		r.handleSnapshot(m)
	case messages.MessageType_MSG_TIMEOUT_NOW:
		// Leadership transfer: campaign at once, skipping pre-vote.
		r.event(Event{Kind: EventTransferTimeoutNow, Peer: m.From, Reason: "leader hands over"})
		r.campaign(Candidate, fmt.Sprintf("leadership transfer from %d", m.From), true)
	case messages.MessageType_MSG_READ_INDEX_RESP:
		r.readStates = append(r.readStates, ReadState{Index: m.Index, Context: m.Context})
	}
}

func (r *Raft) setLeader(id uint64) {
	if r.lead != id {
		old := r.lead
		r.lead = id
		r.event(Event{Kind: EventLeaderChanged, Leader: id, Peer: old, Reason: "heard from the leader"})
	}
}

func (r *Raft) stepCandidate(m *messages.Message) {
	myResp := messages.MessageType_MSG_VOTE_RESP
	if r.role == PreCandidate {
		myResp = messages.MessageType_MSG_PRE_VOTE_RESP
	}
	switch m.Type {
	case messages.MessageType_MSG_APPEND, messages.MessageType_MSG_HEARTBEAT, messages.MessageType_MSG_SNAPSHOT:
		// A leader of our term exists (§5.2).
		r.becomeFollower(m.Term, m.From, fmt.Sprintf("heard from leader %d of term %d", m.From, m.Term))
		r.stepFollower(m)
	case myResp:
		if !m.Reject {
			r.event(Event{Kind: EventVoteReceived, Peer: m.From, Reason: m.Type.String()})
		}
		switch r.poll(m.From, !m.Reject) {
		case VoteWon:
			r.electionWon()
		case VoteLost:
			r.becomeFollower(r.term, 0, fmt.Sprintf("%s lost: a quorum rejected", r.role))
		}
	}
}

// ---- replication: follower side ----

func (r *Raft) handleAppendEntries(m *messages.Message) {
	if m.Index < r.log.committed {
		r.sendAfterPersist(&messages.Message{Type: messages.MessageType_MSG_APPEND_RESP, To: m.From, Index: r.log.committed})
		return
	}
	lastNew, truncatedAt, ok := r.log.maybeAppend(m.Index, m.LogTerm, m.Entries)
	if !ok {
		// Fast backtracking: tell the leader the largest index <= its probe
		// whose term is <= the probe's term.
		hintIndex, hintTerm := r.log.findConflictByTerm(m.Index, m.LogTerm)
		r.sendAfterPersist(&messages.Message{Type: messages.MessageType_MSG_APPEND_RESP, To: m.From, Index: m.Index, Reject: true, RejectHint: hintIndex, LogTerm: hintTerm})
		return
	}
	if truncatedAt != 0 {
		r.capBatches(truncatedAt)
	}
	r.commitTo(min(m.Commit, lastNew))
	r.sendAfterPersist(&messages.Message{Type: messages.MessageType_MSG_APPEND_RESP, To: m.From, Index: lastNew})
}

// capBatches records that the log was cut at index i: batches handed out
// earlier no longer make entries >= i durable.
func (r *Raft) capBatches(i uint64) {
	for k := range r.batches {
		r.batches[k].lastIndex = min(r.batches[k].lastIndex, i-1)
	}
}

func (r *Raft) handleHeartbeat(m *messages.Message) {
	// The leader sends min(its commit, our match): safe to commit.
	if m.Commit > r.log.committed && m.Commit <= r.log.lastIndex() {
		r.commitTo(m.Commit)
	}
	r.send(&messages.Message{Type: messages.MessageType_MSG_HEARTBEAT_RESP, To: m.From, Context: m.Context})
}

func (r *Raft) handleSnapshot(m *messages.Message) {
	s := m.GetSnapshot()
	md := s.GetMetadata()
	if md == nil || md.Index == 0 {
		return
	}
	if md.Index <= r.log.committed {
		r.sendAfterPersist(&messages.Message{Type: messages.MessageType_MSG_APPEND_RESP, To: m.From, Index: r.log.committed})
		return
	}
	if r.log.matchTerm(md.Index, md.Term) {
		// We have the snapshot's last entry: just fast-forward the commit.
		r.commitTo(md.Index)
		r.sendAfterPersist(&messages.Message{Type: messages.MessageType_MSG_APPEND_RESP, To: m.From, Index: md.Index})
		return
	}
	r.restore(s)
	r.sendAfterPersist(&messages.Message{Type: messages.MessageType_MSG_APPEND_RESP, To: m.From, Index: r.log.lastIndex()})
}

func (r *Raft) restore(s *messages.Snapshot) {
	md := s.Metadata
	r.capBatches(r.log.snapIndex + 1)
	r.log.restore(md.Index, md.Term)
	r.snapshot = s
	r.pendingSnapshot = s
	cc := md.Config
	if cc == nil {
		cc = r.cc
	}
	r.ccHist = nil
	r.ccIndex = md.Index
	r.pendingConfIndex = md.Index
	r.setConfig(cc)
	r.event(Event{Kind: EventSnapshotRestored, Index: md.Index, Reason: fmt.Sprintf("snapshot at index %d term %d", md.Index, md.Term)})
}

// ---- replication: leader side ----

func (r *Raft) stepLeader(m *messages.Message) {
	pr := r.prs[m.From]
	if pr == nil {
		if m.Type == messages.MessageType_MSG_READ_INDEX {
			return
		}
		r.logger.Debug("message from a non-member ignored", "from", m.From, "type", m.Type)
		return
	}
	pr.RecentActive = true
	switch m.Type {
	case messages.MessageType_MSG_APPEND_RESP:
		r.handleAppendResp(m, pr)
	case messages.MessageType_MSG_HEARTBEAT_RESP:
		pr.probeSent = false
		if pr.State == StateReplicate && pr.inflights.full() {
			// The window may be full of lost messages: free one, so the
			// next append reveals the gap and the rejection sends the peer
			// back to probing.
			pr.inflights.freeFirst()
		}
		if pr.Match < r.log.lastIndex() || pr.State == StateProbe {
			r.sendAppend(m.From, pr)
		}
		if len(m.Context) > 0 {
			r.ackRead(m.From, m.Context)
		}
	case messages.MessageType_MSG_READ_INDEX:
		r.readIndex(m.From, m.Context)
	}
}

func (r *Raft) handleAppendResp(m *messages.Message, pr *Progress) {
	if m.Reject {
		next := m.RejectHint
		if m.LogTerm > 0 {
			// Skip every entry of our log after the hint whose term is
			// newer than the follower's hint term.
			next, _ = r.log.findConflictByTerm(m.RejectHint, m.LogTerm)
		}
		if pr.maybeDecrTo(m.Index, next) {
			if pr.State == StateReplicate {
				pr.becomeProbe()
			}
			r.sendAppend(m.From, pr)
		}
		return
	}
	if !pr.maybeUpdate(m.Index) {
		if pr.State == StateProbe && pr.Match == m.Index {
			pr.probeSent = false
		}
		return
	}
	switch {
	case pr.State == StateProbe:
		pr.becomeReplicate()
	case pr.State == StateSnapshot && pr.Match >= pr.PendingSnapshot:
		pr.becomeProbe()
		pr.becomeReplicate()
	case pr.State == StateReplicate:
		pr.inflights.freeLE(m.Index)
	}
	if r.maybeCommit() {
		r.needBcast = true // carries the new commit index to everyone
	} else if pr.Next <= r.log.lastIndex() {
		// More to send (the window was full). An ack with nothing left to
		// send is not answered: an empty append would be a wasted round
		// trip (the next heartbeat carries the commit index anyway).
		r.sendAppend(m.From, pr)
	}
	if m.From == r.leadTransferee && pr.Match == r.log.lastIndex() {
		r.sendTimeoutNow(m.From)
	}
}

// maybeCommit advances the commit index to what a quorum has persisted,
// counting only entries of the current term (§5.4.2).
func (r *Raft) maybeCommit() bool {
	ci := r.quorum.committedIndex(func(id uint64) uint64 {
		if pr := r.prs[id]; pr != nil {
			return pr.Match
		}
		return 0
	})
	if ci <= r.log.committed {
		return false
	}
	if t, err := r.log.term(ci); err != nil || t != r.term {
		return false
	}
	r.commitTo(ci)
	return true
}

func (r *Raft) commitTo(i uint64) {
	old := r.log.committed
	if !r.log.commitTo(i) {
		return
	}
	// Configuration entries take effect when committed.
	changed := false
	for j := max(old+1, r.log.firstIndex()); j <= i; j++ {
		e := r.log.entry(j)
		if e.Type != messages.EntryType_ENTRY_CONFIG {
			continue
		}
		cc, err := decodeConfig(e)
		if err != nil {
			r.logger.Error("undecodable configuration entry ignored", "index", j, "err", err)
			continue
		}
		r.applyConfig(j, cc)
		changed = true
	}
	if r.role == Leader {
		// A new quorum may already hold later entries (a removed voter no
		// longer holds the commit index back): nothing else would
		// re-count them until the next acknowledgement.
		if changed && r.maybeCommit() {
			r.needBcast = true
		}
		r.releasePendingReads()
	}
}

func (r *Raft) applyConfig(index uint64, cc *messages.ClusterConfig) {
	old := r.cc
	r.ccHist = append(r.ccHist, confAt{index, cc})
	r.ccIndex = index
	r.setConfig(cc)
	r.event(Event{Kind: EventConfigChanged, Index: index, Config: cc, Reason: "configuration entry committed"})
	if old.Settings.ElectionTicks != cc.Settings.ElectionTicks {
		r.resetRandomizedElectionTimeout()
	}
	if r.role != Leader {
		return
	}
	if !r.quorum.isVoter(r.id) {
		r.handOff()
		return
	}
	if len(cc.OutgoingVoters) > 0 {
		r.leaveJoint()
	}
}

// leaveJoint proposes the configuration in force (joint, committed)
// without its outgoing voters: joint consensus reached, the incoming
// voters go on alone (§4.3).
func (r *Raft) leaveJoint() {
	leave := proto.Clone(r.cc).(*messages.ClusterConfig)
	leave.OutgoingVoters = nil
	if _, err := r.proposeConfig(leave, true); err != nil {
		r.logger.Error("could not leave the joint configuration", "err", err)
	}
}

// sendAppend sends the peer the entries it needs, if its flow allows.
func (r *Raft) sendAppend(to uint64, pr *Progress) {
	if to == r.id || pr.isPaused() {
		return
	}
	prevIndex := pr.Next - 1
	prevTerm, err := r.log.term(prevIndex)
	if err != nil {
		r.sendSnapshot(to, pr)
		return
	}
	var ents []*messages.Entry
	if pr.Next <= r.log.lastIndex() {
		ents = r.log.slice(pr.Next, r.log.lastIndex()+1, r.cfg.MaxSizePerMsg, r.cfg.MaxEntriesPerMsg)
	}
	r.send(&messages.Message{Type: messages.MessageType_MSG_APPEND, To: to, Index: prevIndex, LogTerm: prevTerm, Entries: ents, Commit: r.log.committed})
	switch pr.State {
	case StateReplicate:
		if n := len(ents); n > 0 {
			last := ents[n-1].Index
			pr.Next = last + 1
			pr.inflights.add(last, entriesSize(ents))
		}
	case StateProbe:
		pr.probeSent = true
	}
}

func (r *Raft) sendSnapshot(to uint64, pr *Progress) {
	if r.snapshot == nil {
		r.logger.Error("peer needs a snapshot but none is available", "peer", to)
		return
	}
	r.send(&messages.Message{Type: messages.MessageType_MSG_SNAPSHOT, To: to, Snapshot: r.snapshot})
	pr.becomeSnapshot(r.snapshot.Metadata.Index)
}

func (r *Raft) bcastAppend() {
	for _, id := range r.peers {
		if pr := r.prs[id]; pr != nil {
			r.sendAppend(id, pr)
		}
	}
}

func (r *Raft) bcastHeartbeat(ctx []byte) {
	for _, id := range r.peers {
		pr := r.prs[id]
		if id == r.id || pr == nil {
			continue
		}
		r.send(&messages.Message{Type: messages.MessageType_MSG_HEARTBEAT, To: id, Commit: min(pr.Match, r.log.committed), Context: ctx})
	}
}

// appendEntries appends new entries of the current term to the leader's log.
func (r *Raft) appendEntries(ents ...*messages.Entry) {
	li := r.log.lastIndex()
	for i, e := range ents {
		e.Term = r.term
		e.Index = li + 1 + uint64(i)
	}
	r.log.appendAfterLast(ents)
	r.needBcast = true
}

// ---- messages out ----

func (r *Raft) stamp(m *messages.Message) *messages.Message {
	m.From = r.id
	m.ClusterId = r.clusterID
	if m.Term == 0 && m.Type != messages.MessageType_MSG_PRE_VOTE && m.Type != messages.MessageType_MSG_PRE_VOTE_RESP {
		m.Term = r.term
	}
	return m
}

func (r *Raft) send(m *messages.Message) { r.msgs = append(r.msgs, r.stamp(m)) }

// sendAfterPersist queues a message that promises durable state: it leaves
// only once everything handed out for persistence so far is durable.
func (r *Raft) sendAfterPersist(m *messages.Message) {
	r.msgsAfterPersist = append(r.msgsAfterPersist, r.stamp(m))
}

// ---- status ----

// ID returns this node's id.
func (r *Raft) ID() uint64 { return r.id }

// Role returns the current role.
func (r *Raft) Role() Role { return r.role }

// Term returns the current term.
func (r *Raft) Term() uint64 { return r.term }

// Leader returns the id of the known leader, 0 if none.
func (r *Raft) Leader() uint64 { return r.lead }

// LeaderAddress returns the address of the known leader, "" if none.
func (r *Raft) LeaderAddress() string { return r.addrs[r.lead] }

// Address returns the address of member id in the current configuration.
func (r *Raft) Address(id uint64) string { return r.addrs[id] }

// ClusterConfig returns the configuration in force (committed). Do not
// mutate it.
func (r *Raft) ClusterConfig() *messages.ClusterConfig { return r.cc }

// Members returns every member id, sorted. Do not mutate it.
func (r *Raft) Members() []uint64 { return r.peers }

// IsMember reports whether id is a voter or learner of the configuration.
func (r *Raft) IsMember(id uint64) bool { _, ok := r.addrs[id]; return ok }
