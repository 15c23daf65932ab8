package transporttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/flotilla-raft/flotilla/cluster/transport"
	"github.com/flotilla-raft/flotilla/messages"
)

// Node is one member of a network built by a Factory: a transport that has
// not been started yet, and the address peers use to reach it.
type Node struct {
	Transport transport.Transport
	Address   string
}

// Factory builds a fresh network with one not-yet-started transport per id,
// all able to reach each other. It should register t.Cleanup to release
// anything beyond the transports (the suite closes every transport itself).
type Factory func(t *testing.T, ids []uint64) map[uint64]Node

// Options tune the suite to the transport under test.
type Options struct {
	// MaxMessageSize is the encoded-size limit the Factory configures.
	// Default transport.DefaultMaxSize.
	MaxMessageSize int
	// Timeout bounds each wait for a delivery. Default 10 s.
	Timeout time.Duration
	// Messages is the count for the "many messages" and concurrency cases.
	// Default 1000.
	Messages int
	// Parallel runs the cases in parallel (t.Parallel), for transports
	// whose networks are slow to build but independent of each other.
	Parallel bool
}

func (o *Options) defaults() {
	if o.MaxMessageSize == 0 {
		o.MaxMessageSize = transport.DefaultMaxSize
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Messages == 0 {
		o.Messages = 1000
	}
}

// ClusterID is the cluster id the suite puts in its messages.
const ClusterID = 0xF107

// Run runs the conformance suite as subtests of t.
func Run(t *testing.T, newNetwork Factory, opts Options) {
	opts.defaults()
	cases := []struct {
		name string
		fn   func(t *testing.T, h *harness)
	}{
		{"DeliverIntactToAddressee", testDeliverIntact},
		{"AllPairs", testAllPairs},
		{"ManyMessages", testMany},
		{"ConcurrentSenders", testConcurrentSenders},
		{"LargeMessage", testLarge},
		{"Oversized", testOversized},
		{"InvalidUse", testInvalidUse},
		{"SendAfterClose", testSendAfterClose},
		{"NoDeliveryAfterClose", testNoDeliveryAfterClose},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if opts.Parallel {
				t.Parallel()
			}
			c.fn(t, newHarness(t, newNetwork, opts))
		})
	}
}

// inbox records what one node's Handler received.
type inbox struct {
	mu      sync.Mutex
	msgs    []*messages.Message
	notify  chan struct{}
	closed  atomic.Bool // set after the node's Close returned
	lateErr atomic.Value
}

func (b *inbox) handle(m *messages.Message) {
	if b.closed.Load() {
		b.lateErr.CompareAndSwap(nil, fmt.Sprintf("Handler called after Close returned, with %v", m))
	}
	b.mu.Lock()
	b.msgs = append(b.msgs, m)
	b.mu.Unlock()
	select {
	case b.notify <- struct{}{}:
	default:
	}
}

func (b *inbox) snapshot() []*messages.Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*messages.Message(nil), b.msgs...)
}

type harness struct {
	t      *testing.T
	opts   Options
	ids    []uint64
	nodes  map[uint64]Node
	inbox  map[uint64]*inbox
	closed map[uint64]bool
}

func newHarness(t *testing.T, newNetwork Factory, opts Options) *harness {
	ids := []uint64{1, 2, 3}
	h := &harness{t: t, opts: opts, ids: ids, nodes: newNetwork(t, ids),
		inbox: map[uint64]*inbox{}, closed: map[uint64]bool{}}
	for _, id := range ids {
		n, ok := h.nodes[id]
		if !ok || n.Transport == nil {
			t.Fatalf("factory returned no transport for node %d", id)
		}
		b := &inbox{notify: make(chan struct{}, 1)}
		h.inbox[id] = b
		if err := n.Transport.Start(context.Background(), b.handle); err != nil {
			t.Fatalf("node %d: Start: %v", id, err)
		}
	}
	t.Cleanup(func() {
		for _, id := range ids {
			if err := h.nodes[id].Transport.Close(); err != nil {
				t.Errorf("node %d: Close: %v", id, err)
			}
			if v := h.inbox[id].lateErr.Load(); v != nil {
				t.Errorf("node %d: %s", id, v)
			}
		}
	})
	return h
}

func (h *harness) peer(id uint64) transport.Peer {
	return transport.Peer{ID: id, Address: h.nodes[id].Address}
}

func (h *harness) send(from, to uint64, m *messages.Message) {
	h.t.Helper()
	if err := h.nodes[from].Transport.Send(h.peer(to), m); err != nil {
		h.t.Fatalf("node %d: Send to %d: %v", from, to, err)
	}
}

func (h *harness) close(id uint64) {
	h.t.Helper()
	if err := h.nodes[id].Transport.Close(); err != nil {
		h.t.Fatalf("node %d: Close: %v", id, err)
	}
	h.inbox[id].closed.Store(true)
	h.closed[id] = true
}

// waitFor waits until node id's inbox satisfies done, or fails the test
// describing want.
func (h *harness) waitFor(id uint64, want string, done func([]*messages.Message) bool) []*messages.Message {
	h.t.Helper()
	deadline := time.NewTimer(h.opts.Timeout)
	defer deadline.Stop()
	b := h.inbox[id]
	for {
		got := b.snapshot()
		if done(got) {
			return got
		}
		select {
		case <-b.notify:
		case <-deadline.C:
			h.t.Fatalf("node %d: after %v still waiting for %s (received %d messages)", id, h.opts.Timeout, want, len(got))
		}
	}
}

// msg builds a message from→to whose Index identifies it.
func msg(from, to, index uint64) *messages.Message {
	return &messages.Message{Type: messages.MessageType_MSG_HEARTBEAT, ClusterId: ClusterID,
		From: from, To: to, Term: 1, Index: index}
}

// indexesFrom collects the distinct Index values of messages sent by from.
func indexesFrom(ms []*messages.Message, from uint64) map[uint64]bool {
	seen := map[uint64]bool{}
	for _, m := range ms {
		if m.GetFrom() == from {
			seen[m.GetIndex()] = true
		}
	}
	return seen
}

func testDeliverIntact(t *testing.T, h *harness) {
	want := &messages.Message{
		Type: messages.MessageType_MSG_APPEND, ClusterId: ClusterID, From: 1, To: 2, Term: 5,
		LogTerm: 4, Index: 41, Commit: 40, Context: []byte("ctx"),
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		Entries: []*messages.Entry{
			{Term: 4, Index: 42, Type: messages.EntryType_ENTRY_NORMAL, Data: []byte("set x=1"), ClientId: 9, Sequence: 1},
			{Term: 5, Index: 43, Type: messages.EntryType_ENTRY_NOOP},
			{Term: 5, Index: 44, Type: messages.EntryType_ENTRY_CONFIG, Data: []byte{0, 1, 2, 255}},
		},
	}
	other := msg(1, 3, 7)
	h.send(1, 2, want)
	h.send(1, 3, other)
	got := h.waitFor(2, "the AppendEntries from node 1", func(ms []*messages.Message) bool { return len(ms) > 0 })
	if !proto.Equal(got[0], want) {
		t.Fatalf("node 2 received\n%v\nwant\n%v", got[0], want)
	}
	got3 := h.waitFor(3, "the heartbeat from node 1", func(ms []*messages.Message) bool { return len(ms) > 0 })
	for _, m := range append(got, got3...) {
		if !proto.Equal(m, want) && !proto.Equal(m, other) {
			t.Fatalf("unexpected message %v", m)
		}
	}
	for _, m := range got3 {
		if m.GetTo() != 3 {
			t.Fatalf("node 3 received a message for node %d: %v", m.GetTo(), m)
		}
	}
	for _, m := range h.inbox[2].snapshot() {
		if m.GetTo() != 2 {
			t.Fatalf("node 2 received a message for node %d: %v", m.GetTo(), m)
		}
	}
	if n := len(h.inbox[1].snapshot()); n != 0 {
		t.Fatalf("sender node 1 received %d messages, want 0", n)
	}
}

func testAllPairs(t *testing.T, h *harness) {
	for _, from := range h.ids {
		for _, to := range h.ids {
			if from != to {
				h.send(from, to, msg(from, to, from*100+to))
			}
		}
	}
	for _, to := range h.ids {
		h.waitFor(to, "one message from every other node", func(ms []*messages.Message) bool {
			for _, from := range h.ids {
				if from != to && !indexesFrom(ms, from)[from*100+to] {
					return false
				}
			}
			return true
		})
	}
}

func testMany(t *testing.T, h *harness) {
	n := uint64(h.opts.Messages)
	for i := uint64(1); i <= n; i++ {
		h.send(1, 2, msg(1, 2, i))
	}
	got := h.waitFor(2, fmt.Sprintf("%d distinct messages", n), func(ms []*messages.Message) bool {
		return uint64(len(indexesFrom(ms, 1))) == n
	})
	for _, m := range got {
		if m.GetIndex() < 1 || m.GetIndex() > n {
			t.Fatalf("received a message that was never sent: %v", m)
		}
	}
}

func testConcurrentSenders(t *testing.T, h *harness) {
	const goroutines = 4
	per := uint64(h.opts.Messages / goroutines)
	var wg sync.WaitGroup
	errs := make(chan error, 2*goroutines)
	for _, from := range []uint64{1, 3} {
		for g := uint64(0); g < goroutines; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := uint64(0); i < per; i++ {
					if err := h.nodes[from].Transport.Send(h.peer(2), msg(from, 2, g*per+i)); err != nil {
						errs <- fmt.Errorf("node %d: Send: %w", from, err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	h.waitFor(2, fmt.Sprintf("%d distinct messages from each of nodes 1 and 3", goroutines*per), func(ms []*messages.Message) bool {
		return uint64(len(indexesFrom(ms, 1))) == goroutines*per && uint64(len(indexesFrom(ms, 3))) == goroutines*per
	})
}

func testLarge(t *testing.T, h *harness) {
	// Above gRPC's default 4 MiB receive limit, which network transports
	// must raise.
	size := min(h.opts.MaxMessageSize/2, 5<<20)
	m := msg(1, 2, 1)
	m.Entries = []*messages.Entry{{Term: 1, Index: 1, Data: bytes.Repeat([]byte("raft"), size/4)}}
	h.send(1, 2, m)
	got := h.waitFor(2, fmt.Sprintf("a %d-byte message", size), func(ms []*messages.Message) bool { return len(ms) > 0 })
	if !proto.Equal(got[0], m) {
		t.Fatalf("large message changed in transit (got %d bytes of entry data, want %d)",
			len(got[0].GetEntries()[0].GetData()), size/4*4)
	}
}

func testOversized(t *testing.T, h *harness) {
	m := msg(1, 2, 1)
	m.Context = make([]byte, h.opts.MaxMessageSize+1)
	err := h.nodes[1].Transport.Send(h.peer(2), m)
	if !errors.Is(err, transport.ErrOversized) {
		t.Fatalf("Send of a %d-byte message with limit %d: err = %v, want ErrOversized", len(m.Context), h.opts.MaxMessageSize, err)
	}
	// The transport still works afterwards.
	h.send(1, 2, msg(1, 2, 2))
	h.waitFor(2, "a normal message after an oversized one", func(ms []*messages.Message) bool { return len(ms) > 0 })
}

func testInvalidUse(t *testing.T, h *harness) {
	tr := h.nodes[1].Transport
	if err := tr.Start(context.Background(), func(*messages.Message) {}); !errors.Is(err, transport.ErrAlreadyStarted) {
		t.Errorf("second Start: err = %v, want ErrAlreadyStarted", err)
	}
	if err := tr.Send(h.peer(2), nil); !errors.Is(err, transport.ErrInvalidMessage) {
		t.Errorf("Send(nil): err = %v, want ErrInvalidMessage", err)
	}
}

func testSendAfterClose(t *testing.T, h *harness) {
	h.close(1)
	if err := h.nodes[1].Transport.Send(h.peer(2), msg(1, 2, 1)); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Send after Close: err = %v, want ErrClosed", err)
	}
	if err := h.nodes[1].Transport.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := h.nodes[1].Transport.Start(context.Background(), func(*messages.Message) {}); err == nil {
		t.Fatalf("Start after Close succeeded")
	}
}

func testNoDeliveryAfterClose(t *testing.T, h *harness) {
	// Prove the link 1→2 works, then close 2 and keep sending to it.
	h.send(1, 2, msg(1, 2, 1))
	h.waitFor(2, "a message before Close", func(ms []*messages.Message) bool { return len(ms) > 0 })
	h.close(2)
	for i := uint64(2); i <= 50; i++ {
		if err := h.nodes[1].Transport.Send(h.peer(2), msg(1, 2, i)); err != nil && !isAllowedSendErr(err) {
			t.Fatalf("Send to a closed peer: unexpected error %v", err)
		}
	}
	// A marker through another link gives in-flight messages time to land;
	// the inbox's closed flag catches any Handler call on node 2.
	h.send(1, 3, msg(1, 3, 99))
	h.waitFor(3, "the marker", func(ms []*messages.Message) bool { return len(ms) > 0 })
	if v := h.inbox[2].lateErr.Load(); v != nil {
		t.Fatalf("node 2: %s", v)
	}
}

// isAllowedSendErr: sending to a peer that went away may be refused, but
// only with a documented error.
func isAllowedSendErr(err error) bool {
	return errors.Is(err, transport.ErrUnknownPeer) || errors.Is(err, transport.ErrInvalidAddress)
}
