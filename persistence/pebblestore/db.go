package pebblestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/flotilla-raft/flotilla/persistence"
)

// ErrFailed: the database hit an error it cannot recover from (a failed
// write or sync, or a fatal error reported by Pebble). Every later call of
// every group answers it; close the database and reopen it (the restart
// recovers everything that was acknowledged).
var ErrFailed = errors.New("pebblestore: database failed")

// DB is one Pebble database shared by any number of Raft groups of a
// process. It is safe for concurrent use.
type DB struct {
	pdb    *pebble.DB
	logger pebbleLogger
	fs     vfs.FS

	// snapDir holds the snapshot files of every group (snapfiles.go);
	// fileSeq is the sequence number of the latest file named there.
	snapDir string
	fileSeq atomic.Uint64

	// failure is the first unrecoverable error; nil while healthy.
	failure atomic.Pointer[error]

	// mu guards closed and groups. Every operation holds it for reading
	// while it uses pdb, so Close waits for operations in flight.
	mu     sync.RWMutex
	closed bool
	groups map[uint64]*Group
}

// Open opens (creating it if needed) the database in dir.
func Open(dir string, opts Options) (*DB, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	db := &DB{groups: map[uint64]*Group{}, fs: opts.FS}
	db.logger = pebbleLogger{l: opts.Logger.With("db", dir), onFatal: func(msg string) {
		db.fail(fmt.Errorf("%w: %s", ErrFailed, msg))
	}}
	cache := pebble.NewCache(opts.CacheSize)
	defer cache.Unref() // pebble.Open takes its own reference
	popts := &pebble.Options{
		FS:                 opts.FS,
		WALDir:             opts.WALDir,
		Cache:              cache,
		Logger:             db.logger,
		MemTableSize:       opts.MemTableSize,
		MaxOpenFiles:       opts.MaxOpenFiles,
		FormatMajorVersion: pebble.FormatNewest,
	}
	pdb, err := pebble.Open(dir, popts)
	if err != nil {
		return nil, fmt.Errorf("pebblestore: open %s: %w", dir, err)
	}
	db.pdb = pdb
	if err := db.checkVersion(); err != nil {
		pdb.Close()
		return nil, err
	}
	if err := db.openSnapshotDir(dir); err != nil {
		pdb.Close()
		return nil, err
	}
	return db, nil
}

// checkVersion writes the format version into a new database and checks it
// in an existing one.
func (db *DB) checkVersion() error {
	v, closer, err := db.pdb.Get(versionKey)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		if err := db.pdb.Set(versionKey, binary.BigEndian.AppendUint64(nil, formatVersion), pebble.Sync); err != nil {
			return fmt.Errorf("pebblestore: write the format version: %w", err)
		}
		return db.failed()
	case err != nil:
		return fmt.Errorf("pebblestore: read the format version: %w", err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return fmt.Errorf("%w: format version is %d bytes", persistence.ErrCorrupt, len(v))
	}
	if got := binary.BigEndian.Uint64(v); got != formatVersion {
		return fmt.Errorf("pebblestore: the database has format version %d, this code reads %d", got, formatVersion)
	}
	return nil
}

// fail records the first unrecoverable error.
func (db *DB) fail(err error) {
	db.failure.CompareAndSwap(nil, &err)
}

// failed answers the recorded failure, or nil.
func (db *DB) failed() error {
	if p := db.failure.Load(); p != nil {
		return *p
	}
	return nil
}

// acquire checks that the database can serve an operation and holds it open
// until release. It answers ErrClosed, or the database's failure.
func (db *DB) acquire() error {
	db.mu.RLock()
	if db.closed {
		db.mu.RUnlock()
		return fmt.Errorf("pebblestore: %w", persistence.ErrClosed)
	}
	if err := db.failed(); err != nil {
		db.mu.RUnlock()
		return err
	}
	return nil
}

func (db *DB) release() { db.mu.RUnlock() }

// commit commits b with pebble.Sync and turns any failure into a failure of
// the database: after a failed commit Pebble's commit pipeline is unusable
// and the outcome of the batch is unknown.
func (db *DB) commit(b *pebble.Batch) error {
	err := b.Commit(pebble.Sync)
	if err != nil {
		err = fmt.Errorf("%w: commit: %w", ErrFailed, err)
		db.fail(err)
		return err
	}
	// Pebble reports some commit failures through Logger.Fatalf and then
	// returns nil: the logger adapter has recorded them.
	return db.failed()
}

// Group returns the store of Raft group id, loading its state. It returns
// the same *Group to every caller until that Group is closed.
func (db *DB) Group(id uint64) (*Group, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed {
		return nil, fmt.Errorf("pebblestore: %w", persistence.ErrClosed)
	}
	if err := db.failed(); err != nil {
		return nil, err
	}
	if g, ok := db.groups[id]; ok {
		return g, nil
	}
	g := &Group{db: db, id: id, keys: newKeys(id)}
	if err := g.load(); err != nil {
		return nil, err
	}
	db.groups[id] = g
	return g, nil
}

// Close closes every group and the database. Operations in flight finish
// first; later calls answer ErrClosed. Closing twice is not an error. After a
// failure (ErrFailed) Close releases everything and returns the failure.
func (db *DB) Close() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed {
		return nil
	}
	db.closed = true
	db.groups = nil
	err := db.pdb.Close()
	if failure := db.failed(); failure != nil {
		// Pebble's Close repeats the error that failed it.
		return failure
	}
	if err != nil {
		return fmt.Errorf("pebblestore: close: %w", err)
	}
	return nil
}

// forget removes a closed group from the open groups.
func (db *DB) forget(g *Group) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.groups[g.id] == g {
		delete(db.groups, g.id)
	}
}
