package raft

import (
	"fmt"

	"github.com/flotilla-raft/flotilla/messages"
)

// raftLog is the log of one node: the entries after the last snapshot,
// the stable ones read through Storage (and its entry cache), the others
// in memory, and the indices that say how far each is along.
//
// Invariant: snapIndex <= stable; entries [snapIndex+1, stable] are stable
// (in storage), mem[i].Index == stable+1+i.
// Invariant: applied <= committed; applied <= persisted <= stable.
// Invariant: stable < unstable <= lastIndex()+1.
type raftLog struct {
	storage             Storage
	snapIndex, snapTerm uint64
	// stable is the last index read from storage: every entry after it
	// is in mem, including those of a stored suffix being overwritten.
	stable uint64
	// stableTerm is the term of entry stable (snapTerm when stable ==
	// snapIndex): the last term is always known without a read.
	stableTerm uint64
	// mem holds the entries after stable. Its array may keep, before
	// mem[0], the slots of entries persisted since it was allocated: at
	// most its capacity, about twice the most entries mem held
	// (appendAfterLast).
	mem   []*messages.Entry
	cache entryCache
	// committed is the highest index known to be committed (§5.3).
	committed uint64
	// applied is the highest index handed out for applying.
	applied uint64
	// persisted is the highest index known durable and still in the log.
	persisted uint64
	// unstable is the first index not yet handed out for persistence.
	unstable uint64
	// applying are the batches of committed entries handed out and not
	// yet acknowledged (AppliedTo), tracked only with
	// Config.MaxApplyingBytes.
	//
	// Invariant: applyingBytes is the sum of applying's bytes; their
	// last indices ascend.
	applying      []applyingBatch
	applyingBytes uint64
	// err is the first failed read of storage (wrapping ErrStorage);
	// errTold: Ready handed it out.
	err     error
	errTold bool
	// cacheHits and storageReads count reads of stable entries (LogStats).
	cacheHits, storageReads uint64
}

type applyingBatch struct{ last, bytes uint64 }

func (l *raftLog) firstIndex() uint64 { return l.snapIndex + 1 }
func (l *raftLog) lastIndex() uint64  { return l.stable + uint64(len(l.mem)) }
func (l *raftLog) lastTerm() uint64   { t, _ := l.term(l.lastIndex()); return t }

// term returns the term of entry i; ErrCompacted below the snapshot,
// ErrUnavailable past the end, an error wrapping ErrStorage when storage
// fails.
func (l *raftLog) term(i uint64) (uint64, error) {
	switch {
	case i == l.snapIndex:
		return l.snapTerm, nil
	case i < l.snapIndex:
		return 0, ErrCompacted
	case i > l.lastIndex():
		return 0, ErrUnavailable
	case i > l.stable:
		return l.mem[i-l.stable-1].Term, nil
	case i == l.stable:
		return l.stableTerm, nil
	}
	if e := l.cache.get(i); e != nil {
		l.cacheHits++
		return e.Term, nil
	}
	if l.err != nil {
		return 0, l.err
	}
	l.storageReads++
	t, err := l.storage.Term(i)
	if err != nil {
		return 0, l.fail(fmt.Errorf("%w: term of %d: %w", ErrStorage, i, err))
	}
	return t, nil
}

// fail records the first storage failure; the core reads the log no more.
func (l *raftLog) fail(err error) error {
	if l.err == nil {
		l.err = err
	}
	return l.err
}

func (l *raftLog) matchTerm(i, t uint64) bool {
	lt, err := l.term(i)
	return err == nil && lt == t
}

// isUpToDate reports whether a log ending at (lasti, term) is at least as
// up-to-date as ours (§5.4.1): later last term wins, then longer log.
func (l *raftLog) isUpToDate(lasti, term uint64) bool {
	lt := l.lastTerm()
	return term > lt || (term == lt && lasti >= l.lastIndex())
}

// findConflictByTerm returns the largest index <= index whose term is <=
// term, and that term (fast backtracking: a whole term skipped per round
// trip). Indices before the snapshot, and a failed read, answer the
// snapshot (a hint that only costs the leader more probes).
func (l *raftLog) findConflictByTerm(index, term uint64) (uint64, uint64) {
	index = min(index, l.lastIndex())
	for ; index > l.snapIndex; index-- {
		t, err := l.term(index)
		if err != nil {
			break
		}
		if t <= term {
			return index, t
		}
	}
	return l.snapIndex, l.snapTerm
}

// maybeAppend is the follower side of AppendEntries (§5.3): if the entry at
// prevIndex has prevTerm, append ents (truncating the first conflicting
// suffix) and return the index of the last new entry. truncatedAt is the
// index from which the old log was cut (0 if nothing was cut). A failed
// read of storage appends nothing (not ok).
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
		t, err := l.term(e.Index)
		if err != nil {
			return 0, 0, false
		}
		if t != e.Term {
			if e.Index <= l.committed {
				panic(fmt.Sprintf("raft: invariant broken: entry %d conflicts with committed entry (committed %d)", e.Index, l.committed))
			}
			prevT := prevTerm // the term of e.Index-1: matched or equal
			if i > 0 {
				prevT = ents[i-1].Term
			}
			l.truncateFrom(e.Index, prevT)
			l.appendAfterLast(ents[i:])
			return lastNew, e.Index, true
		}
	}
	return lastNew, 0, true
}

// appendAfterLast appends entries that continue the log exactly. mem
// grows into a new array of at least minMemCap slots when full (stableTo
// slides it forward, leaving little capacity).
func (l *raftLog) appendAfterLast(ents []*messages.Entry) {
	if n := len(l.mem) + len(ents); n > cap(l.mem) {
		grown := make([]*messages.Entry, len(l.mem), max(2*n, minMemCap))
		copy(grown, l.mem)
		l.mem = grown
	}
	l.mem = append(l.mem, ents...)
}

// minMemCap is the least capacity mem grows to.
const minMemCap = 64

// truncateFrom drops every entry with index >= i; prevTerm is the term of
// entry i-1. It copies, because slices handed out in Ready may share the
// backing array. A cut into the stable
// log makes what follows i-1 unstable: the store keeps its old suffix
// until the overwrite is persisted, but it is read no more.
func (l *raftLog) truncateFrom(i, prevTerm uint64) {
	if i > l.stable {
		keep := i - l.stable - 1
		l.mem = append(make([]*messages.Entry, 0, keep+16), l.mem[:keep]...)
	} else {
		l.mem = nil
		l.cache.truncateFrom(i)
		l.stable, l.stableTerm = i-1, prevTerm
	}
	l.unstable = min(l.unstable, i)
	l.persisted = min(l.persisted, i-1)
}

// unstableEntries returns the entries not yet handed out for
// persistence, all in memory.
func (l *raftLog) unstableEntries() []*messages.Entry {
	m := l.mem[l.unstable-l.stable-1:]
	return m[:len(m):len(m)]
}

// stableTo records that the entries up to i are durable: they leave
// memory for the entry cache.
func (l *raftLog) stableTo(i uint64) {
	if i <= l.stable {
		return
	}
	k := i - l.stable
	l.stableTerm = l.mem[k-1].Term
	l.cache.add(l.mem[:k])
	// The slots left behind are not reused (slices handed out may cover
	// them): appends go after the last one.
	l.mem = l.mem[k:]
	l.stable = i
}

// slice returns entries [lo, hi), at most maxEntries and about maxBytes
// (always at least one; 0: no limit). The result shares no capacity with
// the log. The error wraps ErrStorage when storage fails.
func (l *raftLog) slice(lo, hi uint64, maxBytes uint64, maxEntries int) ([]*messages.Entry, error) {
	if lo >= hi {
		return nil, nil
	}
	if lo <= l.snapIndex {
		return nil, ErrCompacted
	}
	if hi > l.lastIndex()+1 {
		return nil, ErrUnavailable
	}
	if maxEntries > 0 {
		hi = min(hi, lo+uint64(maxEntries))
	}
	var ents []*messages.Entry
	if lo <= l.stable {
		end := min(hi, l.stable+1)
		var err error
		if ents, err = l.stableSlice(lo, end, maxBytes); err != nil {
			return nil, err
		}
		if uint64(len(ents)) < end-lo {
			return ents, nil // the byte budget ended it
		}
	}
	if hi > l.stable+1 {
		m := l.mem[max(lo, l.stable+1)-l.stable-1 : hi-l.stable-1]
		if ents == nil {
			ents = m[:len(m):len(m)]
		} else {
			ents = append(ents, m...)
		}
	}
	return limitSize(ents, maxBytes), nil
}

// stableSlice reads stable entries [lo, hi) (hi-1 <= stable): those
// before the cache from storage, the others from the cache. The result
// shares no capacity with the log.
func (l *raftLog) stableSlice(lo, hi, maxBytes uint64) ([]*messages.Entry, error) {
	var ents []*messages.Entry
	if cf := l.cache.firstIndex(); cf == 0 || lo < cf {
		end := hi
		if cf != 0 {
			end = min(hi, cf)
		}
		if l.err != nil {
			return nil, l.err
		}
		l.storageReads++
		got, err := l.storage.Entries(lo, end, maxBytes)
		if err != nil {
			return nil, l.fail(fmt.Errorf("%w: entries [%d, %d): %w", ErrStorage, lo, end, err))
		}
		if len(got) == 0 || uint64(len(got)) > end-lo || got[0].Index != lo || got[len(got)-1].Index != lo+uint64(len(got))-1 {
			return nil, l.fail(fmt.Errorf("%w: entries [%d, %d): %d entries answered, not a prefix of the range", ErrStorage, lo, end, len(got)))
		}
		if uint64(len(got)) < end-lo || end == hi {
			return got, nil
		}
		if maxBytes > 0 {
			size := entriesSize(got)
			if size >= maxBytes {
				return got, nil
			}
			maxBytes -= size
		}
		ents, lo = got, end
	}
	l.cacheHits++
	if ents == nil {
		return l.cache.slice(lo, hi, maxBytes), nil
	}
	return append(ents, l.cache.slice(lo, hi, maxBytes)...), nil
}

// limitSize returns the longest prefix of ents within maxBytes (0: no
// limit), at least one entry.
func limitSize(ents []*messages.Entry, maxBytes uint64) []*messages.Entry {
	if maxBytes == 0 {
		return ents
	}
	var size uint64
	for i, e := range ents {
		size += entrySize(e)
		if size > maxBytes && i > 0 {
			return ents[:i]
		}
	}
	return ents
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

// compact drops entries <= i, which become the snapshot (index i, term
// t). i is applied, hence stable.
func (l *raftLog) compact(i, t uint64) {
	if i <= l.snapIndex {
		return
	}
	if i > l.stable {
		panic(fmt.Sprintf("raft: invariant broken: compact at %d past the stable log (%d)", i, l.stable))
	}
	l.cache.compact(i)
	l.snapIndex, l.snapTerm = i, t
}

// restore resets the log to a snapshot (index i, term t): every entry is
// dropped.
func (l *raftLog) restore(i, t uint64) {
	l.mem = nil
	l.cache.reset()
	l.snapIndex, l.snapTerm, l.stable, l.stableTerm = i, t, i, t
	l.committed, l.applied = i, i
	l.unstable = i + 1
	l.persisted = min(l.persisted, i) // the snapshot itself becomes durable with its batch
}
