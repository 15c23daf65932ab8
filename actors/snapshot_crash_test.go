package actors_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
	"github.com/flotilla-raft/flotilla/persistence/pebblestore"
)

// Power loss at the seams of snapshot files and chunked InstallSnapshot,
// on Pebble's crashable filesystem, through the node actors: the node
// that lost power starts again, catches up, and ends with the leader's
// state.

// gatedGroup is a Pebble group whose snapshot writes can be held at one
// step: gate, when set, is called before the step runs (on the
// persister's goroutine).
type gatedGroup struct {
	*pebblestore.Group
	mu   sync.Mutex
	gate map[string]func()
}

// hold makes the next call of step wait: held receives once it waits, and
// the call runs on once release is called.
func (g *gatedGroup) hold(step string) (held chan struct{}, release func()) {
	held, gate := make(chan struct{}, 1), make(chan struct{})
	g.mu.Lock()
	if g.gate == nil {
		g.gate = map[string]func(){}
	}
	g.gate[step] = func() {
		held <- struct{}{}
		<-gate
	}
	g.mu.Unlock()
	return held, func() { close(gate) }
}

func (g *gatedGroup) pass(step string) {
	g.mu.Lock()
	f := g.gate[step]
	delete(g.gate, step)
	g.mu.Unlock()
	if f != nil {
		f()
	}
}

// Save with a snapshot: a follower making a snapshot installed from the
// leader current (its file was committed by the receiver).
func (g *gatedGroup) Save(ctx context.Context, u persistence.Update) error {
	if u.Snapshot != nil {
		g.pass("install")
	}
	return g.Group.Save(ctx, u)
}

// SaveSnapshot: a node making its own snapshot current.
func (g *gatedGroup) SaveSnapshot(ctx context.Context, s *messages.Snapshot) error {
	g.pass("save")
	return g.Group.SaveSnapshot(ctx, s)
}

// Compact: a node dropping its log below its own snapshot.
func (g *gatedGroup) Compact(ctx context.Context, index uint64) error {
	g.pass("compact")
	return g.Group.Compact(ctx, index)
}

// crashCluster is a cluster of 3 on Pebble, each node on its own
// crashable filesystem, with a streamSM of size bytes per node, sending
// snapshots in small chunks at a limited rate (a transfer takes a few
// seconds of fake time) and keeping no log below a snapshot.
type crashCluster struct {
	*cluster
	fss    map[uint64]*crashFS
	groups map[uint64]*gatedGroup
	sms    map[uint64]*streamSM
}

func newCrashCluster(t *testing.T, size int64) *crashCluster {
	cc := &crashCluster{fss: map[uint64]*crashFS{}, groups: map[uint64]*gatedGroup{}, sms: map[uint64]*streamSM{}}
	var mu sync.Mutex
	t.Cleanup(func() {
		for _, f := range cc.fss {
			_ = f.db.Close()
		}
	})
	cc.cluster = newClusterWith(t, 3, func(c *cluster) {
		for _, id := range c.ids {
			cc.fss[id] = &crashFS{fs: vfs.NewCrashableMem(), rng: rand.New(rand.NewPCG(id, 7))}
		}
		c.configure = func(id uint64, cfg *actors.Config) {
			mu.Lock()
			defer mu.Unlock()
			cc.sms[id] = newStreamSM(cfg.StateMachine, size)
			cfg.StateMachine = cc.sms[id]
			cc.groups[id] = &gatedGroup{Group: cc.fss[id].open(t)}
			cfg.LogStore = cc.groups[id]
			cfg.SnapshotChunkBytes, cfg.SnapshotWindowBytes, cfg.SnapshotBandwidth = 16<<10, 64<<10, 256<<10
			cfg.RetainEntries = -1
		}
	})
	return cc
}

func (cc *crashCluster) group(id uint64) *gatedGroup {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.groups[id]
}

func (cc *crashCluster) streamSM(id uint64) *streamSM {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.sms[id]
}

// powerLoss cuts node id's power: what its filesystem holds now (synced
// data; half of the rest at random) is what it starts again on. What the
// node does after this instant (once release lets a held step go on) is
// lost: its transport is closed first, so nobody hears of it.
func (cc *crashCluster) powerLoss(id uint64, release func()) {
	f := cc.fss[id]
	clone := f.fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: f.rng})
	_ = cc.net.Transport(id).Close()
	if release != nil {
		release()
	}
	cc.crashAndWait(id)
	_ = f.db.Close()
	f.fs = clone
	cc.drainEvents()
	cc.start(id)
}

// wantSameState waits until every node applied n commands and holds the
// leader's list.
func (cc *crashCluster) wantSameState(lead uint64, n int) {
	cc.t.Helper()
	cc.waitApplied(n, cc.ids...)
	want := cc.sm(lead).list()
	for _, id := range cc.ids {
		if got := cc.sm(id).list(); !slices.Equal(got, want) {
			cc.t.Fatalf("node %d holds %v, the leader %d holds %v", id, got, lead, want)
		}
	}
}

// A follower that loses power while it receives a snapshot in chunks
// (mid-transfer), or once the receiver committed the file but before the
// install's metadata is saved, starts again on its old state and
// installs the snapshot from the leader.
func TestFollowerPowerLossDuringChunkedInstall(t *testing.T) {
	const size = 1 << 20
	for _, step := range []string{"mid-transfer", "after-commit"} {
		t.Run(step, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cc := newCrashCluster(t, size)
				lead, lagging := cc.leaveOneBehind(8)
				snap := cc.takeSnapshot(lead)
				var held chan struct{}
				var release func()
				if step == "after-commit" {
					held, release = cc.group(lagging).hold("install")
				}
				cc.drainEvents()
				cc.net.Heal()
				if step == "mid-transfer" {
					cc.snapshotEvents("a quarter of the snapshot acknowledged", func(ev any) bool {
						p, ok := ev.(*actors.SnapshotSendProgress)
						return ok && p.Peer == lagging && p.Acked >= size/4
					})
				} else {
					select {
					case <-held:
					case <-time.After(time.Minute):
						t.Fatal("the follower saved no installed snapshot within a minute (fake time)")
					}
				}
				cc.powerLoss(lagging, release)
				cc.failOnNodeStopped()
				cc.streamSM(lagging).waitRestores(t, 1)
				if metas, sizes := cc.streamSM(lagging).restores(); metas[0].Index != snap || sizes[0] != size {
					t.Fatalf("after power loss the follower restored %+v (%v bytes), want the snapshot at %d (%d)", metas, sizes, snap, size)
				}
				if _, err := cc.propose(cc.waitLeader(), "after"); err != nil {
					t.Fatal(err)
				}
				cc.wantSameState(cc.waitLeader(), 9)
			})
		})
	}
}

// A leader that loses power after its snapshot file is committed, before
// its metadata is saved, or after, before its log is compacted, starts
// again with its state whole.
func TestLeaderPowerLossBetweenSnapshotSteps(t *testing.T) {
	for _, step := range []string{"save", "compact"} {
		t.Run(step, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cc := newCrashCluster(t, 64<<10)
				lead := cc.waitLeader()
				cc.fill(lead, 0, 6)
				held, release := cc.group(lead).hold(step)
				answer := cc.takeSnapshotAsync(lead)
				select {
				case <-held:
				case <-time.After(time.Minute):
					t.Fatalf("the leader did not reach %s within a minute (fake time)", step)
				}
				cc.powerLoss(lead, release)
				<-answer
				cc.failOnNodeStopped()
				lead = cc.waitLeader()
				if _, err := cc.propose(lead, "after"); err != nil {
					t.Fatal(err)
				}
				cc.wantSameState(lead, 7)
			})
		})
	}
}
