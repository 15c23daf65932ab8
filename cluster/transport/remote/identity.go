package remote

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// IdentityScheme is the URI scheme of a node identity in a certificate:
// a URI SAN flotilla://<cluster-id>/<node-id>, both decimal.
const IdentityScheme = "flotilla"

// ErrNoIdentity: a peer certificate names no node (no flotilla:// URI SAN,
// or a malformed one).
var ErrNoIdentity = errors.New("remote: no node identity in the certificate")

// Identity is the node a certificate speaks for.
type Identity struct {
	ClusterID, NodeID uint64
}

// URI returns id as the URI SAN flotilla://<cluster-id>/<node-id>.
func (id Identity) URI() *url.URL {
	return &url.URL{Scheme: IdentityScheme, Host: strconv.FormatUint(id.ClusterID, 10), Path: "/" + strconv.FormatUint(id.NodeID, 10)}
}

func (id Identity) String() string { return id.URI().String() }

// URIIdentity is the default Config.PeerIdentity: it reads the
// flotilla://<cluster-id>/<node-id> URI SANs of cert, one per node the
// certificate speaks for (a Host serving several nodes has several). A
// certificate with none, or a malformed one, is refused with
// ErrNoIdentity.
func URIIdentity(cert *x509.Certificate) ([]Identity, error) {
	var found []Identity
	for _, u := range cert.URIs {
		if u.Scheme != IdentityScheme {
			continue
		}
		id, err := ParseIdentity(u.String())
		if err != nil {
			return nil, err
		}
		found = append(found, id)
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("%w: no %s:// URI SAN in %q", ErrNoIdentity, IdentityScheme, cert.Subject.String())
	}
	return found, nil
}

// ParseIdentity parses flotilla://<cluster-id>/<node-id> (both non-zero
// decimal numbers).
func ParseIdentity(s string) (Identity, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != IdentityScheme || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Port() != "" {
		return Identity{}, fmt.Errorf("%w: %q is not %s://<cluster-id>/<node-id>", ErrNoIdentity, s, IdentityScheme)
	}
	cluster, err1 := strconv.ParseUint(u.Host, 10, 64)
	node, err2 := strconv.ParseUint(strings.TrimPrefix(u.Path, "/"), 10, 64)
	if err1 != nil || err2 != nil || cluster == 0 || node == 0 || !strings.HasPrefix(u.Path, "/") {
		return Identity{}, fmt.Errorf("%w: %q is not %s://<cluster-id>/<node-id> with non-zero decimal ids", ErrNoIdentity, s, IdentityScheme)
	}
	return Identity{ClusterID: cluster, NodeID: node}, nil
}
