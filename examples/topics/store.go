package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// Errors of the message store.
var (
	// ErrFenced: the write or replication carries an epoch older than one
	// this broker was sealed at: a newer owner has taken the partition.
	ErrFenced = errors.New("topics: fenced: a newer epoch sealed this partition")
	// ErrGap: a replication starts past the follower's end; the owner
	// resends from Next.
	ErrGap = errors.New("topics: replication gap")
	// ErrSeqOutOfOrder: a producer's sequence number is below the last one
	// the partition stored for it. The message is not stored; it may have
	// been stored before (a late retry) or never (a producer that had
	// several messages to one partition in flight).
	ErrSeqOutOfOrder = errors.New("topics: sequence number below the producer's last stored one")
)

// Record is one message of a partition, as stored and as consumed.
type Record struct {
	Offset   uint64 `json:"offset"`
	Epoch    uint64 `json:"epoch"`  // the assignment epoch it was accepted in
	Broker   uint64 `json:"broker"` // the owner that accepted it
	Producer uint64 `json:"producer"`
	Seq      uint64 `json:"seq"`
	Payload  string `json:"payload"`
	// Accepted is the owner's wall clock (Unix ns) when it appended the
	// record: the checker uses it to show that epochs never overlap in time.
	Accepted int64 `json:"accepted"`
}

// partState is a partition's in-memory state. Invariant: records
// [0, next) are stored; hw <= next; the producers table reflects them.
type partState struct {
	mu     sync.Mutex
	loaded bool
	next   uint64
	// hw (high watermark): records below it are acknowledged (the
	// follower has them); consumers read only below it.
	hw uint64
	// sealed is the newest epoch this broker has seen for the partition:
	// older epochs' writes and replication are refused (durable).
	sealed uint64
	// ready is the epoch whose handover this broker finished as owner;
	// 0 while it is not the ready owner.
	ready uint64
	// copied is the epoch whose owner's log the stored records follow
	// (durable): replication at that epoch only adds records, a newer
	// epoch's first push replaces everything from its start.
	copied    uint64
	producers map[uint64]producerState
}

type producerState struct{ seq, offset uint64 }

// store keeps the messages of the partitions this broker owns or follows,
// in its own Pebble database (not in the Raft log): keys
// r/<partition>\x00<offset, 8 bytes big-endian> → Record (JSON),
// s/<partition> → the sealed epoch, and c/<partition> → the copied epoch.
type store struct {
	db    *pebble.DB
	mu    sync.Mutex
	parts map[string]*partState
}

func openStore(dir string, log *slog.Logger) (*store, error) {
	db, err := pebble.Open(dir, &pebble.Options{Logger: pebbleLogger{log}})
	if err != nil {
		return nil, fmt.Errorf("topics: open message store %s: %w", dir, err)
	}
	return &store{db: db, parts: map[string]*partState{}}, nil
}

func (s *store) close() error { return s.db.Close() }

func recordKey(part string, off uint64) []byte {
	k := append([]byte("r/"+part), 0)
	return binary.BigEndian.AppendUint64(k, off)
}

func sealKey(part string) []byte { return []byte("s/" + part) }

func copiedKey(part string) []byte { return []byte("c/" + part) }

// part returns the partition's state, locked, loading it on first use.
func (s *store) part(name string) (*partState, error) {
	s.mu.Lock()
	p := s.parts[name]
	if p == nil {
		p = &partState{}
		s.parts[name] = p
	}
	s.mu.Unlock()
	p.mu.Lock()
	if !p.loaded {
		if err := s.load(name, p); err != nil {
			p.mu.Unlock()
			return nil, err
		}
		p.loaded = true
	}
	return p, nil
}

func (s *store) load(name string, p *partState) error {
	p.next, p.producers = 0, map[uint64]producerState{}
	err := s.scan(name, 0, ^uint64(0), func(r Record) bool {
		p.next = r.Offset + 1
		p.producers[r.Producer] = producerState{seq: r.Seq, offset: r.Offset}
		return true
	})
	if err != nil {
		return err
	}
	if p.sealed, err = s.getEpoch(sealKey(name)); err != nil {
		return err
	}
	p.copied, err = s.getEpoch(copiedKey(name))
	return err
}

// getEpoch reads an epoch stored under key (0 when there is none).
func (s *store) getEpoch(key []byte) (uint64, error) {
	v, closer, err := s.db.Get(key)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		return 0, nil
	case err != nil:
		return 0, err
	}
	defer closer.Close()
	return binary.BigEndian.Uint64(v), nil
}

// scan calls fn on the records [from, to) of a partition, in order, until
// fn returns false.
func (s *store) scan(name string, from, to uint64, fn func(Record) bool) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: recordKey(name, from), UpperBound: recordKey(name, to)})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		var r Record
		if err := json.Unmarshal(it.Value(), &r); err != nil {
			return fmt.Errorf("topics: stored record %q: %w", it.Key(), err)
		}
		if !fn(r) {
			break
		}
	}
	return it.Error()
}

// sealLocked raises the sealed epoch (durably) in b.
func sealLocked(b *pebble.Batch, name string, p *partState, epoch uint64) {
	if epoch > p.sealed {
		p.sealed = epoch
		_ = b.Set(sealKey(name), binary.BigEndian.AppendUint64(nil, epoch), nil)
	}
}

// appendResult is the outcome of an append on the owner.
type appendResult struct {
	rec       Record
	duplicate bool // an earlier attempt stored it
}

// appendLocked stores r (Offset assigned here) at epoch r.Epoch unless the
// partition was sealed at a newer epoch, or unless the producer's Seq is
// its last stored one (then it answers that record, marked duplicate), or
// below it (ErrSeqOutOfOrder: only the last one is remembered, so an older
// one cannot be told apart from a message never stored). The caller holds
// the partition (see withPart).
func (s *store) appendLocked(name string, p *partState, r Record) (appendResult, error) {
	if r.Epoch < p.sealed || p.ready != r.Epoch {
		return appendResult{}, fmt.Errorf("%w: %s accepting at epoch %d, sealed at %d", ErrFenced, name, r.Epoch, p.sealed)
	}
	if last, ok := p.producers[r.Producer]; ok && r.Seq <= last.seq {
		if r.Seq < last.seq {
			return appendResult{}, fmt.Errorf("%w: %s producer %x seq %d, last stored %d", ErrSeqOutOfOrder, name, r.Producer, r.Seq, last.seq)
		}
		var got Record
		err := s.scan(name, last.offset, last.offset+1, func(x Record) bool { got = x; return false })
		return appendResult{duplicate: true, rec: got}, err
	}
	r.Offset = p.next
	b := s.db.NewBatch()
	defer b.Close()
	v, _ := json.Marshal(r)
	_ = b.Set(recordKey(name, r.Offset), v, nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return appendResult{}, err
	}
	p.next++
	p.producers[r.Producer] = producerState{seq: r.Seq, offset: r.Offset}
	return appendResult{rec: r}, nil
}

// replicateLocked stores recs (starting at from) on a follower at epoch.
// The first request of a newer epoch than the copied one (a new owner's
// push from its start) replaces whatever the follower held from there on
// (a deposed owner's unacknowledged tail). A request of the copied epoch
// only adds: an owner's log only grows within its epoch, so a request it
// gave up on (its call timed out while the request waited here) and that
// is handled after a later one carries a prefix of what the later one
// stored, which the owner may have acknowledged since; truncating there
// would lose acknowledged messages. It refuses, changing nothing, an epoch
// older than the sealed one, a start past its end (ErrGap, with its end),
// and records that do not follow from (ErrBadCommand).
func (s *store) replicateLocked(name string, p *partState, epoch, from uint64, recs []Record) (uint64, error) {
	if epoch < p.sealed {
		return p.next, fmt.Errorf("%w: %s replicating at epoch %d, sealed at %d", ErrFenced, name, epoch, p.sealed)
	}
	if from > p.next {
		return p.next, fmt.Errorf("%w: %s from %d, have %d", ErrGap, name, from, p.next)
	}
	for i, r := range recs {
		if r.Offset != from+uint64(i) {
			return p.next, fmt.Errorf("%w: record %d at position %d", ErrBadCommand, r.Offset, from+uint64(i))
		}
	}
	b := s.db.NewBatch()
	defer b.Close()
	sealLocked(b, name, p, epoch)
	if epoch > p.ready {
		p.ready = 0 // an owner of an older epoch stops accepting
	}
	if epoch > p.copied {
		_ = b.DeleteRange(recordKey(name, from), recordKey(name, ^uint64(0)), nil)
		_ = b.Set(copiedKey(name), binary.BigEndian.AppendUint64(nil, epoch), nil)
	}
	for _, r := range recs {
		v, _ := json.Marshal(r)
		_ = b.Set(recordKey(name, r.Offset), v, nil)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return p.next, err
	}
	p.loaded = false // rebuild next and producers from what is stored
	if err := s.load(name, p); err != nil {
		return 0, err
	}
	p.loaded = true
	return p.next, nil
}

// sealAndRead seals the partition at epoch (a new owner's handover: from
// now on, older epochs are refused here) and returns every stored record.
func (s *store) sealAndRead(name string, p *partState, epoch uint64) ([]Record, error) {
	if epoch < p.sealed {
		return nil, fmt.Errorf("%w: %s handover at epoch %d, sealed at %d", ErrFenced, name, epoch, p.sealed)
	}
	b := s.db.NewBatch()
	defer b.Close()
	sealLocked(b, name, p, epoch)
	if epoch > p.ready {
		p.ready = 0
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return nil, err
	}
	var out []Record
	err := s.scan(name, 0, p.next, func(r Record) bool { out = append(out, r); return true })
	return out, err
}

// withPart runs fn with the partition locked.
func (s *store) withPart(name string, fn func(p *partState) error) error {
	p, err := s.part(name)
	if err != nil {
		return err
	}
	defer p.mu.Unlock()
	return fn(p)
}

// read returns up to max records [from, hw) of a partition this broker
// owns and is ready for.
func (s *store) read(name string, from uint64, max int) (recs []Record, hw uint64, err error) {
	err = s.withPart(name, func(p *partState) error {
		hw = p.hw
		if from >= p.hw {
			return nil
		}
		return s.scan(name, from, p.hw, func(r Record) bool {
			recs = append(recs, r)
			return len(recs) < max
		})
	})
	return recs, hw, err
}

// pebbleLogger routes Pebble's logs to slog; Fatalf does not exit.
type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {}
func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error("pebble: " + fmt.Sprintf(format, args...))
}
func (l pebbleLogger) Fatalf(format string, args ...any) {
	l.log.Error("pebble (fatal): " + fmt.Sprintf(format, args...))
}
