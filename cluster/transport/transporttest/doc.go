// Package transporttest is the conformance suite for implementations of
// [transport.Transport], in the spirit of testing/fstest.TestFS: a user
// transport that passes [Run] satisfies everything the Raft node relies on.
//
// The suite checks, on a healthy network built fresh for every case by the
// caller's [Factory]: messages arrive intact (entries included) at the node
// they are addressed to and nowhere else; every pair of nodes can talk; many
// messages and concurrent senders are all delivered (duplicates are
// tolerated, as the contract allows); a large message within the limit is
// delivered and an oversized one is refused with ErrOversized; Start twice,
// nil messages, Send after Close and double Close behave as documented; and
// no Handler call begins after Close returns.
//
// Waiting is bounded by deadlines that fail with a message naming what did
// not arrive; the suite never sleeps to wait for an event.
package transporttest
