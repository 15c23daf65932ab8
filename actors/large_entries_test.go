package actors_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors"
)

// Entries larger than every byte bound of the log at once: the batch to
// the applier (MaxCommittedSizePerReady), the applier's queue
// (MaxApplyingBytes), the entry cache (EntryCacheBytes), an append
// message (MaxSizePerMsg), the uncommitted-bytes cap and a snapshot chunk.
// On Pebble, through the node actors: each is accepted alone (one more
// while it is uncommitted is refused with ErrOverloaded), committed,
// applied on every node, read back from the store by a follower that fell
// behind, carried in a snapshot sent in chunks smaller than one entry,
// and found again after a restart.
func TestEntriesLargerThanEveryBound(t *testing.T) {
	const big = 600 << 10
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		c := newClusterWith(t, 3, func(c *cluster) {
			c.onPebble(dir)
			c.configure = func(_ uint64, cfg *actors.Config) {
				cfg.Raft.MaxUncommittedBytes = 256 << 10
				cfg.Raft.MaxApplyingBytes = 128 << 10
				cfg.Raft.EntryCacheBytes = 64 << 10
				cfg.Raft.MaxCommittedSizePerReady = 32 << 10
				cfg.Raft.MaxSizePerMsg = 32 << 10
				cfg.Raft.MaxInflightBytes = 64 << 10
				cfg.SnapshotChunkBytes, cfg.SnapshotWindowBytes = 16<<10, 64<<10
				cfg.RetainEntries = -1
			}
		})
		payload := func(i int) string { return fmt.Sprintf("%02d-%s", i, strings.Repeat("x", big)) }
		lead, lagging := c.leaveOneBehind(0)
		other := c.others(lead)[0]
		if other == lagging {
			other = c.others(lead)[1]
		}
		for i := range 3 {
			// Nothing commits while the leader hears from no follower:
			// the first proposal stays uncommitted, and the second finds
			// it so.
			c.net.Block(other, lead)
			f1 := c.sys.Root.RequestFuture(c.node(lead), &actors.Propose{Data: []byte(payload(2 * i))}, 10*time.Second)
			synctest.Wait()
			r2, err := answer(c.sys.Root.RequestFuture(c.node(lead), &actors.Propose{Data: []byte(payload(2*i + 1))}, 10*time.Second))
			if err != nil || !errors.Is(r2.Err, actors.ErrOverloaded) || !errors.Is(r2.Err, actors.ErrRetry) {
				t.Fatalf("a second proposal of %d bytes while one is uncommitted: %v %v, want ErrOverloaded and ErrRetry", big, r2, err)
			}
			c.net.Unblock(other, lead)
			if r1, err := answer(f1); err != nil || r1.Err != nil {
				t.Fatalf("proposal %d of %d bytes: %v %v", 2*i, big, r1, err)
			}
		}
		want := c.sm(lead).list()
		if len(want) != 3 {
			t.Fatalf("the leader applied %d commands, want 3", len(want))
		}
		// The lagging follower gets the entries from the leader's store
		// (larger than an append message, than its cache).
		c.net.Heal()
		c.waitApplied(3, c.ids...)
		// Then a snapshot carries them: the follower catches up in
		// chunks smaller than one entry.
		c.net.Isolate(lagging)
		if _, err := c.propose(lead, payload(6)); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		c.takeSnapshot(lead)
		c.drainEvents()
		c.net.Heal()
		c.snapshotEvents("the snapshot received in chunks", func(ev any) bool {
			r, ok := ev.(*actors.SnapshotReceived)
			return ok && r.NodeID == lagging && r.Size > 4*big
		})
		c.waitApplied(4, c.ids...)
		want = c.sm(lead).list()
		c.restartAll(want)
	})
}

func answer(f *actor.Future) (*actors.ProposeResponse, error) {
	res, err := f.Result()
	if err != nil {
		return nil, err
	}
	return res.(*actors.ProposeResponse), nil
}
