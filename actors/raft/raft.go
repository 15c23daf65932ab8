package raft

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"

	"github.com/flotilla-raft/flotilla/cluster/membership"
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

	// Membership and settings in force: those of the latest configuration
	// entry in the log, committed or not (thesis §4.1: "a server always
	// uses the latest configuration in its log"). A restarted node thus
	// finds its configuration in its own log, whatever its commit index
	// says, and a truncation of the log reverts to the configuration
	// before the cut.
	//
	// Invariant: cc == ccHist[len(ccHist)-1].cc, ccIndex its index.
	// Invariant: ccHist holds every configuration entry of the log after
	// ccHist[0] (the configuration in force at the log's start: snapshot
	// or bootstrap), ascending by index.
	cc      *messages.ClusterConfig
	ccIndex uint64           // index of the entry cc came from (snapshot index or 0 for none)
	ccHist  []confAt         // configurations of the log, for truncations and snapshots
	quorum  membership.Joint // voters of cc
	peers   []uint64         // every member id, sorted, self included
	addrs   map[uint64]string
	// hintAddrs holds senders' addresses (Message.from_address) of nodes
	// that no configuration in the log names yet: a joining node answers
	// the leader there until the configuration reaches it.
	hintAddrs map[uint64]string
	oldAddrs  map[uint64]string    // addrs before the last updateMembers
	prs       map[uint64]*Progress // leader only; every member including self, and departing ones
	// departing (leader only) holds the addresses of members removed by a
	// committed configuration that have not yet learned it (see
	// Progress.RemovedAt).
	departing map[uint64]string
	// removed is set once this node knows it is no member: a committed
	// configuration leaves it out, or a member refused it (see
	// NotMemberNotice). It campaigns no more; hearing from a leader again
	// (it was added back) clears it.
	removed bool
	// wasMember: a configuration in force ever listed this node; only
	// then can it be removed (a joining node replays configurations
	// without itself first).
	wasMember bool

	// pendingConfIndex is the index of the last config entry proposed (or
	// of the leader's first entry of its term); a new one waits until
	// it is committed (thesis §4.1).
	pendingConfIndex uint64

	votes map[uint64]bool

	electionElapsed           int
	heartbeatElapsed          int
	randomizedElectionTimeout int
	rand                      *rand.Rand

	// ticks counts Tick calls since New, from 1: the leader's lease clock.
	ticks uint64
	// restartGuard: this node restarted with state and keeps the lease it
	// may have given a leader before the restart (see inLease).
	restartGuard bool
	// leaseBroken: this leader sent a TimeoutNow in its term; the
	// transferee's forced election ignores leases, so none is trusted.
	leaseBroken bool

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
	bcastNews        bool     // leader: that flush carries commit news: send every peer an append, empty if need be
	// commitNews: the leader's commit index advanced since the last
	// broadcast of appends or heartbeats (which carry it); commitNewsAge
	// counts the ticks it has waited (see Config.CommitNewsTicks).
	commitNews    bool
	commitNewsAge int

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
	base := confAt{0, &messages.ClusterConfig{Settings: membership.DefaultSettings()}}
	if s := st.Snapshot; s != nil {
		md := s.GetMetadata()
		r.log.snapIndex, r.log.snapTerm = md.GetIndex(), md.GetTerm()
		r.snapshot = s
		if md.GetConfig() != nil {
			base = confAt{md.GetIndex(), md.GetConfig()}
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
		boot := membership.WithSettings(cfg.Bootstrap, nil)
		data, err := proto.Marshal(boot)
		if err != nil {
			return nil, fmt.Errorf("raft: marshal bootstrap configuration: %w", err)
		}
		r.log.entries = []*messages.Entry{{Term: 1, Index: 1, Type: messages.EntryType_ENTRY_CONFIG, Data: data}}
		r.log.unstable = 1
		r.term = 1
		r.log.committed = 1
	}
	// The configuration in force is the latest in the log, committed or not.
	r.ccHist = []confAt{base}
	for i := r.log.firstIndex(); i <= r.log.lastIndex(); i++ {
		if e := r.log.entry(i); e.Type == messages.EntryType_ENTRY_CONFIG {
			c, err := decodeConfig(e)
			if err != nil {
				return nil, err
			}
			r.ccHist = append(r.ccHist, confAt{i, c})
		}
	}
	r.pendingConfIndex = r.log.committed
	r.setConfigAt(r.ccHist[len(r.ccHist)-1])
	r.prevHS = termVote{hs.Term, hs.Vote}
	r.durableHS = r.prevHS
	r.becomeFollower(r.term, 0, "started")
	r.events = r.events[:0] // starting is not a change
	r.ticks = 1
	// A node that acknowledged a leader just before a crash must not help
	// elect another within that leader's lease: after a restart it treats
	// itself as in a lease for one election timeout.
	r.restartGuard = hs.Term > 0
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

// checkWireConfig refuses a configuration received from a peer that this
// node could not put in force (no voters, zero ids, impossible timeouts).
func checkWireConfig(cc *messages.ClusterConfig, err error) error {
	if err != nil {
		return err
	}
	return membership.Validate(cc)
}

func decodeConfig(e *messages.Entry) (*messages.ClusterConfig, error) {
	cc, err := membership.Decode(e.Data)
	if err != nil {
		return nil, fmt.Errorf("%w: config entry %d: %v", ErrInvalidMessage, e.Index, err)
	}
	return cc, nil
}

// setConfigAt makes c the configuration in force.
func (r *Raft) setConfigAt(c confAt) {
	cc := c.cc
	old := r.cc
	r.cc, r.ccIndex = cc, c.index
	r.wasMember = r.wasMember || membership.IsMember(cc, r.id)
	if old != nil && old.GetSettings().GetElectionTicks() != cc.GetSettings().GetElectionTicks() {
		r.resetRandomizedElectionTimeout()
	}
	r.quorum = membership.JointOf(cc)
	r.updateMembers()
	if r.leadTransferee != 0 && !r.quorum.IsVoter(r.leadTransferee) {
		r.leadTransferee = 0
	}
}

// committedConf is the position in ccHist of the last configuration known
// committed.
func (r *Raft) committedConf() int {
	k := len(r.ccHist) - 1
	for k > 0 && r.ccHist[k].index > r.log.committed {
		k--
	}
	return k
}

// updateMembers recomputes the members: those of the last committed
// configuration and of every later one in the log. The leader replicates
// to all of them (thesis §4.3: "log entries are replicated to all servers
// in both configurations"), so that a member being removed still hears
// that the configuration removing it committed.
func (r *Raft) updateMembers() {
	r.oldAddrs = r.addrs
	r.addrs = make(map[uint64]string)
	for _, c := range r.ccHist[r.committedConf():] {
		for _, ms := range [][]*messages.Member{c.cc.OutgoingVoters, c.cc.Learners, c.cc.Voters} {
			for _, m := range ms {
				r.addrs[m.Id] = m.Address
			}
		}
	}
	if r.role == Leader {
		// A member removed by a committed configuration departs: it is
		// still sent the log (with the commit index) until it knows.
		for id, pr := range r.prs {
			if _, ok := r.addrs[id]; ok || id == r.id {
				continue
			}
			if _, ok := r.departing[id]; !ok {
				r.departing[id] = r.oldAddrs[id]
				pr.RemovedAt = r.ccHist[r.committedConf()].index
			}
		}
		for id, addr := range r.departing {
			if _, ok := r.addrs[id]; ok {
				delete(r.departing, id) // added back
				r.prs[id].RemovedAt = 0
				continue
			}
			r.addrs[id] = addr
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
			pr.IsLearner = !r.quorum.IsVoter(id)
		}
	}
}

// departTimeouts is how many election timeouts the leader keeps
// replicating to a departing member that does not answer.
const departTimeouts = 3

// forgetDeparting stops replicating to a departing peer.
func (r *Raft) forgetDeparting(id uint64, why string) {
	delete(r.departing, id)
	delete(r.prs, id)
	r.updateMembers()
	r.event(Event{Kind: EventMemberDeparted, Peer: id, Reason: why})
}

// noteRemoval sets removed once a committed configuration leaves this
// node out (it is no voter, outgoing voter or learner of it).
func (r *Raft) noteRemoval() {
	k := r.committedConf()
	cc := r.ccHist[k].cc
	if r.removed || !r.wasMember || r.ccHist[k].index == 0 || membership.IsMember(cc, r.id) {
		return
	}
	// A later configuration in the log may add it back: not removed then.
	for _, c := range r.ccHist[k:] {
		if membership.IsMember(c.cc, r.id) {
			return
		}
	}
	r.removed = true
	r.event(Event{Kind: EventRemoved, Index: r.ccHist[k].index, Config: cc, Reason: fmt.Sprintf("configuration %d, committed, leaves this node out", r.ccHist[k].index)})
}

func (r *Raft) settings() *messages.Settings { return r.cc.Settings }
func (r *Raft) electionTimeout() int         { return int(r.settings().ElectionTicks) }
func (r *Raft) heartbeatTimeout() int        { return int(r.settings().HeartbeatTicks) }

// promotable reports whether this node may campaign: it is a voter of the
// configuration in force, or of the last one known committed. The second
// case keeps a cluster live when a leader appended a configuration
// without itself (leaving a joint one, or removing itself) and lost
// leadership before anyone else stored it: its log is then the only
// up-to-date one, the others need its vote, and it must be able to win
// again, leading the new configuration without counting itself until it
// commits (thesis §4.2.2). Votes are still counted in the configuration
// in force, and such a node always runs a pre-vote first (campaignStart).
func (r *Raft) promotable() bool {
	if r.removed {
		return false
	}
	if r.quorum.IsVoter(r.id) {
		return true
	}
	cc := r.ccHist[r.committedConf()].cc
	return membership.JointOf(cc).IsVoter(r.id)
}

func (r *Raft) newProgress(id uint64) *Progress {
	pr := &Progress{Next: r.log.lastIndex() + 1, IsLearner: !r.quorum.IsVoter(id), RecentActive: true}
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
	r.leaseBroken = false
	r.restartGuard = false
	r.votes = map[uint64]bool{}
	r.prs = nil
	r.departing = nil
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
	r.departing = map[uint64]string{}
	for _, id := range r.peers {
		r.prs[id] = r.newProgress(id)
	}
	// A no-op entry of the new term commits the entries of earlier terms
	// (§5.4.2, Figure 8).
	r.appendEntries(&messages.Entry{Type: messages.EntryType_ENTRY_NOOP})
	// Config changes wait until an entry of this term is committed (this
	// closes the single-server change hazard found after thesis §4.1).
	// A joint configuration in force is left once it is known committed
	// (configCommitted), at the latest when the no-op commits.
	r.pendingConfIndex = r.log.lastIndex()
	r.noteChanges(oldRole, oldTerm, oldLead, reason)
}

// ---- ticks ----

// Tick advances logical time by one tick.
func (r *Raft) Tick() {
	r.ticks++
	if r.role == Leader {
		r.tickHeartbeat()
	} else {
		r.tickElection()
	}
}

func (r *Raft) tickElection() {
	r.electionElapsed++
	if r.electionElapsed >= r.electionTimeout() {
		r.restartGuard = false
	}
	if r.promotable() && r.electionElapsed >= r.randomizedElectionTimeout {
		r.electionElapsed = 0
		r.campaignStart("election timeout")
	}
}

func (r *Raft) campaignStart(reason string) {
	// A node that is no voter of the configuration in force (see
	// promotable) always runs a pre-vote first: the voters never hear of
	// its term, and their timers are not reset, unless it can win.
	if r.settings().PreVote || !r.quorum.IsVoter(r.id) {
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
		for id, pr := range r.prs {
			if pr.RemovedAt == 0 {
				continue
			}
			if pr.departTimeouts++; pr.departTimeouts >= departTimeouts {
				r.forgetDeparting(id, fmt.Sprintf("silent for %d election timeouts after its removal", departTimeouts))
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
	} else if r.commitNews {
		if r.commitNewsAge++; r.cfg.CommitNewsTicks > 0 && r.commitNewsAge >= r.cfg.CommitNewsTicks {
			r.needBcast, r.bcastNews = true, true // the news waited long enough: an append carries it
		}
	}
}

// commitAdvanced handles a leader's commit-index advance: the followers
// hear of it with the next append or heartbeat (within
// Config.CommitNewsTicks), or at once when it is -1.
func (r *Raft) commitAdvanced() {
	if r.cfg.CommitNewsTicks < 0 {
		r.needBcast, r.bcastNews = true, true
		return
	}
	if !r.commitNews {
		r.commitNews, r.commitNewsAge = true, 0
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
	return r.quorum.VoteResult(votes) == membership.VoteWon
}

// ---- elections ----

// Campaign starts an election at once (with a pre-vote when PreVote is on).
// Only a voter campaigns; a leader does nothing, and so does a node inside
// a leader's lease (CheckQuorum on, the leader heard within an election
// timeout): it promised that leader not to help elect another meanwhile.
func (r *Raft) Campaign() {
	if r.role != Leader && r.promotable() && !r.inLease() {
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
	if role == PreCandidate && r.poll(r.id, true) == membership.VoteWon {
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
	// Vote requests go to every member, though only voters' answers count:
	// a member that is a voter in a configuration this candidate does not
	// know yet must learn the new term, or, never reset by it, it keeps
	// campaigning one term behind into terms where the candidate already
	// voted for itself (a livelock found by TestRandomConfigChangesAreSafe,
	// seed 6145). Pre-votes change no term and go to the voters only.
	to := r.quorum.Voters()
	if role == Candidate {
		to = r.peers
	}
	for _, id := range to {
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

func (r *Raft) poll(id uint64, granted bool) membership.VoteResult {
	if _, ok := r.votes[id]; !ok {
		r.votes[id] = granted
	}
	return r.quorum.VoteResult(r.votes)
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
			if e.GetType() == messages.EntryType_ENTRY_CONFIG {
				if err := checkWireConfig(decodeConfig(e)); err != nil {
					return fmt.Errorf("%w: append: entry %d: %w", ErrInvalidMessage, e.GetIndex(), err)
				}
			}
		}
	}
	if m.Type == messages.MessageType_MSG_SNAPSHOT {
		if cc := m.GetSnapshot().GetMetadata().GetConfig(); cc != nil {
			if err := checkWireConfig(cc, nil); err != nil {
				return fmt.Errorf("%w: snapshot configuration: %w", ErrInvalidMessage, err)
			}
		}
	}
	if m.FromAddress != "" {
		if _, ok := r.addrs[m.From]; !ok {
			if r.hintAddrs == nil {
				r.hintAddrs = map[uint64]string{}
			}
			if len(r.hintAddrs) < maxHintAddrs || r.hintAddrs[m.From] != "" {
				r.hintAddrs[m.From] = m.FromAddress
			}
		}
	}
	if m.Type == messages.MessageType_MSG_NOT_MEMBER {
		r.handleNotMember(m)
		return nil
	}
	switch {
	case m.Term > r.term:
		if m.Type == messages.MessageType_MSG_VOTE || m.Type == messages.MessageType_MSG_PRE_VOTE {
			force := string(m.Context) == string(campaignTransfer)
			if !force && r.inLease() {
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
			wasFollower := r.role == Follower
			elapsed, timeout := r.electionElapsed, r.randomizedElectionTimeout
			r.becomeFollower(m.Term, lead, fmt.Sprintf("saw term %d from %d (%s)", m.Term, m.From, m.Type))
			if m.Type == messages.MessageType_MSG_VOTE && wasFollower {
				// A follower's election timer runs on unless it hears
				// from a leader or grants its vote (Figure 2): a vote
				// request that it refuses (the candidate's log is behind)
				// does not postpone its own campaign. Otherwise candidates
				// with stale logs, each resetting the timers of the only
				// nodes that can win, can keep a cluster leaderless (seed
				// 1564 of TestRandomConfigChangesAreSafe).
				r.electionElapsed, r.randomizedElectionTimeout = elapsed, timeout
			}
		}
	case m.Term < r.term:
		switch m.Type {
		case messages.MessageType_MSG_APPEND, messages.MessageType_MSG_HEARTBEAT:
			// A stale leader learns our term and steps down (Figure 2:
			// "reply false if term < currentTerm"). Always: with pre-votes
			// (the PreVote setting, or a node campaigning only by its
			// committed configuration) no vote request may ever raise
			// the stale leader's term, and a node ahead in term would
			// ignore it for ever (seed 4788 of
			// TestRandomConfigChangesAreSafe).
			r.send(&messages.Message{Type: messages.MessageType_MSG_APPEND_RESP, To: m.From})
		case messages.MessageType_MSG_PRE_VOTE:
			r.send(&messages.Message{Type: messages.MessageType_MSG_PRE_VOTE_RESP, To: m.From, Term: r.term, Reject: true})
		case messages.MessageType_MSG_VOTE:
			// The candidate learns our term (Figure 2). A voter that
			// does not know this node (another configuration) may
			// otherwise never raise its term past ours, campaigning in
			// terms we ignore (seed 11961 of
			// TestRandomConfigChangesAreSafe).
			r.send(&messages.Message{Type: messages.MessageType_MSG_VOTE_RESP, To: m.From, Term: r.term, Reject: true})
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

// RefuseNonMember answers m, a message the driver dropped because its
// sender is no member, with a MSG_NOT_MEMBER notice when m is a vote or
// pre-vote request: the candidate learns that it was removed instead of
// campaigning for ever, unheard. The notice cites the last configuration
// known committed here.
func (r *Raft) RefuseNonMember(m *messages.Message) {
	if m == nil || m.ClusterId != r.clusterID || m.To != r.id || m.From == 0 || m.From == r.id || membership.IsMember(r.cc, m.From) {
		return
	}
	if m.Type != messages.MessageType_MSG_VOTE && m.Type != messages.MessageType_MSG_PRE_VOTE {
		return
	}
	c := r.ccHist[r.committedConf()]
	if c.index == 0 || membership.IsMember(c.cc, m.From) {
		return
	}
	r.send(&messages.Message{Type: messages.MessageType_MSG_NOT_MEMBER, To: m.From, Index: c.index})
}

// handleNotMember trusts a notice that cites a configuration at least as
// new as any this node holds: a newer one would have been replicated to
// it had it added this node back.
func (r *Raft) handleNotMember(m *messages.Message) {
	if r.removed || m.Index < r.ccIndex || m.Index == 0 {
		return
	}
	r.removed = true
	if r.role != Follower {
		r.becomeFollower(r.term, 0, fmt.Sprintf("refused as a non-member by %d", m.From))
	}
	r.event(Event{Kind: EventRemoved, Peer: m.From, Index: m.Index, Reason: fmt.Sprintf("refused as a non-member by %d (configuration %d)", m.From, m.Index)})
}

// Removed reports whether this node knows it is no member (a committed
// configuration leaves it out, or a member refused it): it does not
// campaign.
func (r *Raft) Removed() bool { return r.removed }

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
		case membership.VoteWon:
			r.electionWon()
		case membership.VoteLost:
			r.becomeFollower(r.term, 0, fmt.Sprintf("%s lost: a quorum rejected", r.role))
		}
	}
}

// ---- replication: follower side ----

func (r *Raft) handleAppendEntries(m *messages.Message) {
	if m.Index < r.log.committed {
		r.sendAfterPersist(&messages.Message{Type: messages.MessageType_MSG_APPEND_RESP, To: m.From, Index: r.log.committed, Commit: r.log.committed})
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
		r.configsTruncated(truncatedAt)
	}
	r.configsAppended(m.Entries)
	r.commitTo(min(m.Commit, lastNew))
	// The commit index rides along: a departing member's answer tells the
	// leader that it knows of its removal.
	r.sendAfterPersist(&messages.Message{Type: messages.MessageType_MSG_APPEND_RESP, To: m.From, Index: lastNew, Commit: r.log.committed})
}

// capBatches records that the log was cut at index i: batches handed out
// earlier no longer make entries >= i durable.
func (r *Raft) capBatches(i uint64) {
	for k := range r.batches {
		r.batches[k].lastIndex = min(r.batches[k].lastIndex, i-1)
	}
}

// inLease reports whether this node is inside a leader's lease (thesis
// §4.2.3, §6.4.1): with CheckQuorum on, it heard from a live leader (or
// restarted, see restartGuard) less than an election timeout ago, and
// neither votes for nor becomes another leader until that passes.
func (r *Raft) inLease() bool {
	return r.settings().CheckQuorum && (r.lead != 0 || r.restartGuard) && r.electionElapsed < r.electionTimeout()
}

func (r *Raft) handleHeartbeat(m *messages.Message) {
	// The leader sends min(its commit, our match): safe to commit.
	if m.Commit > r.log.committed && m.Commit <= r.log.lastIndex() {
		r.commitTo(m.Commit)
	}
	// Index echoes the leader's clock of the heartbeat (its lease); Commit
	// tells a departing peer how far it has caught up.
	r.send(&messages.Message{Type: messages.MessageType_MSG_HEARTBEAT_RESP, To: m.From, Context: m.Context, Index: m.Index, Commit: r.log.committed})
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
	// As for a configuration entry (decodeConfig): a snapshot from the
	// wire may carry no settings.
	cc = membership.WithSettings(cc, nil)
	r.ccHist = []confAt{{md.Index, cc}}
	r.pendingConfIndex = md.Index
	r.setConfigAt(r.ccHist[0])
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
	if pr.RemovedAt != 0 && m.Commit >= pr.RemovedAt &&
		(m.Type == messages.MessageType_MSG_APPEND_RESP || m.Type == messages.MessageType_MSG_HEARTBEAT_RESP) {
		r.forgetDeparting(m.From, fmt.Sprintf("knows that configuration %d removed it", pr.RemovedAt))
		return
	}
	switch m.Type {
	case messages.MessageType_MSG_APPEND_RESP:
		r.handleAppendResp(m, pr)
	case messages.MessageType_MSG_HEARTBEAT_RESP:
		if m.Index != 0 && m.Index <= r.ticks {
			pr.leaseAck = max(pr.leaseAck, m.Index)
		}
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
		r.commitAdvanced()
	}
	if pr.Next <= r.log.lastIndex() {
		// More to send (the window was full). An ack with nothing left to
		// send is not answered: an empty append would be a wasted round
		// trip (the next append or heartbeat carries the commit index).
		r.sendAppend(m.From, pr)
	}
	if m.From == r.leadTransferee && pr.Match == r.log.lastIndex() {
		r.sendTimeoutNow(m.From)
	}
}

// maybeCommit advances the commit index to what a quorum has persisted,
// counting only entries of the current term (§5.4.2).
func (r *Raft) maybeCommit() bool {
	ci := r.quorum.CommittedIndex(func(id uint64) uint64 {
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
	// Configuration entries took effect when appended; their commit is
	// what the application hears about, and it ends the membership of
	// those that the newly committed configuration left out.
	changed := false
	for _, c := range r.ccHist {
		if c.index > old && c.index <= i {
			r.event(Event{Kind: EventConfigChanged, Index: c.index, Config: c.cc, Reason: "configuration entry committed"})
			changed = true
		}
	}
	if changed {
		r.updateMembers()
		r.noteRemoval()
	}
	r.configCommitted()
	if r.role == Leader {
		r.releasePendingReads()
	}
}

// configsAppended puts the configuration entries among ents (just
// appended to the log, ascending) in force at once; it reports whether
// there was any.
func (r *Raft) configsAppended(ents []*messages.Entry) (changed bool) {
	for _, e := range ents {
		if e.Type != messages.EntryType_ENTRY_CONFIG || e.Index <= r.ccHist[len(r.ccHist)-1].index {
			continue
		}
		cc, err := decodeConfig(e)
		if err != nil {
			r.logger.Error("undecodable configuration entry ignored", "index", e.Index, "err", err)
			continue
		}
		r.ccHist = append(r.ccHist, confAt{e.Index, cc})
		r.setConfigAt(r.ccHist[len(r.ccHist)-1])
		changed = true
		if r.removed && membership.IsMember(cc, r.id) {
			r.removed = false // added back
		}
	}
	return changed
}

// configsTruncated reverts to the configuration in force before index i,
// once the log was cut from i.
func (r *Raft) configsTruncated(i uint64) {
	n := len(r.ccHist)
	for n > 1 && r.ccHist[n-1].index >= i {
		n--
	}
	if n < len(r.ccHist) {
		r.ccHist = r.ccHist[:n]
		r.setConfigAt(r.ccHist[n-1])
	}
}

// configCommitted acts on the configuration in force once it is committed:
// the leader leaves a joint configuration, and a leader that is no longer
// a voter hands over (thesis §4.2.2).
func (r *Raft) configCommitted() {
	if r.role != Leader || r.ccIndex > r.log.committed {
		return
	}
	if !r.quorum.IsVoter(r.id) {
		if r.leadTransferee == 0 {
			r.handOff()
		}
		return
	}
	if len(r.cc.OutgoingVoters) > 0 {
		r.leaveJoint()
	}
}

// leaveJoint proposes the configuration in force (joint, committed)
// without its outgoing voters: joint consensus reached, the incoming
// voters go on alone (§4.3).
func (r *Raft) leaveJoint() {
	leave, err := membership.LeaveJoint(r.cc)
	if err != nil {
		r.logger.Error("could not leave the joint configuration", "err", err)
		return
	}
	if _, err := r.appendConfig(leave); err != nil {
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
	r.send(&messages.Message{Type: messages.MessageType_MSG_APPEND, To: to, Index: prevIndex, LogTerm: prevTerm, Entries: ents, Commit: r.log.committed,
		FromAddress: r.ownAddressFor(pr)})
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
	r.send(&messages.Message{Type: messages.MessageType_MSG_SNAPSHOT, To: to, Snapshot: r.snapshot, FromAddress: r.ownAddressFor(pr)})
	pr.becomeSnapshot(r.snapshot.Metadata.Index)
}

// ownAddressFor is this node's address when the peer has not acknowledged
// anything yet (it may not know the configuration, hence where to
// answer), "" otherwise.
func (r *Raft) ownAddressFor(pr *Progress) string {
	if pr.Match > 0 {
		return ""
	}
	return r.addrs[r.id]
}

// bcastAppend sends every peer the entries it lacks. With news (the
// commit index must reach every peer now) a peer with nothing new to
// receive gets an empty append; without, it gets nothing: its entries are
// already in flight (an acknowledgement's answer may have carried the ones
// this broadcast was for), and an empty append would be a wasted round
// trip.
func (r *Raft) bcastAppend(news bool) {
	all := true
	for _, id := range r.peers {
		pr := r.prs[id]
		if pr == nil || id == r.id {
			continue
		}
		if !news && pr.State == StateReplicate && pr.Next > r.log.lastIndex() {
			all = false
			continue
		}
		r.sendAppend(id, pr)
	}
	if all {
		r.commitNews = false // every peer got an append carrying the commit index
	}
}

func (r *Raft) bcastHeartbeat(ctx []byte) {
	r.commitNews = false // every heartbeat carries the commit index
	for _, id := range r.peers {
		pr := r.prs[id]
		if id == r.id || pr == nil {
			continue
		}
		r.send(&messages.Message{Type: messages.MessageType_MSG_HEARTBEAT, To: id, Commit: min(pr.Match, r.log.committed), Context: ctx, Index: r.ticks,
			FromAddress: r.ownAddressFor(pr)})
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
	if r.configsAppended(ents) && r.role == Leader {
		// A new quorum may already hold the entries before (a removed
		// voter no longer holds the commit index back).
		r.maybeCommit()
	}
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

// maxHintAddrs bounds hintAddrs.
const maxHintAddrs = 64

// LeaderAddress returns the address of the known leader, "" if none.
func (r *Raft) LeaderAddress() string { return r.Address(r.lead) }

// Address returns the address of member id in the configurations of the
// log or, for a node that no configuration here names yet (this node is
// joining), the address that id's messages carried.
func (r *Raft) Address(id uint64) string {
	if a, ok := r.addrs[id]; ok {
		return a
	}
	return r.hintAddrs[id]
}

// ClusterConfig returns the configuration in force: the latest in the
// log, committed or not (ConfigIndex in Status says which entry). Do not
// mutate it.
func (r *Raft) ClusterConfig() *messages.ClusterConfig { return r.cc }

// Members returns every member id, sorted: those of the last committed
// configuration and of every later one, and, on the leader, departing
// members that do not know of their removal yet. Do not mutate it.
func (r *Raft) Members() []uint64 { return r.peers }

// IsMember reports whether id is one of Members.
func (r *Raft) IsMember(id uint64) bool { _, ok := r.addrs[id]; return ok }
