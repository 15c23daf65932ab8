package actors_test

import (
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/cluster/transport"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
)

// validatingSM is a listSM whose SnapshotValidator refuses every snapshot
// while refuse is set, counting the calls.
type validatingSM struct {
	*listSM
	refuse atomic.Bool
	calls  atomic.Int64
}

var errRefusedSnapshot = errors.New("test: snapshot refused")

func (s *validatingSM) ValidateSnapshot(b []byte) error {
	s.calls.Add(1)
	if s.refuse.Load() {
		return errRefusedSnapshot
	}
	return s.listSM.checkList(b)
}

// checkList accepts what Restore can read.
func (s *listSM) checkList(b []byte) error { return (&listSM{}).Restore(b) }

// waitDropped waits (fake time) until node id counted n snapshots refused
// (Status.Dropped.CorruptSnapshot).
func (c *cluster) waitCorruptSnapshots(id uint64, n uint64) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for c.status(id).Dropped.CorruptSnapshot < n {
		if time.Now().After(deadline) {
			c.t.Fatalf("node %d counted %d refused snapshots within 30s (fake time), want %d", id, c.status(id).Dropped.CorruptSnapshot, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A snapshot received in chunks into the store's files is checked before
// the node installs it, as one received whole: the state machine's
// SnapshotValidator is asked, and a refused snapshot is counted
// (Status.Dropped.CorruptSnapshot) and not installed; once the validator
// accepts, the follower installs the leader's next attempt.
func TestChunkedSnapshotIsValidatedBeforeInstall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sms := map[uint64]*validatingSM{}
		c := newClusterWith(t, 3, func(c *cluster) {
			c.configure = func(id uint64, cfg *actors.Config) {
				sms[id] = &validatingSM{listSM: cfg.StateMachine.(*listSM)}
				cfg.StateMachine = sms[id]
				cfg.RetainEntries = -1
			}
		})
		lead, lagging := c.leaveOneBehind(5)
		sms[lagging].refuse.Store(true)
		c.takeSnapshot(lead)
		c.net.Heal()
		c.waitCorruptSnapshots(lagging, 1)
		if got := c.sm(lagging).list(); len(got) != 0 {
			t.Fatalf("the follower installed a snapshot its validator refused: it holds %v", got)
		}
		sms[lagging].refuse.Store(false)
		c.waitApplied(5, lagging)
		c.failOnNodeStopped()
	})
}

// A member that sends a whole snapshot in one chunk whose data is not a
// snapshot at all (its checksums right): the follower refuses it before
// installing and counts it, and goes on following the real leader,
// instead of stopping on a restore that cannot read it.
func TestForgedChunkedSnapshotIsRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 3)
		lead := c.waitLeader()
		f := c.others(lead)[0]
		st := c.status(f)
		attacker := c.net.Transport(99)
		if err := attacker.Start(t.Context(), func(*messages.Message) {}); err != nil {
			t.Fatal(err)
		}
		defer attacker.Close()
		garbage := []byte("not a snapshot")
		m := &messages.Message{Type: messages.MessageType_MSG_SNAPSHOT_CHUNK, From: lead, To: f, Term: st.Term,
			SnapshotChunk: &messages.SnapshotChunk{Metadata: &messages.SnapshotMetadata{Index: 1000, Term: st.Term, Config: st.Config},
				Size: uint64(len(garbage)), Checksum: persistence.SnapshotChecksum(garbage), Data: garbage,
				DataChecksum: persistence.SnapshotChecksum(garbage)}}
		if err := attacker.Send(transport.Peer{ID: f}, m); err != nil {
			t.Fatal(err)
		}
		c.waitCorruptSnapshots(f, 1)
		c.failOnNodeStopped()
		if _, err := c.propose(lead, "after"); err != nil {
			t.Fatal(err)
		}
		c.waitApplied(1, f)
		if now := c.status(f); now.Applied >= 1000 || now.Leader != lead {
			t.Fatalf("after the forged snapshot the follower is at %v", now)
		}
	})
}
