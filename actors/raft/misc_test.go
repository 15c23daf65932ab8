package raft

import (
	"errors"
	"strings"
	"testing"

	"github.com/flotilla-raft/flotilla/cluster/membership"
	"github.com/flotilla-raft/flotilla/messages"
)

// TestConfigValidateReportsEverything: Validate reports every problem at
// once, each naming the field and its value.
func TestConfigValidateReportsEverything(t *testing.T) {
	cfg := Config{
		MaxEntriesPerMsg: -1,
		MaxInflightMsgs:  -2,
		MaxProposalBytes: -3,
		ReadOnly:         7,
		Bootstrap: &messages.ClusterConfig{
			Learners:       []*messages.Member{{Id: 0}, {Id: 5}, {Id: 5}},
			OutgoingVoters: []*messages.Member{{Id: 4}, {Id: 4}},
			Settings:       &messages.Settings{HeartbeatTicks: 0, ElectionTicks: 0},
		},
	}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"Config.ID must be non-zero",
		"Config.MaxEntriesPerMsg = -1",
		"Config.MaxInflightMsgs = -2",
		"Config.MaxProposalBytes = -3",
		"Config.ReadOnly = 7",
		"Config.Bootstrap: ",
		"voters is empty",
		"learners has a member with id 0",
		"member 5 is listed twice in learners",
		"member 4 is listed twice in outgoing_voters",
		"settings.heartbeat_ticks = 0",
		"settings.election_ticks = 0",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	lease := DefaultConfig()
	lease.ID, lease.ReadOnly = 1, ReadOnlyLeaseBased
	lease.Bootstrap = clusterConfig([]uint64{1, 2}, []uint64{2})
	err = lease.Validate()
	for _, want := range []string{"ReadOnlyLeaseBased needs Bootstrap.Settings.CheckQuorum", "member 2 is listed in both voters and learners"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	ok := testConfig(1, clusterConfig([]uint64{1, 2, 3}, nil))
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	if err := membership.Validate(&messages.ClusterConfig{Voters: members(1)}); err != nil {
		t.Fatalf("settings may be absent: %v", err)
	}
}

// TestNewFillsDefaults: New fills unset limits with the defaults.
func TestNewFillsDefaults(t *testing.T) {
	r, err := New(Config{ID: 1, Bootstrap: &messages.ClusterConfig{Voters: members(1)}}, InitialState{})
	if err != nil {
		t.Fatal(err)
	}
	d := DefaultConfig()
	if r.cfg.MaxSizePerMsg != d.MaxSizePerMsg || r.cfg.MaxEntriesPerMsg != d.MaxEntriesPerMsg ||
		r.cfg.MaxInflightMsgs != d.MaxInflightMsgs || r.cfg.MaxProposalBytes != d.MaxProposalBytes || r.cfg.Logger == nil {
		t.Fatalf("config %+v", r.cfg)
	}
	if s := r.ClusterConfig().Settings; s.ElectionTicks != 10 || !s.PreVote || !s.CheckQuorum {
		t.Fatalf("bootstrap settings default to %v", s)
	}
}

// TestStepRefusesInvalidMessages: malformed or misaddressed messages are
// refused with ErrInvalidMessage and change nothing.
func TestStepRefusesInvalidMessages(t *testing.T) {
	r := newTestRaft(t, 1, []uint64{1, 2, 3})
	tests := map[string]*messages.Message{
		"nil":           nil,
		"other cluster": {Type: mApp, ClusterId: 8, From: 2, To: 1, Term: 9},
		"other node":    {Type: mApp, ClusterId: 7, From: 2, To: 3, Term: 9},
		"no sender":     {Type: mApp, ClusterId: 7, From: 0, To: 1, Term: 9},
		"from itself":   {Type: mApp, ClusterId: 7, From: 1, To: 1, Term: 9},
	}
	for name, m := range tests {
		if err := r.Step(m); !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if r.Term() != 1 {
		t.Fatalf("term %d", r.Term())
	}
	// Appends whose entries do not continue the previous entry, or whose
	// terms decrease or pass the leader's, are refused: they would corrupt
	// the log (regression: they were appended as they came).
	badAppends := map[string][]*messages.Entry{
		"gap":              {{Term: 2, Index: 2}, {Term: 2, Index: 4}},
		"not after prev":   {{Term: 2, Index: 5}},
		"decreasing terms": {{Term: 2, Index: 2}, {Term: 1, Index: 3}},
		"before prev term": {{Term: 0, Index: 2}},
		"past the leader":  {{Term: 3, Index: 2}},
		"nil entry":        {nil},
	}
	for name, ents := range badAppends {
		m := msg(mApp, 2, 1, 2)
		m.Index, m.LogTerm, m.Commit = 1, 1, 3
		m.Entries = ents
		if err := r.Step(m); !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if r.LastIndex() != 1 || r.Term() != 1 {
		t.Fatalf("last index %d term %d after refused appends", r.LastIndex(), r.Term())
	}
	// Unknown and unexpected types are ignored.
	mustStep(t, r, msg(messages.MessageType_MSG_UNKNOWN, 2, 1, 1))
	mustStep(t, r, msg(mReadIndex, 2, 1, 1))
	if msgs := drainMsgs(r); len(msgs) != 0 {
		t.Fatalf("answered %v", msgs)
	}
}

// TestProposeRefusals: followers and oversized proposals are refused.
func TestProposeRefusals(t *testing.T) {
	nw := newNetworkWith(t, clusterConfig([]uint64{1, 2, 3}, nil), []uint64{1, 2, 3}, func(c *Config) { c.MaxProposalBytes = 4 })
	_, _, err := nw.raft(1).Propose(&messages.Entry{})
	var nle *NotLeaderError
	if !errors.As(err, &nle) || nle.Leader != 0 || err.Error() != "raft: not the leader (no leader known)" {
		t.Fatalf("no leader: %v", err)
	}
	nw.elect(1)
	if _, _, err := nw.raft(2).Propose(&messages.Entry{}); !errors.As(err, &nle) || nle.Leader != 1 {
		t.Fatalf("follower: %v", err)
	}
	if a := nw.raft(2).LeaderAddress(); a != "n1:7000" {
		t.Fatalf("leader address %q", a)
	}
	if _, _, err := nw.raft(1).Propose(&messages.Entry{Data: []byte("12345")}); !errors.Is(err, ErrProposalTooLarge) {
		t.Fatalf("too large: %v", err)
	}
}

// TestHeartbeatCommit: a heartbeat carries min(commit, match) and the
// follower commits what it has of it.
func TestHeartbeatCommit(t *testing.T) {
	r := newTestRaft(t, 1, []uint64{1, 2, 3})
	drain(r)
	m := msg(mApp, 2, 1, 2)
	m.Index, m.LogTerm = 1, 1
	m.Entries = []*messages.Entry{{Term: 2, Index: 2}, {Term: 2, Index: 3}}
	mustStep(t, r, m)
	drain(r)
	for _, tt := range []struct{ commit, want uint64 }{{2, 2}, {1, 2}, {9, 2}, {3, 3}} {
		hb := msg(mHeartbeat, 2, 1, 2)
		hb.Commit, hb.Context = tt.commit, []byte("ctx")
		mustStep(t, r, hb)
		if r.Committed() != tt.want {
			t.Fatalf("heartbeat commit %d: commit %d, want %d", tt.commit, r.Committed(), tt.want)
		}
		resps := msgsOfType(drainMsgs(r), mHBResp)
		if len(resps) != 1 || string(resps[0].Context) != "ctx" {
			t.Fatalf("responses %v", resps)
		}
	}
	// The leader sends each follower min(its commit, the follower's match).
	nw := newNetwork(t, 3)
	nw.elect(1)
	nw.cutLink(1, 3)
	nw.propose(1, "a")
	nw.heal()
	n := len(nw.sent)
	nw.raft(1).Tick()
	nw.stabilize()
	for _, m := range nw.sent[n:] {
		if m.Type == mHeartbeat && m.To == 3 && m.Commit != 2 {
			t.Fatalf("heartbeat to lagging 3 carries commit %d, want its match 2", m.Commit)
		}
	}
	nw.checkLogsMatch()
}

// TestReplicateWindowRecoversFromLostAppends is a regression test for a
// stall the simulator found (fixed in bc8f750): in replicate mode, a window
// full of lost appends never drained and the peer never caught up. A
// heartbeat response now frees a slot; the next append reveals the gap.
func TestReplicateWindowRecoversFromLostAppends(t *testing.T) {
	nw := newNetworkWith(t, clusterConfig([]uint64{1, 2, 3}, nil), []uint64{1, 2, 3}, func(c *Config) { c.MaxInflightMsgs = 4 })
	nw.elect(1)
	nw.propose(1, "a")
	nw.cutLink(1, 3)
	for range 10 {
		nw.propose(1, "lost")
	}
	if pr := nw.raft(1).Status().Progress[2]; pr.State != StateReplicate || pr.Inflight != 4 {
		t.Fatalf("progress of 3 %+v, want a full replicate window", pr)
	}
	nw.heal()
	nw.tick(3, 1)
	nw.checkLogsMatch()
}

// TestFlowControl: appends respect MaxEntriesPerMsg, MaxSizePerMsg and the
// in-flight window; a probing peer gets one append at a time.
func TestFlowControl(t *testing.T) {
	cc := clusterConfig([]uint64{1, 2}, nil)
	r, err := New(func() Config {
		c := testConfig(1, cc)
		c.MaxEntriesPerMsg, c.MaxSizePerMsg, c.MaxInflightMsgs, c.MaxInflightBytes = 3, 200, 2, 0
		return c
	}(), InitialState{})
	if err != nil {
		t.Fatal(err)
	}
	r.becomeCandidate("test")
	r.becomeLeader("test")
	// Probe: one append, then nothing until an answer.
	if got := len(msgsOfType(drainMsgs(r), mApp)); got != 1 {
		t.Fatalf("%d appends while probing, want 1", got)
	}
	r.Propose(&messages.Entry{Data: []byte("x")})
	if got := len(msgsOfType(drainMsgs(r), mApp)); got != 0 {
		t.Fatalf("%d appends to a paused probe", got)
	}
	ack := msg(mAppResp, 2, 1, 2)
	ack.Index = 1
	mustStep(t, r, ack) // matches at 1: replicate from 2
	apps := msgsOfType(drainMsgs(r), mApp)
	if len(apps) != 1 || len(apps[0].Entries) != 2 {
		t.Fatalf("appends %v", apps)
	}
	for range 10 {
		r.Propose(&messages.Entry{Data: make([]byte, 90)})
	}
	apps = msgsOfType(drainMsgs(r), mApp)
	// Window of 2, one already in flight: one more append, of at most 3
	// entries and about 200 bytes (two entries of 90+24).
	if len(apps) != 1 || len(apps[0].Entries) != 1 {
		t.Fatalf("appends %d: %v", len(apps), apps)
	}
	r.Propose(&messages.Entry{Data: []byte("y")})
	if got := len(msgsOfType(drainMsgs(r), mApp)); got != 0 {
		t.Fatalf("%d appends past the window", got)
	}
	// An ack frees the window.
	ack = msg(mAppResp, 2, 1, 2)
	ack.Index = apps[0].Entries[0].Index
	mustStep(t, r, ack)
	apps = msgsOfType(drainMsgs(r), mApp)
	if len(apps) == 0 || len(apps[0].Entries) > 3 {
		t.Fatalf("after the ack: %v", apps)
	}
	// A byte cap pauses too.
	var in inflights
	in.maxCount, in.maxBytes = 10, 100
	in.add(1, 60)
	if in.full() {
		t.Fatal("full at 60 of 100 bytes")
	}
	in.add(2, 60)
	if !in.full() {
		t.Fatal("not full at 120 of 100 bytes")
	}
	in.freeFirst()
	in.freeFirst()
	in.freeFirst()
	if in.count != 0 || in.bytes != 0 {
		t.Fatalf("inflights %+v", in)
	}
}

// TestAppendRespHandling covers stale and out-of-order answers to the
// leader's appends.
func TestAppendRespHandling(t *testing.T) {
	r := newTestRaft(t, 1, []uint64{1, 2, 3})
	becomeRole(t, r, Leader)
	acceptAll(t, r)
	for range 3 {
		r.Propose(&messages.Entry{})
	}
	drain(r)
	pr := r.prs[2]
	// A stale rejection (for an index at or below match) is ignored.
	rej := msg(mAppResp, 2, 1, 2)
	rej.Index, rej.Reject, rej.RejectHint = 1, true, 1
	mustStep(t, r, rej)
	if pr.State != StateReplicate {
		t.Fatalf("state %s after a stale rejection", pr.State)
	}
	// A real rejection in replicate mode sends the peer back to probing.
	rej.Index, rej.RejectHint, rej.LogTerm = 4, 2, 2
	mustStep(t, r, rej)
	if pr.State != StateProbe || pr.Next != 3 {
		t.Fatalf("progress %+v", pr)
	}
	apps := msgsOfType(drainMsgs(r), mApp)
	if len(apps) != 1 || apps[0].To != 2 || apps[0].Index != 2 {
		t.Fatalf("probe %v", apps)
	}
	// A rejection of a probe not outstanding is stale.
	rej.Index = 4
	mustStep(t, r, rej)
	if pr.Next != 3 {
		t.Fatalf("next %d after a stale probe rejection", pr.Next)
	}
	// An ack of what is already matched unpauses the probe.
	ok := msg(mAppResp, 2, 1, 2)
	ok.Index = 2
	mustStep(t, r, ok)
	if pr.probeSent {
		t.Fatal("probe still paused")
	}
}

// TestStrings covers the String methods used in logs and events.
func TestStrings(t *testing.T) {
	for want, s := range map[string]interface{ String() string }{
		"follower": Follower, "pre-candidate": PreCandidate, "candidate": Candidate, "leader": Leader, "Role(9)": Role(9),
		"probe": StateProbe, "replicate": StateReplicate, "snapshot": StateSnapshot, "ProgressState(9)": ProgressState(9),
		"vote-granted": EventVoteGranted, "EventKind(99)": EventKind(99),
		"term 2: follower -> leader (won)":               Event{Kind: EventRoleChanged, Term: 2, From: Follower, To: Leader, Reason: "won"},
		"term 2: leader 0 -> 3 (heard)":                  Event{Kind: EventLeaderChanged, Term: 2, Leader: 3, Reason: "heard"},
		"term 2: config-changed peer=0 index=5 (commit)": Event{Kind: EventConfigChanged, Term: 2, Index: 5, Reason: "commit"},
	} {
		if got := s.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	}
	var rd Ready
	if !rd.IsEmpty() {
		t.Fatal("zero Ready not empty")
	}
	rd.Events = []Event{{}}
	if rd.IsEmpty() {
		t.Fatal("Ready with an event is empty")
	}
}

// TestUncommittedBytesCap: a leader whose followers do not answer holds at
// most MaxUncommittedBytes of uncommitted commands (one proposal always
// passes when none is uncommitted) and refuses more with
// ErrProposalDropped; once the entries commit, proposals pass again. A new
// leader starts from 0.
func TestUncommittedBytesCap(t *testing.T) {
	nw := newNetworkWith(t, clusterConfig([]uint64{1, 2, 3}, nil), []uint64{1, 2, 3}, func(c *Config) { c.MaxUncommittedBytes = 10 })
	nw.elect(1)
	nw.isolate(1)
	r := nw.raft(1)
	prop := func(data string) error {
		_, _, err := r.Propose(&messages.Entry{Data: []byte(data)})
		nw.stabilize()
		return err
	}
	if err := prop("0123456789abc"); err != nil { // over the cap alone: nothing uncommitted
		t.Fatalf("first proposal over the cap: %v", err)
	}
	if err := prop("x"); !errors.Is(err, ErrProposalDropped) {
		t.Fatalf("proposal over the cap: %v, want ErrProposalDropped", err)
	}
	if err := prop(""); err != nil { // an empty command adds nothing
		t.Fatalf("empty proposal: %v", err)
	}
	nw.heal()
	nw.propose(1, "") // the isolated entries commit with it
	if c := r.Committed(); c != r.LastIndex() {
		t.Fatalf("commit %d, last %d after healing", c, r.LastIndex())
	}
	for _, d := range []string{"01234", "56789"} {
		if err := prop(d); err != nil {
			t.Fatalf("after the commit, %q: %v", d, err)
		}
	}
	nw.isolate(1)
	if err := prop("0123"); err != nil {
		t.Fatalf("10 bytes committed, 0 uncommitted: %v", err)
	}
	if err := prop("0123456"); !errors.Is(err, ErrProposalDropped) {
		t.Fatalf("4+7 bytes: %v, want ErrProposalDropped", err)
	}
	nw.heal()
	nw.elect(2)
	if _, _, err := nw.raft(2).Propose(&messages.Entry{Data: []byte("0123456789")}); err != nil {
		t.Fatalf("a new leader: %v", err)
	}
}
