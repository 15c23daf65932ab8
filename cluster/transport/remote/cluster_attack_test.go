package remote_test

import (
	"fmt"
	"log/slog"
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
	"github.com/flotilla-raft/flotilla/persistence/memstore"
)

// counterSM is a snapshotting state machine: the number of applied
// entries.
type counterSM struct {
	mu sync.Mutex
	n  uint64
}

func (s *counterSM) Apply(*messages.Entry) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	return s.n
}

func (s *counterSM) Snapshot() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Appendf(nil, "%d", s.n), nil
}

func (s *counterSM) Restore(b []byte) error {
	var n uint64
	if _, err := fmt.Sscanf(string(b), "%d", &n); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n = n
	return nil
}

// ValidateSnapshot accepts only what Restore can read.
func (s *counterSM) ValidateSnapshot(b []byte) error {
	var n uint64
	_, err := fmt.Sscanf(string(b), "%d", &n)
	return err
}

// raftCluster is three Raft node actors in this process, each on a remote
// transport with its own certificate in a child process.
type raftCluster struct {
	t     *testing.T
	sys   *actor.ActorSystem
	nodes map[uint64]*node
	pids  map[uint64]*actor.PID
	sms   map[uint64]*counterSM
	ca    *testCA
	logs  testutil.SyncBuffer // the node actors' warnings
	// configure, when set, adjusts each node actor's Config last.
	configure func(*actors.Config)
}

func newRaftCluster(t *testing.T) *raftCluster { return newRaftClusterWith(t, 0, nil) }

// newRaftClusterWith also launches extra transports (ids 4...) for node
// actors the test starts itself (startNode), joining the cluster.
func newRaftClusterWith(t *testing.T, extra int, configure func(*actors.Config)) *raftCluster {
	ca := newCA(t, "cluster")
	cfg := func(id uint64) remote.Config {
		c := remote.DefaultConfig()
		c.ID, c.ClusterID, c.CAFile = id, 1, ca.file
		c.CertFile, c.KeyFile = ca.issue(t, remote.Identity{ClusterID: 1, NodeID: id})
		c.MaxMessageSize = attackLimit
		return c
	}
	cfgs := []remote.Config{cfg(1), cfg(2), cfg(3)}
	for i := range extra {
		cfgs = append(cfgs, cfg(uint64(4+i)))
	}
	ns := spawnNodes(t, cfgs...)
	c := &raftCluster{t: t, ca: ca, nodes: map[uint64]*node{}, pids: map[uint64]*actor.PID{}, sms: map[uint64]*counterSM{}, configure: configure,
		sys: actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }))}
	boot := &messages.ClusterConfig{Settings: &messages.Settings{PreVote: true, CheckQuorum: true, ElectionTicks: 10, HeartbeatTicks: 1}}
	for i, n := range ns {
		id := uint64(i + 1)
		c.nodes[id] = n
		if id <= 3 {
			boot.Voters = append(boot.Voters, &messages.Member{Id: id, Address: n.Addr()})
		}
	}
	for id := range uint64(3) {
		c.startNode(id+1, boot)
	}
	t.Cleanup(func() {
		for _, pid := range c.pids {
			actors.Request[*actors.Stopped](c.sys.Root, pid, &actors.Stop{}, 10*time.Second)
		}
		c.sys.Shutdown()
	})
	return c
}

// startNode spawns the node actor of id on its transport, bootstrapping
// with boot (nil: it joins).
func (c *raftCluster) startNode(id uint64, boot *messages.ClusterConfig) {
	c.t.Helper()
	n := c.nodes[id]
	nc := actors.DefaultConfig()
	nc.ID, nc.ClusterID, nc.Address = id, 1, n.Addr()
	nc.Bootstrap, nc.Transport, nc.LogStore = boot, n, memstore.New()
	c.sms[id] = &counterSM{}
	nc.StateMachine = c.sms[id]
	nc.TickInterval = 20 * time.Millisecond
	nc.Logger = slog.New(slog.NewTextHandler(&c.logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	nc.Raft.Seed = int64(id)
	if c.configure != nil {
		c.configure(&nc)
	}
	props, err := actors.Props(nc)
	if err != nil {
		c.t.Fatal(err)
	}
	c.pids[id] = c.sys.Root.Spawn(props)
}

func (c *raftCluster) status(id uint64) *actors.Status {
	c.t.Helper()
	s, err := actors.Request[*actors.Status](c.sys.Root, c.pids[id], &actors.GetStatus{}, 5*time.Second)
	if err != nil {
		c.t.Fatalf("status of node %d: %v", id, err)
	}
	return s
}

// waitLeader waits until all nodes agree on a leader at one term.
func (c *raftCluster) waitLeader() (lead, term uint64) {
	c.t.Helper()
	waitUntil(c.t, "a leader all nodes agree on", func() bool {
		lead, term = 0, 0
		for id := range c.pids {
			s := c.status(id)
			if s.Leader == 0 || lead != 0 && (s.Leader != lead || s.Term != term) {
				return false
			}
			lead, term = s.Leader, s.Term
		}
		return c.status(lead).Role == actors.Leader
	})
	return lead, term
}

// TestMemberAttacksOnRaftCluster: an attacker holding a follower's valid
// certificate forges a heartbeat from the leader at term 500 (which
// deposed the leader when From was not bound to the certificate) and a
// corrupt snapshot; holding the leader's certificate, it sends a corrupt
// snapshot as the leader. The cluster keeps its leader and term and keeps
// committing; the forgeries are dropped by the transport and the corrupt
// snapshot by the node, each counted.
func TestMemberAttacksOnRaftCluster(t *testing.T) {
	c := newRaftCluster(t)
	lead, term := c.waitLeader()
	var follower, other uint64
	for id := range c.pids {
		if id != lead {
			if follower == 0 {
				follower = id
			} else {
				other = id
			}
		}
	}
	enc := func(m *messages.Message) []byte {
		b, err := (transport.Codec{}).Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	badSnapshot := func(from uint64) *messages.Message {
		return &messages.Message{Type: messages.MessageType_MSG_SNAPSHOT, ClusterId: 1, From: from, To: follower, Term: term,
			Snapshot: &messages.Snapshot{Data: []byte{0, 'x', 'y'}, Metadata: &messages.SnapshotMetadata{
				Index: 1 << 20, Term: term, Config: c.status(lead).Config}}}
	}

	mem := probeMemory(t, c.nodes[follower])

	// 1. With the other follower's certificate: claims to be the leader.
	certO, keyO := c.ca.issue(t, remote.Identity{ClusterID: 1, NodeID: other})
	stream := openStream(t, dial(t, c.nodes[follower].Addr(), tlsCreds(t, c.ca, certO, keyO)))
	forged := &messages.Message{Type: messages.MessageType_MSG_HEARTBEAT, ClusterId: 1, From: lead, To: follower, Term: 500}
	if err := stream.Send(batchOf(c.nodes[follower].Addr(), 1, follower, enc(forged), enc(badSnapshot(lead)))); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the follower's transport to drop the 2 forged messages", func() bool {
		ts := c.status(follower).Transport
		return ts != nil && ts.DroppedForged == 2
	})

	// 2. With the leader's own certificate: a corrupt snapshot.
	certL, keyL := c.ca.issue(t, remote.Identity{ClusterID: 1, NodeID: lead})
	stream = openStream(t, dial(t, c.nodes[follower].Addr(), tlsCreds(t, c.ca, certL, keyL)))
	if err := stream.Send(batchOf(c.nodes[follower].Addr(), 1, follower, enc(badSnapshot(lead)))); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the follower to refuse the corrupt snapshot", func() bool {
		return c.status(follower).Dropped.CorruptSnapshot == 1
	})

	// The cluster kept its leader and term, and commits.
	res, err := actors.ProposeAndWait(c.sys.Root, c.pids[lead], &actors.Propose{Data: []byte("after")}, 10*time.Second)
	if err != nil {
		t.Fatalf("propose after the attacks: %v", err)
	}
	waitUntil(t, "every node to apply the proposal", func() bool {
		for id := range c.pids {
			if c.status(id).Applied < res.Index {
				return false
			}
		}
		return true
	})
	if l, tm := c.waitLeader(); l != lead || tm != term {
		t.Errorf("leader %d at term %d became %d at term %d", lead, term, l, tm)
	}
	s := c.status(follower)
	if s.LastIndex >= 1<<20 {
		t.Errorf("the follower installed the corrupt snapshot: %v", s)
	}
	t.Logf("follower %d: drops %+v, transport %+v", follower, s.Dropped, *s.Transport)
	if got := logLines(c.nodes[follower], "sender does not match its certificate"); got != 1 {
		t.Errorf("the follower's transport logged the forgery %d times, want 1; stderr:\n%s", got, c.nodes[follower].stderr.String())
	}
	if !strings.Contains(c.logs.String(), "snapshot refused") {
		t.Errorf("the follower did not log the corrupt snapshot; logs:\n%s", c.logs.String())
	}
	mem.check("forged messages and a corrupt snapshot")
}

func (s *counterSM) count() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}
