package main

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/flotilla-raft/flotilla/cluster/transport/remote"
)

// TestCertsCommand: `banking certs` issues a CA and node certificates
// carrying each node's identity and host; run again, it keeps the CA.
func TestCertsCommand(t *testing.T) {
	dir := t.TempDir()
	args := []string{"certs", "--dir", dir, "--cluster-id", "5", "--nodes", "1=10.0.0.1:7001,2=node2.example:7001"}
	var out, errOut bytes.Buffer
	if code := run(args, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	ca1, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	for id, host := range map[uint64]string{1: "10.0.0.1", 2: "node2.example"} {
		b, err := os.ReadFile(filepath.Join(dir, "node"+string(rune('0'+id))+".pem"))
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
	if code := run(args, &out, &errOut); code != 0 {
		t.Fatalf("second run: exit %d: %s", code, errOut.String())
	}
	if ca2, _ := os.ReadFile(filepath.Join(dir, "ca.pem")); !bytes.Equal(ca1, ca2) {
		t.Error("a second run replaced the CA")
	}
	if code := run([]string{"certs", "--dir", dir}, &out, &errOut); code != 2 {
		t.Errorf("no --nodes: exit %d, want 2", code)
	}
}
