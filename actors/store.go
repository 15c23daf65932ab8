package actors

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/flotilla-raft/flotilla/persistence"
	"github.com/flotilla-raft/flotilla/persistence/pebblestore"
)

// Nodes given the same DataDir in one process share one Pebble database
// (one per process, as Pebble wants it), each node in its own group.
var sharedDBs = struct {
	sync.Mutex
	m map[string]*sharedDB
}{m: map[string]*sharedDB{}}

type sharedDB struct {
	db    *pebblestore.DB
	refs  int
	inUse map[uint64]bool // groups held by a node
}

// openDataDir opens (or shares) the Pebble database in dir and returns the
// node's group, keyed by cluster id, with a release function. A group held
// by another node of this process is refused with ErrStoreInUse.
func openDataDir(dir string, group uint64, logger *slog.Logger) (persistence.LogStore, func() error, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("actors: DataDir %q: %w", dir, err)
	}
	sharedDBs.Lock()
	defer sharedDBs.Unlock()
	s := sharedDBs.m[abs]
	if s == nil {
		db, err := pebblestore.Open(abs, pebblestore.Options{Logger: logger})
		if err != nil {
			return nil, nil, fmt.Errorf("actors: open DataDir %q: %w", dir, err)
		}
		s = &sharedDB{db: db, inUse: map[uint64]bool{}}
		sharedDBs.m[abs] = s
	}
	if s.inUse[group] {
		// Group hands every caller the same handle: two nodes would write
		// one log.
		return nil, nil, fmt.Errorf("%w: DataDir %q group (cluster id) %d", ErrStoreInUse, dir, group)
	}
	g, err := s.db.Group(group)
	if err != nil {
		if s.refs == 0 {
			_ = s.db.Close()
			delete(sharedDBs.m, abs)
		}
		return nil, nil, fmt.Errorf("actors: DataDir %q group %d: %w", dir, group, err)
	}
	s.refs++
	s.inUse[group] = true
	var once sync.Once
	release := func() error {
		var err error
		once.Do(func() {
			err = g.Close()
			sharedDBs.Lock()
			defer sharedDBs.Unlock()
			delete(s.inUse, group)
			if s.refs--; s.refs == 0 {
				if cerr := s.db.Close(); err == nil {
					err = cerr
				}
				delete(sharedDBs.m, abs)
			}
		})
		return err
	}
	return g, release, nil
}
