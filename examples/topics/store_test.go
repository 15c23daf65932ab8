package main

import (
	"errors"
	"fmt"
	"log/slog"
	"testing"
)

// TestStoreFencing drives the message store as the handlers do: an owner
// ready at epoch 5 appends (a retry is answered from what was stored); a
// new owner's handover seals the partition at epoch 9; from then on the old
// epoch's writes and replication are refused, also after a restart.
func TestStoreFencing(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	s, err := openStore(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	const name = "t/0"
	with := func(fn func(p *partState) error) error { return s.withPart(name, fn) }
	// Handover at epoch 5 (nothing to copy), then ready.
	if err := with(func(p *partState) error {
		if _, err := s.replicateLocked(name, p, 5, 0, nil); err != nil {
			return err
		}
		p.ready, p.hw = 5, p.next
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var first appendResult
	if err := with(func(p *partState) (err error) {
		first, err = s.appendLocked(name, p, Record{Epoch: 5, Broker: 1, Producer: 7, Seq: 1, Payload: "a"})
		return err
	}); err != nil || first.rec.Offset != 0 || first.duplicate {
		t.Fatalf("first append: %+v, %v", first, err)
	}
	if err := with(func(p *partState) error {
		again, err := s.appendLocked(name, p, Record{Epoch: 5, Broker: 1, Producer: 7, Seq: 1, Payload: "a"})
		if err != nil || !again.duplicate || again.rec.Offset != 0 || again.rec.Payload != "a" {
			t.Errorf("retry: %+v, %v: want the stored record, marked duplicate", again, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// A new owner at epoch 9 copies the partition and seals it here.
	var copied []Record
	if err := with(func(p *partState) (err error) {
		copied, err = s.sealAndRead(name, p, 9)
		return err
	}); err != nil || len(copied) != 1 {
		t.Fatalf("handover read: %v, %v", copied, err)
	}
	check := func(when string) {
		t.Helper()
		err := with(func(p *partState) error {
			_, err := s.appendLocked(name, p, Record{Epoch: 5, Broker: 1, Producer: 7, Seq: 2, Payload: "b"})
			return err
		})
		if !errors.Is(err, ErrFenced) {
			t.Errorf("%s: append at the old epoch: %v, want ErrFenced", when, err)
		}
		err = with(func(p *partState) error {
			_, err := s.replicateLocked(name, p, 5, 1, []Record{{Offset: 1, Epoch: 5}})
			return err
		})
		if !errors.Is(err, ErrFenced) {
			t.Errorf("%s: replication at the old epoch: %v, want ErrFenced", when, err)
		}
		err = with(func(p *partState) error {
			_, err := s.sealAndRead(name, p, 7)
			return err
		})
		if !errors.Is(err, ErrFenced) {
			t.Errorf("%s: a handover at an older epoch: %v, want ErrFenced", when, err)
		}
	}
	check("after the seal")
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	if s, err = openStore(dir, log); err != nil {
		t.Fatal(err)
	}
	defer s.close()
	check("after a restart")
	// The producers table is rebuilt: a retry at the new epoch is a duplicate.
	if err := with(func(p *partState) error {
		p.ready = 9
		r, err := s.appendLocked(name, p, Record{Epoch: 9, Broker: 2, Producer: 7, Seq: 1, Payload: "a"})
		if err != nil || !r.duplicate || r.rec.Offset != 0 {
			t.Errorf("retry after a restart: %+v, %v: want the stored record", r, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// A gap is reported with the follower's end.
	err = with(func(p *partState) error {
		next, err := s.replicateLocked(name, p, 9, 5, []Record{{Offset: 5, Epoch: 9}})
		if next != 1 {
			t.Errorf("gap: next %d, want 1", next)
		}
		return err
	})
	if !errors.Is(err, ErrGap) {
		t.Errorf("replication past the end: %v, want ErrGap", err)
	}
}

// TestStoreReplicationReordered: a follower's copy of one owner's epoch
// only grows. A replication request the owner gave up on (its HTTP call
// timed out while the request waited for the partition here) can be
// handled after a later one; it carries a prefix of what the later one
// did, and must not truncate the records the later one stored — the owner
// counted them as replicated and acknowledged them. A new owner's first
// push (a newer epoch) still replaces everything from its start, also
// after a restart.
func TestStoreReplicationReordered(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	s, err := openStore(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	const name = "t/0"
	rec := func(off, epoch uint64) Record {
		return Record{Offset: off, Epoch: epoch, Broker: 3, Producer: 7, Seq: off + 1, Payload: fmt.Sprint("m", off)}
	}
	replicate := func(epoch, from uint64, recs ...Record) uint64 {
		t.Helper()
		var next uint64
		if err := s.withPart(name, func(p *partState) (err error) {
			next, err = s.replicateLocked(name, p, epoch, from, recs)
			return err
		}); err != nil {
			t.Fatalf("replicate at epoch %d from %d: %v", epoch, from, err)
		}
		return next
	}
	stored := func() []Record {
		t.Helper()
		var out []Record
		if err := s.scan(name, 0, ^uint64(0), func(r Record) bool { out = append(out, r); return true }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	replicate(9, 0, rec(0, 9), rec(1, 9))
	replicate(9, 2, rec(2, 9))
	// The owner's earlier request (from 1) arrives last.
	if next := replicate(9, 1, rec(1, 9)); next != 3 {
		t.Errorf("a delayed request of the same epoch: next %d, want 3 (record 2 kept)", next)
	}
	if got := stored(); len(got) != 3 || got[2] != rec(2, 9) {
		t.Fatalf("after a delayed request of the same epoch: stored %+v, want records 0..2", got)
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	if s, err = openStore(dir, log); err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if next := replicate(9, 0, rec(0, 9)); next != 3 {
		t.Errorf("after a restart, a delayed request of the same epoch: next %d, want 3", next)
	}
	// A new owner (epoch 12) copied only records 0 and 1: its push from 0
	// removes the old owner's tail.
	if next := replicate(12, 0, rec(0, 9), rec(1, 9)); next != 2 {
		t.Errorf("a new epoch's push: next %d, want 2 (the old tail removed)", next)
	}
	if got := stored(); len(got) != 2 {
		t.Errorf("after a new epoch's push: stored %+v, want records 0 and 1", got)
	}
}

// TestStoreOlderSeqRefused: a producer's sequence number below the last one
// the partition stored for it is refused with ErrSeqOutOfOrder and stores
// nothing. It used to be answered as a duplicate at offset 2^64-1: a
// producer with two messages in flight to one partition whose later one
// was stored first was told the earlier one was stored, and it was lost.
func TestStoreOlderSeqRefused(t *testing.T) {
	withTestPart(t, func(s *store, name string, p *partState) {
		if _, err := s.replicateLocked(name, p, 5, 0, nil); err != nil {
			t.Fatal(err)
		}
		p.ready = 5
		for _, seq := range []uint64{1, 3} {
			if _, err := s.appendLocked(name, p, Record{Epoch: 5, Broker: 1, Producer: 7, Seq: seq}); err != nil {
				t.Fatal(err)
			}
		}
		res, err := s.appendLocked(name, p, Record{Epoch: 5, Broker: 1, Producer: 7, Seq: 2, Payload: "late"})
		if !errors.Is(err, ErrSeqOutOfOrder) {
			t.Errorf("seq 2 after seq 3: %+v, %v; want ErrSeqOutOfOrder", res, err)
		}
		if p.next != 2 {
			t.Errorf("after the refused append: next %d, want 2", p.next)
		}
	})
}

// TestStoreBadReplicationChangesNothing: a replication request whose
// records do not follow its start is refused with ErrBadCommand before it
// changes anything: the seal (in memory too), the copied epoch, the ready
// epoch and the records stay as they were.
func TestStoreBadReplicationChangesNothing(t *testing.T) {
	withTestPart(t, func(s *store, name string, p *partState) {
		if _, err := s.replicateLocked(name, p, 5, 0, []Record{{Offset: 0, Epoch: 5}, {Offset: 1, Epoch: 5}}); err != nil {
			t.Fatal(err)
		}
		p.ready = 5
		_, err := s.replicateLocked(name, p, 9, 0, []Record{{Offset: 0, Epoch: 5}, {Offset: 7, Epoch: 5}})
		if !errors.Is(err, ErrBadCommand) {
			t.Errorf("records that do not follow the start: %v, want ErrBadCommand", err)
		}
		if p.sealed != 5 || p.copied != 5 || p.ready != 5 || p.next != 2 {
			t.Errorf("after a refused replication: sealed %d, copied %d, ready %d, next %d; want 5, 5, 5, 2", p.sealed, p.copied, p.ready, p.next)
		}
	})
}

// withTestPart runs fn on partition t/0 of a new store, locked.
func withTestPart(t *testing.T, fn func(s *store, name string, p *partState)) {
	t.Helper()
	s, err := openStore(t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	const name = "t/0"
	p, err := s.part(name)
	if err != nil {
		t.Fatal(err)
	}
	defer p.mu.Unlock()
	fn(s, name, p)
}
