package certs

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"testing"
	"time"

	"github.com/flotilla-raft/flotilla/cluster/transport/remote"
)

// TestIssue: each node certificate carries the node's identity and host;
// a second Issue keeps the CA.
func TestIssue(t *testing.T) {
	dir := t.TempDir()
	hosts := map[uint64]string{1: "10.0.0.1:7001", 2: "node2.example"}
	if _, err := Issue(dir, 5, hosts, time.Hour); err != nil {
		t.Fatal(err)
	}
	caFile, _, _ := Files(dir, 1)
	ca1, _ := os.ReadFile(caFile)
	for id, host := range map[uint64]string{1: "10.0.0.1", 2: "node2.example"} {
		_, certFile, _ := Files(dir, id)
		b, err := os.ReadFile(certFile)
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode(b)
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		got, err := remote.URIIdentity(cert)
		if err != nil || len(got) != 1 || got[0] != (remote.Identity{ClusterID: 5, NodeID: id}) {
			t.Errorf("node %d: identity %v, %v", id, got, err)
		}
		if err := cert.VerifyHostname(host); err != nil {
			t.Errorf("node %d: %v", id, err)
		}
	}
	if _, err := Issue(dir, 5, map[uint64]string{3: "127.0.0.1"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if ca2, _ := os.ReadFile(caFile); !bytes.Equal(ca1, ca2) {
		t.Error("a second Issue replaced the CA")
	}
}
