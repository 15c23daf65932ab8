package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// hashicorpDriver runs hashicorp/raft over its in-memory transport. Durable
// mode stores the log and stable state in raft-boltdb/v2 (bbolt, fsync on
// every commit) wrapped in raft.NewLogCache as Consul and Vault do; memory
// mode uses raft.InmemStore.
func hashicorpDriver() *driver {
	return &driver{
		name:      "hashicorp",
		inProcess: true,
		note: func(mode string) string {
			if mode == modeDurable {
				return "raft-boltdb/v2 + LogCache(512), inmem transport, DefaultConfig"
			}
			return "InmemStore, inmem transport, DefaultConfig"
		},
		start: func(ctx context.Context, mode, dir string) (cluster, error) {
			return startHashicorp(ctx, mode, dir, false)
		},
	}
}

// hashicorpBatchDriver is hashicorp/raft as Vault's raft backend sets it
// (physical/raft, applyConfigSettings): BatchApplyCh, so Apply enqueues up
// to MaxAppendEntries = 64 commands per leader-loop turn.
func hashicorpBatchDriver() *driver {
	return &driver{
		name:      "hashicorp-batch",
		inProcess: true,
		note: func(mode string) string {
			if mode == modeDurable {
				return "as Vault: BatchApplyCh, MaxAppendEntries 64; raft-boltdb/v2 + LogCache(512), inmem transport"
			}
			return "as Vault: BatchApplyCh, MaxAppendEntries 64; InmemStore, inmem transport"
		},
		start: func(ctx context.Context, mode, dir string) (cluster, error) {
			return startHashicorp(ctx, mode, dir, true)
		},
	}
}

// countFSM counts what it applies.
type countFSM struct{ n, bytes atomic.Uint64 }

func (f *countFSM) Apply(l *raft.Log) any {
	f.n.Add(1)
	f.bytes.Add(uint64(len(l.Data)))
	return nil
}
func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) { return countSnapshot{}, nil }
func (f *countFSM) Restore(r io.ReadCloser) error       { return r.Close() }

type countSnapshot struct{}

func (countSnapshot) Persist(sink raft.SnapshotSink) error { return sink.Close() }
func (countSnapshot) Release()                             {}

type hashicorpCluster struct {
	nodes   []*raft.Raft
	notify  []chan bool
	leader  atomic.Pointer[raft.Raft]
	closers []func() error
}

func startHashicorp(ctx context.Context, mode, dir string, batch bool) (cluster, error) {
	c := &hashicorpCluster{}
	var servers []raft.Server
	var trans []*raft.InmemTransport
	for i := 1; i <= 3; i++ {
		addr, tr := raft.NewInmemTransport(raft.ServerAddress(fmt.Sprintf("node-%d", i)))
		trans = append(trans, tr)
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(fmt.Sprint(i)), Address: addr})
	}
	for i, a := range trans {
		for j, b := range trans {
			if i != j {
				a.Connect(b.LocalAddr(), b)
			}
		}
	}
	became := make(chan *raft.Raft, 16)
	for i, srv := range servers {
		conf := raft.DefaultConfig()
		conf.LocalID = srv.ID
		conf.Logger = hclog.NewNullLogger()
		conf.HeartbeatTimeout = electionTicks * tickInterval
		conf.ElectionTimeout = electionTicks * tickInterval
		conf.LeaderLeaseTimeout = electionTicks * tickInterval / 2
		if batch {
			conf.BatchApplyCh = true
			conf.MaxAppendEntries = 64
		}
		notify := make(chan bool, 16)
		conf.NotifyCh = notify
		c.notify = append(c.notify, notify)

		var logs raft.LogStore
		var stable raft.StableStore
		var snaps raft.SnapshotStore
		if mode == modeDurable {
			nd := filepath.Join(dir, fmt.Sprintf("node-%d", i+1))
			if err := os.MkdirAll(nd, 0o755); err != nil {
				c.close()
				return nil, err
			}
			bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(nd, "raft.db")})
			if err != nil {
				c.close()
				return nil, err
			}
			c.closers = append(c.closers, bolt.Close)
			cache, err := raft.NewLogCache(512, bolt)
			if err != nil {
				c.close()
				return nil, err
			}
			logs, stable = cache, bolt
			snaps, err = raft.NewFileSnapshotStore(nd, 1, io.Discard)
			if err != nil {
				c.close()
				return nil, err
			}
		} else {
			mem := raft.NewInmemStore()
			logs, stable, snaps = mem, mem, raft.NewInmemSnapshotStore()
		}
		if err := raft.BootstrapCluster(conf, logs, stable, snaps, trans[i], raft.Configuration{Servers: servers}); err != nil {
			c.close()
			return nil, err
		}
		r, err := raft.NewRaft(conf, &countFSM{}, logs, stable, snaps, trans[i])
		if err != nil {
			c.close()
			return nil, err
		}
		c.nodes = append(c.nodes, r)
		go func() {
			for v := range notify {
				if v {
					select {
					case became <- r:
					default:
					}
				}
			}
		}()
	}
	select {
	case r := <-became:
		c.leader.Store(r)
	case <-ctx.Done():
		c.close()
		return nil, fmt.Errorf("hashicorp: no leader: %w", ctx.Err())
	}
	return c, nil
}

func (c *hashicorpCluster) propose(ctx context.Context, data []byte) error {
	timeout := proposalTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	r := c.leader.Load()
	err := r.Apply(data, timeout).Error()
	if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
		for _, n := range c.nodes {
			if n.State() == raft.Leader {
				c.leader.CompareAndSwap(r, n)
			}
		}
	}
	return err
}

func (c *hashicorpCluster) close() error {
	var errs []error
	for _, n := range c.nodes {
		errs = append(errs, n.Shutdown().Error())
	}
	// Shut down: no node sends on its notify channel any more.
	for _, ch := range c.notify {
		close(ch)
	}
	for _, cl := range c.closers {
		errs = append(errs, cl())
	}
	return errors.Join(errs...)
}
