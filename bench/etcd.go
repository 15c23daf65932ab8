package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// etcdDriver runs go.etcd.io/raft/v3 as a RawNode loop per node, the way
// its README's "plain" usage goes: one goroutine steps messages, proposals
// and ticks into the RawNode, then handles each Ready in order: write its
// entries and hard state in one Pebble batch (pebble.Sync when MustSync, in
// durable mode), append them to the MemoryStorage raft reads from, send
// the messages, apply the committed entries, Advance. Memory mode skips
// Pebble. Messages go between nodes over buffered channels (pointers, like
// the other rows' in-memory transports).
func etcdDriver() *driver {
	return &driver{
		name:      "etcd",
		inProcess: true,
		note: func(mode string) string {
			if mode == modeDurable {
				return "RawNode loop: Pebble batch (pebble.Sync when MustSync) → send → apply → Advance"
			}
			return "RawNode loop on MemoryStorage, no disk: append → send → apply → Advance"
		},
		start: func(ctx context.Context, mode, dir string) (cluster, error) { return startEtcd(ctx, mode, dir, false) },
	}
}

// etcdAsyncDriver runs etcd raft as its maintainers configure it for
// speed: a RawNode loop with AsyncStorageWrites (doc.go, "Usage with
// Asynchronous Storage Writes"). The loop sends peer messages at once,
// before the leader's own log write; an append goroutine per node drains
// every pending MsgStorageAppend into one Pebble batch and one sync, then
// delivers their responses; an apply goroutine applies committed entries.
func etcdAsyncDriver() *driver {
	return &driver{
		name:      "etcd-async",
		inProcess: true,
		note: func(mode string) string {
			if mode == modeDurable {
				return "RawNode loop, AsyncStorageWrites: send at once; append goroutine batches every pending append into one Pebble batch + pebble.Sync; apply goroutine"
			}
			return "RawNode loop, AsyncStorageWrites on MemoryStorage, no disk: append and apply goroutines"
		},
		start: func(ctx context.Context, mode, dir string) (cluster, error) { return startEtcd(ctx, mode, dir, true) },
	}
}

type etcdCluster struct {
	nodes  map[uint64]*etcdNode
	leader atomic.Pointer[etcdNode]
	done   chan struct{}
	wg     sync.WaitGroup
}

// etcdProposal is a client's proposal on its way into the leader's loop.
type etcdProposal struct {
	data []byte
	done chan error // buffered: nil once applied on this node, or the refusal
	id   uint64
}

type etcdNode struct {
	id      uint64
	c       *etcdCluster
	rn      *raft.RawNode // owned by loop
	async   bool
	storage *raft.MemoryStorage
	db      *pebble.DB // nil in memory mode
	inbox   chan *pb.Message
	props   chan *etcdProposal
	// AsyncStorageWrites: the append and apply goroutines' queues.
	toAppend, toApply chan *pb.Message
	lead              atomic.Uint64
	// Counters for diagnostics: synced batches, their time, messages sent.
	writes, writeNanos, sent atomic.Uint64

	mu      sync.Mutex
	waiters map[uint64]chan error // proposal id -> applied on this node
}

var etcdHardStateKey = []byte("h")

func etcdEntryKey(buf []byte, index uint64) []byte {
	return binary.BigEndian.AppendUint64(append(buf[:0], 'e'), index)
}

// quietPebbleLogger drops Pebble's info lines and panics on fatal errors.
type quietPebbleLogger struct{}

func (quietPebbleLogger) Infof(string, ...any) {}
func (quietPebbleLogger) Errorf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "pebble: "+format+"\n", args...)
}
func (quietPebbleLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}

// openPebble opens a Pebble database with the options pebblestore uses
// (64 MiB cache, 32 MiB memtables), so both Pebble rows run the same engine
// configuration.
func openPebble(dir string) (*pebble.DB, error) {
	cache := pebble.NewCache(64 << 20)
	defer cache.Unref()
	return pebble.Open(dir, &pebble.Options{
		Cache:              cache,
		MemTableSize:       32 << 20,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             quietPebbleLogger{},
	})
}

func startEtcd(ctx context.Context, mode, dir string, async bool) (cluster, error) {
	c := &etcdCluster{nodes: map[uint64]*etcdNode{}, done: make(chan struct{})}
	leaders := make(chan *etcdNode, 16)
	for id := uint64(1); id <= 3; id++ {
		st := raft.NewMemoryStorage()
		// Start from a snapshot that holds the configuration, as etcd's
		// own tests do: no configuration entries to apply.
		if err := st.ApplySnapshot(&pb.Snapshot{Metadata: &pb.SnapshotMetadata{
			ConfState: &pb.ConfState{Voters: []uint64{1, 2, 3}},
			Index:     proto.Uint64(1),
			Term:      proto.Uint64(1),
		}}); err != nil {
			c.close()
			return nil, err
		}
		nd := &etcdNode{id: id, c: c, async: async, storage: st, inbox: make(chan *pb.Message, 1<<14),
			props: make(chan *etcdProposal, 1<<12), waiters: map[uint64]chan error{}}
		if async {
			nd.toAppend = make(chan *pb.Message, 1<<12)
			nd.toApply = make(chan *pb.Message, 1<<12)
		}
		if mode == modeDurable {
			db, err := openPebble(filepath.Join(dir, fmt.Sprintf("node-%d", id)))
			if err != nil {
				c.close()
				return nil, err
			}
			nd.db = db
		}
		rn, err := raft.NewRawNode(&raft.Config{
			ID:                 id,
			ElectionTick:       electionTicks,
			HeartbeatTick:      heartbeatTicks,
			Storage:            st,
			MaxSizePerMsg:      1 << 20,
			MaxInflightMsgs:    256,
			CheckQuorum:        true,
			PreVote:            true,
			AsyncStorageWrites: async,
			Logger:             etcdDiscardLogger{},
		})
		if err != nil {
			c.close()
			return nil, err
		}
		nd.rn = rn
		c.nodes[id] = nd
	}
	if err := c.nodes[1].rn.Campaign(); err != nil {
		c.close()
		return nil, err
	}
	for _, nd := range c.nodes {
		c.wg.Add(1)
		go nd.loop(leaders)
		if async {
			c.wg.Add(2)
			go nd.appendLoop()
			go nd.applyLoop()
		}
	}
	select {
	case nd := <-leaders:
		c.leader.Store(nd)
	case <-ctx.Done():
		c.close()
		return nil, fmt.Errorf("etcd: no leader: %w", ctx.Err())
	}
	return c, nil
}

// loop is the node's RawNode goroutine: it steps what arrives (draining
// whatever else is queued, so one Ready covers it all), then handles the
// Ready.
func (nd *etcdNode) loop(leaders chan<- *etcdNode) {
	defer nd.c.wg.Done()
	ticker := time.NewTicker(tickInterval)
	defer ticker.Stop()
	var w etcdWriter
	for {
		select {
		case <-ticker.C:
			nd.rn.Tick()
		case m := <-nd.inbox:
			_ = nd.rn.Step(m)
		case p := <-nd.props:
			nd.propose(p)
		case <-nd.c.done:
			return
		}
	drain:
		for range 1024 {
			select {
			case m := <-nd.inbox:
				_ = nd.rn.Step(m)
			case p := <-nd.props:
				nd.propose(p)
			default:
				break drain
			}
		}
		if !nd.rn.HasReady() {
			continue
		}
		rd := nd.rn.Ready()
		if rd.SoftState != nil {
			nd.lead.Store(rd.SoftState.Lead)
			if rd.SoftState.RaftState == raft.StateLeader {
				select {
				case leaders <- nd:
				default:
				}
			}
		}
		if nd.async {
			// Local storage work goes to its goroutines; everything else
			// leaves now.
			for _, m := range rd.Messages {
				switch m.GetTo() {
				case raft.LocalAppendThread:
					if !nd.enqueue(nd.toAppend, m) {
						return
					}
				case raft.LocalApplyThread:
					if !nd.enqueue(nd.toApply, m) {
						return
					}
				default:
					if !nd.send(m) {
						return
					}
				}
			}
			continue
		}
		// 1. Persist.
		if nd.db != nil && (len(rd.Entries) > 0 || rd.HardState != nil) {
			w.add(nd.db, rd.Entries, rd.HardState)
			nd.commit(&w, rd.MustSync)
		}
		if rd.HardState != nil {
			if err := nd.storage.SetHardState(rd.HardState); err != nil {
				panic(err)
			}
		}
		if err := nd.storage.Append(rd.Entries); err != nil {
			panic(err)
		}
		// 2. Send.
		for _, m := range rd.Messages {
			if !nd.send(m) {
				return
			}
		}
		// 3. Apply.
		nd.applyEntries(rd.CommittedEntries)
		// 4. Advance.
		nd.rn.Advance(rd)
	}
}

func (nd *etcdNode) propose(p *etcdProposal) {
	if err := nd.rn.Propose(p.data); err != nil {
		nd.mu.Lock()
		delete(nd.waiters, p.id)
		nd.mu.Unlock()
		p.done <- err
	}
}

func (nd *etcdNode) enqueue(ch chan<- *pb.Message, m *pb.Message) bool {
	select {
	case ch <- m:
		return true
	case <-nd.c.done:
		return false
	}
}

// send delivers m to its node's inbox (this node's own, for local
// responses).
func (nd *etcdNode) send(m *pb.Message) bool {
	to := nd.c.nodes[m.GetTo()]
	if to == nil {
		return true
	}
	if to != nd {
		nd.sent.Add(1)
	}
	return to.enqueue(to.inbox, m)
}

// appendLoop is the AsyncStorageWrites append goroutine: it takes every
// queued MsgStorageAppend, writes them in one batch with one sync, appends
// them to the MemoryStorage, then delivers their responses in order.
func (nd *etcdNode) appendLoop() {
	defer nd.c.wg.Done()
	var w etcdWriter
	var batch []*pb.Message
	var term, vote uint64 // of the last hard state written
	for {
		select {
		case m := <-nd.toAppend:
			batch = append(batch[:0], m)
		case <-nd.c.done:
			return
		}
	drain:
		for range 1024 {
			select {
			case m := <-nd.toAppend:
				batch = append(batch, m)
			default:
				break drain
			}
		}
		// A sync is due for new entries or a new term or vote (raft's
		// MustSync rule); a commit index alone does not need one.
		mustSync := false
		for _, m := range batch {
			hs := storageHardState(m)
			if nd.db != nil && (len(m.Entries) > 0 || hs != nil) {
				w.add(nd.db, m.Entries, hs)
			}
			if len(m.Entries) > 0 || (hs != nil && (hs.GetTerm() != term || hs.GetVote() != vote)) {
				mustSync = true
			}
			if hs != nil {
				term, vote = hs.GetTerm(), hs.GetVote()
			}
		}
		if w.n > 0 {
			nd.commit(&w, mustSync)
		}
		for _, m := range batch {
			if hs := storageHardState(m); hs != nil {
				if err := nd.storage.SetHardState(hs); err != nil {
					panic(err)
				}
			}
			if err := nd.storage.Append(m.Entries); err != nil {
				panic(err)
			}
		}
		for _, m := range batch {
			for _, r := range m.Responses {
				if !nd.send(r) {
					return
				}
			}
		}
	}
}

// storageHardState reconstructs the hard state a MsgStorageAppend carries
// (nil when it carries none).
func storageHardState(m *pb.Message) *pb.HardState {
	if m.Term == nil {
		return nil
	}
	return &pb.HardState{Term: m.Term, Vote: m.Vote, Commit: m.Commit}
}

// applyLoop is the AsyncStorageWrites apply goroutine.
func (nd *etcdNode) applyLoop() {
	defer nd.c.wg.Done()
	for {
		select {
		case m := <-nd.toApply:
			nd.applyEntries(m.Entries)
			for _, r := range m.Responses {
				if !nd.send(r) {
					return
				}
			}
		case <-nd.c.done:
			return
		}
	}
}

// etcdWriter accumulates entries and a hard state into one Pebble batch.
type etcdWriter struct {
	b        *pebble.Batch
	key, val []byte
	n        int
}

func (w *etcdWriter) add(db *pebble.DB, ents []*pb.Entry, hs *pb.HardState) {
	if w.b == nil {
		w.b = db.NewBatch()
	}
	set := func(k []byte, m proto.Message) {
		var err error
		w.val, err = proto.MarshalOptions{}.MarshalAppend(w.val[:0], m)
		if err != nil {
			panic(err)
		}
		if err := w.b.Set(k, w.val, nil); err != nil {
			panic(err)
		}
		w.n++
	}
	for _, e := range ents {
		w.key = etcdEntryKey(w.key, e.GetIndex())
		set(w.key, e)
	}
	if hs != nil {
		set(etcdHardStateKey, hs)
	}
}

// commit writes w's batch (synced when mustSync) and empties w.
func (nd *etcdNode) commit(w *etcdWriter, mustSync bool) {
	opt := pebble.NoSync
	if mustSync {
		opt = pebble.Sync
	}
	t0 := time.Now()
	if err := w.b.Commit(opt); err != nil {
		panic(err)
	}
	if mustSync {
		nd.writes.Add(1)
		nd.writeNanos.Add(uint64(time.Since(t0)))
	}
	w.b.Close()
	w.b, w.n = nil, 0
}

// applyEntries is the state machine: it wakes the proposer waiting on
// this node.
func (nd *etcdNode) applyEntries(ents []*pb.Entry) {
	for _, e := range ents {
		if e.GetType() != pb.EntryNormal || len(e.Data) < 8 {
			continue
		}
		id := binary.BigEndian.Uint64(e.Data)
		nd.mu.Lock()
		ch := nd.waiters[id]
		delete(nd.waiters, id)
		nd.mu.Unlock()
		if ch != nil {
			ch <- nil
		}
	}
}

var errProposalLost = errors.New("etcd: proposal not applied in time")

func (c *etcdCluster) propose(ctx context.Context, data []byte) error {
	nd := c.leader.Load()
	p := &etcdProposal{data: data, id: binary.BigEndian.Uint64(data), done: make(chan error, 1)}
	nd.mu.Lock()
	nd.waiters[p.id] = p.done
	nd.mu.Unlock()
	forget := func() {
		nd.mu.Lock()
		delete(nd.waiters, p.id)
		nd.mu.Unlock()
	}
	select {
	case nd.props <- p:
	case <-ctx.Done():
		forget()
		return ctx.Err()
	}
	select {
	case err := <-p.done:
		if err != nil {
			c.followLeader(nd)
		}
		return err
	case <-ctx.Done():
		forget()
		c.followLeader(nd)
		return fmt.Errorf("%w: %w", errProposalLost, ctx.Err())
	}
}

// followLeader moves proposals to the node that leads now, if it changed.
func (c *etcdCluster) followLeader(old *etcdNode) {
	if lead := old.lead.Load(); lead != 0 && lead != old.id {
		c.leader.CompareAndSwap(old, c.nodes[lead])
	}
}

// counters implements diagnoser: synced batches on the leader and per
// follower (durable mode), and messages sent between nodes.
func (c *etcdCluster) counters() counters {
	out := counters{}
	lead := c.leader.Load()
	for _, nd := range c.nodes {
		out["msgs"] += float64(nd.sent.Load())
		if nd.db == nil {
			continue
		}
		if nd == lead {
			out["leader writes"] += float64(nd.writes.Load())
			out["leader writes_ns"] += float64(nd.writeNanos.Load())
		} else {
			out["follower writes"] += float64(nd.writes.Load()) / 2
			out["follower writes_ns"] += float64(nd.writeNanos.Load()) / 2
		}
	}
	return out
}

func (c *etcdCluster) close() error {
	close(c.done)
	c.wg.Wait()
	var errs []error
	for _, nd := range c.nodes {
		if nd.db != nil {
			errs = append(errs, nd.db.Close())
		}
	}
	return errors.Join(errs...)
}

// etcdDiscardLogger implements raft.Logger and drops everything but panics.
type etcdDiscardLogger struct{}

func (etcdDiscardLogger) Debug(...any)                   {}
func (etcdDiscardLogger) Debugf(string, ...any)          {}
func (etcdDiscardLogger) Error(...any)                   {}
func (etcdDiscardLogger) Errorf(string, ...any)          {}
func (etcdDiscardLogger) Info(...any)                    {}
func (etcdDiscardLogger) Infof(string, ...any)           {}
func (etcdDiscardLogger) Warning(...any)                 {}
func (etcdDiscardLogger) Warningf(string, ...any)        {}
func (etcdDiscardLogger) Fatal(v ...any)                 { panic(fmt.Sprint(v...)) }
func (etcdDiscardLogger) Fatalf(format string, v ...any) { panic(fmt.Sprintf(format, v...)) }
func (etcdDiscardLogger) Panic(v ...any)                 { panic(fmt.Sprint(v...)) }
func (etcdDiscardLogger) Panicf(format string, v ...any) { panic(fmt.Sprintf(format, v...)) }
