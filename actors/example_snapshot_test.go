package actors_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/cluster/transport/inmem"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence/memstore"
)

// kv is a key-value state machine with snapshots: commands are "key=value",
// queries a key. Snapshot and Restore let the node compact its log, bring a
// lagging follower up to date, and start again from a snapshot.
type kv struct{ m map[string]string }

func (s *kv) Apply(e *messages.Entry) any {
	k, v, ok := strings.Cut(string(e.Data), "=")
	if !ok {
		return fmt.Errorf("kv: %q is not key=value", e.Data)
	}
	s.m[k] = v
	return len(s.m)
}

func (s *kv) Query(q any) (any, error) { return s.m[q.(string)], nil }

// Snapshot returns the state as of the last applied entry (the applier calls
// it between two entries).
func (s *kv) Snapshot() ([]byte, error) { return json.Marshal(s.m) }

// Restore replaces the whole state with a snapshot's.
func (s *kv) Restore(data []byte) error {
	m := map[string]string{}
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	s.m = m
	fmt.Printf("restored a snapshot of %d keys\n", len(m))
	return nil
}

// A state machine with snapshots: take one (TakeSnapshot; by default the
// node also takes them automatically, see Config.SnapshotEvery and
// SnapshotBytes), stop the node, and start it again on the same
// log store with an empty state machine: Restore brings the state back.
func ExampleSnapshotter() {
	snapshotThenRestart(func() actors.StateMachine { return &kv{m: map[string]string{}} }, []string{"a=1", "b=2", "c=3"}, "b")
	// Output:
	// snapshot taken
	// restored a snapshot of 3 keys
	// after the restart, b = 2
}

// snapshotThenRestart runs a one-node cluster on a memstore with the
// state machine newSM returns: it proposes cmds, takes a snapshot, stops
// the node, starts it again on the same store with a new, empty state
// machine (the snapshot is restored into it), and reads key.
func snapshotThenRestart(newSM func() actors.StateMachine, cmds []string, key string) {
	system := actor.NewActorSystem()
	defer system.Shutdown()
	network := inmem.NewNetwork(1)
	store := memstore.New() // outlives the node: Pebble on disk in a real deployment
	start := func() *actor.PID {
		cfg := actors.DefaultConfig()
		cfg.ID, cfg.Address = 1, "node-1"
		cfg.Bootstrap = &messages.ClusterConfig{Voters: []*messages.Member{{Id: 1, Address: "node-1"}}}
		cfg.Transport = network.Transport(1) // a fresh transport for each start
		cfg.LogStore = store
		cfg.StateMachine = newSM()
		cfg.TickInterval = 10 * time.Millisecond
		props, err := actors.Props(cfg)
		if err != nil {
			panic(err)
		}
		return system.Root.Spawn(props)
	}

	node := start()
	leader := uint64(1)
	nodes := map[uint64]*actor.PID{1: node}
	for i, cmd := range cmds {
		if _, err := propose(system.Root, nodes, &leader, &actors.Propose{Data: []byte(cmd), ClientID: 9, Sequence: uint64(i + 1)}); err != nil {
			fmt.Println(err)
			return
		}
	}
	if _, err := actors.Request[*actors.TakeSnapshotResponse](system.Root, node, &actors.TakeSnapshot{}, time.Second); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("snapshot taken")
	if _, err := actors.Request[*actors.Stopped](system.Root, node, &actors.Stop{}, 5*time.Second); err != nil {
		fmt.Println(err)
		return
	}

	node = start() // an empty state machine: the snapshot is restored into it
	rd, err := actors.Request[*actors.ReadResponse](system.Root, node, &actors.Read{Query: key}, time.Second)
	for tries := 0; err != nil && tries < 100; tries++ { // ErrRetry until the node has elected itself again
		time.Sleep(20 * time.Millisecond)
		rd, err = actors.Request[*actors.ReadResponse](system.Root, node, &actors.Read{Query: key}, time.Second)
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("after the restart, %s = %v\n", key, rd.Result)
	_, _ = actors.Request[*actors.Stopped](system.Root, node, &actors.Stop{}, 5*time.Second)
}
