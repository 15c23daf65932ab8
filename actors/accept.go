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
		s, ok := n.pend.clientSeqs.get(msg.ClientID)
		dup = ok && s.seq >= msg.Sequence
		if !dup {
			n.pend.clientSeqs.put(msg.ClientID, session{seq: msg.Sequence, lastUsed: idx})
		}
	}
	if msg.ReplyOnAppend && !dup && ctx.Sender() != nil {
		ctx.Respond(&ProposeAccepted{Index: idx, Term: term})
	}
}

// noteSessions records the sequences of a snapshot's session table.
func (n *node) noteSessions(sessions []sessionEntry) {
	for _, se := range sessions {
		n.noteClientSeq(se.client, se.s.seq, se.s.lastUsed)
	}
}

// noteClientSeq records seq of client, in the log at index, unless a
// later one is known.
func (n *node) noteClientSeq(client, seq, index uint64) {
	if old, ok := n.pend.clientSeqs.get(client); !ok || seq > old.seq {
		n.pend.clientSeqs.put(client, session{seq: seq, lastUsed: index})
	}
}

// noteClientSeqs records the highest sequence of each client among
// entries written to the log (and the session table of a snapshot
// installed), so that a retried proposal is recognized whoever led when
// the first one was appended. It costs one entry per client, as the
// applier's session table, and is bounded the same way: past
// Config.MaxSessions clients, the one whose entry is oldest is forgotten
// (a retry of its command would get a second ProposeAccepted; the applier
// still applies it once). A state machine that deduplicates on its own
// (CommandDeduplicator) keeps its table to itself: after a restart, only
// the clients of the entries in the log are known here.
func (n *node) noteClientSeqs(s *messages.Snapshot, ents []*messages.Entry) {
	if s != nil && len(s.Data) > 0 {
		if sessions, _, err := decodeSessions(s.Data, s.Metadata.GetIndex()); err == nil {
			n.noteSessions(sessions)
		}
	}
	for _, e := range ents {
		if e.ClientId != 0 {
			n.noteClientSeq(e.ClientId, e.Sequence, e.Index)
		}
	}
}
