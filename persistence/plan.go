package persistence

import (
	"fmt"

	"github.com/flotilla-raft/flotilla/messages"
)

// UpdatePlan is what saving an Update does to a log, as computed by
// PlanUpdate. Of the entries stored before, those with index in
// [Next.FirstIndex, DiscardFrom) survive; the Update's entries are added.
type UpdatePlan struct {
	// Next is the store's state once the Update is saved.
	Next State
	// DiscardFrom: every previously stored entry with index >= DiscardFrom
	// is deleted (suffix overwrite, or a snapshot that does not match the
	// log). Equal to the previous LastIndex+1 when nothing is overwritten.
	DiscardFrom uint64
}

// PlanUpdate checks u against the current state cur of a log and returns
// what saving it does (see Update for the rules). termAt answers the term of
// a stored entry in [cur.FirstIndex, cur.LastIndex]; it is called at most
// once, for the snapshot's index, and its error is returned as is. Stores call
// PlanUpdate before writing anything, so that a rejected Update changes
// nothing; the errors wrap ErrInvalidUpdate, ErrSnapshotOutOfDate or
// ErrCompacted.
func PlanUpdate(cur State, u Update, termAt func(index uint64) (uint64, error)) (UpdatePlan, error) {
	next := cur
	discardFrom := cur.LastIndex + 1
	if u.Snapshot != nil {
		if err := CheckSnapshot(cur, u.Snapshot); err != nil {
			return UpdatePlan{}, err
		}
		md := u.Snapshot.Metadata
		retain := false
		switch {
		case md.Index == cur.FirstIndex-1:
			retain = md.Term == cur.StartTerm
		case md.Index <= cur.LastIndex:
			t, err := termAt(md.Index)
			if err != nil {
				return UpdatePlan{}, err
			}
			retain = md.Term == t
		}
		next.Snapshot = md
		next.FirstIndex = md.Index + 1
		next.StartTerm = md.Term
		if !retain {
			next.LastIndex = md.Index
			discardFrom = min(discardFrom, md.Index+1)
		}
		if next.LastIndex < md.Index {
			next.LastIndex = md.Index
		}
	}
	if n := len(u.Entries); n > 0 {
		first := u.Entries[0]
		if first == nil || first.Index == 0 {
			return UpdatePlan{}, fmt.Errorf("%w: first entry is nil or has index 0", ErrInvalidUpdate)
		}
		for i, e := range u.Entries {
			if e == nil {
				return UpdatePlan{}, fmt.Errorf("%w: entry %d is nil", ErrInvalidUpdate, i)
			}
			if e.Index != first.Index+uint64(i) {
				return UpdatePlan{}, fmt.Errorf("%w: entry %d has index %d, want %d (entries must be contiguous and ascending)",
					ErrInvalidUpdate, i, e.Index, first.Index+uint64(i))
			}
		}
		if first.Index < next.FirstIndex {
			return UpdatePlan{}, fmt.Errorf("%w: entries start at %d, the log starts at %d", ErrCompacted, first.Index, next.FirstIndex)
		}
		if first.Index > next.LastIndex+1 {
			return UpdatePlan{}, fmt.Errorf("%w: entries start at %d, leaving a gap after the last index %d",
				ErrInvalidUpdate, first.Index, next.LastIndex)
		}
		discardFrom = min(discardFrom, first.Index)
		next.LastIndex = u.Entries[n-1].Index
	}
	if u.HardState != nil {
		next.HardState = u.HardState
	}
	return UpdatePlan{Next: next, DiscardFrom: discardFrom}, nil
}

// CheckSnapshot reports whether s may be stored over a log in state cur: it
// must have Metadata and an index of at least 1 (ErrInvalidUpdate), and its
// index must not be below
// cur.FirstIndex-1 nor below the stored snapshot's index
// (ErrSnapshotOutOfDate).
func CheckSnapshot(cur State, s *messages.Snapshot) error {
	if s == nil || s.Metadata == nil {
		return fmt.Errorf("%w: snapshot without metadata", ErrInvalidUpdate)
	}
	if s.Metadata.Index == 0 {
		return fmt.Errorf("%w: snapshot at index 0", ErrInvalidUpdate)
	}
	idx := s.Metadata.Index
	if idx+1 < cur.FirstIndex {
		return fmt.Errorf("%w: snapshot index %d is below the log start %d", ErrSnapshotOutOfDate, idx, cur.FirstIndex-1)
	}
	if cur.Snapshot != nil && idx < cur.Snapshot.Index {
		return fmt.Errorf("%w: snapshot index %d is below the stored snapshot's %d", ErrSnapshotOutOfDate, idx, cur.Snapshot.Index)
	}
	return nil
}

// CheckEntriesRange checks the arguments of LogStore.Entries against a log
// in state cur.
func CheckEntriesRange(cur State, lo, hi uint64) error {
	if lo > hi {
		return fmt.Errorf("%w: entries range [%d, %d) is inverted", ErrInvalidUpdate, lo, hi)
	}
	if lo < cur.FirstIndex {
		return fmt.Errorf("%w: entries from %d, the log starts at %d", ErrCompacted, lo, cur.FirstIndex)
	}
	if hi > cur.LastIndex+1 {
		return fmt.Errorf("%w: entries up to %d, the last index is %d", ErrUnavailable, hi-1, cur.LastIndex)
	}
	return nil
}

// CheckTermIndex checks the argument of LogStore.Term against a log in state
// cur. It answers (term, true, nil) for index == cur.FirstIndex-1, whose term
// is cur.StartTerm, and (0, false, nil) when the store must look the entry up.
func CheckTermIndex(cur State, index uint64) (uint64, bool, error) {
	switch {
	case index+1 < cur.FirstIndex:
		return 0, false, fmt.Errorf("%w: term of %d, the log starts at %d", ErrCompacted, index, cur.FirstIndex)
	case index+1 == cur.FirstIndex:
		return cur.StartTerm, true, nil
	case index > cur.LastIndex:
		return 0, false, fmt.Errorf("%w: term of %d, the last index is %d", ErrUnavailable, index, cur.LastIndex)
	}
	return 0, false, nil
}

// CheckCompact checks the argument of LogStore.Compact against a log in
// state cur; noop says there is nothing to discard.
func CheckCompact(cur State, index uint64) (noop bool, err error) {
	if index > cur.LastIndex {
		return false, fmt.Errorf("%w: compact to %d, the last index is %d", ErrUnavailable, index, cur.LastIndex)
	}
	return index < cur.FirstIndex, nil
}

// LimitSize returns how many of ents fit in maxBytes of EntrySize (0 = no
// limit), and at least one when ents is not empty.
func LimitSize(ents []*messages.Entry, maxBytes uint64) int {
	if maxBytes == 0 || len(ents) == 0 {
		return len(ents)
	}
	total := EntrySize(ents[0])
	n := 1
	for ; n < len(ents); n++ {
		total += EntrySize(ents[n])
		if total > maxBytes {
			break
		}
	}
	return n
}
