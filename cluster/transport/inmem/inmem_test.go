package inmem_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flotilla-raft/flotilla/cluster/transport"
	"github.com/flotilla-raft/flotilla/cluster/transport/inmem"
	"github.com/flotilla-raft/flotilla/cluster/transport/transporttest"
	"github.com/flotilla-raft/flotilla/messages"
)

func TestConformance(t *testing.T) {
	transporttest.Run(t, func(t *testing.T, ids []uint64) map[uint64]transporttest.Node {
		net := inmem.NewNetwork(1)
		out := map[uint64]transporttest.Node{}
		for _, id := range ids {
			out[id] = transporttest.Node{Transport: net.Transport(id)}
		}
		return out
	}, transporttest.Options{})
}

func TestConformanceSmallLimitWithFaults(t *testing.T) {
	// Delays and duplicates do not break the contract (the suite tolerates
	// duplicates and reordering).
	transporttest.Run(t, func(t *testing.T, ids []uint64) map[uint64]transporttest.Node {
		net := inmem.NewNetwork(2, inmem.WithMaxMessageSize(1<<20))
		net.SetFaults(inmem.Faults{Duplicate: 0.1, MaxDelay: time.Millisecond})
		out := map[uint64]transporttest.Node{}
		for _, id := range ids {
			out[id] = transporttest.Node{Transport: net.Transport(id)}
		}
		return out
	}, transporttest.Options{MaxMessageSize: 1 << 20})
}

// recorder is a Handler that records messages and counts per sender.
type recorder struct {
	mu   sync.Mutex
	msgs []*messages.Message
}

func (r *recorder) handle(m *messages.Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
}

func (r *recorder) indexes() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []uint64
	for _, m := range r.msgs {
		out = append(out, m.GetIndex())
	}
	return out
}

// cluster starts transports 1..n on net, registering Close on t.
func cluster(t *testing.T, net *inmem.Network, n uint64) map[uint64]*recorder {
	t.Helper()
	recs := map[uint64]*recorder{}
	for id := uint64(1); id <= n; id++ {
		r := &recorder{}
		tr := net.Transport(id)
		if err := tr.Start(context.Background(), r.handle); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		recs[id] = r
	}
	return recs
}

func send(t *testing.T, net *inmem.Network, from, to, index uint64) {
	t.Helper()
	m := &messages.Message{ClusterId: 1, From: from, To: to, Index: index}
	if err := net.Transport(from).Send(transport.Peer{ID: to}, m); err != nil {
		t.Fatalf("Send %d→%d: %v", from, to, err)
	}
}

// runDropped sends 1000 messages over a lossy link and returns what arrived.
func runDropped(t *testing.T, seed int64) []uint64 {
	var got []uint64
	synctest.Test(t, func(t *testing.T) {
		net := inmem.NewNetwork(seed)
		net.SetFaults(inmem.Faults{Drop: 0.3, MinDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond})
		recs := cluster(t, net, 2)
		for i := uint64(1); i <= 1000; i++ {
			send(t, net, 1, 2, i)
		}
		time.Sleep(10 * time.Millisecond) // fake time: every delay has elapsed
		synctest.Wait()
		got = recs[2].indexes()
		st := net.LinkStats(1, 2)
		if st.Sent != 1000 || st.Dropped+st.Delivered != 1000 {
			t.Fatalf("link stats %+v do not add up to 1000 sent", st)
		}
		if st.Dropped < 200 || st.Dropped > 400 {
			t.Fatalf("dropped %d of 1000 at p=0.3", st.Dropped)
		}
	})
	return got
}

func TestDropAndDelayDeterministicFromSeed(t *testing.T) {
	a, b := runDropped(t, 42), runDropped(t, 42)
	if len(a) != len(b) {
		t.Fatalf("same seed, %d vs %d delivered", len(a), len(b))
	}
	reordered := false
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed, delivery %d differs: %d vs %d", i, a[i], b[i])
		}
		if i > 0 && a[i] < a[i-1] {
			reordered = true
		}
	}
	if !reordered {
		t.Error("random delays did not reorder any message")
	}
	if c := runDropped(t, 43); len(c) == len(a) && equal(a, c) {
		t.Error("different seeds gave identical runs")
	}
}

func equal(a, b []uint64) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestDelayIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := inmem.NewNetwork(7)
		net.SetLinkFaults(1, 2, inmem.Faults{MinDelay: 50 * time.Millisecond, MaxDelay: 100 * time.Millisecond})
		recs := cluster(t, net, 2)
		send(t, net, 1, 2, 1)
		send(t, net, 2, 1, 2) // the reverse link has no delay
		synctest.Wait()
		if n := len(recs[1].indexes()); n != 1 {
			t.Fatalf("undelayed link delivered %d messages, want 1", n)
		}
		time.Sleep(49 * time.Millisecond)
		synctest.Wait()
		if n := len(recs[2].indexes()); n != 0 {
			t.Fatalf("delivered before MinDelay")
		}
		time.Sleep(51 * time.Millisecond)
		synctest.Wait()
		if n := len(recs[2].indexes()); n != 1 {
			t.Fatalf("not delivered by MaxDelay")
		}
	})
}

func TestPartitions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := inmem.NewNetwork(1)
		recs := cluster(t, net, 3)
		all := func(index uint64) {
			for from := uint64(1); from <= 3; from++ {
				for to := uint64(1); to <= 3; to++ {
					if from != to {
						send(t, net, from, to, index*100+from*10+to)
					}
				}
			}
			synctest.Wait()
		}
		has := func(id, index uint64) bool {
			for _, i := range recs[id].indexes() {
				if i == index {
					return true
				}
			}
			return false
		}

		// Symmetric: {1} | {2,3}.
		net.Partition([]uint64{1}, []uint64{2, 3})
		all(1)
		for _, c := range []struct {
			from, to uint64
			want     bool
		}{{1, 2, false}, {2, 1, false}, {1, 3, false}, {3, 1, false}, {2, 3, true}, {3, 2, true}} {
			if got := has(c.to, 100+c.from*10+c.to); got != c.want {
				t.Errorf("symmetric partition: %d→%d delivered=%v, want %v", c.from, c.to, got, c.want)
			}
		}
		if ps := net.Transport(1).PeerStatus()[2]; ps.State != transport.ConnDisconnected {
			t.Errorf("PeerStatus of a partitioned peer = %v", ps.State)
		}

		// Asymmetric: after Heal, block only 1→2.
		net.Heal()
		net.Block(1, 2)
		all(2)
		if has(2, 212) {
			t.Error("blocked link 1→2 delivered")
		}
		if !has(1, 221) {
			t.Error("reverse link 2→1 of a one-way block did not deliver")
		}

		// Isolate, then heal.
		net.Heal()
		net.Isolate(3)
		all(3)
		if has(3, 313) || has(1, 331) || !has(2, 312) {
			t.Error("Isolate(3) did not cut exactly node 3")
		}
		net.Heal()
		all(4)
		for _, idx := range []uint64{412, 413, 421, 423, 431, 432} {
			if !has(idx%10, idx) {
				t.Errorf("after Heal, message %d not delivered", idx)
			}
		}
		if st := net.LinkStats(1, 2); st.Blocked != 2 || st.Delivered != 2 || st.Sent != 4 {
			t.Errorf("LinkStats(1,2) = %+v, want Sent 4, Blocked 2, Delivered 2", st)
		}
	})
}

func TestDuplicate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := inmem.NewNetwork(3)
		net.SetFaults(inmem.Faults{Duplicate: 1})
		recs := cluster(t, net, 2)
		send(t, net, 1, 2, 1)
		synctest.Wait()
		if got := recs[2].indexes(); len(got) != 2 {
			t.Fatalf("Duplicate=1 delivered %v, want two copies", got)
		}
		if st := net.LinkStats(1, 2); st.Duplicated != 1 || st.Delivered != 2 {
			t.Fatalf("stats %+v", st)
		}
	})
}

func TestRestartAndErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := inmem.NewNetwork(1)
		net.SetLinkFaults(1, 2, inmem.Faults{MinDelay: time.Second, MaxDelay: time.Second})
		cluster(t, net, 2)
		if err := net.Transport(1).Send(transport.Peer{ID: 9}, &messages.Message{}); !errors.Is(err, transport.ErrUnknownPeer) {
			t.Fatalf("Send to unknown peer: %v", err)
		}
		send(t, net, 1, 2, 1) // in flight for 1 s
		old := net.Transport(2)
		old.Close()
		if net.Transport(2) == old {
			t.Fatal("Transport after Close returned the closed transport")
		}
		r := &recorder{}
		restarted := net.Transport(2)
		if err := restarted.Start(context.Background(), r.handle); err != nil {
			t.Fatal(err)
		}
		defer restarted.Close()
		time.Sleep(time.Second)
		synctest.Wait()
		if got := r.indexes(); len(got) != 1 {
			t.Fatalf("in-flight message did not reach the restarted node: %v", got)
		}
		if s := net.Transport(1).Stats(); s.Sent != 1 || s.SendErrors != 1 {
			t.Fatalf("sender stats %+v", s)
		}
	})
}

func TestNotStartedDropsAndCounts(t *testing.T) {
	net := inmem.NewNetwork(1)
	a, b := net.Transport(1), net.Transport(2)
	defer a.Close()
	defer b.Close()
	if err := a.Send(transport.Peer{ID: 2}, &messages.Message{}); err != nil {
		t.Fatal(err)
	}
	if st := net.LinkStats(1, 2); st.Undeliverable != 1 {
		t.Fatalf("message to an unstarted node: %+v", st)
	}
	if s := b.Stats(); s.DroppedClosed != 1 {
		t.Fatalf("receiver stats %+v", s)
	}
}

// TestSteadyStateDeliveryDoesNotAllocate: once warmed up, a fault-free
// send and its delivery allocate nothing in the transport (the queue is
// reused, not regrown per batch): on a node's hot path every message
// crosses it.
func TestSteadyStateDeliveryDoesNotAllocate(t *testing.T) {
	net := inmem.NewNetwork(1)
	a, b := net.Transport(1), net.Transport(2)
	defer a.Close()
	defer b.Close()
	got := make(chan struct{}, 1)
	if err := a.Start(context.Background(), func(*messages.Message) {}); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background(), func(*messages.Message) { got <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	m := &messages.Message{}
	to := transport.Peer{ID: 2}
	deadline, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	roundTrip := func() {
		if err := a.Send(to, m); err != nil {
			t.Fatal(err)
		}
		select {
		case <-got:
		case <-deadline.Done():
			t.Fatal("messages not delivered within 30s")
		}
	}
	for range 100 {
		roundTrip()
	}
	if n := testing.AllocsPerRun(1000, roundTrip); n >= 0.5 {
		t.Errorf("a send and its delivery allocated %.2f times, want 0", n)
	}
}

// Join: nodes with the same ids in different clusters share one network
// and each receives only its own cluster's messages.
func TestJoinRoutesByCluster(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := inmem.NewNetwork(1)
		got := map[[2]uint64]chan *messages.Message{}
		for _, c := range []uint64{7, 8} {
			for _, id := range []uint64{1, 2} {
				ch := make(chan *messages.Message, 4)
				got[[2]uint64{c, id}] = ch
				tr := net.Join(c, id)
				if err := tr.Start(context.Background(), func(m *messages.Message) { ch <- m }); err != nil {
					t.Fatal(err)
				}
				defer tr.Close()
			}
		}
		if err := net.Join(7, 1).Send(transport.Peer{ID: 2}, &messages.Message{ClusterId: 7, From: 1, To: 2, Term: 70}); err != nil {
			t.Fatal(err)
		}
		if err := net.Join(8, 1).Send(transport.Peer{ID: 2}, &messages.Message{ClusterId: 8, From: 1, To: 2, Term: 80}); err != nil {
			t.Fatal(err)
		}
		if err := net.Join(9, 1).Send(transport.Peer{ID: 2}, &messages.Message{ClusterId: 9, From: 1, To: 2}); !errors.Is(err, transport.ErrUnknownPeer) {
			t.Fatalf("send to a cluster with no node 2: %v, want ErrUnknownPeer", err)
		}
		synctest.Wait()
		for key, want := range map[[2]uint64]uint64{{7, 2}: 70, {8, 2}: 80} {
			select {
			case m := <-got[key]:
				if m.Term != want {
					t.Errorf("cluster %d node %d received term %d, want %d", key[0], key[1], m.Term, want)
				}
			default:
				t.Errorf("cluster %d node %d received nothing", key[0], key[1])
			}
		}
		for key, ch := range got {
			if len(ch) != 0 {
				t.Errorf("cluster %d node %d received a message of another cluster", key[0], key[1])
			}
		}
	})
}

// HostJoin is Join in the form actors.HostConfig.Join takes, so a host's
// config names it directly: the same transport, never an error.
func TestHostJoinIsJoin(t *testing.T) {
	net := inmem.NewNetwork(1)
	var join func(clusterID, id uint64) (transport.Transport, error) = net.HostJoin
	tr, err := join(7, 2)
	if err != nil {
		t.Fatal(err)
	}
	if tr != transport.Transport(net.Join(7, 2)) {
		t.Fatalf("HostJoin(7, 2) = %p, want Join(7, 2) = %p", tr, net.Join(7, 2))
	}
}
