// Package inmem is an in-memory [transport.Transport] with fault injection,
// for actor-level tests and simulations.
//
// A [Network] connects any number of transports by node id
// (Peer.Address is ignored). Faults are set per network or per directed
// link: drop probability, duplicate probability and a bounded delay drawn
// uniformly from [MinDelay, MaxDelay] (so messages are reordered). Every
// random choice comes from one source seeded by NewNetwork, so a given
// sequence of Sends meets the same faults on every run. Partitions are
// symmetric ([Network.Partition], [Network.Isolate]) or one-way
// ([Network.Block]); [Network.Heal] removes them. [Network.LinkStats]
// counts what happened on each link.
//
// Delivery: each transport has one delivery goroutine, started by Start and
// ended by Close, which calls the Handler in arrival order (FIFO per link
// when there is no delay). Delays use time.AfterFunc, and the package starts
// no goroutine of its own, so a Network created inside a testing/synctest
// bubble runs on the bubble's fake clock; close every transport before the
// bubble ends. A message arriving at a node that is not started, or closed,
// is dropped and counted as Undeliverable. Messages are passed by
// reference, never copied: the contract already forbids mutating them.
//
// A node restart is modelled by closing its transport and calling
// [Network.Transport] again with the same id: messages still in flight are
// delivered to whichever transport holds the id when they arrive.
package inmem
