package actors_test

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/cluster/transport"
	"github.com/flotilla-raft/flotilla/messages"
)

// A node actor stopped by its parent (actor.Stopping: a host closing, a
// crash test) while its applier waits in a slow Apply stays in protoactor's
// stopping state until the applier ends, and meanwhile still handles its
// mailbox. protoactor stops an exiting actor's children once, at Stopping:
// a child the node spawns after that (a leader's replicator, a follower's
// snapshot receiver) must be stopped at once by the node, or the actor never
// terminates and its store is never released. One test per child, each
// on a node of a real cluster on the in-memory network, and one through
// an actors.Host (its database on Pebble's in-memory filesystem), under
// testing/synctest.

// gateSM is listSM whose Apply of the command "block", once armed, waits
// until release is closed; entered is closed when it begins to wait.
type gateSM struct {
	*listSM
	armed            atomic.Bool
	entered, release chan struct{}
}

func newGateSM(sm *listSM) *gateSM {
	return &gateSM{listSM: sm, entered: make(chan struct{}), release: make(chan struct{})}
}

func (g *gateSM) Apply(e *messages.Entry) any {
	if string(e.Data) == "block" && g.armed.Load() {
		close(g.entered)
		<-g.release
	}
	return g.listSM.Apply(e)
}

// newGatedCluster is a cluster of n whose state machines are gateSMs, and
// whose nodes keep no log below a snapshot.
func newGatedCluster(t *testing.T, n int, configure func(id uint64, cfg *actors.Config)) (*cluster, map[uint64]*gateSM) {
	gates := map[uint64]*gateSM{}
	var mu sync.Mutex
	c := newClusterWith(t, n, func(c *cluster) {
		c.configure = func(id uint64, cfg *actors.Config) {
			g := newGateSM(cfg.StateMachine.(*listSM))
			cfg.StateMachine = g
			cfg.RetainEntries = -1
			mu.Lock()
			gates[id] = g
			mu.Unlock()
			if configure != nil {
				configure(id, cfg)
			}
		}
	})
	return c, gates
}

// blockApply has node id's applier wait in Apply: lead proposes "block",
// committed and applied by every node, and id's state machine waits in
// it. It returns once id's Apply waits.
func (c *cluster) blockApply(gates map[uint64]*gateSM, lead, id uint64) {
	c.t.Helper()
	gates[id].armed.Store(true)
	me, _ := inbox(c.sys)
	c.sys.Root.RequestWithCustomSender(c.node(lead), &actors.Propose{Data: []byte("block")}, me)
	select {
	case <-gates[id].entered:
	case <-time.After(10 * time.Second):
		c.t.Fatalf("node %d did not apply \"block\" within 10s (fake time)", id)
	}
	synctest.Wait()
}

// stopExiting stops node id's actor as its parent would (no orderly
// Stop: actor.Stopping, its children stopped) and waits until everything
// else is idle: the children that could stop have, and the node has heard
// of it. Its transport stays open, as a host's does while its groups
// stop. StopFuture watches the node before it stops it: the future is
// answered once the actor terminated, or times out 10s (fake time) after
// the stop.
func (c *cluster) stopExiting(id uint64) *actor.Future {
	c.t.Helper()
	pid := c.node(id)
	f := c.sys.Root.StopFuture(pid)
	c.mu.Lock()
	c.nodes[id] = nil // gone for the cluster's cleanup
	c.mu.Unlock()
	synctest.Wait()
	if _, ok := c.sys.ProcessRegistry.Get(pid); !ok {
		c.t.Fatalf("node %d terminated while its applier waits in Apply: the scenario needs it exiting", id)
	}
	return f
}

// releaseAndWaitGone lets node id's Apply return and checks that the
// node's actor, exiting since stopExiting, terminates.
func (c *cluster) releaseAndWaitGone(gates map[uint64]*gateSM, id uint64, pid *actor.PID, gone *actor.Future, child string) {
	c.t.Helper()
	synctest.Wait()
	if _, ok := c.sys.ProcessRegistry.Get(pid); !ok {
		c.t.Fatalf("node %d terminated before its Apply returned", id)
	}
	close(gates[id].release)
	if err := gone.Wait(); err != nil {
		// Stop what the node left running so that it ends (and its
		// workers with it) and the bubble can close: a failure, not a
		// deadlock of the whole test binary.
		stopChildren(c.sys, pid)
		synctest.Wait()
		c.t.Fatalf("node %d, stopped while its applier waited in Apply, did not terminate within 10s (fake time) of its stop once the Apply returned: %v (the %s it spawned while exiting was not stopped)", id, err, child)
	}
	if _, ok := c.sys.ProcessRegistry.Get(pid); ok {
		c.t.Fatalf("node %d answered its stop but is still registered", id)
	}
}

// stopChildren stops every actor registered under pid (its children and
// theirs), reading protoactor's registry: a child's id is its parent's id,
// a slash, and its name.
func stopChildren(sys *actor.ActorSystem, pid *actor.PID) {
	for _, bucket := range sys.ProcessRegistry.LocalPIDs.LocalPIDs {
		for _, id := range bucket.Keys() {
			if strings.HasPrefix(id, pid.Id+"/") {
				sys.Root.Stop(actor.NewPID(pid.Address, id))
			}
		}
	}
}

// TestReplicatorSpawnedWhileExitingIsStopped: a leader is stopped by its
// parent while its applier waits in Apply; its replicator stops with it.
// A client's read at the follower is forwarded to the leader
// (MSG_READ_INDEX), which confirms its leadership with a heartbeat round:
// the heartbeat to the follower leaves through a new replicator. Once
// Apply returns, the leader's actor terminates. Two nodes: the follower
// alone cannot elect a leader (the stopped leader, in its lease, ignores
// its pre-votes), so the leader never steps down, which would stop its
// replicators and hide a stray one.
func TestReplicatorSpawnedWhileExitingIsStopped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, gates := newGatedCluster(t, 2, nil)
		lead := c.waitLeader()
		f := c.others(lead)[0]
		c.blockApply(gates, lead, lead)
		pid := c.node(lead)
		gone := c.stopExiting(lead)
		// The read stays unanswered: the leader never hears the
		// heartbeat's answer (without the fix, its replicator sends the
		// heartbeat; with it, the replicator stops before).
		me, _ := inbox(c.sys)
		c.sys.Root.RequestWithCustomSender(c.node(f), &actors.Read{}, me)
		c.releaseAndWaitGone(gates, lead, pid, gone, "replicator")
	})
}

// firstChunk closes sent when a node sends the first snapshot chunk to
// the peer to holds.
type firstChunk struct {
	transport.Transport
	to   *atomic.Uint64
	once *sync.Once
	sent chan struct{}
}

func (t firstChunk) Send(to transport.Peer, m *messages.Message) error {
	if m.Type == messages.MessageType_MSG_SNAPSHOT_CHUNK && to.ID == t.to.Load() {
		t.once.Do(func() { close(t.sent) })
	}
	return t.Transport.Send(to, m)
}

// TestSnapshotReceiverSpawnedWhileExitingIsStopped: a follower cut off
// from its cluster is stopped by its parent while its applier waits in
// Apply. The leader compacts its log past the follower's; once the
// network heals, it sends the follower its snapshot in chunks, and the
// first chunk spawns the follower's snapshot receiver. Once Apply
// returns, the follower's actor terminates.
func TestSnapshotReceiverSpawnedWhileExitingIsStopped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var once sync.Once
		sent := make(chan struct{})
		var follower atomic.Uint64
		c, gates := newGatedCluster(t, 3, func(id uint64, cfg *actors.Config) {
			cfg.Transport = firstChunk{Transport: cfg.Transport, to: &follower, once: &once, sent: sent}
		})
		lead := c.waitLeader()
		f := c.others(lead)[0]
		follower.Store(f)
		c.blockApply(gates, lead, f)
		pid := c.node(f)
		c.net.Isolate(f)
		gone := c.stopExiting(f)
		c.fill(lead, 0, 3)
		c.takeSnapshot(lead)
		c.net.Heal()
		select {
		case <-sent:
		case <-time.After(time.Minute):
			t.Fatalf("the leader %d sent no snapshot chunk to %d within a minute (fake time)", lead, f)
		}
		c.releaseAndWaitGone(gates, f, pid, gone, "snapshot receiver")
	})
}

// TestHostStoppedWhileApplyWaitsClosesItsDatabase: the host of a group's
// leader stops while that node's applier waits in Apply; the node exits
// with it, and a read at a follower on another host makes it spawn a
// replicator meanwhile (as in TestReplicatorSpawnedWhileExitingIsStopped).
// Once Apply returns, the host terminates, having closed its database: a
// host started again on the same filesystem opens it and runs the group.
func TestHostStoppedWhileApplyWaitsClosesItsDatabase(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newHostRig(t)
		var gates [3]*gateSM
		r.wrapSM = func(_ uint64, i int, sm *listSM) actors.StateMachine {
			gates[i] = newGateSM(sm)
			return gates[i]
		}
		r.create(1)
		if err := r.propose(1, "a"); err != nil {
			t.Fatal(err)
		}
		li := -1
		for i, pid := range r.groups[1] {
			st, err := actors.Request[*actors.Status](r.sys.Root, pid, &actors.GetStatus{}, 5*time.Second)
			if err != nil {
				t.Fatalf("status of group 1 on host %d: %v", i+1, err)
			}
			if st.Role == actors.Leader {
				li = i
			}
		}
		if li < 0 {
			t.Fatal("group 1 has no leader after a commit")
		}
		lead, fi := r.groups[1][li], (li+1)%3
		gates[li].armed.Store(true)
		me, _ := inbox(r.sys)
		r.sys.Root.RequestWithCustomSender(lead, &actors.Propose{Data: []byte("block")}, me)
		select {
		case <-gates[li].entered:
		case <-time.After(10 * time.Second):
			t.Fatalf("host %d's node did not apply \"block\" within 10s (fake time)", li+1)
		}
		synctest.Wait()
		gone := r.sys.Root.StopFuture(r.hosts[li])
		synctest.Wait()
		if _, ok := r.sys.ProcessRegistry.Get(lead); !ok {
			t.Fatalf("host %d's node terminated while its applier waits in Apply: the scenario needs it exiting", li+1)
		}
		r.sys.Root.RequestWithCustomSender(r.groups[1][fi], &actors.Read{}, me)
		synctest.Wait()
		// The other two elect a leader of their own once their election
		// timeout passes; cut off, the stopped leader never hears of it
		// (it would step down and stop its replicators).
		r.net.Isolate(uint64(li + 1))
		close(gates[li].release)
		if err := gone.Wait(); err != nil {
			stopChildren(r.sys, lead) // so that the hosts end, and the bubble
			r.stop()
			t.Fatalf("host %d, stopped while its node's applier waited in Apply, did not terminate within 10s (fake time) of its stop once the Apply returned: %v", li+1, err)
		}
		r.startHost(li)
		if st := r.status(li); st.Err != nil {
			t.Fatalf("host %d started again on its filesystem: %v", li+1, st.Err)
		}
		cfg := r.groupConfig(1, li)
		cfg.StateMachine = &listSM{}
		res, err := actors.Request[*actors.CreateGroupResponse](r.sys.Root, r.hosts[li], &actors.CreateGroup{Config: cfg}, 5*time.Second)
		if err == nil {
			err = res.Err
		}
		if err != nil {
			t.Fatalf("group 1 on host %d started again: %v", li+1, err)
		}
		r.stop()
	})
}
