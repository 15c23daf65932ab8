package remote_test

import (
	"context"
	"runtime"
	"testing"

	"github.com/flotilla-raft/flotilla/cluster/transport"
	"github.com/flotilla-raft/flotilla/cluster/transport/remote"
	"github.com/flotilla-raft/flotilla/messages"
)

// TestPeerQueueStartsSmall: the queue of messages waiting for a peer's
// connection starts small and grows with what waits. protoactor's default
// allocates a ring of 1 M slots (16 MiB) per peer at the first message to
// it: 32 MiB of every node of a 3-node cluster, 64 MiB of a 5-node one,
// a large part of a node's memory bound (issue 14; tools/logbench's heap
// profiles showed it).
func TestPeerQueueStartsSmall(t *testing.T) {
	if !inOwnProcess(t) {
		return
	}
	peer := newTransport(t, insecureConfig(2))
	in := start(t, peer)
	tr, err := remote.New(insecureConfig(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	if err := tr.Start(context.Background(), func(*messages.Message) {}); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if err := tr.Send(transport.Peer{ID: 2, Address: peer.Addr()}, msg(1, 2, 1)); err != nil {
		t.Fatal(err)
	}
	expect(t, in, 1, "node 1's message")
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 4<<20 {
		t.Fatalf("the first message to a peer grew the heap by %.1f MiB (want < 4 MiB): the peer's queue was allocated at full size", float64(grown)/(1<<20))
	}
}
