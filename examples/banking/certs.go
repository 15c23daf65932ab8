package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/flotilla-raft/flotilla/cluster/transport/remote"
)

// runCerts is `banking certs`: it issues the mutual-TLS files of a
// cluster with remote.CA. Each node certificate carries the node identity
// flotilla://<cluster-id>/<node-id> that the transport binds every inbound
// message to, and its host as IP or DNS SAN.
func runCerts(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("banking certs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", ".", "directory of ca.pem, ca-key.pem and nodeN.pem, nodeN-key.pem (an existing CA there is reused)")
	clusterID := fs.Uint64("cluster-id", 1, "cluster id (as given to banking server --cluster-id)")
	nodes := fs.String("nodes", "", "the nodes: id=host,... (host: the IP address or name peers dial)")
	days := fs.Int("days", 365, "validity of the certificates, in days")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	hosts, err := parseIDAddrs(*nodes)
	if err == nil && len(hosts) == 0 {
		err = errors.New("give at least one node")
	}
	if err != nil || *clusterID == 0 || *days <= 0 || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "banking certs: want --nodes id=host,..., a non-zero --cluster-id and positive --days (%v)\n", err)
		return 2
	}
	files, err := issueCerts(*dir, *clusterID, hosts, time.Duration(*days)*24*time.Hour)
	if err != nil {
		fmt.Fprintf(stderr, "banking certs: %v\n", err)
		return 1
	}
	for _, f := range files {
		fmt.Fprintln(stdout, f)
	}
	return 0
}

// issueCerts writes (or reuses) dir/ca.pem and dir/ca-key.pem, and writes
// dir/node<id>.pem and dir/node<id>-key.pem for each node, valid for its
// host (a "host:port" keeps only the host). It returns the files written.
func issueCerts(dir string, clusterID uint64, hosts map[uint64]string, validFor time.Duration) ([]string, error) {
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
	ids := make([]uint64, 0, len(hosts))
	for id := range hosts {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		host := hosts[id]
		if h, _, err := splitAddr(host); err == nil {
			host = h
		}
		host = strings.Trim(host, "[]")
		cert, key := filepath.Join(dir, fmt.Sprintf("node%d.pem", id)), filepath.Join(dir, fmt.Sprintf("node%d-key.pem", id))
		if err := ca.WriteNodeFiles(cert, key, []string{host}, validFor, remote.Identity{ClusterID: clusterID, NodeID: id}); err != nil {
			return nil, err
		}
		files = append(files, cert, key)
	}
	return files, nil
}
