package actors_test

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/cluster/transport/inmem"
	"github.com/flotilla-raft/flotilla/messages"
	"go.opentelemetry.io/otel/metric"
)

var flagHostGroups = flag.Int("host.groups", 100, "groups of TestHostManyGroups (make test-hosts: 1,000)")

// hostRig is three hosts in one actor system, each on its own crashable
// in-memory filesystem, joined by one in-memory network: node i of every
// group runs on host i.
type hostRig struct {
	t     testing.TB
	sys   *actor.ActorSystem
	net   *inmem.Network
	fss   [3]*vfs.MemFS
	dir   string        // set: the hosts' databases are in dir on the real disk
	tick  time.Duration // the groups' TickInterval
	hosts [3]*actor.PID
	meter [3]metric.MeterProvider // host i's HostConfig.MeterProvider (nil: the global one)
	// wrapSM, when set, is the state machine of group g's node on host
	// i, around the listSM that records what it applies.
	wrapSM func(g uint64, i int, sm *listSM) actors.StateMachine

	mu     sync.Mutex
	groups map[uint64][3]*actor.PID   // cluster id -> node of host i
	sms    map[uint64][3]*listSM      // cluster id -> state machine of host i
	acked  map[uint64]map[string]bool // commands answered OK, by group
}

func newHostRig(t testing.TB) *hostRig { return newHostRigIn(t, "") }

// newHostRigIn puts the hosts' databases in dir on the real disk, or on
// crashable in-memory filesystems when dir is "".
func newHostRigIn(t testing.TB, dir string) *hostRig {
	return newHostRigWith(t, dir, [3]metric.MeterProvider{})
}

// newHostRigWith is newHostRigIn with host i's metrics on meter[i].
func newHostRigWith(t testing.TB, dir string, meter [3]metric.MeterProvider) *hostRig {
	r := &hostRig{meter: meter, t: t, net: inmem.NewNetwork(1), dir: dir, tick: 10 * time.Millisecond,
		sys:    actor.NewActorSystemWithConfig(actor.Configure(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return discardLogger() }))),
		groups: map[uint64][3]*actor.PID{}, sms: map[uint64][3]*listSM{}, acked: map[uint64]map[string]bool{}}
	for i := range r.fss {
		r.fss[i] = vfs.NewCrashableMem()
		r.startHost(i)
	}
	return r
}

func (r *hostRig) startHost(i int) {
	r.t.Helper()
	cfg := actors.DefaultHostConfig()
	cfg.DataDir = "db"
	cfg.FS = slowSyncFS{r.fss[i]}
	if r.dir != "" {
		cfg.DataDir, cfg.FS = filepath.Join(r.dir, fmt.Sprint(i)), vfs.Default
	}
	cfg.Logger = discardLogger()
	cfg.MeterProvider = r.meter[i]
	cfg.Join = r.net.HostJoin
	props, err := actors.HostProps(cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	r.hosts[i] = r.sys.Root.Spawn(props)
}

func (r *hostRig) groupConfig(g uint64, i int) actors.Config {
	cfg := actors.DefaultConfig()
	cfg.ID = uint64(i + 1)
	cfg.ClusterID = g
	cfg.Bootstrap = &messages.ClusterConfig{Settings: &messages.Settings{PreVote: true, CheckQuorum: true, ElectionTicks: 10, HeartbeatTicks: 1}}
	for id := uint64(1); id <= 3; id++ {
		cfg.Bootstrap.Voters = append(cfg.Bootstrap.Voters, &messages.Member{Id: id, Address: fmt.Sprintf("host-%d", id)})
	}
	cfg.TickInterval = r.tick
	cfg.Raft.Seed = int64(g*3 + uint64(i))
	cfg.Logger = discardLogger()
	return cfg
}

// create starts group g on every host.
func (r *hostRig) create(g uint64) {
	r.t.Helper()
	var pids [3]*actor.PID
	var sms [3]*listSM
	for i := range r.hosts {
		cfg := r.groupConfig(g, i)
		sms[i] = &listSM{}
		cfg.StateMachine = sms[i]
		if r.wrapSM != nil {
			cfg.StateMachine = r.wrapSM(g, i, sms[i])
		}
		res, err := actors.Request[*actors.CreateGroupResponse](r.sys.Root, r.hosts[i], &actors.CreateGroup{Config: cfg}, 5*time.Second)
		if err != nil {
			r.t.Fatalf("CreateGroup %d on host %d: %v", g, i+1, err)
		}
		pids[i] = res.PID
	}
	r.mu.Lock()
	r.groups[g], r.sms[g] = pids, sms
	if r.acked[g] == nil {
		r.acked[g] = map[string]bool{}
	}
	r.mu.Unlock()
}

// propose commits data in group g through whichever node leads it,
// following NotLeader answers, within a minute of fake time.
func (r *hostRig) propose(g uint64, data string) error {
	r.mu.Lock()
	pids := r.groups[g]
	r.mu.Unlock()
	to := 0
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		_, err := actors.ProposeAndWait(r.sys.Root, pids[to], &actors.Propose{Data: []byte(data)}, 5*time.Second)
		var nl *actors.NotLeaderError
		switch {
		case err == nil:
			r.mu.Lock()
			r.acked[g][data] = true
			r.mu.Unlock()
			return nil
		case errors.As(err, &nl) && nl.Leader >= 1 && nl.Leader <= 3:
			to = int(nl.Leader - 1)
		default:
			to = (to + 1) % 3
		}
		time.Sleep(20 * time.Millisecond) // fake time: an election may be under way
	}
	return fmt.Errorf("group %d: %q not committed within a minute (fake time)", g, data)
}

// proposeAll proposes data-<g> in every group at once, so that the hosts'
// shared persisters see many groups' writes in the same round.
func (r *hostRig) proposeAll(gs []uint64, data string) {
	r.t.Helper()
	errs := make(chan error, len(gs))
	for _, g := range gs {
		go func() { errs <- r.propose(g, fmt.Sprintf("%s-%d", data, g)) }()
	}
	for range gs {
		if err := <-errs; err != nil {
			r.t.Fatal(err)
		}
	}
}

// waitApplied waits until every node of every group in gs applied every
// command acknowledged in its group, the three in the same order.
func (r *hostRig) waitApplied(gs []uint64) {
	r.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for _, g := range gs {
		r.mu.Lock()
		sms, acked := r.sms[g], len(r.acked[g])
		r.mu.Unlock()
		for {
			l0, l1, l2 := sms[0].list(), sms[1].list(), sms[2].list()
			if len(l0) >= acked && slices.Equal(l0, l1) && slices.Equal(l1, l2) {
				r.mu.Lock()
				for cmd := range r.acked[g] {
					if !slices.Contains(l0, cmd) {
						r.t.Fatalf("group %d: acknowledged command %q lost: applied %v", g, cmd, l0)
					}
				}
				r.mu.Unlock()
				break
			}
			if time.Now().After(deadline) {
				r.t.Fatalf("group %d: nodes applied %v / %v / %v, want the same %d acknowledged commands", g, l0, l1, l2, acked)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func (r *hostRig) status(i int) *actors.HostStatus {
	r.t.Helper()
	s, err := actors.Request[*actors.HostStatus](r.sys.Root, r.hosts[i], &actors.GetHostStatus{}, 5*time.Second)
	if err != nil {
		r.t.Fatalf("GetHostStatus on host %d: %v", i+1, err)
	}
	return s
}

// crash takes what a power loss leaves of every host's filesystem, then
// stops the hosts (their nodes and databases go with them, on the old
// filesystems) and starts them again on the crash clones, with no group.
func (r *hostRig) crash(seed uint64) {
	r.t.Helper()
	var clones [3]*vfs.MemFS
	for i, fs := range r.fss {
		clones[i] = fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: rand.New(rand.NewPCG(seed, uint64(i)))})
	}
	r.stop()
	r.fss = clones
	r.mu.Lock()
	clear(r.groups)
	clear(r.sms)
	r.mu.Unlock()
	for i := range r.hosts {
		r.startHost(i)
	}
}

// stop stops the hosts, then lets fake time pass protoactor's dead-letter
// throttle (it parks a goroutine on a ticker) so the bubble can end.
func (r *hostRig) stop() {
	defer time.Sleep(r.sys.Config.DeadLetterThrottleInterval + time.Millisecond)
	for _, h := range r.hosts {
		if err := r.sys.Root.StopFuture(h).Wait(); err != nil {
			r.t.Fatalf("stop host: %v", err)
		}
	}
}

func groupIDs(lo, hi uint64) []uint64 {
	var gs []uint64
	for g := lo; g <= hi; g++ {
		gs = append(gs, g)
	}
	return gs
}

// Many groups, three hosts: every group elects and commits; the shared
// persister of each host syncs many groups' writes at once; every
// acknowledged command survives a power loss of all three hosts; groups
// are added and removed at run time; a second group with the same id is
// refused. -host.groups sets the count (make test-hosts: 1,000).
func TestHostManyGroups(t *testing.T) {
	groups := uint64(*flagHostGroups)
	if testing.Short() {
		groups = min(groups, 20)
	}
	synctest.Test(t, func(t *testing.T) {
		r := newHostRig(t)
		defer r.stop()
		gs := groupIDs(1, groups)
		for _, g := range gs {
			r.create(g)
		}

		// The same group twice on one host is refused, and counted nowhere.
		cfg := r.groupConfig(1, 0)
		cfg.StateMachine = &listSM{}
		_, err := actors.Request[*actors.CreateGroupResponse](r.sys.Root, r.hosts[0], &actors.CreateGroup{Config: cfg}, 5*time.Second)
		if !errors.Is(err, actors.ErrGroupExists) {
			t.Fatalf("CreateGroup of group 1 again on host 1: %v, want ErrGroupExists", err)
		}

		for round := range 3 {
			r.proposeAll(gs, fmt.Sprintf("cmd%d", round))
		}
		r.waitApplied(gs)
		for i := range r.hosts {
			s := r.status(i)
			t.Logf("host %d: %d groups (%d active), %d fsyncs, %.1f group writes and %.1f entries per fsync (max %d groups in one)",
				i+1, s.Groups, s.ActiveGroups, s.Fsyncs, s.UpdatesPerFsync, s.EntriesPerFsync, s.MaxUpdatesPerFsync)
			if s.Groups != int(groups) || len(s.PerGroup) != int(groups) {
				t.Errorf("host %d: %d groups (%d listed), want %d", i+1, s.Groups, len(s.PerGroup), groups)
			}
			if s.MaxUpdatesPerFsync < 2 || s.SavedUpdates <= s.Fsyncs {
				t.Errorf("host %d: no fsync covered several groups: %d group writes in %d fsyncs, at most %d in one", i+1, s.SavedUpdates, s.Fsyncs, s.MaxUpdatesPerFsync)
			}
			for _, gs := range s.PerGroup {
				if gs.Saves == 0 || gs.Entries == 0 {
					t.Errorf("host %d: group %d wrote nothing through the shared persister: %+v", i+1, gs.ClusterID, gs)
				}
			}
		}

		// A group's node on a host is a whole node: status, snapshots.
		for i, pid := range r.groups[2] {
			st, err := actors.Request[*actors.Status](r.sys.Root, pid, &actors.GetStatus{}, 5*time.Second)
			if err != nil || st.Leader == 0 || st.Applied < 3 {
				t.Fatalf("group 2 node on host %d: status %+v, %v: want a leader and 3 applied", i+1, st, err)
			}
			snap, err := actors.Request[*actors.TakeSnapshotResponse](r.sys.Root, pid, &actors.TakeSnapshot{}, 5*time.Second)
			if err != nil || snap.Index < 3 {
				t.Fatalf("TakeSnapshot of group 2 on host %d: %+v, %v", i+1, snap, err)
			}
		}

		// Power loss on every host at once; the groups start again from
		// what the hosts' databases synced.
		r.crash(7)
		for _, g := range gs {
			r.create(g)
		}
		r.waitApplied(gs)
		r.proposeAll(gs, "after-crash")
		r.waitApplied(gs)

		// Groups come and go at run time.
		for i := range r.hosts {
			res, err := actors.Request[*actors.RemoveGroupResponse](r.sys.Root, r.hosts[i], &actors.RemoveGroup{ClusterID: 1}, 30*time.Second)
			if err != nil {
				t.Fatalf("RemoveGroup 1 on host %d: %v %v", i+1, res, err)
			}
		}
		_, err = actors.Request[*actors.RemoveGroupResponse](r.sys.Root, r.hosts[0], &actors.RemoveGroup{ClusterID: 1}, 5*time.Second)
		if !errors.Is(err, actors.ErrNoGroup) {
			t.Fatalf("RemoveGroup 1 twice: %v, want ErrNoGroup", err)
		}
		if s := r.status(0); s.Groups != int(groups)-1 {
			t.Fatalf("host 1 runs %d groups after removing one, want %d", s.Groups, groups-1)
		}
		added := groups + 1
		r.create(added)
		r.proposeAll([]uint64{added}, "added")
		r.create(1) // again, from its data in the hosts' databases
		r.proposeAll([]uint64{1}, "back")
		r.waitApplied([]uint64{1, added})
		if l := r.sms[1][0].list(); !strings.HasPrefix(l[0], "cmd0") {
			t.Fatalf("group 1 started again with %v, want its commands from before", l)
		}
	})
}

// slowSyncFS makes every sync of a file written through it yield the
// processor many times, letting every runnable goroutine run: a disk whose
// fsync takes a while, so that writes of other groups queue up behind it
// as they do on a real disk. (Sleeping instead would stall a synctest
// bubble: goroutines waiting on a mutex the syncing one holds are not
// durably blocked, so fake time would never advance.)
type slowSyncFS struct{ vfs.FS }

type slowSyncFile struct{ vfs.File }

func slowSync() {
	for range 64 {
		runtime.Gosched()
	}
}

func (f slowSyncFile) Sync() error { slowSync(); return f.File.Sync() }

func (f slowSyncFile) SyncData() error { slowSync(); return f.File.SyncData() }

func (f slowSyncFile) SyncTo(length int64) (bool, error) {
	slowSync()
	return f.File.SyncTo(length)
}

func slowFile(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return slowSyncFile{f}, nil
}

func (fs slowSyncFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return slowFile(fs.FS.Create(name, c))
}

func (fs slowSyncFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	return slowFile(fs.FS.OpenReadWrite(name, c, opts...))
}

func (fs slowSyncFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return slowFile(fs.FS.ReuseForWrite(oldname, newname, c))
}

// A HostConfig without its required fields is refused naming each; a
// group whose Config brings its own store or transport is refused.
func TestHostRefusesBadConfig(t *testing.T) {
	_, err := actors.HostProps(actors.HostConfig{ActiveWindow: -time.Second})
	for _, want := range []string{"HostConfig.DataDir", "HostConfig.Join", "HostConfig.ActiveWindow = -1s"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("HostProps of an empty config: %v, want it to name %s", err, want)
		}
	}
	synctest.Test(t, func(t *testing.T) {
		r := newHostRig(t)
		defer r.stop()
		cfg := r.groupConfig(1, 0)
		cfg.StateMachine = &listSM{}
		cfg.Transport = r.net.Transport(1)
		cfg.DataDir = "elsewhere"
		_, err := actors.Request[*actors.CreateGroupResponse](r.sys.Root, r.hosts[0], &actors.CreateGroup{Config: cfg}, 5*time.Second)
		for _, want := range []string{"Config.Transport must be nil", `Config.DataDir = "elsewhere"`} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("CreateGroup with its own transport and directory: %v, want it to name %s", err, want)
			}
		}
		if s := r.status(0); s.Groups != 0 {
			t.Errorf("a refused group runs: %d groups", s.Groups)
		}
	})
}

// BenchmarkHostGroups: 3 hosts in one process (one in-memory network, one
// Pebble each on the real disk, fsync on) with 1 to 1,000 groups; one
// client per group proposes 128 B commands one after another. Reports
// ops/s, fsyncs/s (per host) and operations per fsync. make bench-hosts.
func BenchmarkHostGroups(b *testing.B) {
	for _, groups := range []int{1, 16, 256, 1000} {
		b.Run(fmt.Sprintf("groups=%d", groups), func(b *testing.B) {
			r := newHostRigIn(b, b.TempDir())
			r.tick = 100 * time.Millisecond
			defer r.stop()
			gs := groupIDs(1, uint64(groups))
			for _, g := range gs {
				r.create(g)
			}
			r.proposeAll(gs, "warm-up") // every group has a leader
			leaders := map[uint64]*actor.PID{}
			for _, g := range gs {
				for _, pid := range r.groups[g] {
					if st, err := actors.Request[*actors.Status](r.sys.Root, pid, &actors.GetStatus{}, 5*time.Second); err == nil && st.Role == actors.Leader {
						leaders[g] = pid
					}
				}
			}
			fsyncs := func() (n uint64) {
				for i := range r.hosts {
					n += r.status(i).Fsyncs
				}
				return n
			}
			data := make([]byte, 128)
			var next sync.Mutex
			left := b.N
			f0 := fsyncs()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			var failed error
			for _, g := range gs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						next.Lock()
						if left == 0 || failed != nil {
							next.Unlock()
							return
						}
						left--
						next.Unlock()
						if _, err := actors.ProposeAndWait(r.sys.Root, leaders[g], &actors.Propose{Data: data}, 10*time.Second); err != nil {
							next.Lock()
							failed = fmt.Errorf("group %d: %w", g, err)
							next.Unlock()
							return
						}
					}
				}()
			}
			wg.Wait()
			el := time.Since(start).Seconds()
			b.StopTimer()
			if failed != nil {
				b.Fatal(failed)
			}
			f := float64(fsyncs() - f0)
			b.ReportMetric(float64(b.N)/el, "ops/s")
			b.ReportMetric(f/3/el, "fsyncs/s/host")
			b.ReportMetric(float64(b.N)*3/f, "ops/fsync")
		})
	}
}
