package actors_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/messages"
)

// inbox is an actor that collects what it is sent.
func inbox(sys *actor.ActorSystem) (*actor.PID, chan any) {
	ch := make(chan any, 1024)
	pid := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch ctx.Message().(type) {
		case *actor.Started, *actor.Stopping, *actor.Stopped:
			return
		}
		ch <- ctx.Message()
	}))
	return pid, ch
}

func next(t *testing.T, ch chan any) any {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no answer within 10s (fake time)")
		return nil
	}
}

// A Propose with ReplyOnAppend is answered ProposeAccepted with the index
// and term the leader appended it at, then ProposeResponse with the same
// index and term once applied; a retry of the same client and sequence,
// applied or still in flight, gets no second ProposeAccepted.
func TestProposeReplyOnAppend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 3)
		lead := c.waitLeader()
		me, ch := inbox(c.sys)
		term := c.status(lead).Term
		last := c.status(lead).LastIndex

		p := &actors.Propose{Data: []byte("a"), ClientID: 7, Sequence: 1, ReplyOnAppend: true}
		c.sys.Root.RequestWithCustomSender(c.node(lead), p, me)
		acc, ok := next(t, ch).(*actors.ProposeAccepted)
		if !ok || acc.Index != last+1 || acc.Term != term {
			t.Fatalf("first answer %#v, want ProposeAccepted{Index: %d, Term: %d}", acc, last+1, term)
		}
		res, ok := next(t, ch).(*actors.ProposeResponse)
		if !ok || res.Err != nil || res.Index != acc.Index || res.Term != acc.Term {
			t.Fatalf("second answer %#v, want ProposeResponse at %d term %d", res, acc.Index, acc.Term)
		}

		// A retry of an applied command: only its response.
		c.sys.Root.RequestWithCustomSender(c.node(lead), p, me)
		if m := next(t, ch); func() bool { _, ok := m.(*actors.ProposeResponse); return !ok }() {
			t.Fatalf("retry of an applied command answered %#v first, want only *ProposeResponse", m)
		}

		// Two sends of one command back to back: the second is in flight
		// when it arrives; one ProposeAccepted, two responses.
		p2 := &actors.Propose{Data: []byte("b"), ClientID: 7, Sequence: 2, ReplyOnAppend: true}
		c.sys.Root.RequestWithCustomSender(c.node(lead), p2, me)
		c.sys.Root.RequestWithCustomSender(c.node(lead), p2, me)
		var accepted, responses int
		for responses < 2 {
			switch m := next(t, ch).(type) {
			case *actors.ProposeAccepted:
				accepted++
			case *actors.ProposeResponse:
				responses++
			default:
				t.Fatalf("unexpected answer %T", m)
			}
		}
		synctest.Wait()
		select {
		case m := <-ch:
			t.Fatalf("a further answer: %#v", m)
		default:
		}
		if accepted != 1 {
			t.Fatalf("%d ProposeAccepted for one command sent twice, want 1", accepted)
		}
		c.waitApplied(2, c.ids...)
		if got := c.sm(lead).list(); !slices.Equal(got, []string{"a", "b"}) {
			t.Fatalf("applied %q, want [a b] (each once)", got)
		}

		// After a restart of every node, the retry is still known (from
		// the log each node reloads): no ProposeAccepted.
		for _, id := range c.ids {
			c.stop(id)
		}
		for _, id := range c.ids {
			c.start(id)
		}
		lead = c.waitLeader()
		c.sys.Root.RequestWithCustomSender(c.node(lead), p2, me)
		if m := next(t, ch); func() bool { _, ok := m.(*actors.ProposeResponse); return !ok }() {
			t.Fatalf("retry after a restart answered %#v first, want only *ProposeResponse", m)
		}

		// A follower answers NotLeader, no ProposeAccepted.
		c.sys.Root.RequestWithCustomSender(c.node(c.others(lead)[0]), &actors.Propose{Data: []byte("x"), ReplyOnAppend: true}, me)
		if r, ok := next(t, ch).(*actors.ProposeResponse); !ok || !errors.Is(r.Err, actors.ErrNotLeader) {
			t.Fatalf("a follower answered %#v, want ProposeResponse with ErrNotLeader", r)
		}
	})
}

// RetainEntries and RetainBytes bound the entries kept below a snapshot.
func TestRetentionAfterSnapshot(t *testing.T) {
	const cmds = 20
	for _, tc := range []struct {
		name    string
		entries int
		bytes   uint64
		want    uint64 // entries kept at or below the snapshot's index
	}{
		{"default", 0, 0, 0}, // want: every entry (fewer than 64)
		{"entries5", 5, 0, 5},
		{"none", -1, 0, 0},
		{"bytes", 10, 3 * 40, 0}, // want: computed from the entry size below
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newSolo(t, func(cfg *actors.Config) {
					cfg.RetainEntries, cfg.RetainBytes = tc.entries, tc.bytes
				})
				for i := range cmds {
					// 30 bytes of data: each entry encodes to 36..40 bytes.
					if _, err := s.propose(fmt.Sprintf("cmd-%026d", i)); err != nil {
						t.Fatal(err)
					}
				}
				res, err := actors.Request[*actors.TakeSnapshotResponse](s.sys.Root, s.node, &actors.TakeSnapshot{}, 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				st, err := actors.Request[*actors.Status](s.sys.Root, s.node, &actors.GetStatus{}, 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				kept := res.Index + 1 - st.FirstIndex
				want := tc.want
				switch tc.name {
				case "default":
					want = res.Index // 64 > every entry
				case "bytes":
					want = 3 // 3 entries of 36..40 bytes fit in 120, 4 do not
				}
				if kept != want {
					t.Fatalf("snapshot at %d, first index %d: %d entries kept, want %d", res.Index, st.FirstIndex, kept, want)
				}
			})
		})
	}
}

// leaveOneBehind isolates a follower and has n commands applied without
// it; it returns the leader and that follower.
func (c *cluster) leaveOneBehind(n int) (lead, lagging uint64) {
	c.t.Helper()
	lead = c.waitLeader()
	lagging = c.others(lead)[0]
	c.net.Isolate(lagging)
	for i := range n {
		if _, err := c.propose(lead, fmt.Sprint("cmd-", i)); err != nil {
			c.t.Fatal(err)
		}
	}
	// The leader's replicators send on their own goroutines: let every
	// send of these entries reach the transport while the link is still
	// cut (a send that ran after a later Heal would deliver them).
	synctest.Wait()
	return lead, lagging
}

// ownSM is a state machine that owns its durability (transactional
// apply): it reports its applied index and deduplicates on its own, so it
// can compact the log with CompactTo. It counts its snapshots.
type ownSM struct {
	restorerSM
	applied   uint64
	snapshots int
}

func (s *ownSM) Apply(e *messages.Entry) any {
	r := s.listSM.Apply(e)
	s.mu.Lock()
	s.applied = e.Index
	s.mu.Unlock()
	return r
}

func (s *ownSM) AppliedIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied, nil
}

func (s *ownSM) DeduplicatesCommands() {}

func (s *ownSM) Snapshot() ([]byte, error) {
	s.mu.Lock()
	s.snapshots++
	s.mu.Unlock()
	return s.listSM.Snapshot()
}

func (s *ownSM) RestoreSnapshot(meta actors.SnapshotMeta, data []byte) error {
	if err := s.restorerSM.RestoreSnapshot(meta, data); err != nil {
		return err
	}
	s.mu.Lock()
	s.applied = meta.Index
	s.mu.Unlock()
	return nil
}

func (s *ownSM) snapshotCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapshots
}

// The application compacts the log at an index it chooses (CompactTo): no
// snapshot is taken then; a follower that later needs one gets the
// application's data, made on demand at the leader's applied index.
func TestCompactToAndSnapshotOnDemand(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		sms := map[uint64]*ownSM{}
		c := newClusterWith(t, 3, func(c *cluster) {
			c.onPebble(dir)
			c.configure = func(id uint64, cfg *actors.Config) {
				if sms[id] == nil {
					sms[id] = &ownSM{} // its state outlives a restart, as a durable one
				}
				cfg.StateMachine = sms[id]
				cfg.RetainEntries = -1
			}
		})
		lead, lagging := c.leaveOneBehind(10)
		applied := c.settledApplied(lead)
		if _, err := actors.Request[*actors.CompactToResponse](c.sys.Root, c.node(lead), &actors.CompactTo{Index: applied + 1}, 5*time.Second); !errors.Is(err, actors.ErrBeyondApplied) {
			t.Fatalf("CompactTo past applied: %v, want ErrBeyondApplied", err)
		}
		chosen := applied - 3
		res, err := actors.Request[*actors.CompactToResponse](c.sys.Root, c.node(lead), &actors.CompactTo{Index: chosen}, 5*time.Second)
		if err != nil || res.FirstIndex != chosen+1 {
			t.Fatalf("CompactTo %d: %+v %v, want first index %d", chosen, res, err, chosen+1)
		}
		if st := c.status(lead); st.FirstIndex != chosen+1 {
			t.Fatalf("first index %d after CompactTo %d", st.FirstIndex, chosen)
		}
		if _, err := actors.Request[*actors.CompactToResponse](c.sys.Root, c.node(lead), &actors.CompactTo{Index: chosen}, 5*time.Second); !errors.Is(err, actors.ErrCompacted) {
			t.Fatalf("CompactTo again at %d: %v, want ErrCompacted", chosen, err)
		}
		if n := sms[lead].snapshotCount(); n != 0 {
			t.Fatalf("the leader's state machine made %d snapshots at CompactTo, want none (made on demand)", n)
		}
		if _, err := c.propose(lead, "after"); err != nil {
			t.Fatal(err)
		}
		if _, err := actors.Request[*actors.CompactToResponse](c.sys.Root, c.node(lead), &actors.CompactTo{Index: chosen + 1}, 5*time.Second); err != nil {
			t.Fatalf("a second CompactTo at %d: %v", chosen+1, err)
		}

		c.net.Heal()
		sms[lagging].waitRestored(t, lagging)
		if n := sms[lead].snapshotCount(); n == 0 {
			t.Fatal("the leader's state machine made no snapshot for the lagging follower")
		}
		meta := sms[lagging].restored()[0]
		if meta.Index < chosen+1 {
			t.Fatalf("the follower restored a snapshot at %d, want at least %d (the leader's applied index)", meta.Index, chosen+1)
		}
		waitList(t, sms, 11)
		if got, want := sms[lagging].list(), sms[lead].list(); !slices.Equal(got, want) {
			t.Fatalf("follower holds %q, leader %q", got, want)
		}
		if _, err := c.propose(lead, "last"); err != nil {
			t.Fatal(err)
		}
		waitList(t, sms, 12)

		// The leader restarts on its store, which holds the compaction
		// without snapshot data: its state machine's applied index covers
		// it, and it carries on.
		c.stop(lead)
		c.drainEvents()
		c.start(lead)
		lead = c.waitLeader()
		if _, err := c.propose(lead, "again"); err != nil {
			t.Fatal(err)
		}
		waitList(t, sms, 13)
		c.failOnNodeStopped()
	})
}

// waitList waits until every state machine holds n commands.
func waitList(t *testing.T, sms map[uint64]*ownSM, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for id, sm := range sms {
		for len(sm.list()) < n {
			if time.Now().After(deadline) {
				t.Fatalf("node %d holds %q, want %d commands", id, sm.list(), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// CompactTo is refused for a state machine that does not own its
// durability.
func TestCompactToNeedsAnOwningStateMachine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSolo(t, nil)
		if _, err := s.propose("x"); err != nil {
			t.Fatal(err)
		}
		_, err := actors.Request[*actors.CompactToResponse](s.sys.Root, s.node, &actors.CompactTo{Index: 1}, 5*time.Second)
		if err == nil {
			t.Fatal("CompactTo accepted for a listSM (no AppliedIndexer, no CommandDeduplicator)")
		}
	})
}

// Requests sent without a sender (RootContext.Send: nobody waits for the
// answer) are served and their answers dropped: a Read so sent, to the
// leader or to a follower, does not stop the node, nor does a Propose.
func TestRequestsWithoutSenderAreServed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 3)
		lead := c.waitLeader()
		c.sys.Root.Send(c.node(lead), &actors.Propose{Data: []byte("x")})
		for _, id := range c.ids {
			c.sys.Root.Send(c.node(id), &actors.Read{})
		}
		for _, id := range c.ids {
			if _, err := actors.Request[*actors.ReadResponse](c.sys.Root, c.node(id), &actors.Read{}, 5*time.Second); err != nil {
				t.Fatalf("node %d, read after a read without a sender: %v", id, err)
			}
		}
		synctest.Wait()
		c.failOnNodeStopped()
		c.waitApplied(1, c.ids...)
	})
}
