package raft

import (
	"fmt"

	"github.com/flotilla-raft/flotilla/messages"
)

// raftLog is the in-memory log of one node: the entries after the last
// snapshot, and the indices that say how far each is along.
//
// Invariant: entries[i].Index == snapIndex+1+i.
// Invariant: applied <= committed; applied <= persisted <= lastIndex().
// Invariant: snapIndex < unstable <= lastIndex()+1.
type raftLog struct {
	snapIndex, snapTerm uint64
	entries             []*messages.Entry
	// committed is the highest index known to be committed (§5.3).
	committed uint64
	// applied is the highest index handed out for applying.
	applied uint64
	// persisted is the highest index known durable and still in the log.
	persisted uint64
	// unstable is the first index not yet handed out for persistence.
	unstable uint64
}

func (l *raftLog) firstIndex() uint64 { return l.snapIndex + 1 }
func (l *raftLog) lastIndex() uint64  { return l.snapIndex + uint64(len(l.entries)) }
func (l *raftLog) lastTerm() uint64   { t, _ := l.term(l.lastIndex()); return t }

// term returns the term of entry i; ErrCompacted below the snapshot,
// ErrUnavailable past the end.
func (l *raftLog) term(i uint64) (uint64, error) {
	switch {
	case i == l.snapIndex:
		return l.snapTerm, nil
	case i < l.snapIndex:
		return 0, ErrCompacted
	case i > l.lastIndex():
		return 0, ErrUnavailable
	}
	return l.entries[i-l.snapIndex-1].Term, nil
}

func (l *raftLog) matchTerm(i, t uint64) bool {
	lt, err := l.term(i)
	return err == nil && lt == t
}

// entry returns entry i, which must be in [firstIndex, lastIndex].
func (l *raftLog) entry(i uint64) *messages.Entry { return l.entries[i-l.snapIndex-1] }

// isUpToDate reports whether a log ending at (lasti, term) is at least as
// up-to-date as ours (§5.4.1): later last term wins, then longer log.
func (l *raftLog) isUpToDate(lasti, term uint64) bool {
	lt := l.lastTerm()
	return term > lt || (term == lt && lasti >= l.lastIndex())
}

// findConflictByTerm returns the largest index <= index whose term is <=
// term, and that term (fast backtracking: a whole term skipped per round
// trip). Indices before the snapshot answer the snapshot.
func (l *raftLog) findConflictByTerm(index, term uint64) (uint64, uint64) {
	index = min(index, l.lastIndex())
	for ; index > l.snapIndex; index-- {
		if t := l.entry(index).Term; t <= term {
			return index, t
		}
	}
	return l.snapIndex, l.snapTerm
}

// maybeAppend is the follower side of AppendEntries (§5.3): if the entry at
// prevIndex has prevTerm, append ents (truncating the first conflicting
// suffix) and return the index of the last new entry. truncatedAt is the
// index from which the old log was cut (0 if nothing was cut).
func (l *raftLog) maybeAppend(prevIndex, prevTerm uint64, ents []*messages.Entry) (lastNew, truncatedAt uint64, ok bool) {
	if !l.matchTerm(prevIndex, prevTerm) {
		return 0, 0, false
	}
	lastNew = prevIndex + uint64(len(ents))
	// Skip the entries we already have; find the first conflict.
	for i, e := range ents {
		if e.Index <= l.snapIndex {
			continue // covered by our snapshot, hence committed and equal
		}
		if e.Index > l.lastIndex() {
			l.appendAfterLast(ents[i:])
			return lastNew, 0, true
		}
		if l.entry(e.Index).Term != e.Term {
			if e.Index <= l.committed {
				panic(fmt.Sprintf("raft: invariant broken: entry %d conflicts with committed entry (committed %d)", e.Index, l.committed))
			}
			l.truncateFrom(e.Index)
			l.appendAfterLast(ents[i:])
			return lastNew, e.Index, true
		}
	}
	return lastNew, 0, true
}

// appendAfterLast appends entries that continue the log exactly.
func (l *raftLog) appendAfterLast(ents []*messages.Entry) {
	l.entries = append(l.entries, ents...)
}

// truncateFrom drops every entry with index >= i. It copies, because slices
// handed out in Ready may share the backing array.
func (l *raftLog) truncateFrom(i uint64) {
	keep := i - l.snapIndex - 1
	l.entries = append(make([]*messages.Entry, 0, keep+16), l.entries[:keep]...)
	l.unstable = min(l.unstable, i)
	l.persisted = min(l.persisted, i-1)
}

// slice returns entries [lo, hi), at most maxEntries and about maxBytes
// (always at least one). The result shares no capacity with the log.
func (l *raftLog) slice(lo, hi uint64, maxBytes uint64, maxEntries int) []*messages.Entry {
	if lo >= hi {
		return nil
	}
	ents := l.entries[lo-l.snapIndex-1 : hi-l.snapIndex-1]
	if maxEntries > 0 && len(ents) > maxEntries {
		ents = ents[:maxEntries]
	}
	if maxBytes > 0 {
		var size uint64
		for i, e := range ents {
			size += entrySize(e)
			if size > maxBytes && i > 0 {
				ents = ents[:i]
				break
			}
		}
	}
	return ents[:len(ents):len(ents)]
}

// entrySize approximates the encoded size of e, for byte budgets.
func entrySize(e *messages.Entry) uint64 {
	return uint64(len(e.Data)+len(e.TraceParent)) + 24
}

func entriesSize(ents []*messages.Entry) uint64 {
	var n uint64
	for _, e := range ents {
		n += entrySize(e)
	}
	return n
}

func (l *raftLog) commitTo(i uint64) bool {
	if i <= l.committed {
		return false
	}
	if i > l.lastIndex() {
		panic(fmt.Sprintf("raft: invariant broken: commit %d past last index %d", i, l.lastIndex()))
	}
	l.committed = i
	return true
}

// compact drops entries <= i, which become the snapshot (index i, term t).
func (l *raftLog) compact(i, t uint64) {
	if i <= l.snapIndex {
		return
	}
	if i > l.lastIndex() {
		l.entries = nil
	} else {
		l.entries = l.entries[i-l.snapIndex:]
	}
	l.snapIndex, l.snapTerm = i, t
	l.unstable = max(l.unstable, i+1)
}

// restore resets the log to a snapshot (index i, term t): every entry is
// dropped.
func (l *raftLog) restore(i, t uint64) {
	l.entries = nil
	l.snapIndex, l.snapTerm = i, t
	l.committed, l.applied = i, i
	l.unstable = i + 1
	l.persisted = min(l.persisted, i) // the snapshot itself becomes durable with its batch
}
