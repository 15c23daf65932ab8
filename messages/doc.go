// Package messages holds Flotilla's wire and storage types: the .proto files
// (raft.proto: log entries, hard state, snapshots, cluster configurations and
// the Raft messages; transport.proto: the envelope the transports put around a
// Raft message) and the Go code protoc-gen-go generates from them (`make
// proto`; CI checks that the committed code is current).
//
// The deterministic core (actors/raft), the stores (persistence/...) and the
// transports (cluster/...) share these types. Conventions: index and term are
// 1-based, 0 means "none"; once an Entry or a Message has been handed to
// another component it is never mutated: share it, do not copy it. New fields
// and messages take new numbers only, so stored logs keep decoding.
//
// This package imports nothing of Flotilla's own.
package messages
