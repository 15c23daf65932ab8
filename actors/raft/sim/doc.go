// Package sim is a deterministic simulator for the Raft core: it runs N
// nodes of package raft with a seeded scheduler and injects message loss,
// delay, reordering and duplication, symmetric and asymmetric partitions,
// slow disks, snapshots, configuration changes (promotions, demotions,
// joint changes of several voters), and crash-restarts that lose everything
// a node had not yet persisted. After every step it checks Raft's safety properties
// (thesis §3.6.3): election safety, log matching, leader completeness and
// state machine safety; at the end it heals the network, proposes once
// more, and checks that every node applies every entry that any node
// applied (so every acknowledged proposal) and the new one within a
// bounded number of ticks.
//
// Each core reads its stable log from its disk (the Disk is its
// raft.Storage) through a small entry cache, takes committed entries in
// small batches and acknowledges them a step later (AppliedTo), so that
// every run exercises the reads of a log that left memory.
//
// The same Options and seed always produce the same run, so a failure is
// replayed by its seed; see TestReplay.
//
// Files: sim.go (Options, the cluster and its run: the faulty phase, then
// the heal and the liveness check), nodes.go (start, crash), disk.go (a
// node's stable storage, its raft.Storage), faults.go (the faults and operations of a step),
// step.go (ticks, delivery, persistence, Ready, the state machine) and
// checks.go (the safety checks of every step).
package sim
