package remote_test

// Multi-node tests run every remote node in its own child process (this
// test binary, re-executed), driven over stdin/stdout by a proxy that
// implements transport.Transport in the parent.
//
// Why: protoactor's Remote.Start calls grpclog.SetLoggerV2, an
// unsynchronised write of a gRPC global that every gRPC goroutine reads, so
// two protoactor remotes (Hosts) in one process are a data race under
// -race. Several nodes in one process share one Host (host_test.go, each
// test in a child process of its own); nodes of different processes are
// children here. The children run with the same flags as the parent, so
// the race detector covers our code in them.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flotilla-raft/flotilla/cluster/transport"
	"github.com/flotilla-raft/flotilla/cluster/transport/remote"
	"github.com/flotilla-raft/flotilla/internal/testutil"
	"github.com/flotilla-raft/flotilla/messages"
)

const childEnv = "FLOTILLA_REMOTE_TEST_NODE"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(childEnv); cfg != "" {
		os.Exit(runChild(cfg))
	}
	os.Exit(m.Run())
}

// request is a parent→child command; reply and event go child→parent.
type request struct {
	ID  uint64         `json:"id"`
	Op  string         `json:"op"` // start, send, stats, peers, close
	To  transport.Peer `json:"to,omitempty"`
	Msg []byte         `json:"msg,omitempty"` // marshalled Raft message (nil: a nil message)
}

type reply struct {
	ID       uint64                         `json:"id"`
	Addr     string                         `json:"addr,omitempty"` // first line: the node's address
	Err      string                         `json:"err,omitempty"`  // error text
	Sentinel string                         `json:"sentinel,omitempty"`
	Inbound  []byte                         `json:"inbound,omitempty"` // event: a delivered message
	Stats    *transport.Stats               `json:"stats,omitempty"`
	Peers    map[uint64]transport.PeerState `json:"peers,omitempty"`
}

var sentinels = map[string]error{}

func init() {
	for _, e := range []error{transport.ErrClosed, transport.ErrOversized, transport.ErrUnknownPeer,
		transport.ErrInvalidAddress, transport.ErrInvalidMessage, transport.ErrDecode,
		transport.ErrAlreadyStarted, transport.ErrNilHandler} {
		sentinels[e.Error()] = e
	}
}

func errReply(id uint64, err error) reply {
	r := reply{ID: id}
	if err != nil {
		r.Err = err.Error()
		for name, s := range sentinels {
			if errors.Is(err, s) {
				r.Sentinel = name
			}
		}
	}
	return r
}

// runChild is a node process: it serves requests until "close" or EOF.
func runChild(cfgJSON string) int {
	var cfg remote.Config
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "child: bad config:", err)
		return 2
	}
	// Refusals are logged at Warn: tests read them from the child's stderr.
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var outMu sync.Mutex
	enc := json.NewEncoder(os.Stdout)
	write := func(r reply) {
		outMu.Lock()
		defer outMu.Unlock()
		enc.Encode(r)
	}
	tr, err := remote.New(cfg)
	if err != nil {
		write(errReply(0, err))
		return 0
	}
	write(reply{Addr: tr.Addr()})
	defer tr.Close()
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 256<<20)
	for in.Scan() {
		var req request
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			fmt.Fprintln(os.Stderr, "child: bad request:", err)
			return 2
		}
		switch req.Op {
		case "start":
			write(errReply(req.ID, tr.Start(context.Background(), func(m *messages.Message) {
				b, err := marshal(m)
				if err != nil {
					fmt.Fprintln(os.Stderr, "child: marshal inbound:", err)
					return
				}
				write(reply{Inbound: b})
			})))
		case "send":
			var m *messages.Message
			if req.Msg != nil {
				m = new(messages.Message)
				if err := unmarshal(req.Msg, m); err != nil {
					write(errReply(req.ID, err))
					continue
				}
			}
			write(errReply(req.ID, tr.Send(req.To, m)))
		case "stats":
			s := tr.Stats()
			write(reply{ID: req.ID, Stats: &s})
		case "peers":
			write(reply{ID: req.ID, Peers: tr.PeerStatus()})
		case "close":
			write(errReply(req.ID, tr.Close()))
			return 0
		}
	}
	return 0
}

// node is the parent's proxy for a child node process. It implements
// transport.Transport, transport.StatsReporter and transport.PeerStatuser.
type node struct {
	t    *testing.T
	addr string
	cmd  *exec.Cmd
	lc   transport.Lifecycle

	inMu   sync.Mutex // serialises requests
	stdin  *json.Encoder
	nextID atomic.Uint64
	calls  sync.Map // id → chan reply
	stderr testutil.SyncBuffer
	done   chan struct{} // closed when stdout ends
	exited chan error
	closed atomic.Bool
}

// spawnNode starts a child running remote.New(cfg). It fails the test if
// New fails; launchNode and launch.ready return that error instead.
func spawnNode(t *testing.T, cfg remote.Config) *node {
	t.Helper()
	return spawnNodes(t, cfg)[0]
}

// spawnNodes starts one child per config, booting them in parallel.
func spawnNodes(t *testing.T, cfgs ...remote.Config) []*node {
	t.Helper()
	launched := make([]*launch, len(cfgs))
	for i, cfg := range cfgs {
		launched[i] = launchNode(t, cfg)
	}
	nodes := make([]*node, len(cfgs))
	for i, l := range launched {
		n, err := l.ready(t)
		if err != nil {
			t.Fatalf("node %d: remote.New: %v", cfgs[i].ID, err)
		}
		nodes[i] = n
	}
	return nodes
}

// launch is a started child that has not reported its address yet.
type launch struct {
	n     *node
	id    uint64
	stdin io.Closer
	out   *bufio.Scanner
}

func launchNode(t *testing.T, cfg remote.Config) *launch {
	t.Helper()
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, done: make(chan struct{}), exited: make(chan error, 1)}
	n.cmd = testutil.ChildCommand(nil, childEnv+"="+string(cfgJSON))
	n.cmd.Stderr = &n.stderr
	stdin, err := n.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := n.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.stdin = json.NewEncoder(stdin)
	out := bufio.NewScanner(stdout)
	out.Buffer(make([]byte, 1<<20), 256<<20)
	return &launch{n: n, id: cfg.ID, stdin: stdin, out: out}
}

// ready waits for the child's first line: its address, or New's error.
func (l *launch) ready(t *testing.T) (*node, error) {
	t.Helper()
	n, out := l.n, l.out
	if !out.Scan() {
		n.cmd.Wait()
		t.Fatalf("node %d: child exited before reporting its address; stderr:\n%s", l.id, n.stderr.String())
	}
	var first reply
	if err := json.Unmarshal(out.Bytes(), &first); err != nil {
		t.Fatalf("node %d: bad first line %q: %v", l.id, out.Bytes(), err)
	}
	if first.Addr == "" {
		l.stdin.Close()
		n.cmd.Wait()
		return nil, errors.New(first.Err)
	}
	n.addr = first.Addr
	// Wait only after stdout is drained: exec's Wait closes the pipe, and a
	// Wait racing the reader lost the child's last line (the reply to
	// "close"), failing Close with "child exited" on a loaded machine.
	go func() {
		defer func() { n.exited <- n.cmd.Wait() }()
		defer close(n.done)
		for out.Scan() {
			var r reply
			if err := json.Unmarshal(out.Bytes(), &r); err != nil {
				continue
			}
			if r.Inbound != nil {
				m := new(messages.Message)
				if unmarshal(r.Inbound, m) == nil {
					n.lc.Deliver(m)
				}
				continue
			}
			if ch, ok := n.calls.LoadAndDelete(r.ID); ok {
				ch.(chan reply) <- r
			}
		}
	}()
	t.Cleanup(func() { n.Close() })
	return n, nil
}

// call sends a request and waits for its reply.
func (n *node) call(req request) (reply, error) {
	if n.closed.Load() && req.Op != "close" {
		return reply{}, transport.ErrClosed
	}
	req.ID = n.nextID.Add(1)
	ch := make(chan reply, 1)
	n.calls.Store(req.ID, ch)
	n.inMu.Lock()
	err := n.stdin.Encode(req)
	n.inMu.Unlock()
	if err != nil {
		return reply{}, fmt.Errorf("child gone: %w", err)
	}
	var r reply
	select {
	case r = <-ch:
	case <-n.done:
		select {
		case r = <-ch: // answered, then exited (close)
		default:
			return reply{}, fmt.Errorf("child exited; stderr:\n%s", n.stderr.String())
		}
	case <-time.After(waitTimeout):
		return reply{}, fmt.Errorf("child did not answer %q within %v", req.Op, waitTimeout)
	}
	if r.Err == "" {
		return r, nil
	}
	if s := sentinels[r.Sentinel]; s != nil {
		return r, fmt.Errorf("%w (child: %s)", s, r.Err)
	}
	return r, errors.New(r.Err)
}

func (n *node) Addr() string { return n.addr }

// pid is the child's process id.
func (n *node) pid() int { return n.cmd.Process.Pid }

func (n *node) Start(_ context.Context, h transport.Handler) error {
	if err := n.lc.Start(h); err != nil {
		return err
	}
	_, err := n.call(request{Op: "start"})
	return err
}

func (n *node) Send(to transport.Peer, m *messages.Message) error {
	var b []byte
	if m != nil {
		var err error
		if b, err = marshal(m); err != nil {
			return err
		}
	}
	_, err := n.call(request{Op: "send", To: to, Msg: b})
	return err
}

func (n *node) Stats() transport.Stats {
	r, err := n.call(request{Op: "stats"})
	if err != nil || r.Stats == nil {
		n.t.Errorf("stats: %v", err)
		return transport.Stats{}
	}
	return *r.Stats
}

func (n *node) PeerStatus() map[uint64]transport.PeerState {
	r, err := n.call(request{Op: "peers"})
	if err != nil {
		n.t.Errorf("peers: %v", err)
	}
	return r.Peers
}

// Close closes the child's transport and waits for the child to exit,
// failing the test if it exited badly (a race report exits with 66).
func (n *node) Close() error {
	n.lc.Close()
	if !n.closed.CompareAndSwap(false, true) {
		return nil
	}
	_, err := n.call(request{Op: "close"})
	select {
	case werr := <-n.exited:
		if werr != nil {
			n.t.Errorf("child node at %s exited with %v; stderr:\n%s", n.addr, werr, n.stderr.String())
		}
	case <-time.After(waitTimeout):
		n.cmd.Process.Kill()
		n.t.Errorf("child node at %s did not exit after close", n.addr)
	}
	return err
}
