// Package certs issues the mutual-TLS files of an example cluster with
// remote.CA: a CA, and per node a certificate carrying the node identity
// flotilla://<cluster-id>/<node-id> that the remote transport binds every
// inbound message to, valid for the node's host.
package certs

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/flotilla-raft/flotilla/cluster/transport/remote"
)

// Files names the files of node id under dir.
func Files(dir string, id uint64) (ca, cert, key string) {
	return filepath.Join(dir, "ca.pem"), filepath.Join(dir, fmt.Sprintf("node%d.pem", id)), filepath.Join(dir, fmt.Sprintf("node%d-key.pem", id))
}

// Issue writes (or reuses) dir/ca.pem and dir/ca-key.pem, and writes
// dir/node<id>.pem and dir/node<id>-key.pem for each node, valid for its
// host (a "host:port" keeps only the host). It returns the files written.
func Issue(dir string, clusterID uint64, hosts map[uint64]string, validFor time.Duration) ([]string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	caFile, caKey := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	var files []string
	ca, err := remote.LoadCA(caFile, caKey)
	if errors.Is(err, os.ErrNotExist) {
		if ca, err = remote.NewCA(fmt.Sprintf("flotilla cluster %d CA", clusterID), validFor); err != nil {
			return nil, err
		}
		key, err := ca.KeyPEM()
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(caKey, key, 0o600); err != nil {
			return nil, err
		}
		if err := os.WriteFile(caFile, ca.CertPEM(), 0o644); err != nil {
			return nil, err
		}
		files = append(files, caFile, caKey)
	} else if err != nil {
		return nil, err
	}
	for _, id := range slices.Sorted(maps.Keys(hosts)) {
		host := hosts[id]
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.Trim(host, "[]")
		_, cert, key := Files(dir, id)
		if err := ca.WriteNodeFiles(cert, key, []string{host}, validFor, remote.Identity{ClusterID: clusterID, NodeID: id}); err != nil {
			return nil, err
		}
		files = append(files, cert, key)
	}
	return files, nil
}
