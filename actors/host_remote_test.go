package actors_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/cluster/transport"
	"github.com/flotilla-raft/flotilla/cluster/transport/remote"
	"github.com/flotilla-raft/flotilla/internal/testutil"
	"github.com/flotilla-raft/flotilla/messages"
)

// hostProcEnv makes this test binary, re-executed, run host process i of
// TestHostsOverRemoteProcesses.
const hostProcEnv = "FLOTILLA_HOST_PROCESS"

// hostProcDeadline bounds each phase of a host process.
const hostProcDeadline = 90 * time.Second

// hostProcLoad: proposals in flight per led group in the load phase.
const hostProcLoad = 10

// TestHostsOverRemoteProcesses: three OS processes on loopback, each an
// actors.Host on one remote.Host (one gRPC server, one port) hosting node
// i of every group (100 groups): every group elects a
// leader and commits a proposal through it, and messages of many groups
// to one peer process travel in shared transport batches (Stats:
// BatchedMessages well above BatchesSent).
func TestHostsOverRemoteProcesses(t *testing.T) {
	const groups = 100
	if v := os.Getenv(hostProcEnv); v != "" {
		i, _ := strconv.Atoi(v)
		runHostProcess(t, i, groups)
		return
	}
	type proc struct {
		cmd *exec.Cmd
		in  io.WriteCloser
		out chan string
		err *testutil.SyncBuffer
	}
	var procs [3]*proc
	for i := range procs {
		cmd := testutil.ChildCommand([]string{"-test.run=^TestHostsOverRemoteProcesses$", "-test.v", "-test.count=1", "-test.timeout=5m",
			"-test.short=" + strconv.FormatBool(testing.Short())}, hostProcEnv+"="+strconv.Itoa(i+1))
		p := &proc{cmd: cmd, out: make(chan string, 64), err: &testutil.SyncBuffer{}}
		cmd.Stderr = p.err
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		p.in = in
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() {
			defer close(p.out)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				p.out <- sc.Text()
			}
		}()
		procs[i] = p
	}
	t.Cleanup(func() {
		for _, p := range procs {
			p.in.Close()
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
	})
	// expect reads lines of process i until one starts with prefix.
	expect := func(i int, prefix string) string {
		t.Helper()
		timeout := time.After(hostProcDeadline)
		var seen []string
		for {
			select {
			case l, ok := <-procs[i].out:
				if !ok {
					t.Fatalf("host process %d exited before %q; stdout:\n%s\nstderr:\n%s", i+1, prefix, strings.Join(seen, "\n"), procs[i].err.String())
				}
				if strings.HasPrefix(l, prefix) {
					return strings.TrimPrefix(l, prefix)
				}
				seen = append(seen, l)
			case <-timeout:
				t.Fatalf("host process %d: no %q within %v; stdout:\n%s\nstderr:\n%s", i+1, prefix, hostProcDeadline, strings.Join(seen, "\n"), procs[i].err.String())
			}
		}
	}
	var addrs []string
	for i := range procs {
		addrs = append(addrs, expect(i, "ADDR "))
	}
	for _, p := range procs {
		fmt.Fprintln(p.in, strings.Join(addrs, " "))
	}
	led, batches, batched, shared := 0, uint64(0), uint64(0), uint64(0)
	for i := range procs {
		var l, b, m, sh uint64
		if _, err := fmt.Sscanf(expect(i, "DONE "), "led=%d batches=%d messages=%d shared=%d", &l, &b, &m, &sh); err != nil {
			t.Fatalf("host process %d: %v", i+1, err)
		}
		t.Logf("host process %d (%s): led and committed %d groups; under load sent %d messages in %d transport batches (%.1f per batch), %d batches for several groups",
			i+1, addrs[i], l, m, b, float64(m)/float64(max(b, 1)), sh)
		led += int(l)
		batches, batched, shared = batches+b, batched+m, shared+sh
	}
	// Every group committed through exactly one leader.
	if led != groups {
		t.Errorf("groups whose leader committed a proposal: %d, want %d", led, groups)
	}
	// Under load, messages of several groups to one peer process wait
	// together and leave in one batch (one gRPC message).
	if batches == 0 || batched <= batches || shared == 0 {
		t.Errorf("under load, %d messages in %d transport batches, %d for several groups: want more messages than batches, and batches shared by groups", batched, batches, shared)
	}
	for i, p := range procs {
		p.in.Close()
		expect(i, "EXIT")
	}
}

// runHostProcess is host process i (1-3): it prints its address, reads
// the three addresses, creates its node of every group, commits one
// proposal in each group it leads, prints what it measured, and stays up
// (its groups' followers need it) until its stdin closes.
func runHostProcess(t *testing.T, i, groups int) {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return logger }))
	rcfg := remote.DefaultConfig()
	rcfg.Insecure = true
	rcfg.ListenAddr = "127.0.0.1:0"
	rcfg.Logger = logger
	rh, err := remote.NewHost(rcfg, sys)
	if err != nil {
		t.Fatal(err)
	}
	defer rh.Close()
	var transports []*remote.Transport
	hcfg := actors.DefaultHostConfig()
	hcfg.DataDir = t.TempDir()
	hcfg.Logger = logger
	hcfg.Join = func(clusterID, nodeID uint64) (transport.Transport, error) {
		tr, err := rh.Join(clusterID, nodeID)
		if err == nil {
			transports = append(transports, tr) // the host actor calls Join, one call at a time
		}
		return tr, err
	}
	props, err := actors.HostProps(hcfg)
	if err != nil {
		t.Fatal(err)
	}
	host := sys.Root.Spawn(props)
	defer func() { _ = sys.Root.StopFuture(host).Wait() }()

	fmt.Println("ADDR " + rh.Addr())
	in := bufio.NewScanner(os.Stdin)
	if !in.Scan() {
		t.Fatal("no addresses on stdin")
	}
	addrs := strings.Fields(in.Text())
	if len(addrs) != 3 {
		t.Fatalf("addresses %q, want 3", addrs)
	}
	pids := make([]*actor.PID, groups)
	for g := range groups {
		cfg := actors.DefaultConfig()
		cfg.ID = uint64(i)
		cfg.ClusterID = uint64(g + 1)
		cfg.Bootstrap = &messages.ClusterConfig{Settings: &messages.Settings{PreVote: true, CheckQuorum: true, ElectionTicks: 10, HeartbeatTicks: 1}}
		for id, a := range addrs {
			cfg.Bootstrap.Voters = append(cfg.Bootstrap.Voters, &messages.Member{Id: uint64(id + 1), Address: a})
		}
		cfg.TickInterval = 50 * time.Millisecond
		cfg.Raft.Seed = int64(g*3 + i)
		cfg.Logger = logger
		cfg.StateMachine = &listSM{}
		res, err := actors.Request[*actors.CreateGroupResponse](sys.Root, host, &actors.CreateGroup{Config: cfg}, 10*time.Second)
		if err != nil {
			t.Fatalf("CreateGroup %d: %v", g+1, err)
		}
		pids[g] = res.PID
	}

	// Each group: propose here until this node commits (it leads) or
	// names another node as leader (that process commits it).
	var led []*actor.PID
	deadline := time.Now().Add(hostProcDeadline)
	for g, pid := range pids {
		for {
			_, err := actors.ProposeAndWait(sys.Root, pid, &actors.Propose{Data: []byte("group-" + strconv.Itoa(g+1))}, 5*time.Second)
			var nl *actors.NotLeaderError
			if err == nil {
				led = append(led, pid)
				break
			}
			if errors.As(err, &nl) && nl.Leader != 0 && nl.Leader != uint64(i) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("group %d: no leader committed within %v: %v", g+1, hostProcDeadline, err)
			}
			time.Sleep(50 * time.Millisecond) // an election may be under way: retry until the deadline
		}
	}
	// Load: proposals in flight in every group this process leads at
	// once, so that messages of many groups wait for the same peer
	// together. Every transport reports the host's batch counters.
	before := transports[0].Stats()
	var wg sync.WaitGroup
	errs := make(chan error, len(led)*hostProcLoad)
	for _, pid := range led {
		for k := range hostProcLoad {
			wg.Go(func() {
				if _, err := actors.ProposeAndWait(sys.Root, pid, &actors.Propose{Data: []byte("load-" + strconv.Itoa(k))}, 30*time.Second); err != nil {
					errs <- err
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("load: %v", err)
	}
	st := transports[0].Stats()
	fmt.Printf("DONE led=%d batches=%d messages=%d shared=%d\n", len(led), st.BatchesSent-before.BatchesSent,
		st.BatchedMessages-before.BatchedMessages, st.SharedBatches-before.SharedBatches)
	for in.Scan() {
	}
	fmt.Println("EXIT")
}
