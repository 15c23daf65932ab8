package actors_test

// Hosts in separate OS processes: each child process (this test binary,
// re-executed) runs one remote.Host on loopback and one actors.Host on a
// Pebble directory of its own, with its node of every group.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
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

const hostChildEnv = "FLOTILLA_HOST_CHILD"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(hostChildEnv); cfg != "" {
		os.Exit(runHostChild(cfg))
	}
	os.Exit(m.Run())
}

// hostChild configures a child process; hostReport is its one line of
// output once every group committed a command.
type hostChild struct {
	Index  int      // this process hosts node Index+1 of every group
	Addrs  []string // every process's listen address, by index
	Groups int
	Dir    string
}

type hostReport struct {
	First           map[uint64]string // group -> its first applied command
	Fsyncs          uint64
	UpdatesPerFsync float64
	// Under load (hostProcLoad proposals in flight in each group this
	// process leads): the remote host's batches, messages in them, and
	// batches that carried messages of several groups.
	Batches, Batched, Shared uint64
	Err                      string
}

// hostProcLoad: proposals in flight per led group in the load phase.
const hostProcLoad = 20

// runHostChild runs one host process until its stdin closes.
func runHostChild(cfgJSON string) int {
	var c hostChild
	if err := json.Unmarshal([]byte(cfgJSON), &c); err != nil {
		fmt.Fprintln(os.Stderr, "child: bad config:", err)
		return 2
	}
	rep := hostChildRun(c)
	if err := json.NewEncoder(os.Stdout).Encode(rep); err != nil {
		return 2
	}
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent is done
	return 0
}

func hostChildRun(c hostChild) (rep hostReport) {
	fail := func(err error) hostReport { return hostReport{Err: err.Error()} }
	logger := discardLogger()
	rcfg := remote.DefaultConfig()
	rcfg.Insecure = true
	rcfg.ListenAddr = c.Addrs[c.Index]
	rcfg.Logger = logger
	rh, err := remote.NewHost(rcfg, nil)
	if err != nil {
		return fail(err)
	}
	sys := actor.NewActorSystemWithConfig(actor.Configure(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return logger })))
	hcfg := actors.DefaultHostConfig()
	hcfg.DataDir = c.Dir
	hcfg.Logger = logger
	var tr *remote.Transport // any of the host's: each reports the host's batch counters
	hcfg.Join = func(clusterID, nodeID uint64) (transport.Transport, error) {
		t, err := rh.Join(clusterID, nodeID)
		if err == nil {
			tr = t // the host actor calls Join, one call at a time
		}
		return t, err
	}
	props, err := actors.HostProps(hcfg)
	if err != nil {
		return fail(err)
	}
	host := sys.Root.Spawn(props)
	sms := map[uint64]*listSM{}
	nodes := map[uint64]*actor.PID{}
	for g := uint64(1); g <= uint64(c.Groups); g++ {
		cfg := actors.DefaultConfig()
		cfg.ID, cfg.ClusterID, cfg.Address = uint64(c.Index+1), g, c.Addrs[c.Index]
		cfg.Bootstrap = &messages.ClusterConfig{Settings: &messages.Settings{PreVote: true, CheckQuorum: true, ElectionTicks: 20, HeartbeatTicks: 2}}
		for i, a := range c.Addrs {
			cfg.Bootstrap.Voters = append(cfg.Bootstrap.Voters, &messages.Member{Id: uint64(i + 1), Address: a})
		}
		cfg.TickInterval = 50 * time.Millisecond
		cfg.Logger = logger
		sms[g] = &listSM{}
		cfg.StateMachine = sms[g]
		res, err := actors.Request[*actors.CreateGroupResponse](sys.Root, host, &actors.CreateGroup{Config: cfg}, 10*time.Second)
		if err != nil {
			return fail(fmt.Errorf("CreateGroup %d: %w", g, err))
		}
		nodes[g] = res.PID
	}
	// Every group commits one command: the process whose node leads it
	// proposes; the others wait to apply it.
	deadline := time.Now().Add(2 * time.Minute)
	rep.First = map[uint64]string{}
	for len(rep.First) < c.Groups {
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("%d of %d groups committed within 2 minutes", len(rep.First), c.Groups))
		}
		for g, sm := range sms {
			if _, ok := rep.First[g]; ok {
				continue
			}
			if l := sm.list(); len(l) > 0 {
				rep.First[g] = l[0]
				continue
			}
			st, err := actors.Request[*actors.Status](sys.Root, nodes[g], &actors.GetStatus{}, 5*time.Second)
			if err == nil && st.Role == actors.Leader {
				sys.Root.Send(nodes[g], &actors.Propose{Data: fmt.Appendf(nil, "g%d-by-host%d", g, c.Index+1)})
			}
		}
		time.Sleep(100 * time.Millisecond) // a round over the groups; the deadline above bounds it
	}
	st, err := actors.Request[*actors.HostStatus](sys.Root, host, &actors.GetHostStatus{}, 5*time.Second)
	if err != nil {
		return fail(err)
	}
	rep.Fsyncs, rep.UpdatesPerFsync = st.Fsyncs, st.UpdatesPerFsync

	// Load: proposals in flight at once in every group this process
	// proposed in (its leader), so that messages of many groups wait for
	// the same peer together and share batches. A leadership change
	// meanwhile only lowers the load.
	before := tr.Stats()
	var wg sync.WaitGroup
	for g, first := range rep.First {
		if first != fmt.Sprintf("g%d-by-host%d", g, c.Index+1) {
			continue
		}
		for k := range hostProcLoad {
			wg.Go(func() {
				_, _ = actors.ProposeAndWait(sys.Root, nodes[g], &actors.Propose{Data: fmt.Appendf(nil, "load-%d", k)}, 30*time.Second)
			})
		}
	}
	wg.Wait()
	after := tr.Stats()
	rep.Batches, rep.Batched, rep.Shared = after.BatchesSent-before.BatchesSent,
		after.BatchedMessages-before.BatchedMessages, after.SharedBatches-before.SharedBatches
	return rep
}

// Three OS processes, each a host of its node of every group over the
// remote transport on loopback: every group elects and commits, and the
// three processes applied the same first command in every group. Under
// load, messages of several groups to one peer process share transport
// batches (one gRPC message): more messages than batches, and batches
// carrying several groups' messages (transport.Stats.SharedBatches).
func TestHostProcesses(t *testing.T) {
	groups := 100
	if testing.Short() {
		groups = 10
	}
	addrs, err := testutil.FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	type child struct {
		stdin io.Closer
		done  chan error
		out   chan hostReport
		log   *testutil.SyncBuffer
	}
	var children []*child
	for i := range addrs {
		cfg, _ := json.Marshal(hostChild{Index: i, Addrs: addrs, Groups: groups, Dir: filepath.Join(dir, fmt.Sprint(i))})
		cmd := testutil.ChildCommand(nil, hostChildEnv+"="+string(cfg))
		ch := &child{done: make(chan error, 1), out: make(chan hostReport, 1), log: &testutil.SyncBuffer{}}
		cmd.Stderr = ch.log
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ch.stdin = stdin
		go func() {
			var rep hostReport
			sc := bufio.NewScanner(stdout)
			sc.Buffer(make([]byte, 1<<20), 16<<20)
			if sc.Scan() && json.Unmarshal(sc.Bytes(), &rep) == nil {
				ch.out <- rep
			}
			_, _ = io.Copy(io.Discard, stdout)
			ch.done <- cmd.Wait()
		}()
		children = append(children, ch)
		t.Cleanup(func() {
			stdin.Close()
			select {
			case <-ch.done:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
			}
		})
	}
	var reps []hostReport
	for i, ch := range children {
		select {
		case rep := <-ch.out:
			if rep.Err != "" {
				t.Fatalf("host process %d: %s\n%s", i+1, rep.Err, ch.log.String())
			}
			reps = append(reps, rep)
			t.Logf("host process %d: %d groups committed, %d fsyncs, %.1f group writes per fsync; under load %d messages in %d transport batches, %d carrying several groups' messages",
				i+1, len(rep.First), rep.Fsyncs, rep.UpdatesPerFsync, rep.Batched, rep.Batches, rep.Shared)
		case err := <-ch.done:
			t.Fatalf("host process %d exited: %v\n%s", i+1, errors.Join(err), ch.log.String())
		case <-time.After(4 * time.Minute):
			t.Fatalf("host process %d: no report within 4 minutes\n%s", i+1, ch.log.String())
		}
	}
	var batches, batched, shared uint64
	for _, r := range reps {
		batches, batched, shared = batches+r.Batches, batched+r.Batched, shared+r.Shared
	}
	if batches == 0 || batched <= batches || shared == 0 {
		t.Errorf("under load, %d messages in %d transport batches, %d for several groups: want more messages than batches, and batches shared by groups", batched, batches, shared)
	}
	for g := uint64(1); g <= uint64(groups); g++ {
		a, b, c := reps[0].First[g], reps[1].First[g], reps[2].First[g]
		if a == "" || a != b || b != c {
			t.Errorf("group %d: the processes applied %q, %q, %q first", g, a, b, c)
		}
	}
}
