package actors_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/actors/raft"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
	"github.com/flotilla-raft/flotilla/persistence/memstore"
	"github.com/flotilla-raft/flotilla/persistence/pebblestore"
)

// countingStore is a Pebble group that records the largest answer of
// Entries (in bytes, EntrySize) and how many entries were read.
type countingStore struct {
	*pebblestore.Group
	mu         sync.Mutex
	maxAnswer  uint64
	entriesOut int
}

func (s *countingStore) Entries(ctx context.Context, lo, hi, maxBytes uint64) ([]*messages.Entry, error) {
	ents, err := s.Group.Entries(ctx, lo, hi, maxBytes)
	var size uint64
	for _, e := range ents {
		size += persistence.EntrySize(e)
	}
	s.mu.Lock()
	s.maxAnswer = max(s.maxAnswer, size)
	s.entriesOut += len(ents)
	s.mu.Unlock()
	return ents, err
}

func (s *countingStore) reset() (maxAnswer uint64, entries int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	maxAnswer, entries = s.maxAnswer, s.entriesOut
	s.maxAnswer, s.entriesOut = 0, 0
	return maxAnswer, entries
}

// TestLongLogOnPebbleKeepsMemoryBounded: three nodes on Pebble in real
// directories write a log 40 times their entry cache (no snapshots).
// A follower crashed early is caught up from the leader's store; every
// node's log keeps at most EntryCacheBytes of persisted entries in memory;
// after all restart, start-up reads the store in pages of at most 1 MiB,
// holds only a cache's worth, and the cluster goes on with every command
// in every state machine.
func TestLongLogOnPebbleKeepsMemoryBounded(t *testing.T) {
	const (
		cacheBytes = 64 << 10
		cmds       = 400
		cmdBytes   = 6 << 10 // 400 x 6 KiB: a 2.4 MiB log
		// applyingBytes caps the applier's queue: the replay of the log
		// after the restart goes in steps.
		applyingBytes = 256 << 10
	)
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		stores := map[uint64]*countingStore{}
		var dbs []*pebblestore.DB
		t.Cleanup(func() {
			for _, db := range dbs {
				_ = db.Close()
			}
		})
		c := newClusterWith(t, 3, func(c *cluster) {
			for _, id := range c.ids {
				db, err := pebblestore.Open(filepath.Join(dir, fmt.Sprint(id)), pebblestore.Options{Logger: discardLogger()})
				if err != nil {
					t.Fatal(err)
				}
				dbs = append(dbs, db)
				g, err := db.Group(0)
				if err != nil {
					t.Fatal(err)
				}
				stores[id] = &countingStore{Group: g}
			}
			c.configure = func(id uint64, cfg *actors.Config) {
				cfg.LogStore = stores[id]
				cfg.Raft.EntryCacheBytes = cacheBytes
				cfg.Raft.MaxApplyingBytes = applyingBytes
			}
		})
		checkLog := func(when string) {
			t.Helper()
			for _, id := range c.ids {
				if c.node(id) == nil {
					continue
				}
				if l := c.status(id).Log; l.CacheBytes > cacheBytes || l.ApplyingBytes > applyingBytes+cmdBytes+64 {
					t.Fatalf("%s: node %d's log holds %+v: entry cache cap %d, applier queue cap %d", when, id, l, cacheBytes, applyingBytes)
				}
			}
		}
		lead := c.waitLeader()
		lagging := c.others(lead)[0]
		payload := strings.Repeat("x", cmdBytes)
		for i := range cmds {
			if i == cmds/4 {
				c.crash(lagging)
			}
			if _, err := c.propose(lead, fmt.Sprintf("%d-%s", i, payload)); err != nil {
				t.Fatalf("propose %d: %v", i, err)
			}
			if i%50 == 0 {
				checkLog(fmt.Sprintf("after command %d", i))
			}
		}
		readsBefore := c.status(lead).Log.StorageReads
		c.restart(lagging)
		c.waitApplied(cmds, c.ids...)
		checkLog("after the catch-up")
		if r := c.status(lead).Log.StorageReads; r == readsBefore {
			t.Fatalf("the leader caught up node %d without reading its store (%d reads): the cache holds the whole log?", lagging, r)
		}
		want := c.sm(lead).list()

		for _, id := range c.ids {
			c.stop(id)
			stores[id].reset()
		}
		for _, id := range c.ids {
			c.start(id)
		}
		lead = c.waitLeader()
		for _, id := range c.ids {
			s := c.status(id)
			if s.Log.CacheBytes > cacheBytes || s.Log.UnstableEntries > 4 || s.Log.ApplyingBytes > applyingBytes+cmdBytes+64 {
				t.Fatalf("node %d restarted holding %+v of its log in memory (cache cap %d)", id, s.Log, cacheBytes)
			}
			if maxAnswer, n := stores[id].reset(); maxAnswer > 1<<20+cmdBytes+64 || n == 0 {
				t.Fatalf("node %d's start-up read %d entries, %d bytes at once: want pages of at most 1 MiB", id, n, maxAnswer)
			}
		}
		if _, err := c.propose(lead, "after-restart"); err != nil {
			t.Fatalf("propose after the restart: %v", err)
		}
		c.waitApplied(cmds+1, c.ids...)
		for _, id := range c.ids {
			if got := c.sm(id).list(); !slices.Equal(got[:cmds], want) || got[cmds] != "after-restart" {
				t.Fatalf("node %d's state machine differs after the restart", id)
			}
		}
	})
}

// unreadableStore is a memstore whose log reads fail once failing is set.
type unreadableStore struct {
	*memstore.Store
	failing atomic.Bool
}

var errUnreadable = errors.New("test: the disk returned garbage")

func (s *unreadableStore) Entries(ctx context.Context, lo, hi, maxBytes uint64) ([]*messages.Entry, error) {
	if s.failing.Load() {
		return nil, errUnreadable
	}
	return s.Store.Entries(ctx, lo, hi, maxBytes)
}

// A node whose core cannot read its log from the store (no entry cache:
// every committed entry is read back for the applier) stops with
// NodeStopped carrying raft.ErrStorage and the cause, and the proposal
// waiting on that read is answered ErrStopped with it: never a wrong or
// missing answer.
func TestLogReadFailureStopsTheNode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &unreadableStore{Store: memstore.New()}
		s := newSolo(t, func(cfg *actors.Config) {
			cfg.LogStore = store
			cfg.Raft.EntryCacheBytes = 1
		})
		if _, err := s.propose("before"); err != nil {
			t.Fatal(err)
		}
		store.failing.Store(true)
		_, err := actors.ProposeAndWait(s.sys.Root, s.node, &actors.Propose{Data: []byte("unreadable")}, 5*time.Second)
		if !errors.Is(err, actors.ErrStopped) || !errors.Is(err, errUnreadable) {
			t.Fatalf("proposal whose entry cannot be read back: %v, want ErrStopped wrapping the cause", err)
		}
		ns := s.stopped()
		if !errors.Is(ns.Err, raft.ErrStorage) || !errors.Is(ns.Err, errUnreadable) {
			t.Fatalf("NodeStopped %q %v, want raft.ErrStorage wrapping the cause", ns.Reason, ns.Err)
		}
	})
}
