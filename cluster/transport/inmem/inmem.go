package inmem

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/flotilla-raft/flotilla/cluster/transport"
	"github.com/flotilla-raft/flotilla/messages"
)

// Faults describes what a link does to the messages sent over it.
type Faults struct {
	// Drop is the probability, in [0,1], that a message is lost.
	Drop float64
	// Duplicate is the probability, in [0,1], that a delivered message is
	// delivered twice.
	Duplicate float64
	// MinDelay and MaxDelay bound the delay of each delivery, drawn
	// uniformly. Both zero: immediate, FIFO delivery. MaxDelay < MinDelay
	// is treated as MinDelay.
	MinDelay, MaxDelay time.Duration
}

// Link is a directed pair of node ids.
type Link struct{ From, To uint64 }

// LinkStats counts what happened on one directed link. Counters only grow.
type LinkStats struct {
	// Sent: Sends accepted for the link.
	Sent uint64
	// Delivered: handler calls (duplicates included).
	Delivered uint64
	// Dropped: lost to the Drop probability.
	Dropped uint64
	// Blocked: lost to a partition or a Block.
	Blocked uint64
	// Duplicated: extra copies scheduled.
	Duplicated uint64
	// Undeliverable: arrived at a node that was not started, or closed.
	Undeliverable uint64
}

// Option configures a Network.
type Option func(*Network)

// WithMaxMessageSize sets the size limit every transport of the network
// enforces on Send (default transport.DefaultMaxSize), as the encoded
// envelope would measure.
func WithMaxMessageSize(n int) Option {
	return func(net *Network) { net.codec.MaxSize = n }
}

// Network is a simulated network. All methods are safe for concurrent use.
type Network struct {
	codec transport.Codec

	mu sync.Mutex
	// rng draws every fault decision, under mu, in Send order.
	rng        *rand.Rand
	nodes      map[endpoint]*Transport
	faults     Faults
	linkFaults map[Link]Faults
	blocked    map[Link]bool
	stats      map[Link]*LinkStats
}

// NewNetwork returns an empty, fault-free network whose fault decisions
// derive from seed.
func NewNetwork(seed int64, opts ...Option) *Network {
	n := &Network{
		rng:        rand.New(rand.NewPCG(uint64(seed), 0x466c6f74696c6c61)),
		nodes:      map[endpoint]*Transport{},
		linkFaults: map[Link]Faults{},
		blocked:    map[Link]bool{},
		stats:      map[Link]*LinkStats{},
	}
	for _, o := range opts {
		o(n)
	}
	return n
}

// endpoint is where a transport receives: its cluster id and node id.
type endpoint struct{ cluster, id uint64 }

// Transport returns the transport of node id, creating it if the id has
// none or its previous transport is closed (a restart). While the current
// one is open, it is returned again. It is Join(0, id): nodes of one
// cluster, or of clusters that each have a network of their own.
func (n *Network) Transport(id uint64) *Transport { return n.Join(0, id) }

// Join returns the transport of node id of cluster clusterID, as
// Transport does for cluster 0. A transport sends to the nodes of its own
// cluster only, so nodes of many clusters (Raft groups) share one network
// the way they share one remote host: routed by (cluster id, node id).
// Links, their faults, partitions and statistics are by node id: a node id
// stands for a host, whatever the cluster.
func (n *Network) Join(clusterID, id uint64) *Transport {
	n.mu.Lock()
	defer n.mu.Unlock()
	ep := endpoint{clusterID, id}
	if t, ok := n.nodes[ep]; ok && !t.lc.Closed() {
		return t
	}
	t := &Transport{
		net:     n,
		id:      id,
		cluster: clusterID,
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	n.nodes[ep] = t
	return t
}

// HostJoin is Join in the form actors.HostConfig.Join takes
// (hcfg.Join = network.HostJoin); it never fails.
func (n *Network) HostJoin(clusterID, id uint64) (transport.Transport, error) {
	return n.Join(clusterID, id), nil
}

// SetFaults sets the faults of every link without its own (SetLinkFaults).
func (n *Network) SetFaults(f Faults) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.faults = f
}

// SetLinkFaults sets the faults of the directed link from→to, overriding
// SetFaults for it.
func (n *Network) SetLinkFaults(from, to uint64, f Faults) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.linkFaults[Link{from, to}] = f
}

// ClearFaults removes every fault setting (partitions stay: see Heal).
func (n *Network) ClearFaults() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.faults = Faults{}
	clear(n.linkFaults)
}

// Block cuts the directed link from→to (an asymmetric partition): messages
// from `from` to `to` are lost, the reverse direction still works.
func (n *Network) Block(from, to uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.blocked[Link{from, to}] = true
}

// Unblock restores the directed link from→to.
func (n *Network) Unblock(from, to uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.blocked, Link{from, to})
}

// Partition cuts, in both directions, every link between nodes of
// different groups. Nodes in no group are not affected. Partitions add up
// until Heal.
func (n *Network) Partition(groups ...[]uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for i, a := range groups {
		for j, b := range groups {
			if i == j {
				continue
			}
			for _, x := range a {
				for _, y := range b {
					n.blocked[Link{x, y}] = true
				}
			}
		}
	}
}

// Isolate cuts every link to and from id, among the nodes the network
// knows now.
func (n *Network) Isolate(id uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for ep := range n.nodes {
		if other := ep.id; other != id {
			n.blocked[Link{id, other}] = true
			n.blocked[Link{other, id}] = true
		}
	}
}

// Heal removes every partition and Block (faults stay: see ClearFaults).
func (n *Network) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.blocked)
}

// LinkStats returns the counters of the directed link from→to.
func (n *Network) LinkStats(from, to uint64) LinkStats {
	n.mu.Lock()
	defer n.mu.Unlock()
	if s := n.stats[Link{from, to}]; s != nil {
		return *s
	}
	return LinkStats{}
}

// Stats returns the counters of every link used so far; the caller owns the
// map.
func (n *Network) Stats() map[Link]LinkStats {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[Link]LinkStats, len(n.stats))
	for l, s := range n.stats {
		out[l] = *s
	}
	return out
}

// linkStats returns the counters of l, creating them. Caller holds mu.
func (n *Network) linkStats(l Link) *LinkStats {
	s := n.stats[l]
	if s == nil {
		s = new(LinkStats)
		n.stats[l] = s
	}
	return s
}

// send routes m over from→to in cluster. It returns ErrUnknownPeer if
// no transport was ever created for `to` in cluster.
func (n *Network) send(cluster, from, to uint64, m *messages.Message) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.nodes[endpoint{cluster, to}]; !ok {
		return fmt.Errorf("%w: node %d of cluster %d is not on the network", transport.ErrUnknownPeer, to, cluster)
	}
	l := Link{from, to}
	st := n.linkStats(l)
	st.Sent++
	if n.blocked[l] {
		st.Blocked++
		return nil
	}
	f, ok := n.linkFaults[l]
	if !ok {
		f = n.faults
	}
	if f.Drop > 0 && n.rng.Float64() < f.Drop {
		st.Dropped++
		return nil
	}
	copies := 1
	if f.Duplicate > 0 && n.rng.Float64() < f.Duplicate {
		copies = 2
		st.Duplicated++
	}
	for range copies {
		d := f.MinDelay
		if span := f.MaxDelay - f.MinDelay; span > 0 {
			d += time.Duration(n.rng.Int64N(int64(span) + 1))
		}
		if d <= 0 {
			n.arrive(cluster, l, m)
		} else {
			time.AfterFunc(d, func() {
				n.mu.Lock()
				defer n.mu.Unlock()
				n.arrive(cluster, l, m)
			})
		}
	}
	return nil
}

// arrive queues m at the transport that holds l.To of cluster now.
// Caller holds mu.
func (n *Network) arrive(cluster uint64, l Link, m *messages.Message) {
	t := n.nodes[endpoint{cluster, l.To}]
	if t == nil || !t.enqueue(l.From, m) {
		n.linkStats(l).Undeliverable++
	}
}

// delivered records the outcome of one handler call. Called by the
// delivery goroutine, without mu.
func (n *Network) delivered(l Link, ok bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if ok {
		n.linkStats(l).Delivered++
	} else {
		n.linkStats(l).Undeliverable++
	}
}

// Transport is one node's endpoint on a Network. It implements
// transport.Transport, transport.PeerStatuser and transport.StatsReporter.
type Transport struct {
	net     *Network
	id      uint64
	cluster uint64
	lc      transport.Lifecycle

	mu       sync.Mutex
	queue    []arrival
	spare    []arrival // the delivery goroutine's last batch, emptied: the next queue
	running  bool      // delivery goroutine started
	sent     uint64
	sendErrs uint64
	received uint64
	late     uint64

	wake    chan struct{} // cap 1: queue is non-empty
	done    chan struct{} // closed by Close
	stopped chan struct{} // closed when the delivery goroutine ends
}

type arrival struct {
	from uint64
	m    *messages.Message
}

var (
	_ transport.Transport     = (*Transport)(nil)
	_ transport.PeerStatuser  = (*Transport)(nil)
	_ transport.StatsReporter = (*Transport)(nil)
)

// ID returns the node id of the transport.
func (t *Transport) ID() uint64 { return t.id }

// Start implements transport.Transport: it starts the delivery goroutine.
func (t *Transport) Start(_ context.Context, h transport.Handler) error {
	if err := t.lc.Start(h); err != nil {
		return err
	}
	t.mu.Lock()
	t.running = true
	t.mu.Unlock()
	go t.deliverLoop()
	return nil
}

// Send implements transport.Transport. Peer.Address is ignored.
func (t *Transport) Send(to transport.Peer, m *messages.Message) error {
	err := t.send(to, m)
	t.mu.Lock()
	if err != nil {
		t.sendErrs++
	} else {
		t.sent++
	}
	t.mu.Unlock()
	return err
}

func (t *Transport) send(to transport.Peer, m *messages.Message) error {
	if t.lc.Closed() {
		return transport.ErrClosed
	}
	if err := t.net.codec.CheckSize(m); err != nil {
		return err
	}
	return t.net.send(t.cluster, t.id, to.ID, m)
}

// Close implements transport.Transport.
func (t *Transport) Close() error {
	if !t.lc.Close() {
		return nil
	}
	close(t.done)
	t.mu.Lock()
	running := t.running
	t.late += uint64(len(t.queue))
	t.queue = nil
	t.mu.Unlock()
	if running {
		<-t.stopped
	}
	return nil
}

// enqueue adds an arrival; false if the transport is not started or closed.
func (t *Transport) enqueue(from uint64, m *messages.Message) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.running || t.lc.Closed() {
		t.late++
		return false
	}
	t.queue = append(t.queue, arrival{from, m})
	select {
	case t.wake <- struct{}{}:
	default:
	}
	return true
}

func (t *Transport) deliverLoop() {
	defer close(t.stopped)
	for {
		select {
		case <-t.done:
			return
		case <-t.wake:
		}
		t.mu.Lock()
		batch := t.queue
		t.queue, t.spare = t.spare[:0], nil
		t.mu.Unlock()
		for _, a := range batch {
			ok := t.lc.Deliver(a.m)
			t.mu.Lock()
			if ok {
				t.received++
			} else {
				t.late++
			}
			t.mu.Unlock()
			t.net.delivered(Link{a.from, t.id}, ok)
		}
		// Keep the batch's array for a later queue (two arrays take turns),
		// without its messages.
		clear(batch)
		t.mu.Lock()
		t.spare = batch[:0]
		t.mu.Unlock()
	}
}

// Stats implements transport.StatsReporter.
func (t *Transport) Stats() transport.Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return transport.Stats{Sent: t.sent, SendErrors: t.sendErrs, Received: t.received, DroppedClosed: t.late}
}

// PeerStatus implements transport.PeerStatuser: a peer is connected unless
// the link to it is blocked; Sent and Dropped come from the link's stats.
func (t *Transport) PeerStatus() map[uint64]transport.PeerState {
	n := t.net
	n.mu.Lock()
	defer n.mu.Unlock()
	out := map[uint64]transport.PeerState{}
	for ep := range n.nodes {
		id := ep.id
		if id == t.id || ep.cluster != t.cluster {
			continue
		}
		l := Link{t.id, id}
		ps := transport.PeerState{ID: id, State: transport.ConnConnected}
		if n.blocked[l] {
			ps.State = transport.ConnDisconnected
			ps.LastError = "link blocked"
		}
		if s := n.stats[l]; s != nil {
			ps.Sent = s.Sent
			ps.Dropped = s.Dropped + s.Blocked + s.Undeliverable
		}
		out[id] = ps
	}
	return out
}
