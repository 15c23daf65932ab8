package sim

import (
	"github.com/flotilla-raft/flotilla/actors/raft"
	"github.com/flotilla-raft/flotilla/messages"
)

// This file holds the safety checks run during every step (thesis §3.6.3):
// log matching, leader completeness and election safety (state machine
// safety is checked where entries are applied, in step.go).

type seenEntry struct {
	prevTerm uint64
	data     string
	typ      messages.EntryType
}

type committedEntry struct {
	term uint64
	hash uint64 // state machine hash after applying it
}

// checkAppended checks log matching on every entry a node appends: an
// (index, term) pair always names the same entry, preceded by the same
// term.
func (s *Sim) checkAppended(n *node, ents []*messages.Entry) {
	for _, e := range ents {
		var prevTerm uint64
		if e.Index > 1 {
			if pe, err := n.r.Entries(e.Index-1, e.Index, 0); err == nil {
				prevTerm = pe[0].Term
			} else if sn := n.r.Snapshot(); sn != nil && sn.Metadata.Index == e.Index-1 {
				prevTerm = sn.Metadata.Term
			} else {
				continue
			}
		}
		key := [2]uint64{e.Index, e.Term}
		got := seenEntry{prevTerm: prevTerm, data: string(e.Data), typ: e.Type}
		if want, ok := s.seen[key]; ok {
			if want != got {
				s.fail("log matching: node %d has entry (%d, term %d) differing from another node's (prev term %d vs %d)", n.id, e.Index, e.Term, got.prevTerm, want.prevTerm)
			}
		} else {
			s.seen[key] = got
		}
	}
}

// checkLeaderCompleteness: a new leader holds every entry applied anywhere.
func (s *Sim) checkLeaderCompleteness(n *node) {
	first := n.r.FirstIndex()
	for idx, c := range s.committed {
		if idx < first {
			continue
		}
		ents, err := n.r.Entries(idx, idx+1, 0)
		if err != nil {
			s.fail("leader completeness: leader %d of term %d lacks committed index %d (last %d)", n.id, n.r.Term(), idx, n.r.LastIndex())
			return
		}
		if ents[0].Term != c.term {
			s.fail("leader completeness: leader %d of term %d has term %d at committed index %d (term %d)", n.id, n.r.Term(), ents[0].Term, idx, c.term)
			return
		}
	}
}

// check asserts election safety after every step.
func (s *Sim) check() {
	for _, n := range s.nodes {
		if !n.up || n.r.Role() != raft.Leader {
			continue
		}
		t := n.r.Term()
		if l, ok := s.leaders[t]; ok && l != n.id {
			s.fail("election safety: nodes %d and %d both lead term %d", l, n.id, t)
		}
		s.leaders[t] = n.id
	}
}
