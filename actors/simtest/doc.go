// Package simtest is the whole-system simulator: Flotilla as users run it,
// under deterministic faults and fake time.
//
// One run (one seed) starts N real node actors (3 or 5) in one process,
// inside a testing/synctest bubble, on the inmem transport with seeded
// loss, duplication, delay (so reordering) and partitions. Every node keeps
// its log in pebblestore over its own vfs.NewCrashableMem filesystem,
// passed as actors.Config.LogStore. A crash stops the node actor where it
// stands (no orderly Stop), clones its filesystem dropping a random share
// of what was not synced (CrashClone), and later spawns a new node actor on
// a store opened on the clone.
//
// The schedule, drawn from the seed, mixes: appends from several clients
// with a client id and sequence number, retried with the same ones after
// an unknown outcome; reads (actors.Read) on leaders and followers,
// ReadIndex or lease-based; automatic (SnapshotEvery, and on one seed in
// three a tiny SnapshotBytes) and manual (TakeSnapshot) snapshots,
// sent to followers in chunks of 16 to 64 bytes so that faults interrupt
// transfers, which resume (Stats.TransfersResumed); tiny
// backpressure caps on one seed in four (Options.Backpressure: clients
// refused with ErrOverloaded back off and retry); session tables smaller
// than the clients and short SessionTTLs on one seed in five
// (Options.SessionExpiry: a client answered ErrSessionExpired goes on
// with a new session; each session starts with a registration, its
// sequence 1, outside the checked history); quiescence on one seed in
// two (Options.Quiesce: groups quiesce whenever the clients pause, and
// wake on the next operation, message or fault); orderly stops, crashes (also right after a
// snapshot) and restarts; leadership transfers; PreVote and CheckQuorum
// changed through the log; pause and resume (StartPaused, Resume);
// stale-read probes (the leader cut off, an append acknowledged by the
// others, then a read on the cut-off node); and membership changes (add a
// learner, promote it, remove a voter, replace a voter by a learner: joint
// consensus; Options.Membership, on in DefaultOptions). Each node
// applies either through the StateMachine interface or, the actor way,
// through actors.ActorStateMachine and an application actor that is
// sometimes slow, rarely slower than the applier waits.
//
// Checks, on every seed:
//   - the client history is linearizable (porcupine, a model of a list per
//     key, appends with unknown outcomes allowed to have happened or not);
//   - every acknowledged append is on every live member exactly once at the
//     end, and no append is anywhere twice (but the session
//     registrations, which a retry after the session expired may repeat);
//   - all replicas have the same state at the same index (a hash chain of
//     the commands applied, checked at every apply and restore), and every
//     member ends at the same state;
//   - no node incarnation applies an index twice or out of order, or skips
//     a command index (between two of its applies, or a snapshot restore
//     and an apply);
//   - no node stops itself except for the documented reason (an
//     application actor that does not answer in time), and a failed start
//     is a violation;
//   - after the faults heal, a leader commits a proposal and every member
//     applies it within a bounded time (20 s of fake time, 2000 ticks): a
//     stuck seed fails with its seed.
//
// On multi-group hosts (Options.Groups > 1, TestHostSweep): every machine
// is one actors.Host (one Pebble database on one crashable filesystem, the
// shared persister) running its node of each of the groups, on one inmem
// network joined per (cluster id, node id). The schedule acts per
// machine: partitions and network faults (by node id, so every group's
// links between two machines at once), host crashes (every group's node
// on the machine stops where it stands, syncs stop reaching the disk, the
// host goes, the disk is crash-cloned; a restart is a new Host on the
// clone re-creating every group's node), and snapshots and leadership
// transfers in one group. Every group has its own clients, history,
// replicas and every check above; a violation names its group. Left out
// in this mode: membership and settings changes, orderly stops, pauses
// and stale-read probes (they act on one node of one group).
//
// Replay: the schedule, the network's fault decisions and every random
// choice derive from the seed, so a seed replays its faults; the
// interleaving of goroutines inside the bubble is the runtime's, so a replay
// is the same schedule, usually the same failure, not the same bytes. A
// failing seed prints its replay command and saves its step trace (and,
// for a non-linearizable history, porcupine's HTML view) under
// $FLOTILLA_TRACE_DIR or the temporary directory.
//
// make test runs a bounded slice of seeds (TestSweep, and TestHostSweep:
// 3 seeds of 4 groups); make sim-shell SEEDS=N runs a long sweep and
// prints what it exercised, make sim-hosts SEEDS=N GROUPS=G one on
// multi-group hosts. Flags of the test: -simshell.seeds, -simshell.start,
// -simshell.groups (TestHostSweep), -simshell.seed (TestReplay),
// -simshell.lease (some, all, none), -simshell.slow, -simshell.membership
// (on by default; =false leaves membership changes out).
// SIMSHELL_DEBUG=1 prints the step trace as it grows.
//
// Files: sim.go (Options, Result, the simulator's state and Run, the
// outline of a seed), hosts.go (the machines of Options.Groups > 1, their
// schedule, and the outline of such a seed), nodes.go (the nodes' lifecycle: start, crash, stop,
// pause, resume, restart after a failure, and the questions asked of
// them), schedule.go (the fault schedule and the heal), membership.go
// (settings and member changes through the log), client.go (the clients),
// replica.go (the replicated state, both ways of applying, and the
// per-incarnation apply checks), history.go (the porcupine model),
// checks.go (liveness after the heal, the final state, linearizability)
// and report.go (the counters, the step trace and the violations).
package simtest
