package remote_test

import (
	"slices"
	"testing"
	"time"

	"github.com/flotilla-raft/flotilla/actors"
)

// TestSnapshotInChunksOverGRPC: a node joining a cluster whose leader
// compacted its log gets the snapshot in chunks (of 4 bytes here) over
// the remote transport: gRPC with TLS, each transport in its own process.
func TestSnapshotInChunksOverGRPC(t *testing.T) {
	c := newRaftClusterWith(t, 1, func(cfg *actors.Config) {
		cfg.SnapshotChunkBytes, cfg.RetainEntries = 4, -1
	})
	lead, _ := c.waitLeader()
	for range 20 {
		if _, err := actors.ProposeAndWait(c.sys.Root, c.pids[lead], &actors.Propose{Data: []byte("x")}, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := actors.Request[*actors.TakeSnapshotResponse](c.sys.Root, c.pids[lead], &actors.TakeSnapshot{}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.startNode(4, nil)
	if _, err := actors.Request[*actors.MembershipResponse](c.sys.Root, c.pids[lead], &actors.AddMember{ID: 4, Address: c.nodes[4].Addr()}, time.Minute); err != nil {
		t.Fatalf("AddMember: %v", err)
	}
	var sent actors.SnapshotSendProgress
	waitUntil(t, "node 4 to install the snapshot and apply the leader's state", func() bool {
		st := c.status(lead)
		i := slices.IndexFunc(st.SnapshotSends, func(p actors.SnapshotSendProgress) bool { return p.Peer == 4 })
		if i < 0 || !st.SnapshotSends[i].Done {
			return false
		}
		sent = st.SnapshotSends[i]
		return c.status(4).Applied >= snap.Index && c.sms[4].count() == c.sms[lead].count()
	})
	if sent.Index != snap.Index || sent.Size <= 4 || sent.Acked != sent.Size {
		t.Fatalf("the leader's transfer to 4: %+v, want the snapshot at %d in more than one chunk", sent, snap.Index)
	}
	t.Logf("snapshot at %d: %d bytes in chunks of 4 over gRPC", sent.Index, sent.Size)
}
