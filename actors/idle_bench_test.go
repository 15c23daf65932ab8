//go:build unix

package actors_test

import (
	"flag"
	"fmt"
	"log/slog"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/cluster/transport/inmem"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence/memstore"
)

var (
	flagIdleGroups = flag.Int("idle.groups", 1000, "3-node groups of BenchmarkIdleGroups")
	flagIdleWindow = flag.Duration("idle.window", 10*time.Second, "wall time BenchmarkIdleGroups measures CPU over")
)

// BenchmarkIdleGroups measures what idle groups cost: -idle.groups 3-node
// groups (default 1,000: 3,000 node actors) in one process, each on its
// own in-memory network and memstore, with the default 100 ms tick (10
// election ticks, heartbeat every tick); once every group elected a leader
// (and, with quiescence on, every node quiesced) it measures the process's
// CPU time (getrusage, user + system) over -idle.window of wall time, and
// the messages the transports sent. quiesce=off is the baseline: every
// leader heartbeats every tick. Run it with make bench-idle:
//
//	go test -run '^$' -bench BenchmarkIdleGroups -benchtime 1x ./actors/
func BenchmarkIdleGroups(b *testing.B) {
	for _, quiesce := range []bool{false, true} {
		name := "quiesce=off"
		if quiesce {
			name = "quiesce=on"
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				idleGroups(b, *flagIdleGroups, quiesce, *flagIdleWindow)
			}
		})
	}
}

func idleGroups(b *testing.B, groups int, quiesce bool, window time.Duration) {
	sys := actor.NewActorSystemWithConfig(actor.Configure(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) })))
	defer sys.Shutdown()
	type member struct {
		pid *actor.PID
		net *inmem.Network
		id  uint64
	}
	var nodes []member
	for g := 1; g <= groups; g++ {
		net := inmem.NewNetwork(int64(g))
		boot := &messages.ClusterConfig{Settings: &messages.Settings{PreVote: true, CheckQuorum: true, ElectionTicks: 10, HeartbeatTicks: 1}}
		for i := uint64(1); i <= 3; i++ {
			boot.Voters = append(boot.Voters, &messages.Member{Id: i, Address: fmt.Sprintf("g%d-n%d", g, i)})
		}
		for i := uint64(1); i <= 3; i++ {
			cfg := actors.DefaultConfig()
			cfg.ID, cfg.ClusterID, cfg.Address, cfg.Bootstrap = i, uint64(g), fmt.Sprintf("g%d-n%d", g, i), boot
			cfg.Transport = net.Transport(i)
			cfg.LogStore = memstore.New()
			cfg.StateMachine = &listSM{}
			cfg.Raft.Seed = int64(g)*7 + int64(i)
			if quiesce {
				cfg.Raft.QuiesceTicks = 10 // 1 s idle
			}
			props, err := actors.Props(cfg)
			if err != nil {
				b.Fatal(err)
			}
			nodes = append(nodes, member{pid: sys.Root.Spawn(props), net: net, id: i})
		}
	}
	defer func() {
		for _, n := range nodes {
			sys.Root.Stop(n.pid)
		}
	}()
	// Wait until every group has a leader known to its members (and every
	// node is quiesced, with quiescence on).
	start := time.Now()
	for {
		ready := 0
		for _, n := range nodes {
			s, err := actors.Request[*actors.Status](sys.Root, n.pid, &actors.GetStatus{}, 10*time.Second)
			if err == nil && s.Leader != 0 && (!quiesce || s.Quiesced) {
				ready++
			}
		}
		if ready == len(nodes) {
			break
		}
		if time.Since(start) > 3*time.Minute {
			b.Fatalf("%d of %d nodes ready after %v", ready, len(nodes), time.Since(start))
		}
		time.Sleep(500 * time.Millisecond)
	}
	b.Logf("%d groups ready (elected%s) in %v", groups, map[bool]string{true: ", quiesced", false: ""}[quiesce], time.Since(start).Round(time.Millisecond))
	sent := func() (s uint64) {
		for _, n := range nodes {
			s += n.net.Transport(n.id).Stats().Sent
		}
		return s
	}
	b.ResetTimer()
	cpu0, sent0, t0 := cpuTime(b), sent(), time.Now()
	time.Sleep(window)
	cpu1, sent1, wall := cpuTime(b), sent(), time.Since(t0)
	b.StopTimer()
	share := float64(cpu1-cpu0) / float64(wall)
	b.ReportMetric(100*share, "%cpu-of-1-core")
	b.ReportMetric(100*share/float64(runtime.NumCPU()), "%cpu-of-machine")
	b.ReportMetric(float64(sent1-sent0)/wall.Seconds(), "msgs/s")
	b.Logf("%d idle 3-node groups, quiescence %v: CPU %v over %v wall = %.2f%% of one core, %.2f%% of %d cores; %d messages sent (%.0f/s)",
		groups, quiesce, (cpu1 - cpu0).Round(time.Millisecond), wall.Round(time.Millisecond), 100*share, 100*share/float64(runtime.NumCPU()), runtime.NumCPU(),
		sent1-sent0, float64(sent1-sent0)/wall.Seconds())
}

// cpuTime is the process's user plus system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
