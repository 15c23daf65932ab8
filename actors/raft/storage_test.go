package raft

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/flotilla-raft/flotilla/messages"
)

// diskLog is a Storage that a test writes from Ready, as a driver's store
// would, and that records every read.
type diskLog struct {
	first, startTerm uint64
	ents             []*messages.Entry
	// reads are the indices read (Term, and every index of Entries'
	// range); maxRead the most entries one Entries call answered.
	reads   []uint64
	maxRead int
	// fail, when set, is the error of every read.
	fail error
}

func newDiskLog() *diskLog { return &diskLog{first: 1} }

func (d *diskLog) FirstIndex() (uint64, error) { return d.first, d.fail }
func (d *diskLog) LastIndex() (uint64, error) {
	return d.first + uint64(len(d.ents)) - 1, d.fail
}

func (d *diskLog) Term(i uint64) (uint64, error) {
	d.reads = append(d.reads, i)
	if d.fail != nil {
		return 0, d.fail
	}
	if i+1 == d.first {
		return d.startTerm, nil
	}
	if i < d.first || i >= d.first+uint64(len(d.ents)) {
		return 0, fmt.Errorf("term %d outside [%d, %d]", i, d.first, d.first+uint64(len(d.ents))-1)
	}
	return d.ents[i-d.first].Term, nil
}

func (d *diskLog) Entries(lo, hi, maxBytes uint64) ([]*messages.Entry, error) {
	for i := lo; i < hi; i++ {
		d.reads = append(d.reads, i)
	}
	if d.fail != nil {
		return nil, d.fail
	}
	if lo < d.first || hi > d.first+uint64(len(d.ents)) || lo >= hi {
		return nil, fmt.Errorf("entries [%d, %d) outside [%d, %d]", lo, hi, d.first, d.first+uint64(len(d.ents))-1)
	}
	ents := limitSize(slices.Clone(d.ents[lo-d.first:hi-d.first]), maxBytes)
	d.maxRead = max(d.maxRead, len(ents))
	return ents, nil
}

// save writes a Ready's entries (a suffix overwrite) and snapshot.
func (d *diskLog) save(rd Ready) {
	if rd.Snapshot != nil {
		md := rd.Snapshot.Metadata
		d.first, d.startTerm, d.ents = md.Index+1, md.Term, nil
	}
	if len(rd.Entries) > 0 {
		k := rd.Entries[0].Index - d.first
		d.ents = append(slices.Clone(d.ents[:k]), rd.Entries...)
	}
}

func storageConfig(id uint64, cc *messages.ClusterConfig, cacheBytes uint64) Config {
	cfg := testConfig(id, cc)
	cfg.EntryCacheBytes = cacheBytes
	cfg.MaxCommittedSizePerReady = 2000
	return cfg
}

// TestEntryCacheStaysWithinItsCap: a single-voter leader on a Storage
// writes a log 50 times its entry cache; after every step the cache holds
// at most EntryCacheBytes, no persisted entry stays in memory, committed
// entries arrive in order in batches of at most MaxCommittedSizePerReady
// bytes, and a restart from the storage finds the configuration and the
// whole log, reading it in bounded pages and keeping only a cache's worth.
func TestEntryCacheStaysWithinItsCap(t *testing.T) {
	const capBytes = 1000
	disk := newDiskLog()
	cfg := storageConfig(1, clusterConfig([]uint64{1}, nil), capBytes)
	r, err := New(cfg, InitialState{Storage: disk})
	if err != nil {
		t.Fatal(err)
	}
	var applied uint64
	step := func() {
		t.Helper()
		for r.HasReady() {
			rd := r.Ready()
			if rd.StorageError != nil {
				t.Fatal(rd.StorageError)
			}
			if len(rd.CommittedEntries) > 1 && entriesSize(rd.CommittedEntries) > cfg.MaxCommittedSizePerReady {
				t.Fatalf("a Ready handed out %d bytes of committed entries, cap %d", entriesSize(rd.CommittedEntries), cfg.MaxCommittedSizePerReady)
			}
			for _, e := range rd.CommittedEntries {
				if e.Index != applied+1 {
					t.Fatalf("applied %d after %d", e.Index, applied)
				}
				applied = e.Index
			}
			if rd.PersistID != 0 {
				disk.save(rd)
				r.Persisted(rd.PersistID)
			}
		}
		st := r.LogStats()
		if st.CacheBytes > capBytes {
			t.Fatalf("entry cache holds %d bytes, cap %d", st.CacheBytes, capBytes)
		}
		if st.UnstableEntries != 0 {
			t.Fatalf("%d persisted entries still in memory", st.UnstableEntries)
		}
	}
	r.Campaign()
	step()
	if r.Role() != Leader {
		t.Fatalf("role %v, want leader", r.Role())
	}
	data := make([]byte, 100)
	for i := range 400 {
		if _, _, err := r.Propose(&messages.Entry{Data: data}); err != nil {
			t.Fatal(err)
		}
		if i%7 == 0 {
			step()
		}
	}
	step()
	last := r.LastIndex()
	if applied != last {
		t.Fatalf("applied %d, want %d", applied, last)
	}
	if st := r.LogStats(); st.StorageReads != 0 || st.CacheHits == 0 {
		t.Fatalf("the applier kept up: want every read from the cache, got %+v", st)
	}

	// Restart from the storage.
	disk.reads, disk.maxRead = nil, 0
	r, err = New(cfg, InitialState{HardState: &messages.HardState{Term: r.Term(), Vote: 1, Commit: last}, Storage: disk})
	if err != nil {
		t.Fatal(err)
	}
	if r.LastIndex() != last || !slices.Equal(r.Members(), []uint64{1}) {
		t.Fatalf("restarted with last %d and members %v, want %d and [1]", r.LastIndex(), r.Members(), last)
	}
	if st := r.LogStats(); st.CacheBytes > capBytes || st.UnstableEntries != 0 {
		t.Fatalf("after the restart the log holds %+v in memory, cache cap %d", st, capBytes)
	}
	if max := int(scanPageBytes/entrySize(disk.ents[1])) + 1; disk.maxRead > max {
		t.Fatalf("start-up read %d entries at once, a page is at most %d", disk.maxRead, max)
	}
	ents, err := r.Entries(1, last+1, 0)
	if err != nil || len(ents) != int(last) || ents[0].Type != messages.EntryType_ENTRY_CONFIG {
		t.Fatalf("the restarted log: %d entries, %v; want %d from the configuration", len(ents), err, last)
	}
	applied = 0
	r.Campaign()
	step()
	if r.Role() != Leader || applied != r.LastIndex() {
		t.Fatalf("after the restart: role %v, applied %d of %d", r.Role(), applied, r.LastIndex())
	}
}

// TestFollowerTruncatesPersistedSuffix: a follower whose stored log (read
// through Storage, no cache) holds entries of a deposed leader's term
// gets the new leader's conflicting entries: the core cuts its stable log,
// serves the new entries from memory and never reads the stored suffix
// (still the old one until the overwrite is persisted), and once persisted
// the log, the storage and the configuration agree.
func TestFollowerTruncatesPersistedSuffix(t *testing.T) {
	cc := clusterConfig([]uint64{1, 2, 3}, nil)
	disk := newDiskLog()
	disk.ents = logOfTerms(t, cc, 1, 2, 2, 2, 2)
	r, err := New(storageConfig(2, nil, 1), InitialState{HardState: &messages.HardState{Term: 2, Commit: 2}, Storage: disk})
	if err != nil {
		t.Fatal(err)
	}
	// Leader 3 of term 3 holds entries 1-2, then 3-4 of term 3.
	app := msg(messages.MessageType_MSG_APPEND, 3, 2, 3)
	app.Index, app.LogTerm, app.Commit = 2, 2, 2
	app.Entries = []*messages.Entry{{Term: 3, Index: 3, Data: []byte("new3")}, {Term: 3, Index: 4, Data: []byte("new4")}}
	mustStep(t, r, app) // reads the stored term of 3 to find the conflict
	disk.reads = nil
	if got := logTerms(t, r); !slices.Equal(got, []uint64{1, 2, 3, 3}) {
		t.Fatalf("log terms %v, want [1 2 3 3]", got)
	}
	rd := r.Ready()
	if len(rd.Entries) != 2 || rd.Entries[0].Index != 3 {
		t.Fatalf("handed out %d entries from %d, want 3-4", len(rd.Entries), rd.Entries[0].GetIndex())
	}
	for _, i := range disk.reads {
		if i >= 3 {
			t.Fatalf("read stored index %d after the cut at 3 (reads %v)", i, disk.reads)
		}
	}
	// The old suffix is still stored: reads stay in memory.
	if ents, err := r.Entries(3, 5, 0); err != nil || string(ents[0].Data) != "new3" || string(ents[1].Data) != "new4" {
		t.Fatalf("entries 3-4 before the overwrite is durable: %v, %v", ents, err)
	}
	disk.save(rd)
	r.Persisted(rd.PersistID)
	if st := r.LogStats(); st.UnstableEntries != 0 {
		t.Fatalf("%d entries in memory after they were persisted", st.UnstableEntries)
	}
	disk.reads = nil
	if ents, err := r.Entries(3, 5, 0); err != nil || string(ents[1].Data) != "new4" || len(disk.reads) == 0 {
		t.Fatalf("entries 3-4 once durable: %v, %v (reads %v: want them from storage)", ents, err, disk.reads)
	}
	// The acknowledgement says 4.
	msgs, _ := drain(r)
	if resp := msgsOfType(msgs, messages.MessageType_MSG_APPEND_RESP); len(resp) != 1 || resp[0].Index != 4 || resp[0].Reject {
		t.Fatalf("answers %v, want an acknowledgement of 4", resp)
	}
}

// TestStorageFailureStopsTheLog: a failed read of Storage is handed out
// once in Ready.StorageError (wrapping ErrStorage and the cause), and the
// core hands out no committed entry it could not read.
func TestStorageFailureStopsTheLog(t *testing.T) {
	cc := clusterConfig([]uint64{1}, nil)
	disk := newDiskLog()
	disk.ents = logOfTerms(t, cc, 1, 1, 1)
	r, err := New(storageConfig(1, nil, 1), InitialState{HardState: &messages.HardState{Term: 1, Commit: 3}, Storage: disk})
	if err != nil {
		t.Fatal(err)
	}
	ioErr := errors.New("disk on fire")
	disk.fail = ioErr
	rd := r.Ready()
	if !errors.Is(rd.StorageError, ErrStorage) || !errors.Is(rd.StorageError, ioErr) || len(rd.CommittedEntries) != 0 {
		t.Fatalf("Ready: storage error %v, %d committed entries; want ErrStorage wrapping the cause and none", rd.StorageError, len(rd.CommittedEntries))
	}
	if r.HasReady() {
		if rd := r.Ready(); rd.StorageError != nil || len(rd.CommittedEntries) != 0 {
			t.Fatalf("second Ready: %v, %d committed entries; want the error once and nothing applied", rd.StorageError, len(rd.CommittedEntries))
		}
	}
	if _, err := New(storageConfig(1, nil, 1), InitialState{Storage: disk}); !errors.Is(err, ErrStorage) {
		t.Fatalf("New on a failing storage: %v, want ErrStorage", err)
	}
}

// TestApplyQueueIsBounded: with MaxApplyingBytes, Ready hands out
// committed entries up to the cap and no more until the application
// acknowledges them (AppliedTo); then the rest follows, in order.
func TestApplyQueueIsBounded(t *testing.T) {
	const capBytes = 1500
	cfg := storageConfig(1, clusterConfig([]uint64{1}, nil), 1<<20)
	cfg.MaxCommittedSizePerReady = 500
	cfg.MaxApplyingBytes = capBytes
	disk := newDiskLog()
	r, err := New(cfg, InitialState{Storage: disk})
	if err != nil {
		t.Fatal(err)
	}
	var queued []*messages.Entry // handed out, not acknowledged
	var applied uint64
	handOut := func() {
		t.Helper()
		for r.HasReady() {
			rd := r.Ready()
			queued = append(queued, rd.CommittedEntries...)
			if rd.PersistID != 0 {
				disk.save(rd)
				r.Persisted(rd.PersistID)
			}
		}
		if len(queued) > 0 && entriesSize(queued)-entrySize(queued[len(queued)-1]) >= capBytes {
			t.Fatalf("%d bytes handed out and not acknowledged, cap %d", entriesSize(queued), capBytes)
		}
	}
	r.Campaign()
	handOut()
	for range 100 {
		if _, _, err := r.Propose(&messages.Entry{Data: make([]byte, 100)}); err != nil {
			t.Fatal(err)
		}
	}
	handOut()
	if last := queued[len(queued)-1].Index; last >= r.LastIndex() {
		t.Fatalf("every entry (up to %d) was handed out without an acknowledgement", last)
	}
	for rounds := 0; applied < r.LastIndex(); rounds++ {
		if rounds > 100 || len(queued) == 0 {
			t.Fatalf("applied %d of %d: nothing more handed out", applied, r.LastIndex())
		}
		for _, e := range queued {
			if e.Index != applied+1 {
				t.Fatalf("applied %d after %d", e.Index, applied)
			}
			applied = e.Index
		}
		queued = nil
		r.AppliedTo(applied)
		handOut()
	}
}

// TestHandedOutEntriesNeverChange: slices the log hands out (read from
// its entry cache without a copy, or from memory) keep their entries
// while the log moves on: entries persisted and evicted, and a suffix of
// the stable log cut and replaced by a new leader's.
func TestHandedOutEntriesNeverChange(t *testing.T) {
	cc := clusterConfig([]uint64{1, 2, 3}, nil)
	disk := newDiskLog()
	disk.ents = logOfTerms(t, cc, 1, 2, 2, 2, 2)
	r, err := New(storageConfig(2, nil, 1<<20), InitialState{HardState: &messages.HardState{Term: 2, Commit: 2}, Storage: disk})
	if err != nil {
		t.Fatal(err)
	}
	old, err := r.Entries(3, 6, 0) // stable, in the cache
	if err != nil {
		t.Fatal(err)
	}
	want := termsOf(old)
	// Leader 3 of term 3 replaces 4-5 with entries of its own (as many
	// as the cache's array has room for), then sends more.
	for _, ents := range [][2]uint64{{4, 6}, {6, 40}} {
		app := msg(messages.MessageType_MSG_APPEND, 3, 2, 3)
		app.Index, app.LogTerm, app.Commit = ents[0]-1, 2, 2
		if ents[0] > 4 {
			app.LogTerm = 3
		}
		for i := ents[0]; i < ents[1]; i++ {
			app.Entries = append(app.Entries, &messages.Entry{Term: 3, Index: i, Data: []byte("new")})
		}
		mustStep(t, r, app)
		rd := r.Ready()
		disk.save(rd)
		r.Persisted(rd.PersistID)
		if got := termsOf(old); !slices.Equal(got, want) || old[1].Index != 4 {
			t.Fatalf("entries 3-5 handed out before the cut now have terms %v, want %v", got, want)
		}
	}
	if got := logTerms(t, r); got[3] != 3 || len(got) != 39 {
		t.Fatalf("log terms %v: want 39 entries, 4 of term 3", got)
	}
}
