package remote_test

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/flotilla-raft/flotilla/cluster/transport"
	"github.com/flotilla-raft/flotilla/cluster/transport/remote"
	"github.com/flotilla-raft/flotilla/cluster/transport/transporttest"
	"github.com/flotilla-raft/flotilla/internal/testutil"
	"github.com/flotilla-raft/flotilla/messages"
)

const ownProcessEnv = "FLOTILLA_REMOTE_TEST_OWN_PROCESS"

// inOwnProcess makes the calling test run in a child process of its own
// (this test binary, built with the same flags, -race included): it
// returns true in the child, where the test body runs; in the parent it
// runs the child, fails if the child failed, and returns false. A test
// that starts a protoactor remote in-process needs it: Remote.Start
// writes gRPC's global logger, which the gRPC goroutines of earlier tests
// in a shared process may still read.
func inOwnProcess(t *testing.T) bool {
	t.Helper()
	if os.Getenv(ownProcessEnv) == t.Name() {
		return true
	}
	args := []string{"-test.run=^" + t.Name() + "$", "-test.v", "-test.count=1", "-test.timeout=5m"}
	if testing.Short() {
		args = append(args, "-test.short")
	}
	cmd := testutil.ChildCommand(args, ownProcessEnv+"="+t.Name())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s in its own process: %v\n%s", t.Name(), err, out)
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("%s did not pass in its own process:\n%s", t.Name(), out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "host_test.go") {
			t.Log(strings.TrimSpace(l))
		}
	}
	return false
}

// TestHostServesManyNodes: the conformance suite, with every node of every
// network on one Host (one gRPC server, one port, one process): nodes are
// routed by cluster id and node id, each network being another cluster.
func TestHostServesManyNodes(t *testing.T) {
	if !inOwnProcess(t) {
		return
	}
	cfg := remote.DefaultConfig()
	cfg.Insecure = true
	cfg.MaxMessageSize = conformanceLimit()
	h, err := remote.NewHost(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	var cluster atomic.Uint64
	// A group: t.Run returns once the suite's parallel cases are done.
	t.Run("suite", func(t *testing.T) {
		transporttest.Run(t, func(t *testing.T, ids []uint64) map[uint64]transporttest.Node {
			c := cluster.Add(1)
			out := map[uint64]transporttest.Node{}
			for _, id := range ids {
				tr, err := h.Join(c, id)
				if err != nil {
					t.Fatal(err)
				}
				out[id] = transporttest.Node{Transport: tr, Address: tr.Addr()}
			}
			return out
		}, transporttest.Options{MaxMessageSize: conformanceLimit(), Parallel: true, Timeout: suiteTimeout, Messages: 400})
	})
	t.Logf("one host served %d clusters of 3 nodes", cluster.Load())
}

// TestTwoTransportsInOneProcess: two remote transports in one process (on
// one Host, on the application's actor system), one cluster of three
// nodes spread over this process's host and two child processes: the
// conformance suite passes, and both local nodes reach the remote ones
// and each other.
func TestTwoTransportsInOneProcess(t *testing.T) {
	if !inOwnProcess(t) {
		return
	}
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }))
	cfg := remote.DefaultConfig()
	cfg.Insecure = true
	cfg.MaxMessageSize = conformanceLimit()
	h, err := remote.NewHost(cfg, sys)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	var n atomic.Uint64
	t.Run("suite", func(t *testing.T) {
		transporttest.Run(t, func(t *testing.T, ids []uint64) map[uint64]transporttest.Node {
			// Node 1 and 2 share this process's host; node 3 is a child
			// process, so traffic also crosses processes.
			c := n.Add(1)
			out := map[uint64]transporttest.Node{}
			for _, id := range ids[:2] {
				tr, err := h.Join(c, id)
				if err != nil {
					t.Fatal(err)
				}
				out[id] = transporttest.Node{Transport: tr, Address: tr.Addr()}
			}
			rc := insecureConfig(ids[2])
			rc.ClusterID, rc.MaxMessageSize = c, conformanceLimit()
			child := spawnNode(t, rc)
			out[ids[2]] = transporttest.Node{Transport: child, Address: child.Addr()}
			return out
		}, transporttest.Options{MaxMessageSize: conformanceLimit(), Parallel: true, Timeout: suiteTimeout, Messages: 400})
	})

	// The application's actor system still works after the host closed.
	h.Close()
	pid := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(string); ok {
			ctx.Respond("pong")
		}
	}))
	if r, err := sys.Root.RequestFuture(pid, "ping", 5*time.Second).Result(); err != nil || r != "pong" {
		t.Fatalf("the application's actor system after Host.Close: %v, %v", r, err)
	}
}

// TestHostJoinErrors: a node cannot join twice, nor a closed host; under
// mutual TLS with ClusterID set, only nodes the certificate names join.
func TestHostJoinErrors(t *testing.T) {
	if !inOwnProcess(t) {
		return
	}
	ca := newCA(t, "cluster")
	cfg := remote.DefaultConfig()
	cfg.ClusterID, cfg.CAFile = 4, ca.file
	dir := t.TempDir()
	cfg.CertFile, cfg.KeyFile = dir+"/host.pem", dir+"/host-key.pem"
	if err := ca.WriteNodeFiles(cfg.CertFile, cfg.KeyFile, []string{"127.0.0.1"}, time.Hour,
		remote.Identity{ClusterID: 4, NodeID: 1}, remote.Identity{ClusterID: 4, NodeID: 2}); err != nil {
		t.Fatal(err)
	}
	h, err := remote.NewHost(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t1, err := h.Join(4, 1)
	if err != nil {
		t.Fatal(err)
	}
	t2, err := h.Join(4, 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Join(4, 1); err == nil {
		t.Error("node 1 joined twice")
	}
	if _, err := h.Join(4, 3); err == nil || !strings.Contains(err.Error(), "CertFile") {
		t.Errorf("node 3, not in the certificate, joined: %v", err)
	}
	// The two nodes talk through the host, with the identity checks on
	// (the host's certificate speaks for both).
	got := make(chan *messages.Message, 1)
	if err := t2.Start(context.Background(), func(m *messages.Message) { got <- m }); err != nil {
		t.Fatal(err)
	}
	t1.Start(context.Background(), func(*messages.Message) {})
	if err := t1.Send(transport.Peer{ID: 2, Address: h.Addr()}, &messages.Message{ClusterId: 4, From: 1, To: 2, Index: 5}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m.Index != 5 {
			t.Fatalf("got %v", m)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("node 2 never got node 1's message; stats %+v", t2.Stats())
	}
	h.Close()
	if _, err := h.Join(4, 2); err == nil {
		t.Error("joined a closed host")
	}
	if err := t1.Send(transport.Peer{ID: 2, Address: h.Addr()}, &messages.Message{ClusterId: 4, From: 1, To: 2}); err == nil {
		t.Error("Send after the host closed")
	}
}

// HostJoin is Join in the form actors.HostConfig.Join takes: the same
// node, and on a refusal a nil transport (not a nil *Transport in the
// interface) with Join's error.
func TestHostJoinForActorsHost(t *testing.T) {
	if !inOwnProcess(t) {
		return
	}
	cfg := remote.DefaultConfig()
	cfg.Insecure = true
	h, err := remote.NewHost(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var join func(clusterID, id uint64) (transport.Transport, error) = h.HostJoin
	tr, err := join(7, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := tr.(*remote.Transport); !ok || got.Addr() != h.Addr() {
		t.Fatalf("HostJoin(7, 2) = %v, want a *remote.Transport at %s", tr, h.Addr())
	}
	if tr, err := join(7, 2); err == nil || tr != nil {
		t.Fatalf("HostJoin(7, 2) again = %v, %v: want nil and an error", tr, err)
	}
	if tr, err := join(7, 0); err == nil || tr != nil {
		t.Fatalf("HostJoin(7, 0) = %v, %v: want nil and an error", tr, err)
	}
	_ = tr.Close()
}
