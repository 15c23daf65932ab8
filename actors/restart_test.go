package actors_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/persistence/pebblestore"
)

// Snapshot and Restore make listSM a Snapshotter: the snapshot is the list.
func (s *listSM) Snapshot() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return json.Marshal(s.cmds)
}

func (s *listSM) Restore(data []byte) error {
	var cmds []string
	if err := json.Unmarshal(data, &cmds); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cmds = cmds
	return nil
}

// crashFS is a node's Pebble database on a crashable in-memory filesystem:
// a crash keeps what was synced and half of the rest at random.
type crashFS struct {
	fs  *vfs.MemFS
	db  *pebblestore.DB
	rng *rand.Rand
}

func (c *crashFS) open(t testing.TB) *pebblestore.Group {
	t.Helper()
	db, err := pebblestore.Open("db", pebblestore.Options{FS: c.fs, Logger: discardLogger()})
	if err != nil {
		t.Fatalf("open pebble on the crashable filesystem: %v", err)
	}
	c.db = db
	g, err := db.Group(0)
	if err != nil {
		t.Fatalf("open group: %v", err)
	}
	return g
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// powerLoss replaces the filesystem with what a power loss leaves of it.
func (c *crashFS) powerLoss() {
	clone := c.fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: c.rng})
	_ = c.db.Close()
	c.fs = clone
}

// Nodes that snapshotted (automatically or on request) start again from
// their store after an orderly stop, after the actor is stopped without
// one (a crash of the node), and after a power loss of Pebble's
// filesystem: the same applied state, and proposals carry on.
func TestRestartAfterSnapshot(t *testing.T) {
	for _, n := range []int{1, 3} {
		for _, how := range []string{"stop", "crash", "powerloss"} {
			for _, snap := range []string{"every5", "manual"} {
				t.Run(fmt.Sprintf("%dnodes/%s/%s", n, how, snap), func(t *testing.T) {
					testRestartAfterSnapshot(t, n, how, snap)
				})
			}
		}
	}
}

func testRestartAfterSnapshot(t *testing.T, n int, how, snap string) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		fss := map[uint64]*crashFS{}
		t.Cleanup(func() { // after the cluster's own cleanup
			for _, f := range fss {
				_ = f.db.Close()
			}
		})
		c := newClusterWith(t, n, func(c *cluster) {
			c.dirs = map[uint64]string{}
			for _, id := range c.ids {
				if how == "powerloss" {
					fss[id] = &crashFS{fs: vfs.NewCrashableMem(), rng: rand.New(rand.NewPCG(id, 7))}
				} else {
					c.dirs[id] = filepath.Join(dir, fmt.Sprint(id))
				}
			}
			c.configure = func(id uint64, cfg *actors.Config) {
				if snap == "every5" {
					cfg.SnapshotEvery = 5
				}
				if f := fss[id]; f != nil {
					cfg.LogStore = f.open(t)
				}
			}
		})
		lead := c.waitLeader()
		const cmds = 20
		for i := range cmds {
			if _, err := c.propose(lead, fmt.Sprintf("cmd-%d", i)); err != nil {
				t.Fatalf("propose %d: %v", i, err)
			}
		}
		c.waitApplied(cmds, c.ids...)
		if snap == "manual" {
			for _, id := range c.ids {
				res, err := actors.Request[*actors.TakeSnapshotResponse](c.sys.Root, c.node(id), &actors.TakeSnapshot{}, 5*time.Second)
				if err != nil || res.Index == 0 {
					t.Fatalf("TakeSnapshot on node %d: %v %v", id, res, err)
				}
			}
		} else {
			c.waitSnapshots(c.ids...)
		}
		// Entries written after the snapshots are persisted after their
		// compaction (the persister works in order): once applied
		// everywhere, the snapshots are durable.
		for i := range 3 {
			if _, err := c.propose(lead, fmt.Sprintf("more-%d", i)); err != nil {
				t.Fatalf("propose more-%d: %v", i, err)
			}
		}
		c.waitApplied(cmds+3, c.ids...)
		before := c.sm(lead).list()

		for _, id := range c.ids {
			switch how {
			case "stop":
				c.stop(id)
			default:
				c.crashAndWait(id)
				if f := fss[id]; f != nil {
					f.powerLoss()
				}
			}
		}
		c.drainEvents()
		for _, id := range c.ids {
			c.start(id)
		}
		synctest.Wait() // every node handled its start
		c.failOnNodeStopped()
		lead = c.waitLeader()
		c.waitApplied(len(before), c.ids...)
		for _, id := range c.ids {
			if got := c.sm(id).list(); !slices.Equal(got[:len(before)], before) {
				t.Fatalf("node %d after restart holds %v, want %v", id, got, before)
			}
		}
		if _, err := c.propose(lead, "after"); err != nil {
			t.Fatalf("propose after restart: %v", err)
		}
		c.waitApplied(len(before)+1, c.ids...)
	})
}

// waitSnapshots waits until every listed node published SnapshotTaken.
func (c *cluster) waitSnapshots(ids ...uint64) {
	c.t.Helper()
	want := map[uint64]bool{}
	for _, id := range ids {
		want[id] = true
	}
	deadline := time.After(30 * time.Second)
	for len(want) > 0 {
		select {
		case ev := <-c.events:
			if s, ok := ev.(*actors.SnapshotTaken); ok {
				delete(want, s.NodeID)
			}
		case <-deadline:
			c.t.Fatalf("no SnapshotTaken from %v within 30s (fake time)", want)
		}
	}
}

// drainEvents forgets the events published so far. The probe forwards
// them asynchronously: it first waits (synctest.Wait) until the probe
// passed on every one already sent to it, such as a stopped node's
// NodeStopped (published just before its Stopped answer).
func (c *cluster) drainEvents() {
	synctest.Wait()
	for {
		select {
		case <-c.events:
		default:
			return
		}
	}
}

// failOnNodeStopped fails the test with the reason of any NodeStopped
// event received.
func (c *cluster) failOnNodeStopped() {
	c.t.Helper()
	for {
		select {
		case ev := <-c.events:
			if s, ok := ev.(*actors.NodeStopped); ok {
				c.t.Fatalf("node %d stopped: %s: %v", s.NodeID, s.Reason, s.Err)
			}
		default:
			return
		}
	}
}

// crashAndWait stops node id without the orderly Stop (no hand-over, no
// flush, as a crash of the actor) and waits until it is gone.
func (c *cluster) crashAndWait(id uint64) {
	c.t.Helper()
	if err := c.sys.Root.StopFuture(c.node(id)).Wait(); err != nil {
		c.t.Fatalf("crash node %d: %v", id, err)
	}
	_ = c.net.Transport(id).Close()
	c.mu.Lock()
	c.nodes[id] = nil
	c.mu.Unlock()
}

func discardActorLogger(*actor.ActorSystem) *slog.Logger { return discardLogger() }

// Config.SnapshotEvery counts from the snapshot the node holds, whether it
// took it in this run or found it in its store: a node restarted with a
// recent snapshot does not take another at once.
func TestSnapshotEveryCountsFromTheStoredSnapshot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newClusterWith(t, 1, func(c *cluster) {
			c.configure = func(_ uint64, cfg *actors.Config) { cfg.SnapshotEvery = 10 }
		})
		lead := c.waitLeader()
		for i := range 12 {
			if _, err := c.propose(lead, fmt.Sprintf("cmd-%d", i)); err != nil {
				t.Fatalf("propose %d: %v", i, err)
			}
		}
		c.waitSnapshots(lead)
		c.stop(lead)
		c.drainEvents()
		c.start(lead)
		lead = c.waitLeader()
		if _, err := c.propose(lead, "after"); err != nil {
			t.Fatalf("propose after restart: %v", err)
		}
		c.waitApplied(13, lead)
		synctest.Wait() // every node handled everything sent to it
		for {
			select {
			case ev := <-c.events:
				if s, ok := ev.(*actors.SnapshotTaken); ok {
					t.Fatalf("node restarted with a snapshot took another at %d, fewer than SnapshotEvery (10) entries after it", s.Index)
				}
			default:
				return
			}
		}
	})
}
