package remote

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/eventstream"
	premote "github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/flotilla-raft/flotilla/cluster/transport"
)

// peerQueueSlots is the initial size of the queue of messages waiting to
// be written to one peer (it grows by doubling with what waits).
const peerQueueSlots = 1024

// startMu serialises protoactor's Remote.Start, which sets grpc's global
// logger without synchronisation (see Host).
var startMu sync.Mutex

// Limits of the gRPC server beyond the message size (see NewHost).
const (
	maxStreamsPerConn = 16
	maxHeaderBytes    = 64 << 10
)

// ErrHostClosed: Join on a closed Host.
var ErrHostClosed = errors.New("remote: host closed")

// ErrDuplicateNode: Join for a cluster id and node id already on the host.
var ErrDuplicateNode = errors.New("remote: node already on this host")

// ReceiverName is the name of the receiver actor of node id of cluster
// clusterID: "<prefix>-<cluster id>-<node id>". Senders address it by
// name at the peer's host:port, so one host routes to many local nodes.
func ReceiverName(prefix string, clusterID, id uint64) string {
	return prefix + "-" + strconv.FormatUint(clusterID, 10) + "-" + strconv.FormatUint(id, 10)
}

// Host is one protoactor remote — one gRPC server on one listen address,
// one set of outbound connections — shared by the transports of several
// local nodes (Join), which may belong to different clusters (groups).
// Inbound messages are routed by receiver name, that is by cluster id and
// node id. Outbound, every message waiting for one peer address, whatever
// node or group sent it, leaves in one gRPC message (protoactor's
// endpoint writer batches per address): Stats.BatchesSent,
// BatchedMessages and SharedBatches count it.
//
// protoactor's Remote.Start writes gRPC's global logger without
// synchronisation while gRPC goroutines read it: two Hosts in one process
// are a data race (benign in practice, reported by -race). One Host per
// process, serving every local node, has none; that is the supported way
// to run several nodes in a process.
type Host struct {
	cfg       Config
	system    *actor.ActorSystem
	ownSystem bool
	remote    *premote.Remote
	subs      []*eventstream.Subscription
	addr      string

	tls          *tlsFiles // nil with Insecure
	bindIdentity bool      // mutual TLS: streams are bound to certificate identities
	logLimit     logLimiter

	// sendMu: Send holds it shared around protoactor calls, Close
	// exclusively around the shutdown, so no Send races the teardown.
	sendMu sync.RWMutex

	mu     sync.Mutex
	closed bool
	peers  map[string]*peerState // by address
	nodes  map[string]*Transport // by receiver name

	// Input refused for the whole host (see Transport.Stats).
	undecodable, oversized, rejected, refusedCalls, refusedCompression, refusedIdentity, forged, recovered atomic.Uint64
	// Outbound gRPC messages carrying a batch, and the envelopes in them
	// (see Transport.Stats).
	batches, batched, shared atomic.Uint64
}

// countBatch counts one batch written to a peer: its envelopes, and
// whether they address more than one receiver (node of a group).
func (h *Host) countBatch(envs []*premote.MessageEnvelope) {
	h.batches.Add(1)
	h.batched.Add(uint64(len(envs)))
	for _, e := range envs[min(1, len(envs)):] {
		if e.Target != envs[0].Target {
			h.shared.Add(1)
			return
		}
	}
}

type peerState struct {
	state   transport.ConnState
	since   time.Time
	lastErr string
	dropped uint64
}

// NewHost validates cfg (its ID and ClusterID are not used: see Join),
// loads the TLS files and starts a protoactor remote listening on
// cfg.ListenAddr, on system if non-nil (the application's actor system:
// it must not run another protoactor remote; Close then leaves it
// running) or else on an actor system of its own.
func NewHost(cfg Config, system *actor.ActorSystem) (*Host, error) {
	cfg.ensureDefaults()
	if err := cfg.validate(false); err != nil {
		return nil, err
	}
	h := &Host{cfg: cfg, peers: map[string]*peerState{}, nodes: map[string]*Transport{}}

	// gRPC refuses a message over the limit from its 5-byte length
	// prefix, before buffering it, and bounds decompression by the same
	// limit; compressed streams are refused anyway (guardStream).
	// protoactor batches many envelopes into one gRPC message: outbound
	// batches are split to fit (splitBatches).
	grpcLimit := cfg.MaxMessageSize + batchOverhead
	dial := []grpc.DialOption{
		grpc.WithContextDialer(h.dialContext),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(math.MaxInt32)),
		grpc.WithChainStreamInterceptor(h.splitBatches),
	}
	server := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(grpcLimit),
		// A peer's endpoint writer opens one stream per connection; a
		// connection must finish its handshakes within 10 s; headers
		// are small. gRPC's defaults (unlimited streams, 120 s, 16 MiB)
		// let one client hold far more.
		grpc.MaxConcurrentStreams(maxStreamsPerConn),
		grpc.ConnectionTimeout(10 * time.Second),
		grpc.MaxHeaderListSize(maxHeaderBytes),
		grpc.ChainUnaryInterceptor(h.refuseUnary),
		grpc.ChainStreamInterceptor(h.guardStream),
	}
	if cfg.Insecure {
		// WithDialOptions replaces protoactor's insecure default, so plaintext
		// must be asked for again.
		dial = append(dial, grpc.WithTransportCredentials(insecure.NewCredentials()))
	} else {
		h.tls = &tlsFiles{caFile: cfg.CAFile, certFile: cfg.CertFile, keyFile: cfg.KeyFile}
		if _, err := h.tls.refresh(true); err != nil {
			return nil, err
		}
		h.bindIdentity = !cfg.DisableClientAuth
		dial = append(dial, grpc.WithTransportCredentials(&clientCreds{credentials.NewTLS(nil), h}))
		server = append(server, grpc.Creds(&serverCreds{credentials.NewTLS(nil), h}))
	}

	// Pre-check the listen address: protoactor's Start panics when it
	// cannot listen. The check leaves a small window (another process may
	// take the port in between); Start's panic is recovered below too.
	host, port, _ := splitHostPort(cfg.ListenAddr)
	if port != 0 {
		ln, err := net.Listen("tcp", cfg.ListenAddr)
		if err != nil {
			return nil, fmt.Errorf("remote: Config.ListenAddr = %q: %w", cfg.ListenAddr, err)
		}
		ln.Close()
	}

	if system != nil {
		h.system = system
	} else {
		logger := cfg.Logger
		if cfg.ID != 0 {
			logger = logger.With("node", cfg.ID)
		}
		h.system = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return logger }))
		h.ownSystem = true
	}
	opts := []premote.ConfigOption{
		premote.WithDialOptions(dial...),
		premote.WithServerOptions(server...),
		// The queue of messages for a peer is a ring that doubles when
		// full; protoactor's default starts it at 1 M slots (16 MiB per
		// peer, allocated at the first message to it).
		premote.WithEndpointWriterQueueSize(peerQueueSlots),
	}
	if cfg.AdvertisedAddr != "" {
		opts = append(opts, premote.WithAdvertisedHost(cfg.AdvertisedAddr))
	}
	rcfg := premote.Configure(host, port, opts...)
	rcfg.MaxRetryCount = cfg.ConnectAttempts
	h.remote = premote.NewRemote(h.system, rcfg)

	// Subscribe before Start so no connection event is missed.
	h.subs = append(h.subs, h.system.EventStream.Subscribe(h.onEvent))

	if err := h.startRemote(); err != nil {
		h.unsubscribe()
		if h.ownSystem {
			h.system.Shutdown()
		}
		return nil, err
	}
	h.addr = h.system.Address()
	return h, nil
}

func (h *Host) startRemote() (err error) {
	startMu.Lock()
	defer startMu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("remote: start protoactor remote on %q: %v", h.cfg.ListenAddr, r)
		}
	}()
	h.remote.Start()
	return nil
}

func (h *Host) unsubscribe() {
	for _, s := range h.subs {
		h.system.EventStream.Unsubscribe(s)
	}
	h.subs = nil
}

// Addr returns the address peers use to reach the host's nodes:
// AdvertisedAddr, or the bound listen address (with the port picked when
// ListenAddr had port 0).
func (h *Host) Addr() string { return h.addr }

// Join adds local node id of cluster clusterID to the host and returns its
// transport: it spawns the node's receiver actor. Under mutual TLS with
// ClusterID set in the host's Config, the host's certificate must name
// {clusterID, id} among its identities. Closing the transport removes the
// node; the host stays up until Close.
func (h *Host) Join(clusterID, id uint64) (*Transport, error) {
	if id == 0 {
		return nil, errors.New("remote: Join: node id 0: a node id must be non-zero")
	}
	if err := h.checkOwnIdentity(Identity{ClusterID: clusterID, NodeID: id}); err != nil {
		return nil, err
	}
	name := ReceiverName(h.cfg.ReceiverPrefix, clusterID, id)
	t := &Transport{h: h, clusterID: clusterID, id: id, name: name,
		codec: transport.Codec{MaxSize: h.cfg.MaxMessageSize}, ids: map[uint64]string{}, sentTo: map[uint64]uint64{}}
	h.mu.Lock()
	switch {
	case h.closed:
		h.mu.Unlock()
		return nil, ErrHostClosed
	case h.nodes[name] != nil:
		h.mu.Unlock()
		return nil, fmt.Errorf("%w: node %d of cluster %d", ErrDuplicateNode, id, clusterID)
	}
	h.nodes[name] = t
	h.mu.Unlock()
	pid, err := h.system.Root.SpawnNamed(actor.PropsFromFunc(t.receive), name)
	if err != nil {
		h.leave(t)
		return nil, fmt.Errorf("remote: spawn receiver: %w", err)
	}
	t.receiver = pid
	return t, nil
}

// HostJoin is Join in the form actors.HostConfig.Join takes
// (hcfg.Join = rhost.HostJoin): on an error its transport is nil, not a
// nil *Transport inside the interface.
func (h *Host) HostJoin(clusterID, id uint64) (transport.Transport, error) {
	t, err := h.Join(clusterID, id)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// leave removes t from the routing table.
func (h *Host) leave(t *Transport) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.nodes[t.name] == t {
		delete(h.nodes, t.name)
	}
}

// isReceiver reports whether name is a local node's receiver.
func (h *Host) isReceiver(name string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.nodes[name] != nil
}

// checkOwnIdentity: see Config.ClusterID.
func (h *Host) checkOwnIdentity(want Identity) error {
	if !h.bindIdentity || h.cfg.ClusterID == 0 {
		return nil
	}
	_, cert := h.tls.current()
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return fmt.Errorf("remote: Config.CertFile = %q: %w", h.cfg.CertFile, err)
	}
	got, err := h.cfg.PeerIdentity(leaf)
	if err != nil {
		return fmt.Errorf("remote: Config.CertFile = %q: %w (want %v)", h.cfg.CertFile, err, want)
	}
	if !containsIdentity(got, want.ClusterID, want.NodeID) {
		return fmt.Errorf("remote: Config.CertFile = %q is the certificate of %v, not of this node %v", h.cfg.CertFile, got, want)
	}
	return nil
}

// Close stops the host: every joined transport stops delivering, the
// connections close both ways and the actor system stops (unless it is
// the application's). Idempotent.
func (h *Host) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	nodes := make([]*Transport, 0, len(h.nodes))
	for _, t := range h.nodes {
		nodes = append(nodes, t)
	}
	h.mu.Unlock()
	for _, t := range nodes {
		t.Close()
	}
	h.sendMu.Lock()
	defer h.sendMu.Unlock()
	// protoactor's graceful Shutdown stops its endpoint manager and then
	// nils its connection map while connection goroutines may still
	// publish EndpointTerminatedEvent into it: a nil-map panic in a
	// goroutine we cannot recover. Instead, keep the manager alive and
	// ask it to tear down every outbound endpoint (the same event a lost
	// connection publishes: its writer stops and closes the gRPC client
	// connection), then stop the gRPC server hard, which ends every
	// inbound stream; peers see a lost connection and reconnect later.
	h.mu.Lock()
	addrs := make([]string, 0, len(h.peers))
	for a := range h.peers {
		if a != h.addr {
			addrs = append(addrs, a)
		}
	}
	h.mu.Unlock()
	for _, a := range addrs {
		h.system.EventStream.Publish(&premote.EndpointTerminatedEvent{Address: a})
	}
	h.remote.Shutdown(false)
	h.unsubscribe()
	if h.ownSystem {
		h.system.Shutdown()
	}
	return nil
}

// peer returns the state of address, creating it. Caller holds mu.
func (h *Host) peer(address string) *peerState {
	p := h.peers[address]
	if p == nil {
		p = &peerState{}
		h.peers[address] = p
	}
	return p
}

func (h *Host) setState(address string, s transport.ConnState, errText string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.peer(address)
	if p.state != s {
		p.state, p.since = s, time.Now()
	}
	if errText != "" {
		p.lastErr = errText
	}
}

// onEvent tracks connection state and drops from the EventStream.
func (h *Host) onEvent(evt any) {
	switch e := evt.(type) {
	case *premote.EndpointConnectedEvent:
		h.setState(e.Address, transport.ConnConnected, "")
	case *premote.EndpointTerminatedEvent:
		h.setState(e.Address, transport.ConnDisconnected, "")
	case *actor.DeadLetterEvent:
		if e.PID == nil || e.PID.Address == h.addr || !strings.HasPrefix(e.PID.Id, h.cfg.ReceiverPrefix+"-") {
			return
		}
		h.mu.Lock()
		h.peer(e.PID.Address).dropped++
		h.mu.Unlock()
	}
}

// dialContext dials peers for grpc, recording dial errors per address.
func (h *Host) dialContext(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		h.setState(addr, transport.ConnDisconnected, err.Error())
	}
	return c, err
}

// ReloadCertificates reloads CAFile, CertFile and KeyFile now. New
// connections (both directions) use the new material; established ones
// keep theirs. The host also reloads by itself when a handshake finds a
// file changed; this is for callers that want the error (for example on
// SIGHUP). On error the previous material stays in use. Without TLS it
// does nothing.
func (h *Host) ReloadCertificates() error {
	if h.tls == nil {
		return nil
	}
	_, err := h.tls.refresh(true)
	return err
}

// refreshTLS reloads changed TLS files before a handshake; a failed
// reload is logged (once a minute) and the previous material is used.
func (h *Host) refreshTLS() {
	loaded, err := h.tls.refresh(false)
	switch {
	case err != nil:
		if h.logLimit.allow("\x00tls-reload", time.Now()) {
			h.cfg.Logger.Warn("remote: reloading the TLS files failed; the previous certificate stays in use", "addr", h.addr, "error", err)
		}
	case loaded:
		h.cfg.Logger.Info("remote: reloaded the TLS files", "addr", h.addr)
	}
}

// serverCreds makes each inbound handshake with the current TLS files,
// and counts and logs refused handshakes.
type serverCreds struct {
	credentials.TransportCredentials // Info and OverrideServerName
	h                                *Host
}

func (c *serverCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	c.h.refreshTLS()
	out, info, err := credentials.NewTLS(c.h.tls.serverConfig(&c.h.cfg)).ServerHandshake(conn)
	if err != nil {
		c.h.rejected.Add(1)
		c.h.cfg.Logger.Warn("remote: refused inbound connection", "addr", c.h.addr,
			"remote", conn.RemoteAddr().String(), "error", err)
	}
	return out, info, err
}

func (c *serverCreds) Clone() credentials.TransportCredentials {
	return &serverCreds{c.TransportCredentials.Clone(), c.h}
}

// clientCreds makes each outbound handshake with the current TLS files,
// and records failures as the peer's last error.
type clientCreds struct {
	credentials.TransportCredentials // Info and OverrideServerName
	h                                *Host
}

func (c *clientCreds) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	c.h.refreshTLS()
	out, info, err := credentials.NewTLS(c.h.tls.clientConfig(&c.h.cfg)).ClientHandshake(ctx, authority, conn)
	if err != nil {
		c.h.setState(conn.RemoteAddr().String(), transport.ConnDisconnected, err.Error())
	}
	return out, info, err
}

func (c *clientCreds) Clone() credentials.TransportCredentials {
	return &clientCreds{c.TransportCredentials.Clone(), c.h}
}
