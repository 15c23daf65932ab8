package remote_test

// Attacks on the gRPC port, as an outsider (plaintext) and as a member
// (a valid certificate). Each runs the node in a child process, checks it
// stays up and keeps delivering, that its peak RSS stays under twice the
// configured message limit above its baseline, and that the input is
// counted and logged (once per peer and cause).

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	premote "github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/encoding/gzip" // the attacker compresses
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/flotilla-raft/flotilla/cluster/transport"
	"github.com/flotilla-raft/flotilla/cluster/transport/remote"
	"github.com/flotilla-raft/flotilla/messages"
)

// attackLimit is the MaxMessageSize of attacked nodes; attackSize the
// size of the attacker's plain message, bombSize what its gzip bomb
// inflates to (6 × the limit; compressing more is slow under -race).
const (
	attackLimit = 4 << 20
	attackSize  = 64 << 20
	bombSize    = 24 << 20
)

// memProbe measures a child's memory: reset its peak RSS, then compare the
// peak after an attack with the RSS before it.
type memProbe struct {
	t        *testing.T
	pid      int
	baseline int64 // bytes
}

func probeMemory(t *testing.T, n *node) *memProbe {
	t.Helper()
	p := &memProbe{t: t, pid: n.pid()}
	// "5" resets VmHWM (the peak RSS) to the current RSS (Linux >= 4.0).
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.pid), []byte("5"), 0); err != nil {
		t.Logf("cannot reset the peak RSS (%v): the peak includes start-up", err)
	}
	p.baseline = p.read("VmRSS")
	return p
}

func (p *memProbe) read(field string) int64 {
	p.t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.pid))
	if err != nil {
		p.t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				p.t.Fatal(err)
			}
			return kb << 10
		}
	}
	p.t.Fatalf("no %s in /proc/%d/status", field, p.pid)
	return 0
}

// check fails unless the peak RSS since the probe stayed under twice the
// message limit above the baseline; it logs the figures either way.
func (p *memProbe) check(what string) {
	p.t.Helper()
	peak := p.read("VmHWM")
	grew := peak - p.baseline
	p.t.Logf("%s: RSS baseline %.1f MiB, peak %.1f MiB, growth %.1f MiB (limit %d MiB, bound %d MiB)",
		what, mib(p.baseline), mib(peak), mib(grew), attackLimit>>20, 2*attackLimit>>20)
	if grew >= 2*attackLimit {
		p.t.Errorf("%s: peak RSS grew by %.1f MiB, want under 2 × the %d MiB message limit", what, mib(grew), attackLimit>>20)
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// logLines counts the child's log lines refusing input for cause.
func logLines(n *node, cause string) int {
	return strings.Count(n.stderr.String(), `cause="`+cause+`"`)
}

func dial(t *testing.T, addr string, creds credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(1<<30)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// openStream opens protoactor's Receive stream and sends its connect
// request, as a peer's endpoint writer does.
func openStream(t *testing.T, conn *grpc.ClientConn, opts ...grpc.CallOption) premote.Remoting_ReceiveClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	stream, err := premote.NewRemotingClient(conn).Receive(ctx, opts...)
	if err != nil {
		t.Fatal(err)
	}
	// An error here (io.EOF: the node ended the stream) shows on Recv.
	_ = stream.Send(&premote.RemoteMessage{MessageType: &premote.RemoteMessage_ConnectRequest{
		ConnectRequest: &premote.ConnectRequest{ConnectionType: &premote.ConnectRequest_ServerConnection{
			ServerConnection: &premote.ServerConnection{SystemId: "attacker", Address: "127.0.0.1:1"}}}}})
	return stream
}

// batchOf is a batch carrying the given marshalled Envelopes to the
// receiver of node to of cluster.
func batchOf(addr string, cluster, to uint64, envs ...[]byte) *premote.RemoteMessage {
	b := &premote.MessageBatch{
		TypeNames: []string{string(proto.MessageName(&messages.Envelope{}))},
		Targets:   []*actor.PID{{Address: addr, Id: remote.ReceiverName("flotilla-raft", cluster, to)}},
	}
	for _, e := range envs {
		b.Envelopes = append(b.Envelopes, &premote.MessageEnvelope{MessageData: e})
	}
	return &premote.RemoteMessage{MessageType: &premote.RemoteMessage_MessageBatch{MessageBatch: b}}
}

// hugeEnvelope is a marshalled Envelope of about size bytes, nearly all
// zeros (gzip shrinks it about a thousandfold).
func hugeEnvelope(t *testing.T, size int) []byte {
	t.Helper()
	b, err := proto.Marshal(&messages.Envelope{Version: 1, Payload: make([]byte, size)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// streamError sends m on a fresh stream and returns how the node ended it.
func streamError(t *testing.T, stream premote.Remoting_ReceiveClient, m *premote.RemoteMessage) error {
	t.Helper()
	_ = stream.Send(m) // the node may end the stream before reading it all
	for {
		if _, err := stream.Recv(); err != nil {
			return err
		}
	}
}

// stillServes checks a normal peer still reaches n.
func stillServes(t *testing.T, n *node, in inbox, peer *node, index uint64) {
	t.Helper()
	if err := peer.Send(transport.Peer{ID: 1, Address: n.Addr()}, msg(2, 1, index)); err != nil {
		t.Fatal(err)
	}
	if m := expect(t, in, 2, "a normal message after the attack"); m.GetIndex() != index {
		t.Fatalf("delivered %v", m)
	}
}

func attackConfig(id uint64) remote.Config {
	cfg := insecureConfig(id)
	cfg.MaxMessageSize = attackLimit
	return cfg
}

// TestUnaryCallsAreRefused: protoactor implements ListProcesses and
// GetProcessDiagnostics as panic("implement me"); one call used to crash
// the node.
func TestUnaryCallsAreRefused(t *testing.T) {
	ns := spawnNodes(t, attackConfig(1), attackConfig(2))
	n1, n2 := ns[0], ns[1]
	in1 := start(t, n1)
	start(t, n2)
	mem := probeMemory(t, n1)

	client := premote.NewRemotingClient(dial(t, n1.Addr(), insecure.NewCredentials()))
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for range 3 {
		if _, err := client.ListProcesses(ctx, &premote.ListProcessesRequest{Pattern: ".*"}); status.Code(err) != codes.Unimplemented {
			t.Fatalf("ListProcesses: %v, want Unimplemented", err)
		}
		if _, err := client.GetProcessDiagnostics(ctx, &premote.GetProcessDiagnosticsRequest{}); status.Code(err) != codes.Unimplemented {
			t.Fatalf("GetProcessDiagnostics: %v, want Unimplemented", err)
		}
	}
	stillServes(t, n1, in1, n2, 1)
	if s := n1.Stats(); s.RefusedCalls != 6 {
		t.Errorf("RefusedCalls = %d, want 6", s.RefusedCalls)
	}
	if got := logLines(n1, "unsupported RPC"); got != 1 {
		t.Errorf("%d log lines for 6 refused calls from one peer, want 1 (rate-limited); stderr:\n%s", got, n1.stderr.String())
	}
	mem.check("6 unary calls")
}

// TestOversizedGRPCMessageIsRefused: one gRPC message of 64 MiB to a node
// whose limit is 4 MiB is refused from its length prefix, before gRPC
// buffers it.
func TestOversizedGRPCMessageIsRefused(t *testing.T) {
	ns := spawnNodes(t, attackConfig(1), attackConfig(2))
	n1, n2 := ns[0], ns[1]
	in1 := start(t, n1)
	start(t, n2)
	huge := hugeEnvelope(t, attackSize)
	mem := probeMemory(t, n1)

	stream := openStream(t, dial(t, n1.Addr(), insecure.NewCredentials()))
	if err := streamError(t, stream, batchOf(n1.Addr(), 0, 1, huge)); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("the node ended the stream with %v, want ResourceExhausted", err)
	}
	waitUntil(t, "node 1 to count the oversized message", func() bool { return n1.Stats().DroppedOversized == 1 })
	stillServes(t, n1, in1, n2, 1)
	if got := logLines(n1, "gRPC message over the size limit"); got != 1 {
		t.Errorf("%d log lines for the oversized message, want 1; stderr:\n%s", got, n1.stderr.String())
	}
	mem.check("a 64 MiB gRPC message")
}

// TestGzipBombIsRefused: 24 MiB of zeros gzip to about 24 KiB; a
// compressed stream is refused before any message is read. Two streams
// from one peer: counted twice, logged once.
func TestGzipBombIsRefused(t *testing.T) {
	ns := spawnNodes(t, attackConfig(1), attackConfig(2))
	n1, n2 := ns[0], ns[1]
	in1 := start(t, n1)
	start(t, n2)
	bomb := batchOf(n1.Addr(), 0, 1, hugeEnvelope(t, bombSize))
	mem := probeMemory(t, n1)

	// A small compressed message, then the bomb.
	for _, m := range []*premote.RemoteMessage{batchOf(n1.Addr(), 0, 1, []byte{8, 1}), bomb} {
		stream := openStream(t, dial(t, n1.Addr(), insecure.NewCredentials()), grpc.UseCompressor("gzip"))
		if err := streamError(t, stream, m); status.Code(err) != codes.Unimplemented {
			t.Fatalf("the node ended the gzip stream with %v, want Unimplemented", err)
		}
	}
	waitUntil(t, "node 1 to count the compressed streams", func() bool { return n1.Stats().RefusedCompressed == 2 })
	stillServes(t, n1, in1, n2, 1)
	if got := logLines(n1, "compressed stream"); got != 1 {
		t.Errorf("%d log lines for 2 compressed streams from one peer, want 1; stderr:\n%s", got, n1.stderr.String())
	}
	mem.check("a gzip bomb of 24 MiB")
}

// tlsCreds is a member's client credentials: certificate and key files
// issued by ca.
func tlsCreds(t *testing.T, ca *testCA, certFile, keyFile string) credentials.TransportCredentials {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS13})
}

// TestForgedSenderIsDropped: with node 3's valid certificate, an attacker
// claims to be node 1 (a heartbeat at term 500, which would depose a
// leader) and to be in another cluster; node 2 drops both, counts and logs
// them, and still delivers node 3's own message and node 1's.
func TestForgedSenderIsDropped(t *testing.T) {
	ca := newCA(t, "cluster")
	cfg := func(id uint64) remote.Config {
		c := remote.DefaultConfig()
		c.ID, c.ClusterID, c.CAFile = id, 1, ca.file
		c.CertFile, c.KeyFile = ca.issue(t, remote.Identity{ClusterID: 1, NodeID: id})
		c.MaxMessageSize = attackLimit
		return c
	}
	ns := spawnNodes(t, cfg(1), cfg(2))
	n1, n2 := ns[0], ns[1]
	in2 := start(t, n2)
	start(t, n1)
	mem := probeMemory(t, n2)

	cert3, key3 := ca.issue(t, remote.Identity{ClusterID: 1, NodeID: 3})
	stream := openStream(t, dial(t, n2.Addr(), tlsCreds(t, ca, cert3, key3)))
	codec := transport.Codec{}
	enc := func(m *messages.Message) []byte {
		b, err := codec.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	forged := &messages.Message{Type: messages.MessageType_MSG_HEARTBEAT, ClusterId: 1, From: 1, To: 2, Term: 500}
	otherCluster := &messages.Message{Type: messages.MessageType_MSG_HEARTBEAT, ClusterId: 9, From: 3, To: 2, Term: 500}
	own := &messages.Message{Type: messages.MessageType_MSG_HEARTBEAT, ClusterId: 1, From: 3, To: 2, Term: 1, Index: 33}
	for range 2 {
		if err := stream.Send(batchOf(n2.Addr(), 1, 2, enc(forged), enc(otherCluster))); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Send(batchOf(n2.Addr(), 1, 2, enc(own))); err != nil {
		t.Fatal(err)
	}
	if m := expect(t, in2, 3, "node 3's own message"); m.GetIndex() != 33 {
		t.Fatalf("delivered %v", m)
	}
	if err := n1.Send(transport.Peer{ID: 2, Address: n2.Addr()}, msg(1, 2, 7)); err != nil {
		t.Fatal(err)
	}
	if m := expect(t, in2, 1, "node 1's real message"); m.GetTerm() == 500 || m.GetIndex() != 7 {
		t.Fatalf("node 2 delivered %v as node 1's", m)
	}
	s := n2.Stats()
	if s.DroppedForged != 4 {
		t.Errorf("DroppedForged = %d, want 4", s.DroppedForged)
	}
	if got := logLines(n2, "sender does not match its certificate"); got != 1 {
		t.Errorf("%d log lines for the forged messages, want 1; stderr:\n%s", got, n2.stderr.String())
	}
	t.Logf("node 2 stats after the forgery: %+v", s)
	mem.check("4 forged messages")
}

// TestCertificateWithoutIdentityIsRefused: under mutual TLS a member
// certificate must name its node; a stream from one that does not is
// refused and counted.
func TestCertificateWithoutIdentityIsRefused(t *testing.T) {
	ca := newCA(t, "cluster")
	c := remote.DefaultConfig()
	c.ID, c.CAFile = 1, ca.file
	c.CertFile, c.KeyFile = ca.issue(t, remote.Identity{ClusterID: 1, NodeID: 1})
	n1 := spawnNode(t, c)
	start(t, n1)

	// A CA-signed certificate with no flotilla:// URI (a custom mapping
	// could accept it: Config.PeerIdentity).
	certPEM, keyPEM, err := issueWithoutIdentity(ca.CA)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := dir+"/anon.pem", dir+"/anon-key.pem"
	writeFile(t, certFile, certPEM)
	writeFile(t, keyFile, keyPEM)
	stream := openStream(t, dial(t, n1.Addr(), tlsCreds(t, ca, certFile, keyFile)))
	if err := streamError(t, stream, batchOf(n1.Addr(), 0, 1)); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("stream ended with %v, want PermissionDenied", err)
	}
	if s := n1.Stats(); s.RefusedIdentity != 1 {
		t.Errorf("RefusedIdentity = %d, want 1", s.RefusedIdentity)
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
