package actors_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/cluster/transport/inmem"
	"github.com/flotilla-raft/flotilla/persistence/pebblestore"
)

// Props that are never spawned hold nothing: the node opens its store
// when it starts, so the directory is free for anyone else.
func TestPropsOpenNoStore(t *testing.T) {
	dir := t.TempDir()
	cfg := actors.DefaultConfig()
	cfg.ID, cfg.StateMachine, cfg.DataDir = 1, &listSM{}, dir
	cfg.Transport = inmem.NewNetwork(1).Transport(1)
	cfg.Logger = discardLogger()
	if _, err := actors.Props(cfg); err != nil {
		t.Fatal(err)
	}
	db, err := pebblestore.Open(dir, pebblestore.Options{Logger: discardLogger()})
	if err != nil {
		t.Fatalf("the directory of unspawned Props is held: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// The same Props spawned while their node runs start no second node on
// its store: the second stops at once with ErrStoreInUse, answers
// ErrStopped, and the first goes on serving. So does a node of other Props
// naming the same DataDir and cluster id.
func TestPropsSpawnedTwiceShareNoStore(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		s := newSolo(t, func(cfg *actors.Config) { cfg.DataDir = dir })
		if _, err := s.propose("a"); err != nil {
			t.Fatal(err)
		}
		second := s.sys.Root.Spawn(s.props)
		if ns := s.stopped(); !errors.Is(ns.Err, actors.ErrStoreInUse) {
			t.Fatalf("second node of the same Props: NodeStopped %q %v, want ErrStoreInUse", ns.Reason, ns.Err)
		}
		if _, err := actors.ProposeAndWait(s.sys.Root, second, &actors.Propose{Data: []byte("b")}, 5*time.Second); !errors.Is(err, actors.ErrStopped) {
			t.Fatalf("propose to the second node: %v, want ErrStopped", err)
		}

		other, err := actors.Props(s.cfg)
		if err != nil {
			t.Fatal(err)
		}
		third := s.sys.Root.Spawn(other)
		if ns := s.stopped(); !errors.Is(ns.Err, actors.ErrStoreInUse) {
			t.Fatalf("node of other Props on the same DataDir: NodeStopped %q %v, want ErrStoreInUse", ns.Reason, ns.Err)
		}
		if _, err := actors.ProposeAndWait(s.sys.Root, third, &actors.Propose{Data: []byte("c")}, 5*time.Second); !errors.Is(err, actors.ErrStopped) {
			t.Fatalf("propose to the third node: %v, want ErrStopped", err)
		}

		if res, err := s.propose("d"); err != nil || res.Index == 0 {
			t.Fatalf("the first node after the refused ones: %+v %v", res, err)
		}
	})
}

// The zero values of Config's durations and counts are the documented
// defaults: a Config without TickInterval is valid and ticks every 100ms.
func TestConfigZeroValuesAreTheDefaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		s := newSolo(t, func(cfg *actors.Config) {
			cfg.TickInterval, cfg.CatchUpTimeout, cfg.HistorySize, cfg.RetainEntries = 0, 0, 0, 0
		})
		if _, err := s.propose("a"); err != nil {
			t.Fatal(err)
		}
		// A single voter elects itself after its election timeout: 10 to
		// 20 ticks of the default 100ms.
		if d := time.Since(start); d < time.Second || d > 3*time.Second {
			t.Fatalf("the first proposal committed after %v (fake time): want an election of 10-20 ticks of 100ms", d)
		}
	})
	cfg := actors.DefaultConfig()
	cfg.ID, cfg.StateMachine, cfg.Transport = 1, &listSM{}, inmem.NewNetwork(1).Transport(1)
	cfg.TickInterval = -time.Second
	if _, err := actors.Props(cfg); err == nil {
		t.Fatal("Props with a negative TickInterval: no error")
	}
}

// A node refused for a store in use leaves the running node's parts
// alone: its transport stays open and the cluster keeps committing on every
// node.
func TestStoreInUseLeavesTheRunningNodeAlone(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		var cfg1 actors.Config
		c := newClusterWith(t, 3, func(c *cluster) {
			c.dirs = map[uint64]string{1: filepath.Join(dir, "1")}
			c.configure = func(id uint64, cfg *actors.Config) {
				if id == 1 {
					cfg1 = *cfg
				}
			}
		})
		lead := c.waitLeader()
		cfg1.Logger = discardLogger()
		props, err := actors.Props(cfg1)
		if err != nil {
			t.Fatal(err)
		}
		second := c.sys.Root.Spawn(props)
		if _, err := actors.ProposeAndWait(c.sys.Root, second, &actors.Propose{Data: []byte("x")}, 5*time.Second); !errors.Is(err, actors.ErrStopped) {
			t.Fatalf("propose to a second node 1: %v, want ErrStopped", err)
		}
		for i := range 5 {
			if _, err := c.propose(lead, fmt.Sprint("cmd-", i)); err != nil {
				t.Fatalf("propose %d: %v", i, err)
			}
		}
		c.waitApplied(5, c.ids...)
	})
}
