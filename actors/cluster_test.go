package actors_test

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/cluster/transport/inmem"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence/memstore"
	"github.com/flotilla-raft/flotilla/tracing/tracingtest"
	"go.opentelemetry.io/otel/trace"
)

// listSM is a test state machine: the list of applied commands.
type listSM struct {
	mu   sync.Mutex
	cmds []string
}

func (s *listSM) Apply(e *messages.Entry) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cmds = append(s.cmds, string(e.Data))
	return len(s.cmds)
}

func (s *listSM) Query(q any) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.cmds), nil
}

func (s *listSM) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.cmds)
}

// cluster is a test cluster of node actors on an in-memory network, with
// a probe actor that collects every node's events.
type cluster struct {
	mu     sync.Mutex // guards nodes and sms, changed by crash and restart
	t      testing.TB
	sys    *actor.ActorSystem
	net    *inmem.Network
	ids    []uint64
	nodes  map[uint64]*actor.PID
	sms    map[uint64]*listSM
	stores map[uint64]*memstore.Store
	boot   *messages.ClusterConfig
	dirs   map[uint64]string // DataDir per node; nil: memstore
	tp     trace.TracerProvider
	events chan any
	probe  *actor.PID

	// configure, when set, adjusts each node's Config last (before Props).
	configure func(id uint64, cfg *actors.Config)
}

func newCluster(t testing.TB, n int) *cluster { return newClusterWith(t, n, nil) }

// newClusterWith lets setup adjust the cluster before the nodes start.
func newClusterWith(t testing.TB, n int, setup func(*cluster)) *cluster {
	c := &cluster{t: t, sys: actor.NewActorSystemWithConfig(actor.Configure(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }))), net: inmem.NewNetwork(1),
		nodes: map[uint64]*actor.PID{}, sms: map[uint64]*listSM{}, stores: map[uint64]*memstore.Store{},
		events: make(chan any, 1<<16)}
	c.boot = &messages.ClusterConfig{Settings: &messages.Settings{PreVote: true, CheckQuorum: true, ElectionTicks: 10, HeartbeatTicks: 1}}
	for i := 1; i <= n; i++ {
		c.ids = append(c.ids, uint64(i))
		c.boot.Voters = append(c.boot.Voters, &messages.Member{Id: uint64(i), Address: fmt.Sprintf("node-%d", i)})
	}
	c.probe = c.sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch ctx.Message().(type) {
		case *actor.Started, *actor.Stopping, *actor.Stopped:
			return
		}
		select {
		case c.events <- ctx.Message():
		default:
		}
	}))
	if setup != nil {
		setup(c)
	}
	if c.tp == nil {
		// Record spans: a failing test saves them as a Mermaid sequence
		// diagram (tracingtest.SaveOnFailure) so the run can be read.
		c.tp, _ = tracingtest.NewProvider(t)
	}
	for _, id := range c.ids {
		c.stores[id] = memstore.New()
		c.start(id)
	}
	t.Cleanup(func() {
		c.stopAll()
		c.sys.Shutdown()
		// protoactor's dead-letter throttle parks a goroutine on a ticker
		// for DeadLetterThrottleInterval; let fake time pass it so the
		// bubble ends with no goroutine left.
		time.Sleep(c.sys.Config.DeadLetterThrottleInterval + time.Millisecond)
	})
	return c
}

// onPebble puts every node on Pebble, in a directory of its own under
// dir (call it from newClusterWith's setup).
func (c *cluster) onPebble(dir string) {
	c.dirs = map[uint64]string{}
	for _, id := range c.ids {
		c.dirs[id] = filepath.Join(dir, fmt.Sprint(id))
	}
}

// restartAll stops every node in order, starts them again and waits
// until each holds want (or more, after it).
func (c *cluster) restartAll(want []string) {
	c.t.Helper()
	for _, id := range c.ids {
		c.stop(id)
	}
	c.drainEvents()
	for _, id := range c.ids {
		c.start(id)
	}
	synctest.Wait()
	c.failOnNodeStopped()
	c.waitLeader()
	c.waitApplied(len(want), c.ids...)
	for _, id := range c.ids {
		if got := c.sm(id).list(); !slices.Equal(got[:len(want)], want) {
			c.t.Fatalf("node %d after restart holds %v, want %v", id, got, want)
		}
	}
}

func (c *cluster) node(id uint64) *actor.PID {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

func (c *cluster) sm(id uint64) *listSM {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sms[id]
}

// others returns every node id but id.
func (c *cluster) others(id uint64) []uint64 {
	var out []uint64
	for _, x := range c.ids {
		if x != id {
			out = append(out, x)
		}
	}
	return out
}

// stop stops node id in order (actors.Stop) and waits for it.
func (c *cluster) stop(id uint64) {
	c.t.Helper()
	if pid := c.node(id); pid != nil {
		if _, err := actors.Request[*actors.Stopped](c.sys.Root, pid, &actors.Stop{}, 10*time.Second); err != nil {
			c.t.Errorf("stop node %d: %v", id, err)
		}
		c.mu.Lock()
		c.nodes[id] = nil
		c.mu.Unlock()
	}
}

// stopAll stops every running node in order, then closes the network.
func (c *cluster) stopAll() {
	for _, id := range c.ids {
		c.stop(id)
	}
	for _, id := range c.ids {
		_ = c.net.Transport(id).Close()
	}
}

func (c *cluster) start(id uint64) {
	c.t.Helper()
	cfg := actors.DefaultConfig()
	cfg.ID = id
	cfg.Address = fmt.Sprintf("node-%d", id)
	cfg.Bootstrap = c.boot
	cfg.Transport = c.net.Transport(id)
	if d, ok := c.dirs[id]; ok {
		cfg.DataDir = d
	} else {
		cfg.LogStore = c.stores[id]
	}
	sm := &listSM{}
	cfg.StateMachine = sm
	cfg.TickInterval = 10 * time.Millisecond
	cfg.Raft.Seed = int64(id)
	cfg.Subscribers = []*actor.PID{c.probe}
	cfg.TracerProvider = c.tp
	if c.configure != nil {
		c.configure(id, &cfg)
	}
	props, err := actors.Props(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	pid := c.sys.Root.Spawn(props)
	c.mu.Lock()
	c.nodes[id], c.sms[id] = pid, sm
	c.mu.Unlock()
}

// status asks node id for its status.
func (c *cluster) status(id uint64) *actors.Status {
	c.t.Helper()
	s, err := actors.Request[*actors.Status](c.sys.Root, c.node(id), &actors.GetStatus{}, 5*time.Second)
	if err != nil {
		c.t.Fatalf("status of %d: %v", id, err)
	}
	return s
}

// settledApplied waits until node id has applied everything it knows
// committed, and returns that index. Status.Applied is the node's count,
// which hears of an apply one report after the applier answered the
// proposer: read right after a proposal's answer, it may lag by a batch.
func (c *cluster) settledApplied(id uint64) uint64 {
	c.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		st := c.status(id)
		if st.Applied >= st.Commit {
			return st.Applied
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("node %d applied %d of %d committed for a minute", id, st.Applied, st.Commit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitLeader waits (fake time under synctest) until the given nodes agree
// on one leader, and returns it.
func (c *cluster) waitLeader(ids ...uint64) uint64 {
	c.t.Helper()
	if len(ids) == 0 {
		ids = c.ids
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var lead uint64
		agree := true
		for _, id := range ids {
			s := c.status(id)
			if s.Leader == 0 || (lead != 0 && s.Leader != lead) {
				agree = false
				break
			}
			lead = s.Leader
		}
		if agree && slices.Contains(ids, lead) && c.status(lead).Role == actors.Leader {
			return lead
		}
		time.Sleep(20 * time.Millisecond) // fake time: advances the bubble's clock
	}
	c.t.Fatalf("no agreed leader among %v within 30s (fake time)", ids)
	return 0
}

func (c *cluster) propose(id uint64, data string) (*actors.ProposeResponse, error) {
	return actors.ProposeAndWait(c.sys.Root, c.node(id), &actors.Propose{Data: []byte(data)}, 5*time.Second)
}

// waitApplied waits until every listed node applied n commands.
func (c *cluster) waitApplied(n int, ids ...uint64) {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		done := true
		for _, id := range ids {
			if len(c.sm(id).list()) < n {
				done = false
			}
		}
		if done {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, id := range ids {
		c.t.Logf("node %d applied %d", id, len(c.sm(id).list()))
	}
	c.t.Fatalf("not every node applied %d commands within 60s (fake time)", n)
}

// crash stops node id abruptly (no hand-over, no flush) and cuts its
// transport, as a process kill would; its store keeps what was saved.
func (c *cluster) crash(id uint64) {
	c.sys.Root.Stop(c.node(id))
	_ = c.net.Transport(id).Close()
	c.mu.Lock()
	c.nodes[id] = nil
	c.mu.Unlock()
}

// restart starts node id again on its store.
func (c *cluster) restart(id uint64) { c.start(id) }

// client proposes with a session, retrying on redirects and unknown
// outcomes, as a careful application would. It returns the applied commands
// it saw acknowledged.
type client struct {
	c   *cluster
	id  uint64
	seq uint64
}

func (cl *client) propose(data string, tries int) bool {
	cl.seq++
	target := cl.c.ids[0]
	for range tries {
		pid := cl.c.node(target)
		if pid == nil {
			target = cl.c.ids[int(cl.seq+uint64(target))%len(cl.c.ids)]
			time.Sleep(50 * time.Millisecond) // back off (fake time)
			continue
		}
		_, err := actors.ProposeAndWait(cl.c.sys.Root, pid, &actors.Propose{Data: []byte(data), ClientID: cl.id, Sequence: cl.seq}, 2*time.Second)
		if err == nil {
			return true
		}
		var nl *actors.NotLeaderError
		if errors.As(err, &nl) && nl.Leader != 0 {
			target = nl.Leader
		} else {
			target = cl.c.ids[(int(target))%len(cl.c.ids)]
			time.Sleep(50 * time.Millisecond) // back off (fake time)
		}
	}
	return false
}

// checkAcked waits until every live node applied every acknowledged
// command exactly once.
func (c *cluster) checkAcked(acked []string) {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		bad := ""
		for _, id := range c.ids {
			if c.node(id) == nil {
				continue
			}
			count := map[string]int{}
			for _, cmd := range c.sm(id).list() {
				count[cmd]++
			}
			for _, a := range acked {
				if count[a] != 1 {
					bad = fmt.Sprintf("node %d applied acknowledged %q %d times", id, a, count[a])
					break
				}
			}
		}
		if bad == "" {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatal(bad)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
