package sim

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/flotilla-raft/flotilla/actors/raft"
	"github.com/flotilla-raft/flotilla/messages"
)

// This file holds a node's stable storage: the Disk interface and the
// default in-memory disk.

// Disk is a node's stable storage in the simulation. The default keeps it
// in memory; a test can plug in a real store (see the Pebble disk in the
// tests). Crash loses whatever the disk had not made durable.
type Disk interface {
	// Load returns what is stored, for raft.New after a (re)start: the
	// hard state, the snapshot, and the log as a raft.Storage, which the
	// core reads while it runs.
	Load() (raft.InitialState, error)
	// Save stores one Ready's snapshot, entries and hard state, durably.
	Save(rd raft.Ready) error
	// Compact stores snapshot s and drops the entries up to index to
	// (the core's first index - 1: it may keep a tail before s).
	Compact(s *messages.Snapshot, to uint64) error
	// Crash simulates power loss: unsynced data may be lost.
	Crash() error
}

// memDisk is the default Disk: exactly what Save was given. It is its own
// raft.Storage.
type memDisk struct{ d durable }

func (m *memDisk) Load() (raft.InitialState, error) {
	return raft.InitialState{HardState: m.d.hs, Snapshot: m.d.snap, Storage: m}, nil
}

func (m *memDisk) Crash() error { return nil }

func (m *memDisk) Compact(sn *messages.Snapshot, to uint64) error {
	d := &m.d
	d.snap = sn
	if to < d.first {
		return nil
	}
	if to > d.last() {
		return fmt.Errorf("compact to %d past the last entry %d", to, d.last())
	}
	d.startTerm = d.entries[to-d.first].Term
	d.entries = d.entries[to-d.first+1:]
	d.first = to + 1
	return nil
}

func (m *memDisk) Save(rd raft.Ready) error {
	d := &m.d
	if rd.Snapshot != nil {
		d.snap = rd.Snapshot
		d.entries, d.first, d.startTerm = nil, rd.Snapshot.Metadata.Index+1, rd.Snapshot.Metadata.Term
	}
	if len(rd.Entries) > 0 {
		e0 := rd.Entries[0].Index
		if d.first == 0 {
			d.first = 1
		}
		if e0 < d.first {
			return fmt.Errorf("entry %d below the log's start %d", e0, d.first)
		}
		if e0 > d.last()+1 {
			return fmt.Errorf("entry %d leaves a gap after %d", e0, d.last())
		}
		// A new array: entries read earlier stay as they were.
		d.entries = append(d.entries[:e0-d.first:e0-d.first], rd.Entries...)
	}
	if rd.HardState != nil {
		d.hs = rd.HardState
	}
	return nil
}

// durable is what a node's stable storage holds.
type durable struct {
	hs        *messages.HardState
	snap      *messages.Snapshot
	first     uint64            // index of entries[0]; 0 before anything is stored
	startTerm uint64            // term of the entry at first-1
	entries   []*messages.Entry // may start at or below snap's index (a kept tail)
}

func (d *durable) firstIndex() uint64 { return max(d.first, 1) }
func (d *durable) last() uint64       { return d.firstIndex() + uint64(len(d.entries)) - 1 }

// FirstIndex, LastIndex, Term and Entries make memDisk a raft.Storage.
func (m *memDisk) FirstIndex() (uint64, error) { return m.d.firstIndex(), nil }
func (m *memDisk) LastIndex() (uint64, error)  { return m.d.last(), nil }

func (m *memDisk) Term(i uint64) (uint64, error) {
	d := &m.d
	switch {
	case i+1 == d.firstIndex():
		return d.startTerm, nil
	case i < d.firstIndex():
		return 0, raft.ErrCompacted
	case i > d.last():
		return 0, raft.ErrUnavailable
	}
	return d.entries[i-d.firstIndex()].Term, nil
}

func (m *memDisk) Entries(lo, hi, maxBytes uint64) ([]*messages.Entry, error) {
	d := &m.d
	if lo < d.firstIndex() {
		return nil, raft.ErrCompacted
	}
	if hi > d.last()+1 || lo >= hi {
		return nil, raft.ErrUnavailable
	}
	ents := d.entries[lo-d.firstIndex() : hi-d.firstIndex()]
	var size uint64
	for i, e := range ents {
		if size += uint64(proto.Size(e)); size > maxBytes && maxBytes > 0 && i > 0 {
			ents = ents[:i]
			break
		}
	}
	return slices.Clone(ents), nil
}
