package actors

import (
	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/messages"
)

// accepted answers ProposeAccepted for a Propose with ReplyOnAppend that
// the leader just appended at idx in term, unless its (client, sequence)
// was in the log already (a retry: no second "accepted").
func (n *node) accepted(ctx actor.Context, msg *Propose, idx, term uint64) {
	dup := false
	if msg.ClientID != 0 && msg.Sequence != 0 {
		dup = n.pend.clientSeqs[msg.ClientID] >= msg.Sequence
		if !dup {
			n.pend.clientSeqs[msg.ClientID] = msg.Sequence
		}
	}
	if msg.ReplyOnAppend && !dup && ctx.Sender() != nil {
		ctx.Respond(&ProposeAccepted{Index: idx, Term: term})
	}
}

// noteSessions records the sequences of a snapshot's session table.
func (n *node) noteSessions(sessions map[uint64]uint64) {
	for c, seq := range sessions {
		n.pend.clientSeqs[c] = max(n.pend.clientSeqs[c], seq)
	}
}

// noteClientSeqs records the highest sequence of each client among
// entries written to the log (and the session table of a snapshot
// installed), so that a retried proposal is recognized whoever led when
// the first one was appended. It costs one map entry per client, as the
// applier's session table. A state machine that deduplicates on its own
// (CommandDeduplicator) keeps its table to itself: after a restart, only
// the clients of the entries in the log are known here.
func (n *node) noteClientSeqs(s *messages.Snapshot, ents []*messages.Entry) {
	if s != nil && len(s.Data) > 0 {
		if sec, err := SplitSnapshot(s.Data); err == nil {
			n.noteSessions(sec.Sessions)
		}
	}
	for _, e := range ents {
		if e.ClientId != 0 && e.Sequence > n.pend.clientSeqs[e.ClientId] {
			n.pend.clientSeqs[e.ClientId] = e.Sequence
		}
	}
}
