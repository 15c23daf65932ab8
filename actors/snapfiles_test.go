package actors_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/persistence/memstore"
)

// streamSM is a StreamSnapshotter over a listSM: its snapshot is the list
// of commands (JSON, one line), then size bytes of state generated from
// the number of commands, which the state machine never holds: a state as
// large as wanted, streamed out by WriteTo and checked byte by byte by
// RestoreFrom.
type streamSM struct {
	*listSM
	size int64

	mu       sync.Mutex
	block    chan struct{} // set: WriteTo waits on it halfway through
	writing  chan struct{} // signalled when WriteTo waits
	restored []actors.SnapshotMeta
	restBig  []int64 // bytes of generated state each restore read
}

func newStreamSM(sm actors.StateMachine, size int64) *streamSM {
	return &streamSM{listSM: sm.(*listSM), size: size}
}

// genChunk fills b with the generated state of a snapshot of n commands,
// at offset off (a multiple of 8).
func genChunk(b []byte, n int, off int64) {
	for i := 0; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], uint64(n)<<40^uint64(off+int64(i)))
	}
}

type streamView struct {
	sm   *streamSM
	cmds []string
}

func (s *streamSM) SnapshotView() (actors.SnapshotView, error) {
	return &streamView{sm: s, cmds: s.list()}, nil // a copy: the consistent view
}

func (v *streamView) WriteTo(w io.Writer) (int64, error) {
	line, _ := json.Marshal(v.cmds)
	n, err := w.Write(append(line, '\n'))
	total := int64(n)
	if err != nil {
		return total, err
	}
	buf := make([]byte, 64<<10)
	v.sm.mu.Lock()
	block, writing := v.sm.block, v.sm.writing
	v.sm.mu.Unlock()
	for off := int64(0); off < v.sm.size; off += int64(len(buf)) {
		if block != nil && off >= v.sm.size/2 {
			writing <- struct{}{}
			<-block
			block = nil
		}
		chunk := buf[:min(int64(len(buf)), v.sm.size-off)]
		genChunk(chunk, len(v.cmds), off)
		n, err := w.Write(chunk)
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func (v *streamView) Release() {}

func (s *streamSM) RestoreFrom(meta actors.SnapshotMeta, r io.Reader) error {
	br := bufio.NewReader(r)
	line, err := br.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("read the command list: %w", err)
	}
	var cmds []string
	if err := json.Unmarshal(line, &cmds); err != nil {
		return err
	}
	got, want := make([]byte, 64<<10), make([]byte, 64<<10)
	var off int64
	for {
		n, err := io.ReadFull(br, got)
		if n > 0 {
			genChunk(want[:n], len(cmds), off)
			if !bytes.Equal(got[:n], want[:n]) {
				return fmt.Errorf("generated state differs at offset %d", off)
			}
			off += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if err := s.listSM.Restore(line); err != nil {
		return err
	}
	s.mu.Lock()
	s.restored = append(s.restored, meta)
	s.restBig = append(s.restBig, off)
	s.mu.Unlock()
	return nil
}

func (s *streamSM) restores() ([]actors.SnapshotMeta, []int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.restored), slices.Clone(s.restBig)
}

// waitRestores waits (fake time) until sm restored n snapshots.
func (s *streamSM) waitRestores(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if got, _ := s.restores(); len(got) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the state machine restored %d snapshots within 30s (fake time), want %d", len(s.restored), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// blockWrites makes the next WriteTo stop halfway until the returned
// function is called; writing receives once it stopped.
func (s *streamSM) blockWrites() (writing chan struct{}, release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.block, s.writing = make(chan struct{}), make(chan struct{}, 1)
	block := s.block
	return s.writing, func() {
		s.mu.Lock()
		s.block = nil
		s.mu.Unlock()
		close(block)
	}
}

// takeSnapshotAsync sends TakeSnapshot to node id and returns where its
// answer arrives.
func (c *cluster) takeSnapshotAsync(id uint64) <-chan *actors.TakeSnapshotResponse {
	out := make(chan *actors.TakeSnapshotResponse, 1)
	go func() {
		res, err := actors.Request[*actors.TakeSnapshotResponse](c.sys.Root, c.node(id), &actors.TakeSnapshot{}, 30*time.Second)
		if err != nil {
			res = &actors.TakeSnapshotResponse{Err: err}
		}
		out <- res
	}()
	return out
}

// A StreamSnapshotter's WriteTo runs on its own goroutine: while it is
// blocked halfway through, proposals are applied and answered; once it
// finishes, the snapshot covers the index of the request (not the applies
// made meanwhile), and a restart restores it from the store's file, then
// applies the rest from the log.
func TestStreamSnapshotApplyGoesOnWhileWriteToRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sms := map[uint64]*streamSM{}
		c := newClusterWith(t, 1, func(c *cluster) {
			c.configure = func(id uint64, cfg *actors.Config) {
				sms[id] = newStreamSM(cfg.StateMachine, 1<<20)
				cfg.StateMachine = sms[id]
			}
		})
		lead := c.waitLeader()
		// applied is the last command's index: the applier answers a
		// proposal before the node's own count (Status.Applied) hears of
		// it, so the status may still lag here.
		var applied uint64
		for i := range 10 {
			res, err := c.propose(lead, fmt.Sprint("cmd-", i))
			if err != nil {
				t.Fatal(err)
			}
			applied = res.Index
		}
		writing, release := sms[lead].blockWrites()
		answer := c.takeSnapshotAsync(lead)
		<-writing
		for i := range 5 {
			if _, err := c.propose(lead, fmt.Sprint("during-", i)); err != nil {
				t.Fatalf("a proposal while WriteTo runs: %v", err)
			}
		}
		if got := c.sm(lead).list(); len(got) != 15 {
			t.Fatalf("while WriteTo was blocked the state machine applied %d commands, want 15", len(got))
		}
		select {
		case res := <-answer:
			t.Fatalf("TakeSnapshot answered %+v while WriteTo was blocked", res)
		default:
		}
		release()
		res := <-answer
		if res.Err != nil || res.Index != applied {
			t.Fatalf("TakeSnapshot = %+v, want index %d (applied when asked)", res, applied)
		}
		if st := c.status(lead); st.FirstIndex > applied+1 {
			t.Fatalf("the log starts at %d after a snapshot at %d", st.FirstIndex, applied)
		}
		before := c.sm(lead).list()
		c.stop(lead)
		c.drainEvents()
		c.start(lead)
		synctest.Wait()
		c.failOnNodeStopped()
		c.waitApplied(len(before), lead)
		metas, sizes := sms[lead].restores()
		if len(metas) != 1 || metas[0].Index != applied || sizes[0] != 1<<20 {
			t.Fatalf("restart restored %v (generated bytes %v), want one snapshot at %d with %d bytes", metas, sizes, applied, 1<<20)
		}
		if got := c.sm(lead).list(); !slices.Equal(got, before) {
			t.Fatalf("after the restart the state is %v, want %v", got, before)
		}
	})
}

// On Pebble in a real directory: a node snapshots a generated state of
// 16 MiB that its state machine never holds (streamed into a file, with
// only metadata in Pebble), a lagging follower catches up from it, and
// every node restarts from its own file.
func TestStreamSnapshotOnPebbleCatchUpAndRestart(t *testing.T) {
	const size = 16 << 20
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		sms := map[uint64]*streamSM{}
		c := newClusterWith(t, 3, func(c *cluster) {
			c.onPebble(dir)
			c.configure = func(id uint64, cfg *actors.Config) {
				sms[id] = newStreamSM(cfg.StateMachine, size)
				cfg.StateMachine = sms[id]
				cfg.RetainEntries = -1 // no tail: a lagging follower needs the snapshot
			}
		})
		lead, lagging := c.leaveOneBehind(8)
		snap, err := actors.Request[*actors.TakeSnapshotResponse](c.sys.Root, c.node(lead), &actors.TakeSnapshot{}, 30*time.Second)
		if err != nil || snap.Err != nil {
			t.Fatalf("TakeSnapshot: %v %v", snap, err)
		}
		files, err := vfs.Default.List(filepath.Join(dir, fmt.Sprint(lead), "snapshots"))
		if err != nil || len(files) != 1 {
			t.Fatalf("the leader's snapshot files: %v, %v; want one", files, err)
		}
		if st, err := vfs.Default.Stat(filepath.Join(dir, fmt.Sprint(lead), "snapshots", files[0])); err != nil || st.Size() < size {
			t.Fatalf("the leader's snapshot file: %v, %v; want more than %d bytes", st, err, size)
		}
		c.net.Heal()
		sms[lagging].waitRestores(t, 1)
		metas, sizes := sms[lagging].restores()
		if metas[0].Index != snap.Index || sizes[0] != size {
			t.Fatalf("the follower restored %+v with %d generated bytes, want index %d and %d", metas[0], sizes[0], snap.Index, size)
		}
		c.waitApplied(8, c.ids...)
		if _, err := c.propose(lead, "after"); err != nil {
			t.Fatal(err)
		}
		c.waitApplied(9, c.ids...)
		want := c.sm(lead).list()
		c.restartAll(want)
		// The leader and the follower that installed the snapshot started
		// on it (the third node took none, and replays its log).
		for _, id := range []uint64{lead, lagging} {
			if metas, _ := sms[id].restores(); len(metas) == 0 || metas[len(metas)-1].Index != snap.Index {
				t.Fatalf("node %d restored %v at restart, want the snapshot at %d", id, metas, snap.Index)
			}
		}
	})
}

// Power loss while a snapshot is being written (WriteTo halfway, on
// Pebble's crashable filesystem): the node starts again on the previous
// snapshot, restores it and replays the log after it; no partial file is
// left.
func TestSnapshotFilePowerLossMidWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sms := map[uint64]*streamSM{}
		f := &crashFS{fs: vfs.NewCrashableMem(), rng: rand.New(rand.NewPCG(1, 2))}
		t.Cleanup(func() { _ = f.db.Close() })
		c := newClusterWith(t, 1, func(c *cluster) {
			c.configure = func(id uint64, cfg *actors.Config) {
				sms[id] = newStreamSM(cfg.StateMachine, 4<<20)
				cfg.StateMachine = sms[id]
				cfg.LogStore = f.open(t)
			}
		})
		lead := c.waitLeader()
		for i := range 10 {
			if _, err := c.propose(lead, fmt.Sprint("cmd-", i)); err != nil {
				t.Fatal(err)
			}
		}
		first, err := actors.Request[*actors.TakeSnapshotResponse](c.sys.Root, c.node(lead), &actors.TakeSnapshot{}, 30*time.Second)
		if err != nil || first.Err != nil {
			t.Fatalf("TakeSnapshot: %v %v", first, err)
		}
		for i := range 5 {
			if _, err := c.propose(lead, fmt.Sprint("more-", i)); err != nil {
				t.Fatal(err)
			}
		}
		want := c.sm(lead).list()
		writing, release := sms[lead].blockWrites()
		answer := c.takeSnapshotAsync(lead)
		<-writing
		clone := f.fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: f.rng})
		release()
		<-answer
		c.crashAndWait(lead)
		_ = f.db.Close()
		f.fs = clone
		c.drainEvents()
		c.start(lead)
		synctest.Wait()
		c.failOnNodeStopped()
		c.waitApplied(len(want), lead)
		metas, sizes := sms[lead].restores()
		if len(metas) != 1 || metas[0].Index != first.Index || sizes[0] != 4<<20 {
			t.Fatalf("after power loss mid-write the node restored %v (%v bytes), want the previous snapshot at %d", metas, sizes, first.Index)
		}
		if got := c.sm(lead).list(); !slices.Equal(got, want) {
			t.Fatalf("after power loss the state is %v, want %v", got, want)
		}
		names, _ := f.fs.List("db/snapshots")
		for _, n := range names {
			if strings.HasSuffix(n, ".tmp") {
				t.Fatalf("a partial snapshot file survived the restart: %v", names)
			}
		}
	})
}

// A snapshot file damaged on disk: a restart that needs it stops with
// ErrCorruptSnapshot (NodeStopped) instead of running without the state
// it covers.
func TestCorruptSnapshotFile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fs := vfs.NewMem()
		f := &crashFS{fs: fs}
		t.Cleanup(func() { _ = f.db.Close() })
		c := newClusterWith(t, 1, func(c *cluster) {
			c.configure = func(id uint64, cfg *actors.Config) {
				cfg.StateMachine = newStreamSM(cfg.StateMachine, 1<<20)
				cfg.LogStore = f.open(t)
			}
		})
		lead := c.waitLeader()
		for i := range 5 {
			if _, err := c.propose(lead, fmt.Sprint("cmd-", i)); err != nil {
				t.Fatal(err)
			}
		}
		if res, err := actors.Request[*actors.TakeSnapshotResponse](c.sys.Root, c.node(lead), &actors.TakeSnapshot{}, 30*time.Second); err != nil || res.Err != nil {
			t.Fatalf("TakeSnapshot: %v %v", res, err)
		}
		c.stop(lead)
		_ = f.db.Close()
		damageSnapshotFile(t, fs)
		c.drainEvents()
		c.start(lead)
		synctest.Wait()
		var stopped *actors.NodeStopped
		for stopped == nil {
			select {
			case ev := <-c.events:
				stopped, _ = ev.(*actors.NodeStopped)
			default:
				t.Fatal("the node started on a damaged snapshot file without stopping")
			}
		}
		if !errors.Is(stopped.Err, actors.ErrCorruptSnapshot) {
			t.Fatalf("NodeStopped %+v, want an error wrapping ErrCorruptSnapshot", stopped)
		}
		c.mu.Lock()
		c.nodes[lead] = nil
		c.mu.Unlock()
	})
}

// A leader whose snapshot file is damaged does not send it to a lagging
// peer: Status.CorruptSnapshotFiles counts it, the leader keeps serving
// and writes its snapshot again, and the peer catches up from the new
// file.
func TestCorruptSnapshotFileForALaggingPeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fss := map[uint64]*crashFS{}
		t.Cleanup(func() {
			for _, f := range fss {
				_ = f.db.Close()
			}
		})
		c := newClusterWith(t, 3, func(c *cluster) {
			for _, id := range c.ids {
				fss[id] = &crashFS{fs: vfs.NewMem()}
			}
			c.configure = func(id uint64, cfg *actors.Config) {
				cfg.StateMachine = newStreamSM(cfg.StateMachine, 256<<10)
				cfg.LogStore = fss[id].open(t)
				cfg.RetainEntries = -1
			}
		})
		lead, _ := c.leaveOneBehind(5)
		if res, err := actors.Request[*actors.TakeSnapshotResponse](c.sys.Root, c.node(lead), &actors.TakeSnapshot{}, 30*time.Second); err != nil || res.Err != nil {
			t.Fatalf("TakeSnapshot: %v %v", res, err)
		}
		fs := fss[lead].fs
		damageSnapshotFile(t, fs)
		c.net.Heal()
		deadline := time.Now().Add(30 * time.Second)
		for c.status(lead).CorruptSnapshotFiles == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the leader did not count its damaged snapshot file within 30s (fake time)")
			}
			time.Sleep(10 * time.Millisecond)
		}
		// Caught up with no new entry: from the same snapshot, written again.
		c.waitApplied(5, c.ids...)
		if _, err := c.propose(lead, "still serving"); err != nil {
			t.Fatalf("propose after the damaged file was found: %v", err)
		}
		c.waitApplied(6, c.ids...)
		c.failOnNodeStopped()
	})
}

// damageSnapshotFile overwrites two bytes of the one snapshot file of the
// database at "db" on fs.
func damageSnapshotFile(t *testing.T, fs vfs.FS) {
	t.Helper()
	names, err := fs.List("db/snapshots")
	if err != nil || len(names) != 1 {
		t.Fatalf("snapshot files %v, %v; want one", names, err)
	}
	file, err := fs.OpenReadWrite("db/snapshots/"+names[0], vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if _, err := file.WriteAt([]byte{0xAA, 0xBB}, 1000); err != nil {
		t.Fatal(err)
	}
}

// A StreamSnapshotter on a store without snapshot files (SnapshotStore
// alone): its view is collected into the []byte snapshot the store saves,
// and a restart restores it through RestoreFrom.
func TestStreamSnapshotterOnABytesOnlyStore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sms := map[uint64]*streamSM{}
		stores := map[uint64]*splittingStore{}
		c := newClusterWith(t, 1, func(c *cluster) {
			c.configure = func(id uint64, cfg *actors.Config) {
				sms[id] = newStreamSM(cfg.StateMachine, 64<<10)
				cfg.StateMachine = sms[id]
				if stores[id] == nil {
					stores[id] = &splittingStore{bytesOnlyStore: memstore.New()}
				}
				cfg.LogStore = stores[id]
			}
		})
		lead := c.waitLeader()
		for i := range 5 {
			if _, err := c.propose(lead, fmt.Sprint("cmd-", i)); err != nil {
				t.Fatal(err)
			}
		}
		snap, err := actors.Request[*actors.TakeSnapshotResponse](c.sys.Root, c.node(lead), &actors.TakeSnapshot{}, 30*time.Second)
		if err != nil || snap.Err != nil {
			t.Fatalf("TakeSnapshot: %v %v", snap, err)
		}
		synctest.Wait() // the persister saved the snapshot
		stores[lead].mu.Lock()
		apps := slices.Clone(stores[lead].apps)
		stores[lead].mu.Unlock()
		if len(apps) != 1 || len(apps[0]) < 64<<10 {
			t.Fatalf("the store saved %d application sections, want one of more than %d bytes", len(apps), 64<<10)
		}
		want := c.sm(lead).list()
		c.stop(lead)
		c.drainEvents()
		c.start(lead)
		synctest.Wait()
		c.failOnNodeStopped()
		c.waitApplied(len(want), lead)
		if metas, sizes := sms[lead].restores(); len(metas) != 1 || metas[0].Index != snap.Index || sizes[0] != 64<<10 {
			t.Fatalf("restart restored %v (%v bytes), want the snapshot at %d", metas, sizes, snap.Index)
		}
	})
}
