package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/flotilla-raft/flotilla/examples/internal/certs"
	"github.com/flotilla-raft/flotilla/examples/internal/procs"
	"github.com/flotilla-raft/flotilla/internal/testutil"
)

// localCluster runs ledger servers as OS processes on loopback: the demo,
// the verifier and the tests use it. Each server is this very executable
// re-run with the server subcommand (exe and env say how: the tests re-run
// the test binary with an environment variable that makes it act as main).
type localCluster struct {
	exe   string
	env   []string
	dir   string
	tick  time.Duration
	ids   []uint64
	nodes map[uint64]*localNode
	probe *Client // for status requests
}

type localNode struct {
	id         uint64
	raft, api  string
	data, logf string
	join       bool // started with --join: added at run time, not a founder

	mu   sync.Mutex
	proc *procs.Process // the last process started; nil before the first
}

// newLocalCluster prepares n servers with free loopback ports and data
// directories under dir. Nothing runs until start.
func newLocalCluster(dir, exe string, env []string, n int, tick time.Duration) (*localCluster, error) {
	ports, err := testutil.FreePorts(2 * n)
	if err != nil {
		return nil, err
	}
	c := &localCluster{exe: exe, env: env, dir: dir, tick: tick, nodes: map[uint64]*localNode{}}
	var apis []string
	for i := range n {
		id := uint64(i + 1)
		nd := &localNode{id: id, raft: ports[2*i], api: ports[2*i+1],
			data: filepath.Join(dir, fmt.Sprintf("node%d", id)), logf: filepath.Join(dir, fmt.Sprintf("node%d.log", id))}
		c.ids = append(c.ids, id)
		c.nodes[id] = nd
		apis = append(apis, nd.api)
	}
	// The servers talk mutual TLS with certificates binding each node's
	// identity, issued the way `banking certs` does.
	raftAddrs := map[uint64]string{}
	for id, nd := range c.nodes {
		raftAddrs[id] = nd.raft
	}
	if _, err := certs.Issue(filepath.Join(dir, "certs"), 1, raftAddrs, 24*time.Hour); err != nil {
		return nil, fmt.Errorf("certificates: %w", err)
	}
	if c.probe, err = NewClient(apis); err != nil {
		return nil, err
	}
	c.probe.AttemptTimeout = 2 * time.Second
	return c, nil
}

func (c *localCluster) apis() []string {
	var out []string
	for _, id := range c.ids {
		out = append(out, c.nodes[id].api)
	}
	return out
}

// serverArgs is the command line of node id.
func (c *localCluster) serverArgs(id uint64) []string {
	nd := c.nodes[id]
	var peers, peerAPIs []string
	for _, o := range c.ids {
		if o != id && !c.nodes[o].join {
			peers = append(peers, fmt.Sprintf("%d=%s", o, c.nodes[o].raft))
			peerAPIs = append(peerAPIs, fmt.Sprintf("%d=%s", o, c.nodes[o].api))
		}
	}
	args := []string{"server", "--id", fmt.Sprint(id), "--listen", nd.raft, "--api", nd.api,
		"--peers", strings.Join(peers, ","), "--peer-api", strings.Join(peerAPIs, ","),
		"--data", nd.data, "--tick", c.tick.String(),
		"--ca", filepath.Join(c.dir, "certs", "ca.pem"),
		"--cert", filepath.Join(c.dir, "certs", fmt.Sprintf("node%d.pem", id)),
		"--key", filepath.Join(c.dir, "certs", fmt.Sprintf("node%d-key.pem", id))}
	if nd.join {
		args = append(args, "--join")
	}
	return args
}

// addNode prepares node id to join the running cluster (started with
// --join; the founders learn of it through AddServer). Nothing runs until
// start.
func (c *localCluster) addNode(id uint64) error {
	// Its client API is on the Raft port + 1000, the default the members
	// assume for a server added at run time (they redirect clients there).
	raft, api, err := freePortPair(apiPortOffset)
	if err != nil {
		return err
	}
	nd := &localNode{id: id, raft: raft, api: api, join: true,
		data: filepath.Join(c.dir, fmt.Sprintf("node%d", id)), logf: filepath.Join(c.dir, fmt.Sprintf("node%d.log", id))}
	// Its certificate, from the cluster's CA, binds its id.
	if _, err := certs.Issue(filepath.Join(c.dir, "certs"), 1, map[uint64]string{id: nd.raft}, 24*time.Hour); err != nil {
		return fmt.Errorf("certificate of node %d: %w", id, err)
	}
	c.nodes[id] = nd
	c.ids = append(c.ids, id)
	return nil
}

// freePortPair reserves a loopback port p whose p+offset is free too.
func freePortPair(offset int) (string, string, error) {
	for range 50 {
		ports, err := testutil.FreePorts(1)
		if err != nil {
			return "", "", err
		}
		_, p, err := splitAddr(ports[0])
		if err != nil || p+offset > 65535 {
			continue
		}
		api := net.JoinHostPort("127.0.0.1", strconv.Itoa(p+offset))
		if l, err := net.Listen("tcp", api); err == nil {
			l.Close()
			return ports[0], api, nil
		}
	}
	return "", "", errors.New("no free loopback port p with p+offset free")
}

// forget drops node id (stopped, removed from the cluster) from the
// nodes that statuses, waits and checks look at.
func (c *localCluster) forget(id uint64) {
	c.ids = slices.DeleteFunc(c.ids, func(x uint64) bool { return x == id })
}

// start starts node id's process (its log appends to <dir>/node<id>.log).
func (c *localCluster) start(id uint64) error {
	nd := c.nodes[id]
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.proc != nil {
		if up, _ := nd.proc.Running(); up {
			return fmt.Errorf("node %d is already running (pid %d)", id, nd.proc.Pid())
		}
	}
	p := &procs.Process{Exe: c.exe, Args: c.serverArgs(id), Env: c.env, LogFile: nd.logf}
	if err := p.Start(); err != nil {
		return fmt.Errorf("start node %d: %w", id, err)
	}
	nd.proc = p
	return nil
}

// process returns node id's last process (nil before the first start).
func (c *localCluster) process(id uint64) *procs.Process {
	nd := c.nodes[id]
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.proc
}

// pid returns node id's process id (0 before the first start).
func (c *localCluster) pid(id uint64) int {
	if p := c.process(id); p != nil {
		return p.Pid()
	}
	return 0
}

// running reports whether node id's process runs, or why it stopped.
func (c *localCluster) running(id uint64) (bool, error) {
	p := c.process(id)
	if p == nil {
		return false, errors.New("never started")
	}
	return p.Running()
}

// signal sends sig to node id and waits up to timeout for it to exit.
func (c *localCluster) signal(id uint64, sig syscall.Signal, timeout time.Duration) error {
	p := c.process(id)
	if p == nil {
		return nil
	}
	if err := p.Signal(sig, timeout); err != nil {
		return fmt.Errorf("node %d: %w", id, err)
	}
	return nil
}

// kill kills node id with SIGKILL (a crash: nothing is flushed).
func (c *localCluster) kill(id uint64) error { return c.signal(id, syscall.SIGKILL, 10*time.Second) }

// stop stops node id with SIGTERM (orderly), and kills it after 15s.
func (c *localCluster) stop(id uint64) error {
	if err := c.signal(id, syscall.SIGTERM, 15*time.Second); err != nil {
		_ = c.kill(id)
		return err
	}
	return nil
}

// stopAll stops every node, concurrently.
func (c *localCluster) stopAll() error {
	var wg sync.WaitGroup
	errs := make([]error, len(c.ids))
	for i, id := range c.ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.stop(id)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// statuses asks every node for its status; nodes that do not answer map
// to their error.
func (c *localCluster) statuses(ctx context.Context) (map[uint64]*StatusResponse, map[uint64]error) {
	sts, errs := map[uint64]*StatusResponse{}, map[uint64]error{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, id := range c.ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := c.probe.Status(ctx, c.nodes[id].api)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs[id] = err
			} else {
				sts[id] = st
			}
		}()
	}
	wg.Wait()
	return sts, errs
}

// describe renders statuses for failure messages.
func describe(sts map[uint64]*StatusResponse, errs map[uint64]error) string {
	var lines []string
	for id, st := range sts {
		lines = append(lines, fmt.Sprintf("node %d: %s term %d leader %d commit %d applied %d", id, st.Role, st.Term, st.Leader, st.Commit, st.Applied))
	}
	for id, err := range errs {
		lines = append(lines, fmt.Sprintf("node %d: %v", id, err))
	}
	slices.Sort(lines)
	return strings.Join(lines, "; ")
}

// poll calls check every 25ms until it reports done or timeout passes; the
// failure names what check last said. It fails at once when the process of
// one of ids has exited.
func (c *localCluster) poll(ctx context.Context, timeout time.Duration, what string, ids []uint64, check func() (bool, string)) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		done, state := check()
		if done {
			return nil
		}
		if err := c.exited(ids); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %v (last seen: %s)", what, timeout, state)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last seen: %s)", what, ctx.Err(), state)
		case <-tick.C:
		}
	}
}

// waitLeader waits until the running nodes among ids agree on one leader
// that says it leads, and returns it.
func (c *localCluster) waitLeader(ctx context.Context, ids []uint64, timeout time.Duration) (uint64, error) {
	var leader uint64
	err := c.poll(ctx, timeout, fmt.Sprintf("nodes %v agree on a leader", ids), ids, func() (bool, string) {
		sts, errs := c.statuses(ctx)
		leader = 0
		for _, id := range ids {
			st := sts[id]
			if st == nil || st.Leader == 0 || leader != 0 && st.Leader != leader {
				return false, describe(sts, errs)
			}
			leader = st.Leader
		}
		if st := sts[leader]; st == nil || st.Role != "leader" {
			return false, describe(sts, errs)
		}
		return true, ""
	})
	return leader, err
}

// waitCaughtUp waits until node id has applied everything the leader had
// committed when the wait began.
func (c *localCluster) waitCaughtUp(ctx context.Context, id, leader uint64, timeout time.Duration) error {
	st, err := c.probe.Status(ctx, c.nodes[leader].api)
	if err != nil {
		return fmt.Errorf("status of leader %d: %w", leader, err)
	}
	target := st.Commit
	return c.poll(ctx, timeout, fmt.Sprintf("node %d applies up to index %d", id, target), []uint64{id}, func() (bool, string) {
		s, err := c.probe.Status(ctx, c.nodes[id].api)
		if err != nil {
			return false, err.Error()
		}
		return s.Applied >= target, fmt.Sprintf("applied %d", s.Applied)
	})
}

// waitConverged waits until every node has applied the same index, equal
// to the leader's commit index.
func (c *localCluster) waitConverged(ctx context.Context, timeout time.Duration) error {
	return c.poll(ctx, timeout, "every node applies the same index", c.ids, func() (bool, string) {
		sts, errs := c.statuses(ctx)
		if len(errs) > 0 || len(sts) != len(c.ids) {
			return false, describe(sts, errs)
		}
		var applied uint64
		for i, id := range c.ids {
			s := sts[id]
			if s.Applied != s.Commit || i > 0 && s.Applied != applied {
				return false, describe(sts, errs)
			}
			applied = s.Applied
		}
		return true, ""
	})
}

// exited reports the first of ids whose process has exited, with the last
// lines of its log.
func (c *localCluster) exited(ids []uint64) error {
	for _, id := range ids {
		if up, err := c.running(id); !up {
			return fmt.Errorf("node %d's process exited (%v); the end of %s:\n%s", id, err, c.nodes[id].logf, testutil.LogTail(c.nodes[id].logf, 5))
		}
	}
	return nil
}
