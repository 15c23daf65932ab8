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

// This file holds the state of a node (the Raft struct and the invariants
// of its fields), New, Tick, and the role transitions. What each role
// does with a message is in step.go; the concerns have a file each:
// election.go, replication.go, confchange.go, transfer.go, snapshot.go,
// read.go, status.go, and ready.go for the outputs.

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

// InitialState is what the driver loaded from stable storage. The zero
// value is an empty node.
type InitialState struct {
	HardState *messages.HardState
	// Snapshot is the latest snapshot (nil when none); its data is kept to
	// be sent to followers that fall behind the log's first index.
	Snapshot *messages.Snapshot
	// Storage is the stable log (see Storage). New finds the log's bounds
	// and configurations in it, and the core reads its stable entries
	// through it from then on, keeping in memory the entries not yet
	// persisted and an entry cache of at most Config.EntryCacheBytes.
	// Nil: the log is Entries, and the core keeps every entry in memory
	// (tests and small logs).
	Storage Storage
	// OnStoredEntry, when set, is called by New with each entry of
	// Storage after the snapshot, in order, as New reads them (one pass
	// over the stored log serves the driver too). The entry must not be
	// retained beyond what the driver needs.
	OnStoredEntry func(*messages.Entry)
	// Entries are the stored entries when Storage is nil, contiguous, up
	// to the last one. They must continue the snapshot (the first at or
	// below Snapshot's index + 1); those at or below its index are covered
	// by it and skipped. Must be empty when Storage is set.
	Entries []*messages.Entry
	// Applied is the index up to which the application's state is already
	// durable (transactional apply); entries up to it are not handed out
	// again. 0 when the application keeps no durable applied index.
	Applied uint64
}

// Raft is one node's Raft state machine. It is not safe for concurrent use:
// one goroutine (one actor) owns it. The fields are grouped by the file
// that owns their concern; the invariants hold between calls.
type Raft struct {
	// id is this node; clusterID is stamped on every message out.
	//
	// Invariant: id != 0; neither changes after New.
	id        uint64
	clusterID uint64
	cfg       Config // with defaults filled in (config.go)

	// term and vote are currentTerm and votedFor (Figure 2), the durable
	// part of the state with the log; lead is the leader known in term.
	//
	// Invariant: term never decreases; vote is 0 or the node this node
	// voted for in term (itself when Candidate).
	// Invariant: lead == id iff role == Leader.
	term uint64
	vote uint64
	lead uint64
	role Role

	log raftLog // see raftLog for its invariants (log.go)

	// ---- configuration (confchange.go) ----

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
	// Invariant: quorum == membership.JointOf(cc).
	cc      *messages.ClusterConfig
	ccIndex uint64           // index of the entry cc came from (snapshot index or 0 for none)
	ccHist  []confAt         // configurations of the log, for truncations and snapshots
	quorum  membership.Joint // the voters of cc
	// addrs maps every member to its address: the members of the last
	// committed configuration and of every later one in the log, and,
	// on the leader, the departing ones.
	//
	// Invariant: peers == the keys of addrs, sorted.
	addrs map[uint64]string
	peers []uint64
	// hintAddrs holds senders' addresses (Message.from_address) of nodes
	// that no configuration in the log names yet: a joining node answers
	// the leader there until the configuration reaches it.
	//
	// Invariant: at most maxHintAddrs entries.
	hintAddrs map[uint64]string
	oldAddrs  map[uint64]string // addrs before the last updateMembers
	// departing (leader only) holds the addresses of members removed by a
	// committed configuration that have not yet learned it (see
	// Progress.RemovedAt).
	//
	// Invariant: nil unless role == Leader; every id in it has a
	// Progress with RemovedAt != 0.
	departing map[uint64]string
	// removed is set once this node knows it is no member: a committed
	// configuration leaves it out, or a member refused it (see
	// RefuseNonMember, MSG_NOT_MEMBER). It campaigns no more; a
	// configuration that lists it again (it was added back) clears it.
	removed bool
	// wasMember: a configuration in force ever listed this node; only
	// then can it be removed (a joining node replays configurations
	// without itself first).
	//
	// Invariant: removed implies wasMember or a refusal by a member.
	wasMember bool
	// pendingConfIndex is the index of the last configuration entry
	// proposed (or of the leader's first entry of its term).
	//
	// Invariant: a leader accepts a new configuration only when
	// pendingConfIndex <= log.committed and cc is not joint (thesis §4.1).
	pendingConfIndex uint64

	// ---- replication (replication.go), leader only ----

	// prs is the leader's view of every member's log.
	//
	// Invariant: nil unless role == Leader; then its keys are peers
	// (self and departing members included).
	prs map[uint64]*Progress
	// needBcast: flush appends to the followers in the next Ready;
	// bcastNews: that flush carries commit news: send every peer an
	// append, empty if need be.
	needBcast bool
	bcastNews bool
	// commitNews: the leader's commit index advanced since the last
	// broadcast of appends or heartbeats (which carry it); commitNewsAge
	// counts the ticks it has waited (see Config.CommitNewsTicks).
	commitNews    bool
	commitNewsAge int
	// uncommittedBytes is the command bytes of the normal entries this
	// leader appended (Propose) and has not yet handed out as committed.
	//
	// Invariant: 0 unless role == Leader; a new Propose leaves it
	// <= cfg.MaxUncommittedBytes unless it was 0 before (one proposal
	// always passes).
	uncommittedBytes uint64

	// ---- elections (election.go) ----

	// votes holds the answers of this campaign (true: granted).
	//
	// Invariant: a Candidate's own vote is in it only once its term and
	// vote are durable (Persisted).
	votes map[uint64]bool
	// electionElapsed counts ticks since this node last heard from a
	// leader, granted a vote or campaigned; on the leader, since the
	// last check-quorum. heartbeatElapsed (leader) counts ticks since
	// the last heartbeat.
	electionElapsed  int
	heartbeatElapsed int
	// Invariant: electionTimeout() <= randomizedElectionTimeout <
	// 2*electionTimeout().
	randomizedElectionTimeout int
	rand                      *rand.Rand // seeded from Config.Seed and id: the only randomness

	// ---- quiescence (quiesce.go) ----

	// quiesced: this leader heartbeats only every QuiescedHeartbeatTicks,
	// or this follower's election timer is stopped. quietElapsed counts
	// ticks: an awake leader's idle ones, a quiesced leader's since its
	// last quiescing heartbeat, a quiesced follower's since it heard one.
	//
	// Invariant: quiesced only as Leader or Follower; reset clears it.
	quiesced     bool
	quietElapsed int
	// quiesceBeatAt (leader): its clock when it sent its latest quiesce
	// heartbeat (TransferTarget).
	quiesceBeatAt uint64
	// quiescedAt (follower): the leader's clock on the heartbeat that
	// quiesced it; its earlier heartbeats, delivered late, leave it quiet.
	quiescedAt uint64

	// ---- leases and reads (read.go) ----

	// ticks counts Tick calls since New, from 1: the leader's lease clock.
	ticks uint64
	// restartGuard: this node restarted with state and keeps the lease it
	// may have given a leader before the restart (see inLease).
	restartGuard bool
	// leaseFrom: only heartbeats sent at this clock or later count for
	// the lease (set when a quiesced leader wakes; see wake).
	leaseFrom uint64
	// leaseBroken: this leader sent a TimeoutNow in its term; the
	// transferee's forced election ignores leases, so none is trusted.
	leaseBroken  bool
	reads        readOnly      // leader: reads waiting for a heartbeat quorum
	pendingReads []readRequest // leader: asked before it committed in its term
	readStates   []ReadState   // answered, to hand out in Ready

	// ---- leadership transfer (transfer.go) ----

	// leadTransferee is the voter this leader hands over to, 0 if none.
	//
	// Invariant: 0 unless role == Leader; otherwise a voter of cc.
	leadTransferee uint64

	// ---- snapshots (snapshot.go) ----

	// Invariant: snapshot != nil when log.snapIndex > 0, and
	// snapshot.Metadata.Index >= log.snapIndex (Compact may keep a tail of
	// the log before it).
	snapshot        *messages.Snapshot // latest snapshot, sent to lagging peers
	pendingSnapshot *messages.Snapshot // received, to hand out in Ready
	// snapTransfers are chunked-snapshot messages the core accepted, to
	// hand out in Ready.SnapshotTransfers.
	snapTransfers []*messages.Message

	// ---- outputs (ready.go) ----

	msgs []*messages.Message // send now
	// msgsAfterPersist promise durable state: they leave once everything
	// handed out for persistence before them is durable.
	msgsAfterPersist []*messages.Message
	// batches are the persistence batches handed out and not yet
	// reported persisted.
	//
	// Invariant: ids ascending; the last one, if any, is persistSeq.
	batches    []persistBatch
	persistSeq uint64
	prevHS     termVote // last term and vote handed out
	durableHS  termVote // last term and vote reported durable
	events     []Event
	logger     *slog.Logger
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
	r.log.stable, r.log.stableTerm = r.log.snapIndex, r.log.snapTerm
	var confs []confAt
	if st.Storage != nil {
		if len(st.Entries) > 0 {
			return nil, fmt.Errorf("%w: InitialState.Entries must be empty when Storage is set", ErrInvalidMessage)
		}
		r.log.storage, r.log.cache.maxBytes = st.Storage, cfg.EntryCacheBytes
		var err error
		if confs, err = r.loadStable(st.Storage, st.OnStoredEntry); err != nil {
			return nil, err
		}
	} else {
		// The entry cache, unbounded, is the log: storage is never read.
		r.log.storage = noStorage{}
		ents, err := entriesAfter(st.Entries, r.log.snapIndex, r.log.snapTerm)
		if err != nil {
			return nil, err
		}
		for i, e := range ents {
			if e.Index != r.log.snapIndex+1+uint64(i) {
				return nil, fmt.Errorf("%w: stored entry %d has index %d, want %d", ErrInvalidMessage, i, e.Index, r.log.snapIndex+1+uint64(i))
			}
			if e.Type == messages.EntryType_ENTRY_CONFIG {
				c, err := decodeConfig(e)
				if err != nil {
					return nil, err
				}
				confs = append(confs, confAt{e.Index, c})
			}
		}
		r.log.cache.add(ents)
		if n := len(ents); n > 0 {
			r.log.stable, r.log.stableTerm = ents[n-1].Index, ents[n-1].Term
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
		data, err := proto.Marshal(membership.WithSettings(cfg.Bootstrap, nil))
		if err != nil {
			return nil, fmt.Errorf("raft: marshal bootstrap configuration: %w", err)
		}
		boot := &messages.Entry{Term: 1, Index: 1, Type: messages.EntryType_ENTRY_CONFIG, Data: data}
		r.log.mem = []*messages.Entry{boot}
		r.log.unstable = 1
		r.term = 1
		r.log.committed = 1
		c, err := decodeConfig(boot)
		if err != nil {
			return nil, err
		}
		confs = []confAt{{1, c}}
	}
	// The configuration in force is the latest in the log, committed or not.
	r.ccHist = append([]confAt{base}, confs...)
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

func (r *Raft) settings() *messages.Settings { return r.cc.Settings }
func (r *Raft) electionTimeout() int         { return int(r.settings().ElectionTicks) }
func (r *Raft) heartbeatTimeout() int        { return int(r.settings().HeartbeatTicks) }

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
	r.uncommittedBytes = 0
	r.quiesced, r.quietElapsed = false, 0
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

// Tick advances logical time by one tick.
func (r *Raft) Tick() {
	r.ticks++
	switch {
	case r.quiesced:
		r.tickQuiesced()
	case r.role == Leader:
		r.tickHeartbeat()
		r.tickQuiesce()
	default:
		r.tickElection()
	}
}
