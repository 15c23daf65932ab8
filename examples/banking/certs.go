package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/flotilla-raft/flotilla/examples/internal/certs"
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
	files, err := certs.Issue(*dir, *clusterID, hosts, time.Duration(*days)*24*time.Hour)
	if err != nil {
		fmt.Fprintf(stderr, "banking certs: %v\n", err)
		return 1
	}
	for _, f := range files {
		fmt.Fprintln(stdout, f)
	}
	return 0
}
