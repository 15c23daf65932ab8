package actors_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
	"github.com/flotilla-raft/flotilla/persistence/memstore"
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

// restorerSM is a listSM that records what RestoreSnapshot received.
type restorerSM struct {
	listSM
	mu    sync.Mutex
	metas []actors.SnapshotMeta
}

func (s *restorerSM) RestoreSnapshot(meta actors.SnapshotMeta, data []byte) error {
	s.mu.Lock()
	s.metas = append(s.metas, meta)
	s.mu.Unlock()
	return s.listSM.Restore(data)
}

// waitRestored waits until node id's state machine restored a snapshot.
func (s *restorerSM) waitRestored(t *testing.T, id uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(s.restored()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("node %d restored no snapshot", id)
		}
		time.Sleep(10 * time.Millisecond)
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

func (s *restorerSM) restored() []actors.SnapshotMeta {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.metas)
}

// splittingStore is a SnapshotStore that reads the application's section
// of every snapshot it saves, as a backup tool would.
type splittingStore struct {
	*memstore.Store
	mu   sync.Mutex
	apps [][]byte
}

func (s *splittingStore) SaveSnapshot(ctx context.Context, snap *messages.Snapshot) error {
	sec, err := actors.SplitSnapshot(snap.Data)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.apps = append(s.apps, slices.Clone(sec.Application))
	s.mu.Unlock()
	return s.Store.SaveSnapshot(ctx, snap)
}

// A follower that lags past the leader's compacted log installs the
// leader's snapshot: RestoreSnapshot gets its index, term and
// configuration; and the stores read the application's section alone.
func TestRestoreSnapshotGetsMetadataAndStoresReadTheAppSection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sms := map[uint64]*restorerSM{}
		stores := map[uint64]*splittingStore{}
		c := newClusterWith(t, 3, func(c *cluster) {
			c.configure = func(id uint64, cfg *actors.Config) {
				sm := &restorerSM{}
				sms[id] = sm
				cfg.StateMachine = sm
				stores[id] = &splittingStore{Store: memstore.New()}
				cfg.LogStore = stores[id]
				cfg.RetainEntries = -1
			}
		})
		lead, lagging := c.leaveOneBehind(5)
		snap, err := actors.Request[*actors.TakeSnapshotResponse](c.sys.Root, c.node(lead), &actors.TakeSnapshot{}, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		st := c.status(lead)
		synctest.Wait()
		c.net.Heal()
		sms[lagging].waitRestored(t, lagging)
		meta := sms[lagging].restored()[0]
		if meta.Index != snap.Index || meta.Term != st.Term || len(meta.Config.GetVoters()) != 3 {
			t.Fatalf("RestoreSnapshot got %+v, want index %d term %d with 3 voters", meta, snap.Index, st.Term)
		}
		want, _ := json.Marshal([]string{"cmd-0", "cmd-1", "cmd-2", "cmd-3", "cmd-4"})
		stores[lead].mu.Lock()
		apps := slices.Clone(stores[lead].apps)
		stores[lead].mu.Unlock()
		if len(apps) != 1 || string(apps[0]) != string(want) {
			t.Fatalf("the leader's store read application sections %q, want [%s]", apps, want)
		}
		// The follower stored the snapshot it installed: same section.
		ls, err := stores[lagging].LoadSnapshot(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if sec, err := actors.SplitSnapshot(ls.Data); err != nil || string(sec.Application) != string(want) || sec.Version != actors.SnapshotFormatVersion {
			t.Fatalf("the follower's stored snapshot splits into %+v, %v", sec, err)
		}
	})
}

// Data of the format before the framing (a bare session table, then the
// application's bytes) still splits; malformed framing is refused.
func TestSplitSnapshotFormats(t *testing.T) {
	legacy := binary.AppendUvarint(nil, 1)
	legacy = binary.AppendUvarint(binary.AppendUvarint(legacy, 7), 3)
	legacy = append(legacy, "app"...)
	sec, err := actors.SplitSnapshot(legacy)
	if err != nil || sec.Version != 0 || sec.Sessions[7] != 3 || string(sec.Application) != "app" {
		t.Fatalf("legacy data: %+v, %v", sec, err)
	}
	framed := []byte("\xff\xff\xff\xffFLSN\x01")
	framed = append(framed, 1, 1, 0)        // sessions: none
	framed = append(framed, 9, 2, 'x', 'y') // an unknown section: skipped
	framed = append(framed, 2, 3, 'a', 'p', 'p')
	sec, err = actors.SplitSnapshot(framed)
	if err != nil || sec.Version != 1 || len(sec.Sessions) != 0 || string(sec.Application) != "app" {
		t.Fatalf("framed data: %+v, %v", sec, err)
	}
	for name, bad := range map[string][]byte{
		"overrun":  append([]byte("\xff\xff\xff\xffFLSN\x01"), 1, 9, 0),
		"version":  append([]byte("\xff\xff\xff\xffFLSN\x02"), 1, 1, 0, 2, 0),
		"noapp":    append([]byte("\xff\xff\xff\xffFLSN\x01"), 1, 1, 0),
		"nolength": []byte("\xff\xff\xff\xffFLSN"),
	} {
		if _, err := actors.SplitSnapshot(bad); !errors.Is(err, actors.ErrCorruptSnapshot) {
			t.Errorf("%s: err %v, want ErrCorruptSnapshot", name, err)
		}
	}
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
			c.dirs = map[uint64]string{} // Pebble, on a directory per node
			for _, id := range c.ids {
				c.dirs[id] = filepath.Join(dir, fmt.Sprint(id))
			}
			c.configure = func(id uint64, cfg *actors.Config) {
				if sms[id] == nil {
					sms[id] = &ownSM{} // its state outlives a restart, as a durable one
				}
				cfg.StateMachine = sms[id]
				cfg.RetainEntries = -1
			}
		})
		lead, lagging := c.leaveOneBehind(10)
		applied := c.status(lead).Applied
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

var _ persistence.SnapshotStore = (*splittingStore)(nil)

// SplitSnapshot never panics on arbitrary data, refuses it with an error
// wrapping ErrCorruptSnapshot, and what it accepts lies within the data.
func FuzzSplitSnapshot(f *testing.F) {
	f.Add([]byte("\xff\xff\xff\xffFLSN\x01\x01\x01\x00\x02\x03app"))
	f.Add([]byte{1, 7, 3, 'a'})
	f.Add([]byte("\xff\xff\xff\xffFLSN\x01\x01\xff\xff\xff\xff\x0f"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sec, err := actors.SplitSnapshot(data)
		if err != nil {
			if !errors.Is(err, actors.ErrCorruptSnapshot) {
				t.Fatalf("error %v does not wrap ErrCorruptSnapshot", err)
			}
			return
		}
		if len(sec.Application) > len(data) || 2*len(sec.Sessions) > len(data) {
			t.Fatalf("split %d bytes into an application section of %d and %d sessions", len(data), len(sec.Application), len(sec.Sessions))
		}
	})
}
