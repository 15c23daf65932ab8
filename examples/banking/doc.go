// Command banking is a bank ledger replicated with Flotilla: the example of
// a multi-machine application whose state machine is a Raft node's.
//
//	banking server --id 1 --listen 127.0.0.1:7001 --peers 2=127.0.0.1:7002,3=127.0.0.1:7003 --data ./data/1 --insecure
//	banking client --servers 127.0.0.1:8001,127.0.0.1:8002,127.0.0.1:8003 transfer alice bob 10
//	banking demo      # 3 server processes, concurrent clients, the leader killed and restarted
//	banking verify    # a concurrent history with leader kills, checked for linearizability
//
// # Architecture
//
// Each server process runs one Raft node actor (package actors) as the
// child of its application actor, talking to its peers over the gRPC
// transport (cluster/transport/remote), its log in a Pebble database
// (persistence/pebblestore). The ledger (Ledger) is the node's
// StateMachine: every committed command is applied with
// AppliedIndexStore.CommitApplied, so balances, the session table and the
// applied index are written in one atomic batch and no entry is ever
// applied twice across crashes. Balance reads are linearizable
// (actors.Read, ReadIndex). Clients speak HTTP+JSON to any server (api.go);
// a follower answers 307 with the leader's API address, and clients retry
// a command with the same client id and sequence number, which the ledger
// deduplicates. README.md describes the protocol and the guarantees.
package main
