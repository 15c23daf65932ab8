package sim

import (
	"context"
	"errors"
	"flag"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flotilla-raft/flotilla/actors/raft"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
	"github.com/flotilla-raft/flotilla/persistence/pebblestore"
)

var flagCrashSeeds = flag.Int("sim.crashseeds", 60, "seeds of TestPebbleCrashSweep")

// pebbleDisk is a node's disk on the real Pebble store, over Pebble's
// crashable in-memory filesystem: a crash keeps what was synced and a random
// half of what was not (CrashClone with UnsyncedDataPercent 50).
type pebbleDisk struct {
	fs  *vfs.MemFS
	db  *pebblestore.DB
	g   *pebblestore.Group
	rng *rand.Rand
}

func newPebbleDisk(seed int64) (*pebbleDisk, error) {
	d := &pebbleDisk{fs: vfs.NewCrashableMem(), rng: rand.New(rand.NewPCG(uint64(seed), 7))}
	return d, d.open()
}

func (d *pebbleDisk) open() error {
	db, err := pebblestore.Open("/data", pebblestore.Options{FS: d.fs})
	if err != nil {
		return err
	}
	g, err := db.Group(1)
	if err != nil {
		return err
	}
	d.db, d.g = db, g
	return nil
}

func (d *pebbleDisk) Load() (raft.InitialState, error) {
	ctx := context.Background()
	var st raft.InitialState
	ps, err := d.g.State(ctx)
	if err != nil {
		return st, err
	}
	st.HardState = ps.HardState
	st.Storage = persistence.NewRaftStorage(d.g)
	if ps.Snapshot != nil {
		snap, err := d.g.LoadSnapshot(ctx)
		if err != nil {
			return st, err
		}
		st.Snapshot = snap
	}
	return st, nil
}

func (d *pebbleDisk) Save(rd raft.Ready) error {
	return d.g.Save(context.Background(), persistence.Update{HardState: rd.HardState, Snapshot: rd.Snapshot, Entries: rd.Entries})
}

func (d *pebbleDisk) Compact(s *messages.Snapshot, to uint64) error {
	ctx := context.Background()
	if err := d.g.SaveSnapshot(ctx, s); err != nil && !errors.Is(err, persistence.ErrSnapshotOutOfDate) {
		return err
	}
	if err := d.g.Compact(ctx, to); err != nil && !errors.Is(err, persistence.ErrUnavailable) {
		return err
	}
	return nil
}

func (d *pebbleDisk) Crash() error {
	clone := d.fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: d.rng})
	_ = d.db.Close() // the old process is gone; its files stay behind in d.fs
	d.fs = clone
	return d.open()
}

// TestPebbleCrashSweep runs the simulator with every node on the Pebble
// store and crashes that drop unsynced data: no acknowledged (applied)
// entry is lost, no node applies an index twice or out of order, and every
// safety property holds. -sim.crashseeds=N runs more; make crash does.
func TestPebbleCrashSweep(t *testing.T) {
	seeds := *flagCrashSeeds
	if testing.Short() {
		seeds = min(seeds, 6)
	}
	start := time.Now()
	var total Stats
	for seed := uint64(1); seed <= uint64(seeds); seed++ {
		opt := AllFaults(seed, sizeFor(seed))
		opt.NewDisk = func(id uint64) Disk {
			d, err := newPebbleDisk(int64(seed*100 + id))
			if err != nil {
				t.Fatalf("seed %d: open node %d's disk: %v", seed, id, err)
			}
			return d
		}
		v, st, _ := Run(opt)
		total.add(st)
		if v != nil {
			t.Fatalf("%v\n(on Pebble disks: go test ./actors/raft/sim/ -run TestPebbleCrashSweep -sim.crashseeds=%d)", v, seed)
		}
	}
	t.Logf("%d seeds on Pebble disks in %v: %d crash points, %d restarts, %d entries applied",
		seeds, time.Since(start).Round(time.Millisecond), total.Crashes, total.Restarts, total.Applied)
	if total.Crashes < 200 && !testing.Short() {
		t.Errorf("only %d crash points, want at least 200", total.Crashes)
	}
}
