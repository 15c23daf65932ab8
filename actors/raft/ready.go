package raft

import (
	"slices"

	"github.com/flotilla-raft/flotilla/cluster/membership"
	"github.com/flotilla-raft/flotilla/messages"
)

// This file holds the outputs: Ready, which hands out what is to be
// persisted, sent, applied and told, and Persisted, which the driver
// calls once a batch is durable.

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
	// CommittedEntries to apply, in log order; all durable locally. At
	// most Config.MaxCommittedSizePerReady bytes: the next Ready hands out
	// what follows.
	CommittedEntries []*messages.Entry
	// StorageError, when set, is the first failed read of Storage
	// (wrapping ErrStorage and the cause), handed out once. The core
	// reads its log no more: it hands out no more committed entries, and
	// refuses appends it cannot check. The driver must stop the node; the
	// rest of this Ready is valid.
	StorageError error
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
		len(rd.ReadStates) == 0 && len(rd.Events) == 0 && rd.StorageError == nil
}

// HasReady reports whether Ready would hand out anything.
func (r *Raft) HasReady() bool {
	return r.needBcast || len(r.msgs) > 0 || len(r.msgsAfterPersist) > 0 || r.log.unstable <= r.log.lastIndex() ||
		r.pendingSnapshot != nil || r.hardStateChanged() || r.canApply() ||
		len(r.readStates) > 0 || len(r.events) > 0 || (r.log.err != nil && !r.log.errTold)
}

func (r *Raft) hardState() *messages.HardState {
	return &messages.HardState{Term: r.term, Vote: r.vote, Commit: r.log.committed}
}

// hardStateChanged reports a change of term or vote. A change of commit
// alone is not worth a sync: it rides along with the next write (a stale
// commit index after a crash is safe: the leader tells it again).
func (r *Raft) hardStateChanged() bool { return r.term != r.prevHS.term || r.vote != r.prevHS.vote }

func (r *Raft) nextApplyIndex() uint64 { return min(r.log.committed, r.log.persisted) }

// canApply reports whether Ready would hand out committed entries: some
// are durable and not handed out, the log is readable, and the
// application's queue has room (Config.MaxApplyingBytes).
func (r *Raft) canApply() bool {
	if r.nextApplyIndex() <= r.log.applied || r.log.err != nil {
		return false
	}
	m := r.cfg.MaxApplyingBytes
	return m == 0 || len(r.log.applying) == 0 || r.log.applyingBytes < m
}

// AppliedTo acknowledges that the application applied the committed
// entries up to index (or restored a snapshot there): with
// Config.MaxApplyingBytes, their bytes leave its queue, and Ready may
// hand out more. It reports whether it made room for more.
func (r *Raft) AppliedTo(index uint64) bool {
	if len(r.log.applying) == 0 {
		return false
	}
	held := !r.canApply()
	k := 0
	for ; k < len(r.log.applying) && r.log.applying[k].last <= index; k++ {
		r.log.applyingBytes -= r.log.applying[k].bytes
	}
	r.log.applying = slices.Delete(r.log.applying, 0, k)
	return held && r.canApply()
}

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
	ents := r.log.unstableEntries()
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
	if r.canApply() {
		budget := r.cfg.MaxCommittedSizePerReady
		if m := r.cfg.MaxApplyingBytes; m > 0 {
			budget = min(budget, m-min(m, r.log.applyingBytes))
		}
		ents, err := r.log.slice(r.log.applied+1, r.nextApplyIndex()+1, max(budget, 1), 0)
		if err == nil && len(ents) > 0 {
			rd.CommittedEntries = ents
			r.committedOut(ents)
			r.log.applied = ents[len(ents)-1].Index
			if r.cfg.MaxApplyingBytes > 0 {
				b := applyingBatch{r.log.applied, entriesSize(ents)}
				r.log.applying = append(r.log.applying, b)
				r.log.applyingBytes += b.bytes
			}
		}
	}
	if r.log.err != nil && !r.log.errTold {
		rd.StorageError, r.log.errTold = r.log.err, true
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
		r.log.stableTo(r.log.persisted)
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

// termVote is the durable part of the hard state that a batch writes.
type termVote struct{ term, vote uint64 }

type persistBatch struct {
	id        uint64
	lastIndex uint64   // last entry index written by the batch (capped by later truncations); 0: none
	snapIndex uint64   // snapshot installed by the batch; 0: none
	hs        termVote // term and vote written by the batch
	msgs      []*messages.Message
}

// capBatches records that the log was cut at index i: batches handed out
// earlier no longer make entries >= i durable.
func (r *Raft) capBatches(i uint64) {
	for k := range r.batches {
		r.batches[k].lastIndex = min(r.batches[k].lastIndex, i-1)
	}
}
