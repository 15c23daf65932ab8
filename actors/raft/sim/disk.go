package sim

import (
	"fmt"

	"github.com/flotilla-raft/flotilla/actors/raft"
	"github.com/flotilla-raft/flotilla/messages"
)

// This file holds a node's stable storage: the Disk interface and the
// default in-memory disk.

// Disk is a node's stable storage in the simulation. The default keeps it
// in memory; a test can plug in a real store (see the Pebble disk in the
// tests). Crash loses whatever the disk had not made durable.
type Disk interface {
	// Load returns what is stored, for raft.New after a (re)start.
	Load() (raft.InitialState, error)
	// Save stores one Ready's snapshot, entries and hard state, durably.
	Save(rd raft.Ready) error
	// Compact stores snapshot s and drops the entries it covers.
	Compact(s *messages.Snapshot) error
	// Crash simulates power loss: unsynced data may be lost.
	Crash() error
}

// memDisk is the default Disk: exactly what Save was given.
type memDisk struct{ d durable }

func (m *memDisk) Load() (raft.InitialState, error) {
	return raft.InitialState{HardState: m.d.hs, Snapshot: m.d.snap, Entries: m.d.entries}, nil
}

func (m *memDisk) Crash() error { return nil }

func (m *memDisk) Compact(sn *messages.Snapshot) error {
	m.d.snap = sn
	var keep []*messages.Entry
	for _, e := range m.d.entries {
		if e.Index > sn.Metadata.Index {
			keep = append(keep, e)
		}
	}
	m.d.entries = keep
	return nil
}

func (m *memDisk) Save(rd raft.Ready) error {
	d := &m.d
	if rd.Snapshot != nil {
		d.snap = rd.Snapshot
		d.entries = nil
	}
	if len(rd.Entries) > 0 {
		first := rd.Entries[0].Index
		base := uint64(1)
		if d.snap != nil {
			base = d.snap.Metadata.Index + 1
		}
		if first < base {
			return fmt.Errorf("entry %d below the snapshot %d", first, base-1)
		}
		if first > base+uint64(len(d.entries)) {
			return fmt.Errorf("entry %d leaves a gap after %d", first, base+uint64(len(d.entries))-1)
		}
		d.entries = append(d.entries[:first-base:first-base], rd.Entries...)
	}
	if rd.HardState != nil {
		d.hs = rd.HardState
	}
	return nil
}

// durable is what a node's stable storage holds.
type durable struct {
	hs      *messages.HardState
	snap    *messages.Snapshot
	entries []*messages.Entry // after snap
}
