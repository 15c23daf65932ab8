package remote_test

import (
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"os"
	"testing"
	"time"

	"github.com/flotilla-raft/flotilla/cluster/transport"
	"github.com/flotilla-raft/flotilla/cluster/transport/remote"
)

// servedSerial handshakes with addr as a client holding certFile/keyFile
// and returns the serial of the server's certificate, or the handshake
// error.
func servedSerial(t *testing.T, addr string, roots *x509.CertPool, certFile, keyFile string) (*big.Int, error) {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", addr, &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots,
		NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS13})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	// TLS 1.3: the server checks the client certificate after the
	// client's handshake returns; a read shows a refusal.
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
		return nil, err
	}
	return conn.ConnectionState().PeerCertificates[0].SerialNumber, nil
}

func isTimeout(err error) bool {
	ne, ok := err.(interface{ Timeout() bool })
	return ok && ne.Timeout()
}

// TestCertificateRotation: the node's certificate and CA files are
// replaced while it runs; new connections use the new certificate and
// trust the new CA, without a restart, and the cluster keeps talking.
func TestCertificateRotation(t *testing.T) {
	oldCA, newCA := newCA(t, "old"), newCA(t, "new")
	cfg := func(id uint64) remote.Config {
		c := remote.DefaultConfig()
		c.ID, c.CAFile = id, oldCA.file
		c.CertFile, c.KeyFile = oldCA.issue(t, remote.Identity{ClusterID: 1, NodeID: id})
		return c
	}
	c1, c2 := cfg(1), cfg(2)
	// Node 1's files are its own copies, rotated below.
	dir := t.TempDir()
	caFile := dir + "/ca.pem"
	writeFile(t, caFile, oldCA.CertPEM())
	c1.CAFile = caFile
	ns := spawnNodes(t, c1, c2)
	n1, n2 := ns[0], ns[1]
	in1 := start(t, n1)
	start(t, n2)
	if err := n2.Send(transport.Peer{ID: 1, Address: n1.Addr()}, msg(2, 1, 1)); err != nil {
		t.Fatal(err)
	}
	expect(t, in1, 2, "node 2's message before the rotation")

	oldRoots, newRoots := x509.NewCertPool(), x509.NewCertPool()
	oldRoots.AddCert(oldCA.Cert)
	newRoots.AddCert(newCA.Cert)
	oldClientCert, oldClientKey := oldCA.issue(t, remote.Identity{ClusterID: 1, NodeID: 9})
	newClientCert, newClientKey := newCA.issue(t, remote.Identity{ClusterID: 1, NodeID: 9})
	before, err := servedSerial(t, n1.Addr(), oldRoots, oldClientCert, oldClientKey)
	if err != nil {
		t.Fatalf("handshake before the rotation: %v", err)
	}
	if _, err := servedSerial(t, n1.Addr(), oldRoots, newClientCert, newClientKey); err == nil {
		t.Fatal("a client certificate of the new CA was accepted before the rotation")
	}

	// Rotate: node 1 trusts both CAs and gets a certificate of the new CA.
	writeFile(t, caFile, append(oldCA.CertPEM(), newCA.CertPEM()...))
	if err := newCA.WriteNodeFiles(c1.CertFile, c1.KeyFile, []string{"127.0.0.1"}, time.Hour, remote.Identity{ClusterID: 1, NodeID: 1}); err != nil {
		t.Fatal(err)
	}
	after, err := servedSerial(t, n1.Addr(), newRoots, newClientCert, newClientKey)
	if err != nil {
		t.Fatalf("handshake after the rotation (new CA, new client certificate): %v", err)
	}
	if after.Cmp(before) == 0 {
		t.Fatal("node 1 still serves its old certificate")
	}
	if _, err := servedSerial(t, n1.Addr(), oldRoots, oldClientCert, oldClientKey); err == nil {
		t.Fatal("node 1's new certificate verified against the old CA only")
	}
	// Node 2 still trusts only the old CA: its connection, established
	// before, keeps working (established connections keep their keys).
	if err := n2.Send(transport.Peer{ID: 1, Address: n1.Addr()}, msg(2, 1, 2)); err != nil {
		t.Fatal(err)
	}
	expect(t, in1, 2, "node 2's message after node 1's rotation")

	// Outbound: node 3 trusts only the new CA; node 1 reaches it only by
	// presenting its new certificate and trusting the new CA.
	c3 := remote.DefaultConfig()
	c3.ID, c3.CAFile = 3, newCA.file
	c3.CertFile, c3.KeyFile = newCA.issue(t, remote.Identity{ClusterID: 1, NodeID: 3})
	n3 := spawnNode(t, c3)
	in3 := start(t, n3)
	if err := n1.Send(transport.Peer{ID: 3, Address: n3.Addr()}, msg(1, 3, 1)); err != nil {
		t.Fatal(err)
	}
	expect(t, in3, 1, "node 1's message at node 3, which trusts only the new CA")
	if _, err := os.Stat(c1.CertFile + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("WriteNodeFiles left a temporary file: %v", err)
	}
}
