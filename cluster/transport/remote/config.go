package remote

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"github.com/flotilla-raft/flotilla/cluster/transport"
)

// Config configures a remote Transport. Start from DefaultConfig.
type Config struct {
	// ID is the local Raft node id. Required by New (non-zero); NewHost
	// ignores it (nodes join with Host.Join).
	ID uint64
	// ClusterID is the node's cluster id, used by New: the node's receiver
	// is named after it (ReceiverName), so every member must use the same
	// value, and nodes of different clusters can share a Host. If
	// non-zero, under mutual TLS, this node's certificate must name
	// {ClusterID, ID} among its identities (PeerIdentity), so a node
	// started with another node's certificate fails at once rather than
	// having its messages dropped by every peer; NewHost with a non-zero
	// ClusterID makes Host.Join check the same for each node. Default 0.
	ClusterID uint64
	// ListenAddr is the host:port the gRPC server binds. Port 0 picks a
	// free port (see Transport.Addr). Default "127.0.0.1:0".
	ListenAddr string
	// AdvertisedAddr is the host:port peers dial to reach this node, when
	// it differs from ListenAddr. Required when ListenAddr binds every
	// interface (0.0.0.0, ::, or an empty host), since protoactor would
	// otherwise advertise an address nobody can dial.
	AdvertisedAddr string

	// CAFile is a PEM bundle of the CAs that sign the cluster's
	// certificates: this node verifies peers' server certificates, and
	// (unless DisableClientAuth) peers' client certificates, against it.
	CAFile string
	// CertFile and KeyFile are this node's PEM certificate and key, used
	// both as server certificate and as client certificate (mutual TLS).
	// The certificate must be valid for the host part of the address
	// peers dial (an IP SAN for IP addresses), or for ServerName.
	CertFile, KeyFile string
	// ServerName, if set, is the name every peer's server certificate is
	// verified against, instead of the host peers are dialed at.
	ServerName string
	// DisableClientAuth turns mutual TLS into server-only TLS: inbound
	// connections need no client certificate. Default false (mutual TLS).
	DisableClientAuth bool
	// Insecure selects plaintext gRPC. It must be set explicitly, and the
	// TLS files must then be empty.
	Insecure bool
	// PeerIdentity maps a peer's verified client certificate to the nodes
	// it speaks for. Under mutual TLS (TLS without DisableClientAuth) every
	// inbound stream is bound to those identities: a stream whose
	// certificate yields an error is refused, and a message whose cluster
	// id and sender (`from`) are not one of them is dropped and counted
	// (Stats.RefusedIdentity, Stats.DroppedForged). Default URIIdentity:
	// the URI SANs flotilla://<cluster-id>/<node-id> (see CA.IssueNode).
	PeerIdentity func(*x509.Certificate) ([]Identity, error) `json:"-"`

	// MaxMessageSize is the encoded-envelope size limit in bytes, for both
	// Send and inbound messages. gRPC refuses an inbound gRPC message over
	// MaxMessageSize plus 64 KiB of batch framing from its length prefix,
	// before reading it, so no input costs more memory than that; outbound
	// batches are split to stay under it. Default transport.DefaultMaxSize.
	MaxMessageSize int
	// ConnectAttempts is how many times protoactor tries to connect to a
	// peer before dropping the messages queued for it; it waits 2 s after
	// each failed attempt (a protoactor constant). The next Send starts a
	// new connection. Default 1.
	ConnectAttempts int
	// ReceiverPrefix names the receiver actor: "<prefix>-<id>". Every
	// member must use the same prefix. Default "flotilla-raft".
	ReceiverPrefix string
	// Logger receives the transport's and protoactor's logs (protoactor is
	// chatty at Info). Refused input is logged at Warn, at most once a
	// minute per peer and cause. Default: discard.
	Logger *slog.Logger `json:"-"`
}

// DefaultConfig returns a Config with every default filled in; set ID, the
// TLS files (or Insecure) and addresses.
func DefaultConfig() Config {
	return Config{
		ListenAddr:      "127.0.0.1:0",
		MaxMessageSize:  transport.DefaultMaxSize,
		ConnectAttempts: 1,
		ReceiverPrefix:  "flotilla-raft",
	}
}

// ensureDefaults fills zero fields with their defaults.
func (c *Config) ensureDefaults() {
	d := DefaultConfig()
	if c.ListenAddr == "" {
		c.ListenAddr = d.ListenAddr
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = d.MaxMessageSize
	}
	if c.ConnectAttempts == 0 {
		c.ConnectAttempts = d.ConnectAttempts
	}
	if c.ReceiverPrefix == "" {
		c.ReceiverPrefix = d.ReceiverPrefix
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.PeerIdentity == nil {
		c.PeerIdentity = URIIdentity
	}
}

// Validate reports every problem of c at once, each naming the field and
// its value. It does not read the TLS files (New does).
func (c Config) Validate() error { return c.validate(true) }

// validate is Validate; NewHost does not need an ID.
func (c Config) validate(needID bool) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("remote: "+format, args...)) }
	if needID && c.ID == 0 {
		bad("Config.ID = 0: a node id must be non-zero")
	}
	host, _, err := splitHostPort(c.ListenAddr)
	if err != nil {
		bad("Config.ListenAddr = %q: %v", c.ListenAddr, err)
	}
	if err == nil && isWildcard(host) && c.AdvertisedAddr == "" {
		bad("Config.ListenAddr = %q binds every interface: set Config.AdvertisedAddr to the host:port peers dial", c.ListenAddr)
	}
	if c.AdvertisedAddr != "" {
		if h, p, err := splitHostPort(c.AdvertisedAddr); err != nil {
			bad("Config.AdvertisedAddr = %q: %v", c.AdvertisedAddr, err)
		} else if isWildcard(h) || p == 0 {
			bad("Config.AdvertisedAddr = %q: must be a dialable host and a non-zero port", c.AdvertisedAddr)
		}
	}
	if c.Insecure {
		if c.CAFile != "" || c.CertFile != "" || c.KeyFile != "" {
			bad("Config.Insecure = true with TLS files set (CAFile %q, CertFile %q, KeyFile %q): choose one", c.CAFile, c.CertFile, c.KeyFile)
		}
	} else {
		if c.CAFile == "" {
			bad("Config.CAFile is empty: TLS needs the cluster CA (or set Config.Insecure = true for plaintext)")
		}
		if c.CertFile == "" || c.KeyFile == "" {
			bad("Config.CertFile = %q, Config.KeyFile = %q: TLS needs both", c.CertFile, c.KeyFile)
		}
	}
	if c.MaxMessageSize < 0 {
		bad("Config.MaxMessageSize = %d: must be >= 0", c.MaxMessageSize)
	}
	if c.ConnectAttempts < 0 {
		bad("Config.ConnectAttempts = %d: must be >= 0", c.ConnectAttempts)
	}
	return errors.Join(errs...)
}

func splitHostPort(addr string) (string, int, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q is not a number in 0..65535", ps)
	}
	return host, port, nil
}

func isWildcard(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}
