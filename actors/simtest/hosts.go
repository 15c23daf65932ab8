package simtest

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/cluster/transport/inmem"
	"github.com/flotilla-raft/flotilla/messages"
)

// This file holds the simulator on multi-group hosts (Options.Groups > 1):
// every machine is one actors.Host on one crashable Pebble filesystem,
// running its node of every group; one inmem network, joined per (cluster
// id, node id); a machine-level fault schedule; and per group a sim of its
// own (clients, history, replicas, checks) whose nodes are created on the
// hosts (CreateGroup).

// machine is one simulated process: one host actor, one disk.
type machine struct {
	id  uint64
	fs  *vfs.MemFS
	cut *cutFS // the host's view of fs; frozen at a crash
	pid *actor.PID
	up  bool
}

// runHosts runs one seed on Options.Groups groups over Options.Nodes hosts.
func runHosts(opt Options) *Result {
	top := &sim{opt: opt, rng: rand.New(rand.NewPCG(opt.Seed, 0x5348454c4c)), rec: newRecorder(), hist: newHistory(),
		nodes: map[uint64]*simNode{}, stopped: map[uint64]error{}, start: time.Now()}
	top.sys = actor.NewActorSystemWithConfig(actor.Configure(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(&traceHandler{s: top}) })))
	top.root = top.sys.Root
	top.net = inmem.NewNetwork(int64(opt.Seed))
	top.stats.Seeds = 1
	top.tracef("seed %d: %d hosts, %d groups, %d clients per group, lease reads %v", opt.Seed, opt.Nodes, opt.Groups, opt.Clients, opt.LeaseReads)
	for id := uint64(1); id <= uint64(opt.Nodes); id++ {
		top.machines = append(top.machines, &machine{id: id, fs: vfs.NewCrashableMem()})
	}
	for g := uint64(1); g <= uint64(opt.Groups); g++ {
		top.groups = append(top.groups, newGroupSim(top, g))
	}
	for _, m := range top.machines {
		top.startMachine(m)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, s := range top.groups {
		s.probeClient = &client{s: s, idx: opt.Clients, id: uint64(1000 + opt.Clients), rng: rand.New(rand.NewPCG(opt.Seed, s.cluster<<8|uint64(opt.Clients+1)))}
		for i := range opt.Clients {
			c := &client{s: s, idx: i, id: uint64(1000 + i), rng: rand.New(rand.NewPCG(opt.Seed, s.cluster<<8|uint64(i+1)))}
			wg.Go(func() { c.run(stop) })
		}
	}
	for time.Since(top.start) < opt.Chaos {
		time.Sleep(time.Duration(20+top.rng.IntN(130)) * time.Millisecond)
		for _, s := range top.groups {
			s.handleStopped()
		}
		top.hostStep()
	}
	top.healHosts()
	close(stop)
	wg.Wait()
	var cw sync.WaitGroup
	for _, s := range top.groups {
		cw.Go(func() {
			s.converge()
			s.checkFinal()
		})
	}
	cw.Wait()
	top.shutdownHosts()

	res := &Result{Options: opt}
	top.mu.Lock()
	res.Trace = top.trace
	top.mu.Unlock()
	top.collect(res, "")
	for _, s := range top.groups {
		s.collect(res, fmt.Sprintf("group %d: ", s.cluster))
		res.groupHists = append(res.groupHists, s.hist)
	}
	return res
}

// newGroupSim is the sim of group g: its nodes (one per machine, node id
// = machine id), bootstrap, replicas and history; the machines, network
// and actor system are top's.
func newGroupSim(top *sim, g uint64) *sim {
	s := &sim{opt: top.opt, rng: rand.New(rand.NewPCG(top.opt.Seed, 0x5348454c4c+g)), rec: newRecorder(), hist: newHistory(),
		nodes: map[uint64]*simNode{}, stopped: map[uint64]error{}, start: top.start,
		sys: top.sys, root: top.root, net: top.net, parent: top, cluster: g}
	s.keys = []string{"a", "b", "c"}
	s.boot = &messages.ClusterConfig{Settings: &messages.Settings{PreVote: true, CheckQuorum: true, ElectionTicks: electionTick, HeartbeatTicks: 2}}
	for range top.opt.Nodes {
		n := s.newNode(true)
		n.fs = nil // the machine's
		s.boot.Voters = append(s.boot.Voters, &messages.Member{Id: n.id, Address: addr(n.id)})
	}
	return s
}

// startMachine spawns m's host on its disk and creates its node of every
// group.
func (s *sim) startMachine(m *machine) {
	cfg := actors.DefaultHostConfig()
	cfg.DataDir = "/data"
	m.cut = &cutFS{FS: m.fs}
	cfg.FS = m.cut
	cfg.Logger = slog.New(&traceHandler{s: s, node: m.id})
	cfg.Join = s.net.HostJoin
	props, err := actors.HostProps(cfg)
	if err != nil {
		s.violation("host %d: props: %v", m.id, err)
		return
	}
	m.pid = s.root.Spawn(props)
	m.up = true
	s.tracef("start host %d", m.id)
	for _, g := range s.groups {
		g.startNode(g.nodes[m.id], false)
	}
}

// crashMachine is a power loss of machine m: every group's node on it
// stops where it stands, then the disk keeps what was synced (and a random
// share of the rest), and the host is gone.
func (s *sim) crashMachine(m *machine) {
	s.tracef("crash host %d (its node of every group)", m.id)
	var pids []*actor.PID
	for _, g := range s.groups {
		n := g.nodes[m.id]
		g.mu.Lock()
		if n.state != down {
			pids = append(pids, n.pid)
		}
		if n.app != nil {
			pids = append(pids, n.app)
		}
		n.state = down
		n.halted = n.inc
		g.mu.Unlock()
	}
	// The nodes first: none acknowledges anything once the power is off.
	for _, pid := range pids {
		if err := s.root.StopFuture(pid).Wait(); err != nil {
			s.violation("host %d: actor %s did not stop: %v", m.id, pid.Id, err)
		}
	}
	// From here no sync reaches the disk: the host's closing is not an
	// orderly one.
	m.cut.frozen.Store(true)
	if err := s.root.StopFuture(m.pid).Wait(); err != nil {
		s.violation("host %d did not stop: %v", m.id, err)
	}
	m.fs = m.fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: s.rng.IntN(101), RNG: rand.New(rand.NewPCG(s.rng.Uint64(), 1))})
	m.up = false
	s.count(func(st *Stats) { st.Crashes++ })
}

// createGroup creates node cfg.ID of group cfg.ClusterID on its machine's
// host. A node of the group that stopped itself may still be leaving the
// host (ErrGroupExists): it is tried again for a while.
func (s *sim) createGroup(cfg actors.Config) (*actor.PID, error) {
	m := s.machines[cfg.ID-1]
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, err := actors.Request[*actors.CreateGroupResponse](s.root, m.pid, &actors.CreateGroup{Config: cfg}, 5*time.Second)
		if err == nil {
			return r.PID, nil
		}
		if !errors.Is(err, actors.ErrGroupExists) || time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// hostStep takes one action of the machine-level schedule: partitions and
// network faults (by node id, so per machine), host crashes and restarts,
// and, in one group, a snapshot or a leadership transfer.
func (s *sim) hostStep() {
	downs := 0
	var ups, downed []*machine
	for _, m := range s.machines {
		if m.up {
			ups = append(ups, m)
		} else {
			downs++
			downed = append(downed, m)
		}
	}
	canFail := downs < (s.opt.Nodes-1)/2+boolInt(s.opt.Nodes == 3)
	g := s.groups[s.rng.IntN(len(s.groups))]
	switch p := s.rng.IntN(100); {
	case p < 10:
		var ids []uint64
		for _, m := range ups {
			ids = append(ids, m.id)
		}
		s.partition(ids)
	case p < 25:
		s.tracef("heal partitions")
		s.net.Heal()
	case p < 32:
		s.networkFaults()
	case p < 37:
		s.tracef("network faults cleared")
		s.net.ClearFaults()
	case p < 50:
		if len(ups) > 0 && canFail {
			s.crashMachine(ups[s.rng.IntN(len(ups))])
		}
	case p < 70:
		if len(downed) > 0 {
			s.startMachine(downed[s.rng.IntN(len(downed))])
		}
	case p < 80:
		if n := g.pick(running); n != nil {
			if r, err := actors.Request[*actors.TakeSnapshotResponse](s.root, n.pid, &actors.TakeSnapshot{}, time.Second); err == nil {
				g.tracef("snapshot on node %d at %d", n.id, r.Index)
			}
		}
	case p < 88:
		g.transfer()
	}
}

// healHosts ends the faults: the network heals and every host starts.
func (s *sim) healHosts() {
	s.tracef("heal: network healed, every host started")
	for _, g := range s.groups {
		g.healed.Store(true)
	}
	s.healed.Store(true)
	s.net.Heal()
	s.net.ClearFaults()
	for _, g := range s.groups {
		g.handleStopped()
	}
	for _, m := range s.machines {
		if !m.up {
			s.startMachine(m)
		}
	}
}

// shutdownHosts stops every host (its groups' nodes with it) and the
// actor system.
func (s *sim) shutdownHosts() {
	for _, g := range s.groups {
		for _, n := range g.nodes {
			if n.app != nil {
				_ = s.root.StopFuture(n.app).Wait()
			}
		}
		for _, p := range g.probes {
			s.root.Stop(p)
		}
	}
	for _, m := range s.machines {
		if m.up {
			if err := s.root.StopFuture(m.pid).Wait(); err != nil {
				s.violation("host %d did not stop at the end: %v", m.id, err)
			}
		}
	}
	s.sys.Shutdown()
	time.Sleep(max(s.sys.Config.DeadLetterThrottleInterval, 11*time.Second) + time.Millisecond)
}

// cutFS is a host's filesystem: once frozen (the power is off), no sync
// reaches the disk, so that CrashClone may drop what the host's closing
// still writes.
type cutFS struct {
	vfs.FS
	frozen atomic.Bool
}

type cutFile struct {
	vfs.File
	fs *cutFS
}

func (f cutFile) Sync() error {
	if f.fs.frozen.Load() {
		return nil
	}
	return f.File.Sync()
}

func (f cutFile) SyncData() error {
	if f.fs.frozen.Load() {
		return nil
	}
	return f.File.SyncData()
}

func (f cutFile) SyncTo(length int64) (bool, error) {
	if f.fs.frozen.Load() {
		return false, nil
	}
	return f.File.SyncTo(length)
}

func (fs *cutFS) wrap(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return cutFile{File: f, fs: fs}, nil
}

func (fs *cutFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return fs.wrap(fs.FS.Create(name, c))
}

func (fs *cutFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	return fs.wrap(fs.FS.OpenReadWrite(name, c, opts...))
}

func (fs *cutFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return fs.wrap(fs.FS.ReuseForWrite(oldname, newname, c))
}

func (fs *cutFS) OpenDir(name string) (vfs.File, error) { return fs.wrap(fs.FS.OpenDir(name)) }
