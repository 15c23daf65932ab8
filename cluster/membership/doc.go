// Package membership holds a Raft cluster's membership as a value: the
// configuration carried by configuration entries and snapshots
// (messages.ClusterConfig: voters, outgoing voters while joint, learners
// and the cluster-wide settings), its validation, the quorum math of a
// majority and of a joint configuration (thesis §4.3), and the
// transitions between configurations: entering joint consensus when
// more than one voter changes and leaving it, adding and removing
// learners, promoting learners and demoting voters.
//
// It is pure: no clock, no I/O, no state. The deterministic core
// (actors/raft) puts these values in force and counts its votes and
// matches with them; the actor shell (actors) builds the operator's
// membership changes with them. Everything here takes configurations
// by pointer and never mutates them: a transition returns a new value.
package membership
