package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/rpc"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/cluster/transport/remote"
)

// The 3-process row: the bench binary re-executes itself three times as a
// Flotilla node server (serverEnv set), each with its own Pebble directory
// (durable) or memory store, talking to each other over the gRPC remote
// transport on loopback. The driver process hosts no node: its clients
// send each proposal over net/rpc (one loopback round trip more than the
// in-process rows) to the process whose node leads, which proposes it with
// actors.ProposeAndWait and answers once it is applied there.

// serverEnv carries the server's JSON-encoded serverArgs; its presence
// makes the binary a server.
const serverEnv = "FLOTILLA_BENCH_SERVER"

type serverArgs struct {
	ID    uint64
	Peers map[uint64]string // raft (gRPC) address of every member
	Mode  string
	Dir   string
}

// ProposeArgs is the RPC request of Node.Propose.
type ProposeArgs struct{ Data []byte }

// ProposeReply answers Node.Propose: Err is empty on success; Leader names
// the leader when the node does not lead.
type ProposeReply struct {
	Err    string
	Leader uint64
}

// WaitArgs is the RPC request of Node.WaitLeader.
type WaitArgs struct{ Timeout time.Duration }

// WaitReply answers Node.WaitLeader.
type WaitReply struct{ IsLeader bool }

// Empty is an empty RPC request or reply.
type Empty struct{}

// NodeService is the RPC service of a node server.
type NodeService struct {
	root     *actor.RootContext
	pid      *actor.PID
	watch    *actor.PID
	isLeader chan struct{} // closed when this node first leads
}

// Propose proposes args.Data on the local node and waits until it is
// applied there.
func (s *NodeService) Propose(args *ProposeArgs, reply *ProposeReply) error {
	_, err := actors.ProposeAndWait(s.root, s.pid, &actors.Propose{Data: args.Data}, proposalTimeout)
	if err != nil {
		reply.Err = err.Error()
		var nl *actors.NotLeaderError
		if errors.As(err, &nl) {
			reply.Leader = nl.Leader
		}
	}
	return nil
}

// WaitLeader waits until the local node has become leader, or the timeout.
func (s *NodeService) WaitLeader(args *WaitArgs, reply *WaitReply) error {
	t := time.NewTimer(args.Timeout)
	defer t.Stop()
	select {
	case <-s.isLeader:
		reply.IsLeader = true
	case <-t.C:
	}
	return nil
}

// Campaign asks the local node to start an election.
func (s *NodeService) Campaign(_ *Empty, _ *Empty) error {
	s.root.Send(s.pid, &actors.Campaign{})
	return nil
}

// Quiet unsubscribes the leader watch (it would get an event per entry).
func (s *NodeService) Quiet(_ *Empty, _ *Empty) error {
	s.root.Send(s.pid, &actors.Unsubscribe{PID: s.watch})
	return nil
}

// serverMain runs one node server until its standard input closes (the
// driver closes it, or dies), printing "READY <rpc address>" once serving.
func serverMain(spec string) error {
	var a serverArgs
	if err := json.Unmarshal([]byte(spec), &a); err != nil {
		return fmt.Errorf("server: bad %s: %w", serverEnv, err)
	}
	tr, err := remote.New(remote.Config{ID: a.ID, ListenAddr: a.Peers[a.ID], Insecure: true})
	if err != nil {
		return err
	}
	sys := newQuietActorSystem()
	defer sys.Shutdown()
	svc := &NodeService{root: sys.Root, isLeader: make(chan struct{})}
	var once sync.Once
	svc.watch = sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if rc, ok := ctx.Message().(*actors.RoleChanged); ok && rc.To == actors.Leader {
			once.Do(func() { close(svc.isLeader) })
		}
	}))
	store, closeStore, err := flotillaStore(a.Mode, a.Dir, a.ID)
	if err != nil {
		tr.Close()
		return err
	}
	defer closeStore()
	boot := flotillaBoot(func(id uint64) string { return a.Peers[id] })
	props, err := actors.Props(flotillaNodeConfig(a.ID, a.Peers[a.ID], boot, tr, store, svc.watch))
	if err != nil {
		tr.Close()
		return err
	}
	svc.pid = sys.Root.Spawn(props)

	srv := rpc.NewServer()
	if err := srv.RegisterName("Node", svc); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return // closed
			}
			go srv.ServeConn(conn)
		}
	}()
	fmt.Printf("READY %s\n", ln.Addr())

	_, _ = io.Copy(io.Discard, os.Stdin) // until the driver closes it
	_, err = actors.Request[*actors.Stopped](sys.Root, svc.pid, &actors.Stop{}, 15*time.Second)
	return err
}

func procDriver() *driver {
	return &driver{
		name: "flotilla-3proc",
		note: func(mode string) string {
			s := "memstore"
			if mode == modeDurable {
				s = "pebblestore"
			}
			return s + ", 3 processes, gRPC remote transport on loopback, +1 net/rpc hop from the driver"
		},
		start: startProc,
	}
}

// rpcConnsPerNode spreads the driver's clients over a few connections.
const rpcConnsPerNode = 4

type procCluster struct {
	cmds    []*exec.Cmd
	stdins  []io.WriteCloser
	clients map[uint64][]*rpc.Client
	leader  atomic.Uint64
	next    atomic.Uint64
}

// freeLoopbackAddrs returns n loopback addresses whose ports were free a
// moment ago.
func freeLoopbackAddrs(n int) ([]string, error) {
	var out []string
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	return out, nil
}

func startProc(ctx context.Context, mode, dir string) (cluster, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	addrs, err := freeLoopbackAddrs(3)
	if err != nil {
		return nil, err
	}
	peers := map[uint64]string{}
	for i, a := range addrs {
		peers[uint64(i+1)] = a
	}
	c := &procCluster{clients: map[uint64][]*rpc.Client{}}
	for id := uint64(1); id <= 3; id++ {
		spec, _ := json.Marshal(serverArgs{ID: id, Peers: peers, Mode: mode, Dir: dir})
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), serverEnv+"="+string(spec))
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			c.close()
			return nil, err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			c.close()
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			c.close()
			return nil, err
		}
		c.cmds = append(c.cmds, cmd)
		c.stdins = append(c.stdins, stdin)
		rpcAddr, err := readReady(ctx, stdout)
		if err != nil {
			c.close()
			return nil, fmt.Errorf("node %d: %w", id, err)
		}
		for range rpcConnsPerNode {
			cl, err := rpc.Dial("tcp", rpcAddr)
			if err != nil {
				c.close()
				return nil, err
			}
			c.clients[id] = append(c.clients[id], cl)
		}
	}
	if err := c.call(ctx, 1, "Node.Campaign", &Empty{}, &Empty{}); err != nil {
		c.close()
		return nil, err
	}
	// Ask every node to wait for its own leadership; the first to answer
	// yes leads.
	timeout := 30 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	found := make(chan uint64, 3)
	for id := uint64(1); id <= 3; id++ {
		go func() {
			var r WaitReply
			if err := c.call(ctx, id, "Node.WaitLeader", &WaitArgs{Timeout: timeout}, &r); err == nil && r.IsLeader {
				found <- id
			}
		}()
	}
	select {
	case id := <-found:
		c.leader.Store(id)
	case <-ctx.Done():
		c.close()
		return nil, fmt.Errorf("flotilla-3proc: no leader: %w", ctx.Err())
	}
	for id := uint64(1); id <= 3; id++ {
		if err := c.call(ctx, id, "Node.Quiet", &Empty{}, &Empty{}); err != nil {
			c.close()
			return nil, err
		}
	}
	return c, nil
}

// readReady reads the server's "READY <addr>" line.
func readReady(ctx context.Context, stdout io.Reader) (string, error) {
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "READY "); ok {
				line <- a
				break
			}
		}
		close(line)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case a, ok := <-line:
		if !ok {
			return "", errors.New("server exited before it was ready")
		}
		return a, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// call makes an RPC to node id, giving up when ctx ends.
func (c *procCluster) call(ctx context.Context, id uint64, method string, args, reply any) error {
	conns := c.clients[id]
	cl := conns[c.next.Add(1)%uint64(len(conns))]
	call := cl.Go(method, args, reply, make(chan *rpc.Call, 1))
	select {
	case <-call.Done:
		return call.Error
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *procCluster) propose(ctx context.Context, data []byte) error {
	id := c.leader.Load()
	var r ProposeReply
	if err := c.call(ctx, id, "Node.Propose", &ProposeArgs{Data: data}, &r); err != nil {
		return err
	}
	if r.Err != "" {
		if r.Leader != 0 && r.Leader != id {
			c.leader.CompareAndSwap(id, r.Leader)
		}
		return errors.New(r.Err)
	}
	return nil
}

func (c *procCluster) close() error {
	for _, cls := range c.clients {
		for _, cl := range cls {
			cl.Close()
		}
	}
	for _, in := range c.stdins {
		in.Close()
	}
	var errs []error
	for i, cmd := range c.cmds {
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				errs = append(errs, fmt.Errorf("node %d: %w", i+1, err))
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			errs = append(errs, fmt.Errorf("node %d: did not stop in 30s; killed", i+1))
			<-done
		}
	}
	return errors.Join(errs...)
}
