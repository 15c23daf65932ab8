// Command topics is a log-streaming cluster whose topic ownership is decided
// through Raft: every server runs a Flotilla node actor as the child of its
// application actor (the "broker"), and the replicated state machine is the
// table that says which server owns which topic.
//
//	go run ./examples/topics              # the scripted scenario, in memory
//	go run ./examples/topics -data DIR    # the same with Pebble under DIR
//
// # Architecture
//
// A broker (broker.go) is an ordinary protoactor actor. When it starts it
// spawns its Raft node with ctx.Spawn(actors.Props(cfg)), listing itself in
// Config.Subscribers, so the node is its child and every Raft event
// (EntryApplied, LeaderChanged, RoleChanged, MembershipChanged, NodeStopped)
// arrives in its mailbox as a message. Requests meant for Raft (Propose,
// Read, ChangeConfig, TransferLeadership, GetStatus, Stop) sent to the
// broker are forwarded to the node, so the sender gets the node's answer.
//
// The state machine (table.go) holds topic → owner assignments. Its
// commands are create, assign (a batch of compare-and-set moves, applied
// all or none) and drop. Each assignment carries an epoch: the log index
// of the entry that set its owner.
//
// The rebalancer runs on whichever broker's node leads. It is triggered by
// LeaderChanged (this node became leader), MembershipChanged (a server was
// added or removed with ChangeConfig) and EntryApplied (a topic was created
// or dropped). It reads the table with a linearizable Read, plans the
// fewest moves that leave every voter with ⌊T/N⌋ or ⌈T/N⌉ topics (Plan), and
// proposes them as one assign entry. A plan made from a view that another
// change overtook fails its compare-and-set as a whole and is made again.
// The rebalancer never blocks its actor: requests to the node are futures
// continued with ctx.ReenterAfter.
//
// Clients (client.go) route with a linearizable Read ("which server owns
// topic X?") on any server, then publish to the owner's broker. The broker
// confirms its ownership with a linearizable Read of its own before it
// appends, so a server whose topic was moved away (or that was removed from
// the cluster) refuses, even before it has applied the move.
//
// The scenario (scenario.go) runs three servers over the in-memory
// transport, creates six topics, adds a fourth server (learner, then voter),
// removes a server, transfers leadership and stops everything in order.
package main
