// Command topics is a log-streaming cluster whose partition ownership is
// decided through Raft, while the messages themselves never go through
// Raft.
//
//	topics server --id 1 --raft H:P --api H:P --peers ... --data DIR (--ca/--cert/--key | --insecure)
//	topics produce TOPIC MSG...        topics consume TOPIC [--from N] [--follow]
//	topics table | move PARTITION BROKER | add --id N --raft H:P --api H:P | remove ID
//	topics demo                        topics certs --nodes 1=HOST,...
//
// # Architecture
//
// A broker (server.go) is one process: a protoactor application actor
// (broker.go) whose child is a Flotilla Raft node (remote transport, mutual
// TLS binding broker ids to certificates, Raft log in Pebble), a message
// store (store.go, its own Pebble), and an HTTP API (api.go, handlers.go).
//
// The Raft group's state machine (table.go) is only the assignment table:
// per partition (topic/N) its owner, its follower, an epoch (the index of
// the entry that last set them), whether the owner finished its handover
// (ready), and the holders (the brokers whose copy was complete when it
// did); plus each broker's API address. Membership is Raft's own
// configuration, changed with AddMember and RemoveMember.
//
// The leader's application actor is the rebalancer. LeaderChanged (it
// leads), MembershipChanged and EntryApplied make it check at once, and it
// checks every 100 ms while it leads: GetStatus says which voters it heard
// from recently (Progress.RecentActive, kept by CheckQuorum), a voter
// unheard for --grace counts as dead, a linearizable Read gives the
// table, Plan decides, and one Propose carries the moves, each a
// compare-and-set on its partition's epoch.
//
// Writes: the owner confirms its assignment with a linearizable Read, then,
// under the partition's lock, appends the message (Sync) and replicates it
// to the follower (Sync) before it acknowledges. Each message carries its
// epoch. A new owner's handover copies the partition from a holder and
// seals that holder at the new epoch: a sealed store refuses writes and
// replication of older epochs, so an old owner can no longer acknowledge
// anything, and everything it acknowledged is in the copy. The new owner
// pushes the copy to its follower, proposes ready, and only then accepts
// writes. Produce is idempotent: producer id + sequence number per
// partition, deduplicated by the owner from what it stores (the last
// number per producer; an older one is refused).
//
// The demo (demo.go) runs the brokers as processes on 127.0.0.1 and checks
// (check.go) that every acknowledged message is consumed exactly once, in
// order, per partition, and that epochs never overlap.
package main
