package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/cluster/transport/inmem"
	"github.com/flotilla-raft/flotilla/messages"
	"go.opentelemetry.io/otel/trace"
)

// topicNames are the topics the scenario creates.
var topicNames = []string{"orders", "payments", "clicks", "logins", "invoices", "alerts"}

// options configures a scenario run.
type options struct {
	Out io.Writer
	// DataDir: each server keeps its log in Pebble under DataDir/node-N;
	// "" keeps logs in memory.
	DataDir string
	// Tick is the Raft tick (an election takes 10 to 20 ticks).
	Tick time.Duration
	// Patience bounds each step's wait for the cluster.
	Patience time.Duration
	// TracerProvider, when set, gives server id's node its spans' provider
	// (nil: the global provider).
	TracerProvider func(id uint64) trace.TracerProvider
}

// outcome is what the scenario ends with, read before the orderly stop.
type outcome struct {
	Leader uint64
	Voters []uint64
	// Tables is each running server's table, read linearizably from it.
	Tables map[uint64][]Assignment
}

// server is one running server: its broker (the parent of its node) and
// the table its node applies to.
type server struct {
	id     uint64
	table  *Table
	broker *actor.PID
	tr     *inmem.Transport
}

// scenario drives a cluster in one process over the in-memory transport.
type scenario struct {
	o      options
	sys    *actor.ActorSystem
	net    *inmem.Network
	boot   *messages.ClusterConfig
	dir    *Directory
	client *Client
	events chan any
	start  time.Time

	servers map[uint64]*server // touched by the scenario's goroutine only

	mu sync.Mutex // serializes narrative lines (brokers print from their actors)
}

// runScenario runs the scripted scenario on sys and reports what it saw.
// It stops every server it started, also on failure; the caller shuts sys
// down.
func runScenario(sys *actor.ActorSystem, o options) (out *outcome, err error) {
	s := &scenario{o: o, sys: sys, net: inmem.NewNetwork(1), dir: NewDirectory(),
		events: make(chan any, 1<<14), start: time.Now(), servers: map[uint64]*server{}}
	s.client = &Client{Root: sys.Root, Dir: s.dir, ID: 1, Patience: o.Patience}
	s.boot = &messages.ClusterConfig{Settings: &messages.Settings{PreVote: true, CheckQuorum: true, ElectionTicks: 10, HeartbeatTicks: 1}}
	for id := uint64(1); id <= 3; id++ {
		s.boot.Voters = append(s.boot.Voters, &messages.Member{Id: id, Address: address(id)})
	}
	defer func() {
		if err != nil {
			s.stopAll()
		}
	}()

	s.step("1. three servers start and elect a leader")
	for id := uint64(1); id <= 3; id++ {
		if err := s.startServer(id, s.boot); err != nil {
			return nil, err
		}
	}
	b, err := s.awaitBalanced("a leader with an empty table", func(b balancedSeen) bool {
		return slices.Equal(b.Voters, []uint64{1, 2, 3})
	})
	if err != nil {
		return nil, err
	}
	s.say("operator", "node %d leads; voters %v", b.Leader, b.Voters)

	s.step("2. a client creates six topics; the leader assigns them")
	for _, name := range topicNames {
		idx, err := s.client.Propose(Command{Op: OpCreate, Topic: name})
		if err != nil {
			return nil, fmt.Errorf("create topic %q: %w", name, err)
		}
		s.say("client", "created topic %s (entry %d)", name, idx)
	}
	if _, err := s.awaitBalanced("six topics balanced over 3 servers", func(b balancedSeen) bool {
		return len(b.Table) == len(topicNames) && slices.Equal(b.Voters, []uint64{1, 2, 3})
	}); err != nil {
		return nil, err
	}
	if err := s.showRoutes(); err != nil {
		return nil, err
	}
	if err := s.publish("orders", "order #1001"); err != nil {
		return nil, err
	}

	s.step("3. a fourth server joins: as a learner, then promoted to voter")
	if err := s.startServer(4, nil); err != nil {
		return nil, err
	}
	idx, err := s.client.ChangeConfig(func(cc *messages.ClusterConfig) {
		cc.Learners = append(cc.Learners, &messages.Member{Id: 4, Address: address(4)})
	})
	if err != nil {
		return nil, err
	}
	s.say("operator", "added node 4 as a learner (configuration entry %d)", idx)
	if err := s.await("node 4 to catch up as a learner", func(ev any) bool {
		c, ok := ev.(configSeen)
		return ok && c.Node == 4 && slices.Contains(memberIDs(c.Config.GetLearners()), 4)
	}); err != nil {
		return nil, err
	}
	idx, err = s.client.ChangeConfig(func(cc *messages.ClusterConfig) {
		cc.Learners = slices.DeleteFunc(cc.Learners, func(m *messages.Member) bool { return m.Id == 4 })
		cc.Voters = append(cc.Voters, &messages.Member{Id: 4, Address: address(4)})
	})
	if err != nil {
		return nil, err
	}
	s.say("operator", "promoted node 4 to voter (configuration entry %d)", idx)
	if _, err := s.awaitBalanced("six topics balanced over 4 servers", func(b balancedSeen) bool {
		return len(b.Table) == len(topicNames) && slices.Equal(b.Voters, []uint64{1, 2, 3, 4})
	}); err != nil {
		return nil, err
	}
	if err := s.showRoutes(); err != nil {
		return nil, err
	}

	s.step("4. a server is removed; its topics move")
	st, err := s.client.Status()
	if err != nil {
		return nil, err
	}
	victim, err := s.pickVictim(st.ID)
	if err != nil {
		return nil, err
	}
	before := s.servers[victim].table.Owned(victim)
	s.say("operator", "removing node %d, which owns %v", victim, before)
	idx, err = s.client.ChangeConfig(func(cc *messages.ClusterConfig) {
		cc.Voters = slices.DeleteFunc(cc.Voters, func(m *messages.Member) bool { return m.Id == victim })
	})
	if err != nil {
		return nil, err
	}
	s.say("operator", "removed node %d (configuration entry %d)", victim, idx)
	remaining := slices.DeleteFunc([]uint64{1, 2, 3, 4}, func(id uint64) bool { return id == victim })
	if _, err := s.awaitBalanced("six topics balanced over the 3 remaining servers", func(b balancedSeen) bool {
		return len(b.Table) == len(topicNames) && slices.Equal(b.Voters, remaining)
	}); err != nil {
		return nil, err
	}
	if err := s.stopServer(victim); err != nil {
		return nil, err
	}
	if err := s.showRoutes(); err != nil {
		return nil, err
	}
	if len(before) > 0 {
		if err := s.publish(before[0], "after the move"); err != nil {
			return nil, err
		}
	}

	s.step("5. leadership is transferred")
	st, err = s.client.Status()
	if err != nil {
		return nil, err
	}
	to := remaining[len(remaining)-1]
	if to == st.ID {
		to = remaining[0]
	}
	s.say("operator", "asking node %d to hand leadership to node %d", st.ID, to)
	lead, err := s.client.TransferLeadership(to)
	if err != nil {
		return nil, fmt.Errorf("transfer leadership from %d to %d: %w", st.ID, to, err)
	}
	s.say("operator", "node %d leads now", lead)
	if _, err := s.awaitBalanced(fmt.Sprintf("node %d's rebalancer to find the table balanced", lead), func(b balancedSeen) bool {
		return b.Leader == lead && len(b.Table) == len(topicNames)
	}); err != nil {
		return nil, err
	}

	s.step("6. every server agrees; everything stops in order")
	out = &outcome{Leader: lead, Voters: remaining, Tables: map[uint64][]Assignment{}}
	for _, id := range remaining {
		t, err := s.client.Table(id)
		if err != nil {
			return nil, fmt.Errorf("read the table on node %d: %w", id, err)
		}
		out.Tables[id] = t
	}
	if err := agree(out, len(topicNames)); err != nil {
		return out, err
	}
	s.say("operator", "all %d servers hold the same table, balanced over voters %v", len(remaining), remaining)
	// Followers first, the leader last (a leader that stops hands over
	// first; here nobody is left to hand over to, so it just stops).
	order := slices.DeleteFunc(slices.Clone(remaining), func(id uint64) bool { return id == lead })
	for _, id := range append(order, lead) {
		if err := s.stopServer(id); err != nil {
			return out, err
		}
	}
	s.say("operator", "all servers stopped")
	return out, nil
}

// agree checks that every table in out is the same and balanced over
// out.Voters with n topics.
func agree(out *outcome, n int) error {
	var ref []Assignment
	var refID uint64
	for id, t := range out.Tables {
		if ref == nil {
			ref, refID = t, id
			continue
		}
		if !slices.Equal(t, ref) {
			return fmt.Errorf("topics: node %d's table %v differs from node %d's %v", id, t, refID, ref)
		}
	}
	if len(ref) != n {
		return fmt.Errorf("topics: the table has %d topics, want %d: %v", len(ref), n, ref)
	}
	if !Balanced(ref, out.Voters) {
		return fmt.Errorf("topics: the table is not balanced over voters %v: %v", out.Voters, ref)
	}
	return nil
}

func address(id uint64) string { return fmt.Sprintf("topics-%d", id) }

// startServer spawns server id's broker, which spawns its node.
func (s *scenario) startServer(id uint64, boot *messages.ClusterConfig) error {
	cfg := actors.DefaultConfig()
	cfg.ID, cfg.Address, cfg.Bootstrap = id, address(id), boot
	tr := s.net.Transport(id)
	cfg.Transport = tr
	if s.o.DataDir != "" {
		cfg.DataDir = filepath.Join(s.o.DataDir, fmt.Sprintf("node-%d", id))
	}
	table := NewTable()
	cfg.StateMachine = table
	cfg.TickInterval = s.o.Tick
	cfg.Raft.Seed = int64(id)
	if s.o.TracerProvider != nil {
		cfg.TracerProvider = s.o.TracerProvider(id)
	}
	who := fmt.Sprintf("node %d", id)
	bc := brokerConfig{Node: cfg, Table: table,
		Say:     func(format string, args ...any) { s.say(who, format, args...) },
		Observe: s.observe}
	pid, err := s.sys.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return newBroker(bc) }), fmt.Sprintf("broker-%d", id))
	if err != nil {
		return fmt.Errorf("spawn the broker of node %d: %w", id, err)
	}
	s.servers[id] = &server{id: id, table: table, broker: pid, tr: tr}
	s.dir.Set(id, pid)
	s.say("operator", "started node %d (%s)", id, map[bool]string{true: "founding voter", false: "joining, no configuration yet"}[boot != nil])
	return nil
}

// stopServer stops server id in order: its node (actors.Stop: a leader
// hands over, writes are flushed), then its broker.
func (s *scenario) stopServer(id uint64) error {
	sv := s.servers[id]
	if sv == nil {
		return nil
	}
	delete(s.servers, id)
	s.dir.Set(id, nil)
	_, err := actors.Request[*actors.Stopped](s.sys.Root, sv.broker, &actors.Stop{}, 10*time.Second)
	if err2 := s.sys.Root.StopFuture(sv.broker).Wait(); err == nil {
		err = err2
	}
	_ = sv.tr.Close() // the node closed it already; closing twice is harmless
	if err != nil {
		return fmt.Errorf("stop node %d: %w", id, err)
	}
	s.say("operator", "stopped node %d", id)
	return nil
}

// stopAll stops every server still running, on the way out of a failure.
func (s *scenario) stopAll() {
	ids := make([]uint64, 0, len(s.servers))
	for id := range s.servers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if err := s.stopServer(id); err != nil {
			s.say("operator", "%v", err)
		}
	}
}

// pickVictim chooses the server to remove: the lowest-numbered voter that
// does not lead and owns topics.
func (s *scenario) pickVictim(leader uint64) (uint64, error) {
	for _, id := range []uint64{1, 2, 3, 4} {
		if sv := s.servers[id]; sv != nil && id != leader && len(sv.table.Owned(id)) > 0 {
			return id, nil
		}
	}
	return 0, errors.New("topics: no follower owns a topic: nothing to remove")
}

// showRoutes asks the cluster, as a client would, where each topic lives.
func (s *scenario) showRoutes() error {
	for _, name := range slices.Sorted(slices.Values(topicNames)) {
		a, err := s.client.Route(name)
		if err != nil {
			return err
		}
		s.say("client", "route %-8s → node %d (assigned at entry %d)", a.Topic, a.Owner, a.Epoch)
	}
	return nil
}

func (s *scenario) publish(topic, payload string) error {
	res, err := s.client.Publish(topic, payload)
	if err != nil {
		return fmt.Errorf("publish to %s: %w", topic, err)
	}
	s.say("client", "published %q to %s: node %d appended it at offset %d", payload, topic, res.Owner, res.Offset)
	return nil
}

// observe receives brokers' events; it never blocks (the channel is large
// enough for a scenario's events; one lost would only slow a wait to its
// deadline).
func (s *scenario) observe(ev any) {
	select {
	case s.events <- ev:
	default:
	}
}

// await consumes events until pred accepts one, or fails after Patience.
func (s *scenario) await(what string, pred func(ev any) bool) error {
	deadline := time.NewTimer(s.o.Patience)
	defer deadline.Stop()
	for {
		select {
		case ev := <-s.events:
			if pred(ev) {
				return nil
			}
		case <-deadline.C:
			return fmt.Errorf("topics: waited %v for %s", s.o.Patience, what)
		}
	}
}

// awaitBalanced waits for the leader's rebalancer to report a table it
// finds balanced, one that pred accepts.
func (s *scenario) awaitBalanced(what string, pred func(balancedSeen) bool) (balancedSeen, error) {
	var got balancedSeen
	err := s.await(what, func(ev any) bool {
		b, ok := ev.(balancedSeen)
		if ok && pred(b) {
			got = b
			return true
		}
		return false
	})
	return got, err
}

func (s *scenario) step(title string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(s.o.Out, "\n== %s\n", title)
}

// say prints one line of the narrative: the time since the start, who
// speaks, what happened.
func (s *scenario) say(who, format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(s.o.Out, "%6.3fs  %-8s  %s\n", time.Since(s.start).Seconds(), who, fmt.Sprintf(format, args...))
}
