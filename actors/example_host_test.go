package actors_test

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/cluster/transport/inmem"
	"github.com/flotilla-raft/flotilla/messages"
)

// Many Raft groups in one process: three hosts (in a real deployment, three
// processes on the remote transport), each with one Pebble database, and two
// groups of three nodes, one node of each group on every host. Node i of
// every group runs on host i, so a NotLeaderError's node id names the host
// to ask.
func ExampleHostProps() {
	system := actor.NewActorSystem()
	defer system.Shutdown()
	ctx := system.Root
	dir, err := os.MkdirTemp("", "flotilla-hosts")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	network := inmem.NewNetwork(1) // one network; it routes by (cluster id, node id)

	hosts := map[uint64]*actor.PID{} // node id -> its host
	for id := uint64(1); id <= 3; id++ {
		hcfg := actors.DefaultHostConfig()
		hcfg.DataDir = filepath.Join(dir, fmt.Sprint("host-", id)) // one Pebble database per host
		hcfg.Join = network.HostJoin                               // remote transport: a remote.Host's HostJoin
		props, err := actors.HostProps(hcfg)
		if err != nil {
			fmt.Println(err) // Validate names every bad field
			return
		}
		hosts[id] = ctx.Spawn(props)
	}

	groups := map[uint64]map[uint64]*actor.PID{} // cluster id -> node id -> node
	for _, clusterID := range []uint64{10, 20} {
		boot := &messages.ClusterConfig{
			Settings: &messages.Settings{PreVote: true, CheckQuorum: true, ElectionTicks: 10, HeartbeatTicks: 1},
		}
		for id := uint64(1); id <= 3; id++ {
			boot.Voters = append(boot.Voters, &messages.Member{Id: id, Address: fmt.Sprint("host-", id)})
		}
		groups[clusterID] = map[uint64]*actor.PID{}
		for id, host := range hosts {
			cfg := actors.DefaultConfig() // no LogStore, DataDir or Transport: the host sets them
			cfg.ID, cfg.ClusterID, cfg.Address, cfg.Bootstrap = id, clusterID, fmt.Sprint("host-", id), boot
			cfg.StateMachine = &adder{}
			cfg.NoAutoSnapshots = true // adder takes no snapshots: its log grows until CompactTo
			cfg.TickInterval = 20 * time.Millisecond
			res, err := actors.Request[*actors.CreateGroupResponse](ctx, host, &actors.CreateGroup{Config: cfg}, 5*time.Second)
			if err != nil {
				fmt.Println("create group:", err)
				return
			}
			groups[clusterID][id] = res.PID // a whole node: Propose, Read, GetStatus, Subscribe...
		}
	}

	// Each group elects its own leader; propose (example_cluster_test.go)
	// starts at node 1 and follows NotLeaderError's hint. Client sessions
	// are per group: a client starts at Sequence 1 in each.
	for _, clusterID := range []uint64{10, 20} {
		leader := uint64(1)
		p := &actors.Propose{Data: []byte(fmt.Sprint(clusterID)), ClientID: 1, Sequence: 1}
		res, err := propose(ctx, groups[clusterID], &leader, p)
		if err != nil {
			fmt.Println("propose:", err)
			return
		}
		fmt.Printf("group %d: the sum is now %v\n", clusterID, res.Result)
	}

	for id := uint64(1); id <= 3; id++ {
		st, err := actors.Request[*actors.HostStatus](ctx, hosts[id], &actors.GetHostStatus{}, 5*time.Second)
		if err != nil {
			fmt.Println("host status:", err)
			return
		}
		fmt.Printf("host %d runs %d groups:", id, st.Groups)
		for _, g := range st.PerGroup {
			fmt.Printf(" %d (node %d)", g.ClusterID, g.NodeID)
		}
		fmt.Println()
	}

	// Stop in order: RemoveGroup stops the host's node of a group as Stop
	// does (a leader hands over first, pending requests are answered), and
	// keeps the group's data for a later CreateGroup; stopping the host
	// then closes its database. (Stopping a host that still runs groups
	// stops their nodes at once, without hand-over; what they acknowledged
	// is on disk.)
	for id := uint64(1); id <= 3; id++ {
		for _, clusterID := range []uint64{10, 20} {
			if _, err := actors.Request[*actors.RemoveGroupResponse](ctx, hosts[id], &actors.RemoveGroup{ClusterID: clusterID}, 5*time.Second); err != nil {
				fmt.Println("remove group:", err)
			}
		}
		if err := ctx.StopFuture(hosts[id]).Wait(); err != nil {
			fmt.Println("stop host:", err)
		}
	}
	// Output:
	// group 10: the sum is now 10
	// group 20: the sum is now 20
	// host 1 runs 2 groups: 10 (node 1) 20 (node 1)
	// host 2 runs 2 groups: 10 (node 2) 20 (node 2)
	// host 3 runs 2 groups: 10 (node 3) 20 (node 3)
}
