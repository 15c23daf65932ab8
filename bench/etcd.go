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

// etcdDriver runs go.etcd.io/raft/v3 with a straightforward Ready loop per
// node: write the Ready's entries and hard state in one Pebble batch
// (committed with pebble.Sync when MustSync, in durable mode), append them
// to the MemoryStorage raft reads from, send the messages, apply the
// committed entries, then Advance. Memory mode skips Pebble. Messages go
// between nodes over buffered channels (pointers, like the other rows'
// in-memory transports).
func etcdDriver() *driver {
	return &driver{
		name:      "etcd",
		inProcess: true,
		note: func(mode string) string {
			if mode == modeDurable {
				return "Ready loop: Pebble batch (pebble.Sync when MustSync) → send → apply → Advance"
			}
			return "Ready loop on MemoryStorage, no disk"
		},
		start: startEtcd,
	}
}

type etcdCluster struct {
	nodes  map[uint64]*etcdNode
	leader atomic.Pointer[etcdNode]
	done   chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type etcdNode struct {
	id      uint64
	c       *etcdCluster
	n       raft.Node
	storage *raft.MemoryStorage
	db      *pebble.DB // nil in memory mode
	inbox   chan *pb.Message
	applied atomic.Uint64
	// Counters for diagnostics: synced batches, their time, messages sent.
	writes, writeNanos, sent atomic.Uint64

	mu      sync.Mutex
	waiters map[uint64]chan struct{} // proposal id -> applied on this node
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

func startEtcd(ctx context.Context, mode, dir string) (cluster, error) {
	runCtx, cancel := context.WithCancel(context.Background())
	c := &etcdCluster{nodes: map[uint64]*etcdNode{}, done: make(chan struct{}), cancel: cancel}
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
		nd := &etcdNode{id: id, c: c, storage: st, inbox: make(chan *pb.Message, 1<<14), waiters: map[uint64]chan struct{}{}}
		if mode == modeDurable {
			db, err := openPebble(filepath.Join(dir, fmt.Sprintf("node-%d", id)))
			if err != nil {
				c.close()
				return nil, err
			}
			nd.db = db
		}
		nd.n = raft.RestartNode(&raft.Config{
			ID:              id,
			ElectionTick:    electionTicks,
			HeartbeatTick:   heartbeatTicks,
			Storage:         st,
			MaxSizePerMsg:   1 << 20,
			MaxInflightMsgs: 256,
			CheckQuorum:     true,
			PreVote:         true,
			Logger:          etcdDiscardLogger{},
		})
		c.nodes[id] = nd
	}
	for _, nd := range c.nodes {
		c.wg.Add(2)
		go nd.readyLoop(leaders)
		go nd.stepLoop(runCtx)
	}
	if err := c.nodes[1].n.Campaign(ctx); err != nil {
		c.close()
		return nil, err
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

func (nd *etcdNode) stepLoop(ctx context.Context) {
	defer nd.c.wg.Done()
	for {
		select {
		case m := <-nd.inbox:
			if err := nd.n.Step(ctx, m); err != nil && ctx.Err() != nil {
				return
			}
		case <-nd.c.done:
			return
		}
	}
}

func (nd *etcdNode) readyLoop(leaders chan<- *etcdNode) {
	defer nd.c.wg.Done()
	ticker := time.NewTicker(tickInterval)
	defer ticker.Stop()
	var key, val []byte
	for {
		select {
		case <-ticker.C:
			nd.n.Tick()
		case rd := <-nd.n.Ready():
			// 1. Persist: one batch, synced when raft says it must be.
			if nd.db != nil && (len(rd.Entries) > 0 || rd.HardState != nil) {
				b := nd.db.NewBatch()
				for _, e := range rd.Entries {
					key = etcdEntryKey(key, e.GetIndex())
					var err error
					val, err = proto.MarshalOptions{}.MarshalAppend(val[:0], e)
					if err != nil {
						panic(err)
					}
					if err := b.Set(key, val, nil); err != nil {
						panic(err)
					}
				}
				if rd.HardState != nil {
					var err error
					val, err = proto.MarshalOptions{}.MarshalAppend(val[:0], rd.HardState)
					if err != nil {
						panic(err)
					}
					if err := b.Set(etcdHardStateKey, val, nil); err != nil {
						panic(err)
					}
				}
				opt := pebble.NoSync
				if rd.MustSync {
					opt = pebble.Sync
				}
				t0 := time.Now()
				if err := b.Commit(opt); err != nil {
					panic(err)
				}
				b.Close()
				if rd.MustSync {
					nd.writes.Add(1)
					nd.writeNanos.Add(uint64(time.Since(t0)))
				}
			}
			if rd.HardState != nil {
				if err := nd.storage.SetHardState(rd.HardState); err != nil {
					panic(err)
				}
			}
			if err := nd.storage.Append(rd.Entries); err != nil {
				panic(err)
			}
			if rd.SoftState != nil && rd.SoftState.RaftState == raft.StateLeader {
				select {
				case leaders <- nd:
				default:
				}
			}
			// 2. Send.
			nd.sent.Add(uint64(len(rd.Messages)))
			for _, m := range rd.Messages {
				if to := nd.c.nodes[m.GetTo()]; to != nil {
					select {
					case to.inbox <- m:
					case <-nd.c.done:
						return
					}
				}
			}
			// 3. Apply.
			for _, e := range rd.CommittedEntries {
				if e.GetType() == pb.EntryNormal && len(e.Data) >= 8 {
					nd.apply(binary.BigEndian.Uint64(e.Data))
				}
				nd.applied.Store(e.GetIndex())
			}
			// 4. Advance.
			nd.n.Advance()
		case <-nd.c.done:
			return
		}
	}
}

// apply is the state machine: it wakes the proposer waiting on this node.
func (nd *etcdNode) apply(id uint64) {
	nd.mu.Lock()
	ch := nd.waiters[id]
	delete(nd.waiters, id)
	nd.mu.Unlock()
	if ch != nil {
		close(ch)
	}
}

var errProposalLost = errors.New("etcd: proposal not applied in time")

func (c *etcdCluster) propose(ctx context.Context, data []byte) error {
	nd := c.leader.Load()
	id := binary.BigEndian.Uint64(data)
	ch := make(chan struct{})
	nd.mu.Lock()
	nd.waiters[id] = ch
	nd.mu.Unlock()
	forget := func() {
		nd.mu.Lock()
		delete(nd.waiters, id)
		nd.mu.Unlock()
	}
	if err := nd.n.Propose(ctx, data); err != nil {
		forget()
		c.followLeader(nd)
		return err
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		forget()
		c.followLeader(nd)
		return fmt.Errorf("%w: %w", errProposalLost, ctx.Err())
	}
}

// followLeader moves proposals to the node that leads now, if it changed.
func (c *etcdCluster) followLeader(old *etcdNode) {
	if lead := old.n.Status().Lead; lead != 0 && lead != old.id {
		c.leader.CompareAndSwap(old, c.nodes[lead])
	}
}

// counters implements diagnoser: synced batches on the leader and per
// follower (durable mode), and messages sent.
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
	c.cancel()
	c.wg.Wait()
	var errs []error
	for _, nd := range c.nodes {
		if nd.n != nil {
			nd.n.Stop()
		}
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
