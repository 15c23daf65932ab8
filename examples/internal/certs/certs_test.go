package certs

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/flotilla-raft/flotilla/cluster/transport/remote"
)

// TestIssue: the first Issue writes the CA and the node files, a later one
// only the node files (the CA is kept); a bracketed IPv6 host:port keeps
// its address as the certificate's IP SAN. (The banking example's
// TestCertsCommand checks identities and hosts through its CLI.)
func TestIssue(t *testing.T) {
	dir := t.TempDir()
	caFile, cert1, key1 := Files(dir, 1)
	got, err := Issue(dir, 5, map[uint64]string{1: "[::1]:7001"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{caFile, caFile[:len(caFile)-len(".pem")] + "-key.pem", cert1, key1}; !slices.Equal(got, want) {
		t.Fatalf("first Issue wrote %v, want %v", got, want)
	}
	_, cert2, key2 := Files(dir, 2)
	if got, err = Issue(dir, 5, map[uint64]string{2: "127.0.0.1"}, time.Hour); err != nil || !slices.Equal(got, []string{cert2, key2}) {
		t.Fatalf("second Issue wrote %v, %v; want only node 2's files", got, err)
	}
	b, err := os.ReadFile(cert1)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.VerifyHostname("::1"); err != nil {
		t.Error(err)
	}
	if ids, err := remote.URIIdentity(cert); err != nil || len(ids) != 1 || ids[0] != (remote.Identity{ClusterID: 5, NodeID: 1}) {
		t.Errorf("identity %v, %v", ids, err)
	}
}
