package raft

// Helpers for single-node tests: configurations, logs, and stepping a
// node and reading what it hands out. The network of nodes is in
// network_test.go.

import (
	"fmt"
	"testing"

	"github.com/flotilla-raft/flotilla/messages"
	"google.golang.org/protobuf/proto"
)

func members(ids ...uint64) []*messages.Member {
	ms := make([]*messages.Member, 0, len(ids))
	for _, id := range ids {
		ms = append(ms, &messages.Member{Id: id, Address: fmt.Sprintf("n%d:7000", id)})
	}
	return ms
}

// testSettings are the settings of most tests: the paper's Raft, without
// PreVote and CheckQuorum, 10 election ticks, 1 heartbeat tick.
func testSettings() *messages.Settings {
	return &messages.Settings{ElectionTicks: 10, HeartbeatTicks: 1}
}

// withPreVote and withCheckQuorum change the settings of a test cluster.
func withPreVote(s *messages.Settings)     { s.PreVote = true }
func withCheckQuorum(s *messages.Settings) { s.CheckQuorum = true }

func clusterConfig(voters []uint64, learners []uint64, opts ...func(*messages.Settings)) *messages.ClusterConfig {
	s := testSettings()
	for _, o := range opts {
		o(s)
	}
	return &messages.ClusterConfig{Voters: members(voters...), Learners: members(learners...), Settings: s}
}

func testConfig(id uint64, cc *messages.ClusterConfig) Config {
	cfg := DefaultConfig()
	cfg.ID = id
	cfg.ClusterID = 7
	cfg.Seed = 42
	cfg.Bootstrap = cc
	// The scripted tests deliver messages without ticking and expect a
	// commit advance to reach the followers at once: the eager mode.
	// TestCommitNewsRidesTheNextMessage covers the default.
	cfg.CommitNewsTicks = -1
	return cfg
}

// newTestRaft returns a bootstrapped node of a cluster of voters peers.
func newTestRaft(t testing.TB, id uint64, peers []uint64, opts ...func(*messages.Settings)) *Raft {
	t.Helper()
	r, err := New(testConfig(id, clusterConfig(peers, nil, opts...)), InitialState{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

// configEntry returns a config entry for cc.
func configEntry(t testing.TB, term, index uint64, cc *messages.ClusterConfig) *messages.Entry {
	t.Helper()
	data, err := proto.Marshal(cc)
	if err != nil {
		t.Fatal(err)
	}
	return &messages.Entry{Term: term, Index: index, Type: messages.EntryType_ENTRY_CONFIG, Data: data}
}

// logOfTerms returns a log whose entry i+1 has term terms[i]; entry 1 is
// the configuration cc (terms[0] must be 1, as in every log of the paper's
// figures, which all start with an entry of term 1).
func logOfTerms(t testing.TB, cc *messages.ClusterConfig, terms ...uint64) []*messages.Entry {
	t.Helper()
	if len(terms) == 0 || terms[0] != 1 {
		t.Fatalf("a log starts with an entry of term 1, got %v", terms)
	}
	ents := []*messages.Entry{configEntry(t, 1, 1, cc)}
	for i, term := range terms[1:] {
		ents = append(ents, &messages.Entry{Term: term, Index: uint64(i + 2), Data: []byte(fmt.Sprintf("t%d-i%d", term, i+2))})
	}
	return ents
}

// newRaftWithLog returns a node whose stable storage holds ents (entry 1
// committed) and the hard state term/vote.
func newRaftWithLog(t testing.TB, id uint64, term uint64, ents []*messages.Entry) *Raft {
	t.Helper()
	cfg := testConfig(id, nil)
	r, err := New(cfg, InitialState{HardState: &messages.HardState{Term: term, Commit: 1}, Entries: ents})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

func termsOf(ents []*messages.Entry) []uint64 {
	ts := make([]uint64, len(ents))
	for i, e := range ents {
		ts[i] = e.Term
	}
	return ts
}

func logTerms(t testing.TB, r *Raft) []uint64 {
	t.Helper()
	ents, err := r.Entries(r.FirstIndex(), r.LastIndex()+1, 0)
	if err != nil {
		t.Fatal(err)
	}
	return termsOf(ents)
}

// drain hands out r's Ready, reports it persisted at once and returns
// every message that became sendable (those of the Ready and those
// released by Persisted), and the committed entries.
func drain(r *Raft) (msgs []*messages.Message, committed []*messages.Entry) {
	for i := 0; i < 10 && r.HasReady(); i++ {
		rd := r.Ready()
		msgs = append(msgs, rd.Messages...)
		committed = append(committed, rd.CommittedEntries...)
		if rd.PersistID != 0 {
			r.Persisted(rd.PersistID)
		}
	}
	return msgs, committed
}

// drainMsgs is drain keeping the messages only.
func drainMsgs(r *Raft) []*messages.Message {
	msgs, _ := drain(r)
	return msgs
}

// msgsOfType filters msgs.
func msgsOfType(msgs []*messages.Message, ty messages.MessageType) []*messages.Message {
	var out []*messages.Message
	for _, m := range msgs {
		if m.Type == ty {
			out = append(out, m)
		}
	}
	return out
}

// msg builds a message from -> to at term for the node's cluster.
func msg(ty messages.MessageType, from, to, term uint64) *messages.Message {
	return &messages.Message{Type: ty, ClusterId: 7, From: from, To: to, Term: term}
}

func mustStep(t testing.TB, r *Raft, m *messages.Message) {
	t.Helper()
	if err := r.Step(m); err != nil {
		t.Fatalf("Step(%v): %v", m, err)
	}
}
