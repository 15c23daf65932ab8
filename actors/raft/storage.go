package raft

import (
	"errors"
	"fmt"
	"slices"

	"github.com/flotilla-raft/flotilla/messages"
)

// This file holds the stable log's side of the core: Storage, the
// read-only view of what the driver made durable, and the entry cache
// that keeps the most recent stable entries in memory.

// Storage is a read-only view of a node's stable log: the entries the
// driver wrote (Ready.Entries, Ready.Snapshot) and reported durable
// (Persisted). The core calls it synchronously, on the goroutine that
// drives it, and only for indices it knows stable: entries after the last
// one reported persisted, and every entry of a suffix being overwritten,
// are read from the core's memory, never from Storage (the store may
// still hold the old suffix until the overwrite is durable).
//
// Every error is a failure of the store, including ErrCompacted and
// ErrUnavailable (the core never asks outside the stable range): the core
// stops using the log and reports the error once in Ready.StorageError;
// the driver must then stop the node.
type Storage interface {
	// FirstIndex is the index of the first stored entry (the log's start,
	// at or below the snapshot's index + 1); LastIndex is the index of the
	// last one, FirstIndex-1 when none is stored. The core calls both in
	// New only.
	FirstIndex() (uint64, error)
	LastIndex() (uint64, error)
	// Term returns the term of the entry at index, for index in
	// [FirstIndex-1, LastIndex] (at FirstIndex-1: the term of the entry
	// before the log's start, the snapshot's).
	Term(index uint64) (uint64, error)
	// Entries returns the entries [lo, hi), in order, their total size
	// limited to about maxBytes (0: no limit) but at least one. The slice
	// is owned by the caller; the entries are not mutated by anyone.
	Entries(lo, hi, maxBytes uint64) ([]*messages.Entry, error)
}

// ErrStorage wraps a failed read of Storage (Ready.StorageError).
var ErrStorage = errors.New("raft: storage read failed")

// noStorage is the Storage of a core given none (InitialState.Storage
// nil): its entry cache is unbounded and holds the whole stable log, so
// this is never read.
type noStorage struct{}

var errNoStorage = errors.New("no Storage given to New and the entry is not in memory")

func (noStorage) FirstIndex() (uint64, error)                       { return 0, errNoStorage }
func (noStorage) LastIndex() (uint64, error)                        { return 0, errNoStorage }
func (noStorage) Term(uint64) (uint64, error)                       { return 0, errNoStorage }
func (noStorage) Entries(_, _, _ uint64) ([]*messages.Entry, error) { return nil, errNoStorage }

// entryCache holds the most recent stable entries, up to maxBytes
// (entrySize): the entries a follower that keeps up and the applier ask
// for, read without going to Storage. Entries leave it from the front.
//
// Reads return subslices of buf (capacity trimmed, no copy), so a slot
// once handed out is never written again: entries are appended after the
// last slot, evicted ones stay in their slots (not cleared) until buf is
// copied into a new array, and a truncation copies.
//
// Invariant: buf[start:] (the cached entries) is contiguous and
// ascending; when not empty, it ends at the log's last stable index
// (raftLog.stable).
// Invariant: bytes == entriesSize(buf[start:]) <= maxBytes (0: no bound).
// Invariant: start <= len(buf)-start: the evicted slots still referenced
// are at most as many as the cached entries (the memory they hold is at
// most the cache's again).
type entryCache struct {
	buf      []*messages.Entry
	start    int
	bytes    uint64
	maxBytes uint64
}

// ents returns the cached entries.
func (c *entryCache) ents() []*messages.Entry { return c.buf[c.start:] }

func (c *entryCache) firstIndex() uint64 {
	if c.start == len(c.buf) {
		return 0
	}
	return c.buf[c.start].Index
}

// add appends stable entries; those that do not continue the cache
// restart it.
func (c *entryCache) add(ents []*messages.Entry) {
	if len(ents) == 0 {
		return
	}
	if n := len(c.buf); n > c.start && c.buf[n-1].Index+1 != ents[0].Index {
		c.reset()
	}
	c.buf = append(c.buf, ents...)
	c.bytes += entriesSize(ents)
	c.evict()
}

func (c *entryCache) evict() {
	if c.maxBytes == 0 {
		return
	}
	k := 0
	live := c.ents()
	for ; k < len(live) && c.bytes > c.maxBytes; k++ {
		c.bytes -= entrySize(live[k])
	}
	c.dropFront(k)
}

// dropFront evicts the first k cached entries; once the evicted slots
// outnumber the cached entries, the cached ones move to a new array.
func (c *entryCache) dropFront(k int) {
	c.start += k
	switch live := len(c.buf) - c.start; {
	case live == 0:
		c.buf, c.start = nil, 0
	case c.start > live:
		c.buf, c.start = slices.Clone(c.buf[c.start:]), 0
	}
}

// get returns entry i, nil when not cached.
func (c *entryCache) get(i uint64) *messages.Entry {
	f := c.firstIndex()
	if f == 0 || i < f || i >= f+uint64(len(c.buf)-c.start) {
		return nil
	}
	return c.buf[c.start+int(i-f)]
}

// slice returns the cached entries [lo, hi), which must be cached, at
// most about maxBytes of them, capacity trimmed.
func (c *entryCache) slice(lo, hi, maxBytes uint64) []*messages.Entry {
	f := c.firstIndex()
	s := limitSize(c.buf[c.start+int(lo-f):c.start+int(hi-f)], maxBytes)
	return s[:len(s):len(s)]
}

// compact drops the entries at or below i.
func (c *entryCache) compact(i uint64) {
	f := c.firstIndex()
	if f == 0 || i < f {
		return
	}
	k := min(int(i-f+1), len(c.buf)-c.start)
	c.bytes -= entriesSize(c.buf[c.start : c.start+k])
	c.dropFront(k)
}

// truncateFrom drops the entries at or after i. The rest moves to a new
// array: later appends must not write into slots handed out.
func (c *entryCache) truncateFrom(i uint64) {
	f := c.firstIndex()
	if f == 0 || i >= f+uint64(len(c.buf)-c.start) {
		return
	}
	k := 0
	if i > f {
		k = int(i - f)
	}
	c.bytes -= entriesSize(c.buf[c.start+k:])
	if k == 0 {
		c.buf, c.start = nil, 0
		return
	}
	c.buf, c.start = slices.Clone(c.buf[c.start:c.start+k]), 0
}

func (c *entryCache) reset() {
	c.buf, c.start, c.bytes = nil, 0, 0
}

// LogStats says what the log holds in memory and how it was read.
type LogStats struct {
	// UnstableEntries and UnstableBytes (entrySize) are the entries not
	// yet reported persisted, all in memory.
	UnstableEntries int
	UnstableBytes   uint64
	// CacheEntries and CacheBytes are the stable entries kept in the
	// entry cache (at most Config.EntryCacheBytes).
	CacheEntries int
	CacheBytes   uint64
	// ApplyingBytes are the committed entries handed out for applying
	// and not yet acknowledged (tracked with Config.MaxApplyingBytes).
	ApplyingBytes uint64
	// CacheHits and StorageReads count the reads of stable entries
	// served from the cache and from Storage (calls of Entries and Term)
	// since New.
	CacheHits    uint64
	StorageReads uint64
}

// LogStats returns what the log holds in memory and how it was read.
func (r *Raft) LogStats() LogStats {
	l := &r.log
	return LogStats{UnstableEntries: len(l.mem), UnstableBytes: entriesSize(l.mem),
		CacheEntries: len(l.cache.ents()), CacheBytes: l.cache.bytes, ApplyingBytes: l.applyingBytes,
		CacheHits: l.cacheHits, StorageReads: l.storageReads}
}

// loadStable finds the stable log in storage at New: its bounds, the
// configuration entries after the snapshot (appended to ccHist), and the
// tail that the entry cache keeps; visit, when set, sees every entry. It
// reads the log once, in pages of scanPageBytes: memory stays bounded by
// a page and the cache, time grows with the log kept since the snapshot.
func (r *Raft) loadStable(s Storage, visit func(*messages.Entry)) ([]confAt, error) {
	l := &r.log
	first, err := s.FirstIndex()
	if err != nil {
		return nil, fmt.Errorf("%w: first index: %w", ErrStorage, err)
	}
	last, err := s.LastIndex()
	if err != nil {
		return nil, fmt.Errorf("%w: last index: %w", ErrStorage, err)
	}
	if last < l.snapIndex+1 {
		return nil, nil // nothing after the snapshot
	}
	if first > l.snapIndex+1 {
		return nil, fmt.Errorf("%w: the stored log starts at %d, after the snapshot at %d", ErrInvalidMessage, first, l.snapIndex)
	}
	if l.snapIndex > 0 && l.snapIndex+1 >= first {
		t, err := s.Term(l.snapIndex)
		if err != nil {
			return nil, fmt.Errorf("%w: term of %d: %w", ErrStorage, l.snapIndex, err)
		}
		if t != l.snapTerm {
			return nil, fmt.Errorf("%w: stored entry %d has term %d, the snapshot at that index has term %d", ErrInvalidMessage, l.snapIndex, t, l.snapTerm)
		}
	}
	var confs []confAt
	for lo := l.snapIndex + 1; lo <= last; {
		ents, err := s.Entries(lo, last+1, scanPageBytes)
		if err != nil {
			return nil, fmt.Errorf("%w: entries from %d: %w", ErrStorage, lo, err)
		}
		for i, e := range ents {
			if e.Index != lo+uint64(i) {
				return nil, fmt.Errorf("%w: stored entry at position %d from %d has index %d", ErrInvalidMessage, i, lo, e.Index)
			}
			if e.Type == messages.EntryType_ENTRY_CONFIG {
				c, err := decodeConfig(e)
				if err != nil {
					return nil, err
				}
				confs = append(confs, confAt{e.Index, c})
			}
			if visit != nil {
				visit(e)
			}
		}
		if len(ents) == 0 {
			return nil, fmt.Errorf("%w: entries from %d: none answered", ErrStorage, lo)
		}
		l.cache.add(ents)
		lo += uint64(len(ents))
		l.stable, l.stableTerm = ents[len(ents)-1].Index, ents[len(ents)-1].Term
	}
	return confs, nil
}

// scanPageBytes is the page size of the reads of the whole stored log
// (loadStable).
const scanPageBytes = 1 << 20
