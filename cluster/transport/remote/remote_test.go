package remote_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-raft/flotilla/cluster/transport"
	"github.com/flotilla-raft/flotilla/cluster/transport/remote"
	"github.com/flotilla-raft/flotilla/cluster/transport/transporttest"
	"github.com/flotilla-raft/flotilla/messages"
)

const waitTimeout = 60 * time.Second

// conformanceLimit is the size limit of the conformance runs. The suite
// sends a message of up to half the limit and one of limit+1 bytes, both
// through the parent/child pipe as JSON; 12 MiB makes the large message
// cross gRPC's default 4 MiB receive limit (which New raises). -short uses
// 2 MiB to stay quick on a loaded machine.
func conformanceLimit() int {
	if testing.Short() {
		return 2 << 20
	}
	return 12 << 20
}

// suiteTimeout is generous: every node is a child process, possibly built
// with -race, on a machine that may be busy.
const suiteTimeout = 60 * time.Second

func newTransport(t *testing.T, cfg remote.Config) *node { return spawnNode(t, cfg) }

func asNetwork(nodes []*node) map[uint64]transporttest.Node {
	out := map[uint64]transporttest.Node{}
	for i, n := range nodes {
		out[uint64(i+1)] = transporttest.Node{Transport: n, Address: n.Addr()}
	}
	return out
}

func insecureConfig(id uint64) remote.Config {
	cfg := remote.DefaultConfig()
	cfg.ID, cfg.Insecure = id, true
	return cfg
}

func TestConformanceInsecure(t *testing.T) {
	transporttest.Run(t, func(t *testing.T, ids []uint64) map[uint64]transporttest.Node {
		var cfgs []remote.Config
		for _, id := range ids {
			cfg := insecureConfig(id)
			cfg.MaxMessageSize = conformanceLimit()
			cfgs = append(cfgs, cfg)
		}
		return asNetwork(spawnNodes(t, cfgs...))
	}, transporttest.Options{MaxMessageSize: conformanceLimit(), Parallel: true, Timeout: suiteTimeout, Messages: 400})
}

func TestConformanceMutualTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("the insecure conformance run covers the transport; this adds TLS handshakes")
	}
	ca := newCA(t, "cluster")
	transporttest.Run(t, func(t *testing.T, ids []uint64) map[uint64]transporttest.Node {
		var cfgs []remote.Config
		for _, id := range ids {
			cfg := remote.DefaultConfig()
			cfg.ID, cfg.CAFile = id, ca.file
			cfg.CertFile, cfg.KeyFile = ca.issue(t, remote.Identity{ClusterID: transporttest.ClusterID, NodeID: id})
			cfg.MaxMessageSize = 2 << 20
			cfgs = append(cfgs, cfg)
		}
		return asNetwork(spawnNodes(t, cfgs...))
	}, transporttest.Options{MaxMessageSize: 2 << 20, Parallel: true, Timeout: suiteTimeout, Messages: 400})
}

// inbox records what a node's Handler received.
type inbox struct {
	ch   chan *messages.Message
	node *node
}

func (in inbox) handle(m *messages.Message) {
	select {
	case in.ch <- m:
	default: // the test reads what it needs; never block the transport
	}
}

func start(t *testing.T, n *node) inbox {
	t.Helper()
	in := inbox{ch: make(chan *messages.Message, 1024), node: n}
	if err := n.Start(context.Background(), in.handle); err != nil {
		t.Fatal(err)
	}
	return in
}

func msg(from, to, index uint64) *messages.Message {
	return &messages.Message{Type: messages.MessageType_MSG_HEARTBEAT, ClusterId: 1, From: from, To: to, Index: index}
}

// expect waits for a message from `from`, failing with what if none comes.
func expect(t *testing.T, in inbox, from uint64, what string) *messages.Message {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case m := <-in.ch:
			if m.GetFrom() == from {
				return m
			}
		case <-in.node.done:
			t.Fatalf("waiting for %s: the node's process ended; stderr:\n%s", what, in.node.stderr.String())
		case <-deadline:
			t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
	}
}

// waitUntil polls cond with a deadline; for counters that have no event.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(waitTimeout)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
	}
}

func TestUntrustedPeerIsRefused(t *testing.T) {
	cluster, rogue := newCA(t, "cluster"), newCA(t, "rogue")
	cfg := func(id uint64, ca *testCA) remote.Config {
		c := remote.DefaultConfig()
		c.ID, c.CAFile = id, cluster.file // everyone trusts the cluster CA
		c.CertFile, c.KeyFile = ca.issue(t, remote.Identity{ClusterID: 1, NodeID: id})
		return c
	}
	// Node 3's certificate comes from an untrusted CA.
	ns := spawnNodes(t, cfg(1, cluster), cfg(2, cluster), cfg(3, rogue))
	n1, n2, n3 := ns[0], ns[1], ns[2]
	in1, in2 := start(t, n1), start(t, n2)
	start(t, n3)

	if err := n3.Send(transport.Peer{ID: 1, Address: n1.Addr()}, msg(3, 1, 1)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "node 1 to count the refused handshake", func() bool { return n1.Stats().RejectedHandshakes > 0 })

	// Trusted peers keep talking both ways.
	for i := uint64(1); i <= 3; i++ {
		if err := n1.Send(transport.Peer{ID: 2, Address: n2.Addr()}, msg(1, 2, i)); err != nil {
			t.Fatal(err)
		}
		expect(t, in2, 1, "node 1's message at node 2")
		if err := n2.Send(transport.Peer{ID: 1, Address: n1.Addr()}, msg(2, 1, i)); err != nil {
			t.Fatal(err)
		}
		expect(t, in1, 2, "node 2's message at node 1")
	}
	select {
	case m := <-in1.ch:
		if m.GetFrom() == 3 {
			t.Fatalf("node 1 delivered a message from the untrusted node: %v", m)
		}
	default:
	}
	// Received is counted after the Handler returns: wait for it.
	waitUntil(t, "node 1 to count the 3 messages from node 2", func() bool { return n1.Stats().Received >= 3 })
	if s := n1.Stats(); s.Received != 3 {
		t.Fatalf("node 1 stats %+v: want exactly the 3 messages from node 2", s)
	}
	waitUntil(t, "node 3 to see node 1 as disconnected", func() bool {
		ps := n3.PeerStatus()[1]
		return ps.State == transport.ConnDisconnected
	})
	if ps := n1.PeerStatus()[2]; ps.State != transport.ConnConnected || ps.Sent != 3 {
		t.Fatalf("node 1's view of node 2: %+v", ps)
	}
}

func TestReconnectAfterPeerRestart(t *testing.T) {
	n1 := newTransport(t, insecureConfig(1))
	start(t, n1)
	n2 := newTransport(t, insecureConfig(2))
	in2 := start(t, n2)
	addr := n2.Addr()
	peer2 := transport.Peer{ID: 2, Address: addr}

	if err := n1.Send(peer2, msg(1, 2, 1)); err != nil {
		t.Fatal(err)
	}
	expect(t, in2, 1, "the first message")
	waitUntil(t, "node 1 to report node 2 connected", func() bool {
		return n1.PeerStatus()[2].State == transport.ConnConnected
	})

	// Node 2 restarts at the same address; node 1 is not restarted.
	n2.Close()
	waitUntil(t, "node 1 to see node 2's connection end", func() bool {
		return n1.PeerStatus()[2].State == transport.ConnDisconnected
	})
	cfg := insecureConfig(2)
	cfg.ListenAddr = addr
	restarted := newTransport(t, cfg)
	in2 = start(t, restarted)

	// Like Raft's heartbeats: keep sending until one arrives.
	deadline := time.After(waitTimeout)
	for i := uint64(2); ; i++ {
		if err := n1.Send(peer2, msg(1, 2, i)); err != nil {
			t.Fatal(err)
		}
		select {
		case <-in2.ch:
			if ps := n1.PeerStatus()[2]; ps.State != transport.ConnConnected {
				t.Errorf("delivered, but node 1 reports node 2 as %v", ps.State)
			}
			return
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("node 1 never reached the restarted node 2 (status %+v)", n1.PeerStatus()[2])
		}
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := remote.Config{ListenAddr: "0.0.0.0:7000", CertFile: "c.pem", Insecure: true, MaxMessageSize: -1}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"Config.ID", "Config.AdvertisedAddr", "Config.Insecure", "Config.MaxMessageSize"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error does not name %s:\n%v", want, err)
		}
	}
	ok := remote.DefaultConfig()
	ok.ID, ok.Insecure = 1, true
	if err := ok.Validate(); err != nil {
		t.Errorf("valid config refused: %v", err)
	}
	noTLS := remote.DefaultConfig()
	noTLS.ID = 1
	if err := noTLS.Validate(); err == nil || !strings.Contains(err.Error(), "Config.CAFile") {
		t.Errorf("config with neither TLS nor Insecure: %v", err)
	}
}

func TestNewFailsCleanly(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := insecureConfig(1)
	cfg.ListenAddr = busy.Addr().String()
	// Refused by the pre-check, before protoactor's Start (which would
	// panic).
	if _, err := remote.New(cfg); err == nil || !strings.Contains(err.Error(), "ListenAddr") {
		t.Fatalf("New on a busy port: %v", err)
	}
	cfg = remote.DefaultConfig()
	cfg.ID, cfg.CAFile, cfg.CertFile, cfg.KeyFile = 1, "/nonexistent/ca.pem", "x", "y"
	if _, err := remote.New(cfg); err == nil || !strings.Contains(err.Error(), "CAFile") {
		t.Fatalf("New with a missing CA file: %v", err)
	}
}

func TestSendErrors(t *testing.T) {
	n1 := newTransport(t, insecureConfig(1))
	for _, addr := range []string{"", "nohost", "0.0.0.0:1", "127.0.0.1:0", "127.0.0.1:http"} {
		if err := n1.Send(transport.Peer{ID: 2, Address: addr}, msg(1, 2, 1)); !errors.Is(err, transport.ErrInvalidAddress) {
			t.Errorf("Send to %q: err = %v, want ErrInvalidAddress", addr, err)
		}
	}
	if s := n1.Stats(); s.SendErrors != 5 || s.Sent != 0 {
		t.Errorf("stats %+v", s)
	}
}

// TestWildcardListenWithAdvertisedAddr binds every interface and advertises
// a dialable address: peers reach the node, and its replies carry the
// advertised address.
func TestWildcardListenWithAdvertisedAddr(t *testing.T) {
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := free.Addr().(*net.TCPAddr).Port
	free.Close()

	cfg := insecureConfig(1)
	cfg.ListenAddr = fmt.Sprintf("0.0.0.0:%d", port)
	cfg.AdvertisedAddr = fmt.Sprintf("127.0.0.1:%d", port)
	ns := spawnNodes(t, cfg, insecureConfig(2))
	n1, n2 := ns[0], ns[1]
	if n1.Addr() != cfg.AdvertisedAddr {
		t.Fatalf("Addr() = %q, want the advertised %q", n1.Addr(), cfg.AdvertisedAddr)
	}
	in1, in2 := start(t, n1), start(t, n2)
	if err := n2.Send(transport.Peer{ID: 1, Address: n1.Addr()}, msg(2, 1, 1)); err != nil {
		t.Fatal(err)
	}
	expect(t, in1, 2, "node 2's message at the wildcard-bound node 1")
	if err := n1.Send(transport.Peer{ID: 2, Address: n2.Addr()}, msg(1, 2, 2)); err != nil {
		t.Fatal(err)
	}
	expect(t, in2, 1, "node 1's reply")
}
