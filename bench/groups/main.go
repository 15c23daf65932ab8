// Command groups measures many Raft groups per process (make
// bench-groups): three actors.Hosts in one process on the in-memory
// transport, each on its own Pebble database in a temporary directory
// with fsync on (the host's shared persister syncs every group's writes
// of a round in one batch), running node i of every group. For each cell
// (number of groups) it offers a closed-loop load, by default the same in
// every cell: max(256, groups) clients in total (-clients), spread evenly
// over the groups; with -per-group N, N clients per group instead (the
// load grows with the groups). Each client proposes 128-byte commands one
// at a time to its group's leader with ProposeAndWait, once every group
// has elected a leader and committed a first command. Every node runs
// with actors.DefaultConfig() (100 ms ticks, the default settings). It prints aggregate
// ops/s, p50/p99 latency, fsyncs per second (the three hosts together),
// operations per fsync (per host: ops × 3 / fsyncs, since every operation
// is synced on all three hosts), the process's CPU over the window (100%
// is one core) and per operation, and each cell's throughput relative to
// the 1-group cell of the same run.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/bench/internal/cpuclock"
	"github.com/flotilla-raft/flotilla/cluster/transport/inmem"
	"github.com/flotilla-raft/flotilla/messages"
)

type nopSM struct{}

func (nopSM) Apply(*messages.Entry) any { return nil }

func main() {
	cells := flag.String("groups", "1,16,256,1000", "comma-separated numbers of groups, one cell each")
	window := flag.Duration("window", 5*time.Second, "measured window per cell")
	warmup := flag.Duration("warmup", time.Second, "load before the window")
	minClients := flag.Int("clients", 256, "clients in total per cell (at least one per group)")
	perGroup := flag.Int("per-group", 0, "clients per group (0: -clients in total per cell)")
	size := flag.Int("size", 128, "bytes per proposal")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of all cells to this file")
	blockprofile := flag.String("blockprofile", "", "write a profile of where goroutines waited (blocking and mutexes) in all cells to this file")
	flag.Parse()
	if *blockprofile != "" {
		runtime.SetBlockProfileRate(int(100 * time.Microsecond))
		runtime.SetMutexProfileFraction(10)
		defer func() {
			f, err := os.Create(*blockprofile)
			if err == nil {
				err = pprof.Lookup("block").WriteTo(f, 0)
			}
			if err == nil {
				err = f.Close()
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "blockprofile: %v\n", err)
			}
		}()
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "cpuprofile: %v\n", err)
			os.Exit(2)
		}
		defer pprof.StopCPUProfile()
	}
	var base float64
	fmt.Printf("%-7s %8s %10s %9s %9s %10s %9s %6s %9s %7s\n", "groups", "clients", "ops/s", "p50", "p99", "fsyncs/s", "ops/fsync", "cpu", "cpu/op", "vs 1")
	for _, f := range strings.Split(*cells, ",") {
		g, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || g < 1 {
			fmt.Fprintf(os.Stderr, "groups: bad cell %q\n", f)
			os.Exit(2)
		}
		clients := max(*minClients, g)
		if *perGroup > 0 {
			clients = *perGroup * g
		}
		r, err := runCell(g, clients, *size, *warmup, *window)
		if err != nil {
			fmt.Fprintf(os.Stderr, "cell %d groups: %v\n", g, err)
			pprof.StopCPUProfile()
			os.Exit(1)
		}
		if g == 1 {
			base = r.opsPerSec
		}
		rel := "-"
		if base > 0 {
			rel = fmt.Sprintf("%.2fx", r.opsPerSec/base)
		}
		cpuPerOp := time.Duration(r.cpu / r.opsPerSec * float64(time.Second))
		fmt.Printf("%-7d %8d %10.0f %9s %9s %10.0f %9.1f %5.0f%% %9s %7s\n", g, r.clients, r.opsPerSec,
			r.p50.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond), r.fsyncsPerSec, r.opsPerFsync, r.cpu*100,
			cpuPerOp.Round(100*time.Nanosecond), rel)
	}
}

type result struct {
	clients                              int
	opsPerSec, fsyncsPerSec, opsPerFsync float64
	cpu                                  float64 // CPU time of the process over the window / the window (1 = one core)
	p50, p99                             time.Duration
}

func runCell(groups, clients, size int, warmup, window time.Duration) (result, error) {
	logger := slog.New(slog.DiscardHandler)
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return logger }))
	defer sys.Shutdown()
	net := inmem.NewNetwork(1)
	var hosts [3]*actor.PID
	for i := range hosts {
		dir, err := os.MkdirTemp("", "flotilla-groups-")
		if err != nil {
			return result{}, err
		}
		defer os.RemoveAll(dir)
		cfg := actors.DefaultHostConfig()
		cfg.DataDir = dir
		cfg.Logger = logger
		cfg.Join = net.HostJoin
		props, err := actors.HostProps(cfg)
		if err != nil {
			return result{}, err
		}
		hosts[i] = sys.Root.Spawn(props)
		defer func() { _ = sys.Root.StopFuture(hosts[i]).Wait() }()
	}
	nodes := make([][3]*actor.PID, groups)
	for g := range groups {
		for i := range hosts {
			cfg := actors.DefaultConfig()
			cfg.ID, cfg.ClusterID = uint64(i+1), uint64(g+1)
			// The defaults: 100 ms ticks, the default settings (PreVote,
			// CheckQuorum, election after 10 ticks, a heartbeat every tick).
			cfg.Bootstrap = &messages.ClusterConfig{}
			for id := uint64(1); id <= 3; id++ {
				cfg.Bootstrap.Voters = append(cfg.Bootstrap.Voters, &messages.Member{Id: id, Address: fmt.Sprintf("host-%d", id)})
			}
			cfg.Raft.Seed = int64(g*3 + i)
			cfg.Logger = logger
			cfg.StateMachine = nopSM{}
			res, err := actors.Request[*actors.CreateGroupResponse](sys.Root, hosts[i], &actors.CreateGroup{Config: cfg}, 30*time.Second)
			if err != nil {
				return result{}, fmt.Errorf("CreateGroup %d on host %d: %w", g+1, i+1, err)
			}
			nodes[g][i] = res.PID
		}
	}
	fsyncs := func() uint64 {
		var n uint64
		for _, h := range hosts {
			if s, err := actors.Request[*actors.HostStatus](sys.Root, h, &actors.GetHostStatus{}, 30*time.Second); err == nil {
				n += s.Fsyncs
			}
		}
		return n
	}

	// Every group elects and commits once before the load starts, so
	// that no cell's window includes elections.
	leaders := make([]int, groups)
	var ready sync.WaitGroup
	sem := make(chan struct{}, 64)
	var electErr atomic.Value
	for g := range groups {
		ready.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			to, deadline := g%3, time.Now().Add(2*time.Minute)
			for {
				_, err := actors.ProposeAndWait(sys.Root, nodes[g][to], &actors.Propose{Data: []byte("hello")}, 30*time.Second)
				var nl *actors.NotLeaderError
				switch {
				case err == nil:
					leaders[g] = to
					return
				case time.Now().After(deadline):
					electErr.Store(fmt.Errorf("group %d: no commit within 2 minutes: %w", g+1, err))
					return
				case errors.As(err, &nl) && nl.Leader >= 1 && nl.Leader <= 3:
					to = int(nl.Leader - 1)
				default:
					to = (to + 1) % 3
					time.Sleep(20 * time.Millisecond) // no leader yet: an election is under way
				}
			}
		})
	}
	ready.Wait()
	if err, _ := electErr.Load().(error); err != nil {
		return result{}, err
	}

	var measuring, stop atomic.Bool
	var ops atomic.Uint64
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	payload := make([]byte, size)
	for c := range clients {
		g := c % groups
		wg.Go(func() {
			to := leaders[g]
			var mine []time.Duration
			for !stop.Load() {
				start := time.Now()
				_, err := actors.ProposeAndWait(sys.Root, nodes[g][to], &actors.Propose{Data: payload}, 30*time.Second)
				var nl *actors.NotLeaderError
				switch {
				case err == nil:
					if measuring.Load() {
						ops.Add(1)
						mine = append(mine, time.Since(start))
					}
				case errors.As(err, &nl) && nl.Leader >= 1 && nl.Leader <= 3:
					to = int(nl.Leader - 1)
				case errors.Is(err, actors.ErrRetry):
					time.Sleep(10 * time.Millisecond)
				default:
					to = (to + 1) % 3
					time.Sleep(10 * time.Millisecond) // no leader yet: an election is under way
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	time.Sleep(warmup)
	f0 := fsyncs()
	measuring.Store(true)
	t0, c0 := time.Now(), cpuclock.Process()
	time.Sleep(window)
	measuring.Store(false)
	elapsed, cpu := time.Since(t0), cpuclock.Process()-c0
	f1 := fsyncs()
	stop.Store(true)
	wg.Wait()
	if len(lat) == 0 {
		return result{}, errors.New("no operation completed in the window")
	}
	slices.Sort(lat)
	r := result{clients: clients, opsPerSec: float64(ops.Load()) / elapsed.Seconds(),
		fsyncsPerSec: float64(f1-f0) / elapsed.Seconds(), cpu: cpu.Seconds() / elapsed.Seconds(),
		p50: lat[len(lat)/2], p99: lat[len(lat)*99/100]}
	if f1 > f0 {
		r.opsPerFsync = float64(ops.Load()) * 3 / float64(f1-f0)
	}
	return r, nil
}
