package actors_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/actors/raft"
)

// A follower that needs a snapshot catches up while the leader keeps
// taking snapshots under load: the leader takes several automatic
// snapshots while one transfer runs (SnapshotEvery 50, a transfer of
// ~256 KiB at 64 KiB/s takes seconds, proposals arrive at ~50 a second),
// yet keeps the entries after the snapshot being sent until the transfer
// ends, so that the follower, once it installed it, goes on with appends
// (StateReplicate) instead of needing a newer snapshot after every
// transfer, for ever.
func TestSnapshotCatchUpUnderLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newClusterWith(t, 3, func(c *cluster) {
			c.configure = func(id uint64, cfg *actors.Config) {
				cfg.StateMachine = newStreamSM(cfg.StateMachine, 256<<10)
				cfg.SnapshotEvery, cfg.RetainEntries = 50, 8
				cfg.SnapshotChunkBytes, cfg.SnapshotWindowBytes, cfg.SnapshotBandwidth = 4<<10, 16<<10, 64<<10
			}
		})
		lead, lagging := c.leaveOneBehind(0)
		for i := range 60 {
			if _, err := c.propose(lead, fmt.Sprint("before-", i)); err != nil {
				t.Fatal(err)
			}
		}
		var stop atomic.Bool
		done := make(chan struct{})
		go func() { // the load: a proposal every 20ms
			defer close(done)
			for i := 0; !stop.Load(); i++ {
				_, _ = c.propose(lead, fmt.Sprint("load-", i))
				time.Sleep(20 * time.Millisecond)
			}
		}()
		defer func() {
			stop.Store(true)
			<-done
		}()
		c.net.Heal()
		deadline := time.Now().Add(60 * time.Second)
		for {
			st := c.status(lead)
			var pr actors.PeerProgress
			for _, p := range st.Progress {
				if p.ID == lagging {
					pr = p
				}
			}
			if pr.State == raft.StateReplicate && pr.Match > 60 {
				t.Logf("the follower replicates at %d (leader's last %d, first %d) after %v", pr.Match, st.LastIndex, st.FirstIndex, 60*time.Second-time.Until(deadline))
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the follower did not catch up within 60s (fake time) under load: %+v; leader %v, first index %d", pr, st, st.FirstIndex)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}
