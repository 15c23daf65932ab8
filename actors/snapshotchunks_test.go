package actors_test

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/cluster/transport"
	"github.com/flotilla-raft/flotilla/cluster/transport/inmem"
	"github.com/flotilla-raft/flotilla/messages"
)

// InstallSnapshot in chunks, through the public actor API on the
// in-memory network under testing/synctest (fake time).

// chunkCounter counts the snapshot bytes a node's transport sends in
// chunks, and the chunks.
type chunkCounter struct {
	transport.Transport
	bytes, chunks atomic.Uint64
}

func (t *chunkCounter) Send(to transport.Peer, m *messages.Message) error {
	if m.Type == messages.MessageType_MSG_SNAPSHOT_CHUNK {
		t.bytes.Add(uint64(len(m.GetSnapshotChunk().GetData())))
		t.chunks.Add(1)
	}
	return t.Transport.Send(to, m)
}

// snapshotEvents reads the cluster's events until cond holds for one,
// failing after a minute of fake time; it returns every
// SnapshotSendProgress seen on the way, in order.
func (c *cluster) snapshotEvents(what string, cond func(ev any) bool) []*actors.SnapshotSendProgress {
	c.t.Helper()
	var seen []*actors.SnapshotSendProgress
	deadline := time.After(time.Minute)
	for {
		select {
		case ev := <-c.events:
			if p, ok := ev.(*actors.SnapshotSendProgress); ok {
				seen = append(seen, p)
			}
			if cond(ev) {
				return seen
			}
		case <-deadline:
			c.t.Fatalf("no %s within a minute (fake time)", what)
		}
	}
}

// TestSnapshotChunksResumeAfterDroppedConnections: a new member joins a
// cluster whose leader compacted its log, so it needs the snapshot
// (~200 KiB, sent in 4 KiB chunks with a 16 KiB window at 256 KiB/s, over
// links with 5ms of delay). The
// connection to it drops twice mid-transfer: once briefly (the leader
// asks where the follower is and goes on from there), once for several
// election timeouts (the leader's core gives the stalled transfer up and
// asks for the snapshot again; the new transfer resumes from the offset
// the follower acknowledged). The bytes sent twice are about a window per
// drop, not the snapshot; the new member ends with the leader's state.
func TestSnapshotChunksResumeAfterDroppedConnections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const chunk, window = 4 << 10, 16 << 10
		counters := map[uint64]*chunkCounter{}
		c := newClusterWith(t, 3, func(c *cluster) {
			c.configure = func(id uint64, cfg *actors.Config) {
				cfg.SnapshotChunkBytes, cfg.SnapshotWindowBytes, cfg.SnapshotBandwidth = chunk, window, 256<<10
				cfg.SnapshotResendTimeout = 10 * time.Millisecond
				cfg.RetainEntries = -1
				counters[id] = &chunkCounter{Transport: cfg.Transport}
				cfg.Transport = counters[id]
			}
		})
		lead := c.waitLeader()
		// 5ms each way: a window of chunks is in flight when a drop
		// comes.
		c.net.SetFaults(inmem.Faults{MinDelay: 5 * time.Millisecond, MaxDelay: 5 * time.Millisecond})
		payload := strings.Repeat("x", 1000)
		for i := range 200 {
			if _, err := c.propose(lead, fmt.Sprintf("%03d-%s", i, payload)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := actors.Request[*actors.TakeSnapshotResponse](c.sys.Root, c.node(lead), &actors.TakeSnapshot{}, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		c.addNode(4)
		added := memberReq[*actors.MembershipResponse](c, lead, &actors.AddMember{ID: 4, Address: "node-4"})

		var size uint64
		progressTo4 := func(ev any, atLeast float64) bool {
			p, ok := ev.(*actors.SnapshotSendProgress)
			if ok && p.Peer == 4 {
				size = p.Size
			}
			return ok && p.Peer == 4 && float64(p.Acked) >= atLeast*float64(p.Size)
		}
		seen := c.snapshotEvents("quarter of the snapshot acknowledged", func(ev any) bool { return progressTo4(ev, 0.25) })
		// A short drop: a fifth of an election timeout.
		c.net.Isolate(4)
		time.Sleep(20 * time.Millisecond)
		c.net.Heal()
		seen = append(seen, c.snapshotEvents("half of the snapshot acknowledged", func(ev any) bool { return progressTo4(ev, 0.5) })...)
		// A long drop: five election timeouts; the leader gives the
		// transfer up, and starts it again once it hears from 4.
		held := seen[len(seen)-1].Acked
		c.net.Isolate(4)
		time.Sleep(500 * time.Millisecond)
		c.net.Heal()
		var resumed *actors.SnapshotSendProgress
		seen = append(seen, c.snapshotEvents("the snapshot received by 4", func(ev any) bool {
			if p, ok := ev.(*actors.SnapshotSendProgress); ok && p.Peer == 4 && (resumed == nil || p.ResumedFrom > resumed.ResumedFrom) {
				resumed = p
			}
			r, ok := ev.(*actors.SnapshotReceived)
			return ok && r.NodeID == 4
		})...)
		if resumed == nil || resumed.ResumedFrom < held {
			t.Fatalf("no transfer resumed from at least %d bytes (acknowledged before the long drop): %+v", held, resumed)
		}
		if r := <-added; r.err != nil {
			t.Fatalf("AddMember: %v", r.err)
		}
		c.waitApplied(200, 4)
		if got, want := c.sm(4).list(), c.sm(lead).list(); !slices.Equal(got, want) {
			t.Fatalf("node 4 holds %d commands, the leader %d", len(got), len(want))
		}
		sent := counters[lead].bytes.Load()
		resent := sent - size
		t.Logf("snapshot %d bytes: %d chunk bytes sent in %d chunks, %d sent again (window %d); resumed from %d; %d progress events",
			size, sent, counters[lead].chunks.Load(), resent, window, resumed.ResumedFrom, len(seen))
		if sent < size || resent > 2*window {
			t.Fatalf("%d bytes sent for a %d-byte snapshot: %d sent again over two drops, want at most two windows (%d)", sent, size, resent, 2*window)
		}
		// The last acknowledgement may come after the install's answer:
		// the leader still tells the transfer done.
		c.snapshotEvents("the transfer to 4 done", func(ev any) bool {
			p, ok := ev.(*actors.SnapshotSendProgress)
			return ok && p.Peer == 4 && p.Done
		})
		st := c.status(lead)
		i := slices.IndexFunc(st.SnapshotSends, func(p actors.SnapshotSendProgress) bool { return p.Peer == 4 })
		if i < 0 || !st.SnapshotSends[i].Done || st.SnapshotSends[i].Acked != size {
			t.Fatalf("leader status: snapshot sends %+v", st.SnapshotSends)
		}
	})
}
