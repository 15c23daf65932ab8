package actors_test

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/internal/testutil"
)

// proposeMany proposes n commands at lead, a window of them under way at
// a time, and fails on any error.
func (c *cluster) proposeMany(lead uint64, n, size int) {
	c.t.Helper()
	const window = 256
	futures := make([]*actor.Future, 0, window)
	wait := func() {
		for _, f := range futures {
			res, err := f.Result()
			if err == nil {
				err = res.(*actors.ProposeResponse).Err
			}
			if err != nil {
				c.t.Fatalf("propose: %v", err)
			}
		}
		futures = futures[:0]
	}
	for i := range n {
		data := fmt.Appendf(nil, "%d-%s", i, strings.Repeat("x", max(0, size-8)))
		futures = append(futures, c.sys.Root.RequestFuture(c.node(lead), &actors.Propose{Data: data}, 10*time.Second))
		if len(futures) == window {
			wait()
		}
	}
	wait()
}

// With the default Config, every node (listSM is a Snapshotter) snapshots on its own and compacts
// its log (Pebble in a directory): after more than DefaultSnapshotEvery +
// DefaultRetainEntries entries, no node's log holds more than that.
func TestAutomaticSnapshotsByDefaultBoundTheLog(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		c := newClusterWith(t, 3, func(c *cluster) {
			c.onPebble(dir)
		})
		lead := c.waitLeader()
		const n = actors.DefaultSnapshotEvery + actors.DefaultRetainEntries + 2000
		c.proposeMany(lead, n, 16)
		c.waitApplied(n, c.ids...)
		synctest.Wait()
		for _, id := range c.ids {
			s := c.status(id)
			if s.FirstIndex <= 1 {
				t.Errorf("node %d: first index %d after %d entries: no automatic snapshot", id, s.FirstIndex, n)
			}
			kept := s.LastIndex - s.FirstIndex + 1
			t.Logf("node %d after %d entries: log %d..%d, %d entries kept", id, n, s.FirstIndex, s.LastIndex, kept)
			if kept > actors.DefaultSnapshotEvery+actors.DefaultRetainEntries {
				t.Errorf("node %d keeps %d entries (first %d, last %d), want at most %d", id, kept, s.FirstIndex, s.LastIndex, actors.DefaultSnapshotEvery+actors.DefaultRetainEntries)
			}
		}
	})
}

// Config.SnapshotBytes takes a snapshot once the commands committed since
// the last one hold that many bytes, long before SnapshotEvery entries.
func TestSnapshotBytesTriggersASnapshot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newClusterWith(t, 1, func(c *cluster) {
			c.configure = func(_ uint64, cfg *actors.Config) {
				cfg.SnapshotBytes = 1 << 20
			}
		})
		lead := c.waitLeader()
		c.proposeMany(lead, 15, 64<<10) // 960 KiB: not yet
		c.waitApplied(15, lead)
		synctest.Wait()
		if s := c.status(lead); s.FirstIndex > 1 {
			t.Fatalf("first index %d after 960 KiB of commands, SnapshotBytes 1 MiB: a snapshot too early", s.FirstIndex)
		}
		c.proposeMany(lead, 2, 64<<10)
		c.waitSnapshots(lead)
	})
}

// A StateMachine without Snapshotter gets no automatic snapshots: the
// node says so at start (a Warn), unless NoAutoSnapshots asks for none.
func TestNoSnapshotterIsWarnedAtStart(t *testing.T) {
	for _, off := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			var buf testutil.SyncBuffer
			s := newSolo(t, func(cfg *actors.Config) {
				cfg.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
				cfg.NoAutoSnapshots = off
				cfg.StateMachine = &adder{} // no Snapshotter
			})
			if _, err := s.propose("1"); err != nil {
				t.Fatal(err)
			}
			warned := strings.Contains(buf.String(), "does not implement Snapshotter")
			if warned == off {
				t.Fatalf("NoAutoSnapshots %t: warned %t; log:\n%s", off, warned, buf.String())
			}
		})
	}
}
