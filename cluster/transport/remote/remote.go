package remote

import (
	"context"
	"crypto/x509"
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
	"github.com/flotilla-raft/flotilla/messages"
)

// startMu serialises protoactor's Remote.Start, which sets grpc's global
// logger without synchronisation.
var startMu sync.Mutex

// ReceiverName is the name of node id's receiver actor for prefix.
func ReceiverName(prefix string, id uint64) string {
	return prefix + "-" + strconv.FormatUint(id, 10)
}

// Transport is the protoactor remote transport of one node. It implements
// transport.Transport, transport.PeerStatuser and transport.StatsReporter.
type Transport struct {
	cfg      Config
	codec    transport.Codec
	lc       transport.Lifecycle
	system   *actor.ActorSystem
	remote   *premote.Remote
	receiver *actor.PID
	subs     []*eventstream.Subscription
	addr     string

	// sendMu: Send holds it shared around protoactor calls, Close
	// exclusively around the shutdown, so no Send races the teardown.
	sendMu sync.RWMutex

	mu    sync.Mutex
	peers map[string]*peerState // by address
	ids   map[uint64]string     // peer id → last address used

	tls          *tlsFiles // nil with Insecure
	bindIdentity bool      // mutual TLS: streams are bound to certificate identities
	logLimit     logLimiter

	sent, sendErrs, received, undecodable, oversized, late, unexpected, rejected atomic.Uint64
	refusedCalls, refusedCompression, refusedIdentity, forged, recovered         atomic.Uint64
}

type peerState struct {
	state   transport.ConnState
	since   time.Time
	lastErr string
	sent    uint64
	dropped uint64
}

var (
	_ transport.Transport     = (*Transport)(nil)
	_ transport.PeerStatuser  = (*Transport)(nil)
	_ transport.StatsReporter = (*Transport)(nil)
)

// New validates cfg, loads the TLS files, starts a protoactor actor system
// with remote listening on cfg.ListenAddr, and spawns the receiver actor.
// Inbound messages are counted as DroppedClosed until Start. The transport
// owns the actor system; Close stops it.
func New(cfg Config) (*Transport, error) {
	cfg.ensureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := &Transport{
		cfg:   cfg,
		codec: transport.Codec{MaxSize: cfg.MaxMessageSize},
		peers: map[string]*peerState{},
		ids:   map[uint64]string{},
	}

	// gRPC refuses a message over the limit from its 5-byte length
	// prefix, before buffering it, and bounds decompression by the same
	// limit; compressed streams are refused anyway (guardStream).
	// protoactor batches many envelopes into one gRPC message: outbound
	// batches are split to fit (splitBatches).
	grpcLimit := cfg.MaxMessageSize + batchOverhead
	dial := []grpc.DialOption{
		grpc.WithContextDialer(t.dialContext),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(math.MaxInt32)),
		grpc.WithChainStreamInterceptor(t.splitBatches),
	}
	server := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(grpcLimit),
		grpc.ChainUnaryInterceptor(t.refuseUnary),
		grpc.ChainStreamInterceptor(t.guardStream),
	}
	if cfg.Insecure {
		// WithDialOptions replaces protoactor's insecure default, so plaintext
		// must be asked for again.
		dial = append(dial, grpc.WithTransportCredentials(insecure.NewCredentials()))
	} else {
		t.tls = &tlsFiles{caFile: cfg.CAFile, certFile: cfg.CertFile, keyFile: cfg.KeyFile}
		if _, err := t.tls.refresh(true); err != nil {
			return nil, err
		}
		t.bindIdentity = !cfg.DisableClientAuth
		if err := t.checkOwnIdentity(); err != nil {
			return nil, err
		}
		dial = append(dial, grpc.WithTransportCredentials(&clientCreds{credentials.NewTLS(nil), t}))
		server = append(server, grpc.Creds(&serverCreds{credentials.NewTLS(nil), t}))
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

	logger := cfg.Logger.With("node", cfg.ID)
	t.system = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return logger }))
	opts := []premote.ConfigOption{
		premote.WithDialOptions(dial...),
		premote.WithServerOptions(server...),
	}
	if cfg.AdvertisedAddr != "" {
		opts = append(opts, premote.WithAdvertisedHost(cfg.AdvertisedAddr))
	}
	rcfg := premote.Configure(host, port, opts...)
	rcfg.MaxRetryCount = cfg.ConnectAttempts
	t.remote = premote.NewRemote(t.system, rcfg)

	// Subscribe before Start so no connection event is missed.
	t.subs = append(t.subs, t.system.EventStream.Subscribe(t.onEvent))

	if err := t.startRemote(); err != nil {
		for _, s := range t.subs {
			t.system.EventStream.Unsubscribe(s)
		}
		t.system.Shutdown()
		return nil, err
	}
	t.addr = t.system.Address()

	pid, err := t.system.Root.SpawnNamed(actor.PropsFromFunc(t.receive), ReceiverName(cfg.ReceiverPrefix, cfg.ID))
	if err != nil {
		t.shutdown()
		return nil, fmt.Errorf("remote: spawn receiver: %w", err)
	}
	t.receiver = pid
	return t, nil
}

func (t *Transport) startRemote() (err error) {
	startMu.Lock()
	defer startMu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("remote: start protoactor remote on %q: %v", t.cfg.ListenAddr, r)
		}
	}()
	t.remote.Start()
	return nil
}

// Addr returns the address peers use to reach this node: AdvertisedAddr,
// or the bound listen address (with the port picked when ListenAddr had
// port 0).
func (t *Transport) Addr() string { return t.addr }

// ID returns the local node id.
func (t *Transport) ID() uint64 { return t.cfg.ID }

// Start implements transport.Transport.
func (t *Transport) Start(_ context.Context, h transport.Handler) error {
	return t.lc.Start(h)
}

// Send implements transport.Transport: it wraps m in an Envelope and hands
// it to protoactor, which queues it for the peer's endpoint writer.
func (t *Transport) Send(to transport.Peer, m *messages.Message) error {
	err := t.send(to, m)
	if err != nil {
		t.sendErrs.Add(1)
		return err
	}
	t.sent.Add(1)
	return nil
}

func (t *Transport) send(to transport.Peer, m *messages.Message) error {
	if t.lc.Closed() {
		return transport.ErrClosed
	}
	env, err := t.codec.Wrap(m)
	if err != nil {
		return err
	}
	if h, p, err := splitHostPort(to.Address); err != nil || isWildcard(h) || p == 0 {
		return fmt.Errorf("%w: peer %d at %q", transport.ErrInvalidAddress, to.ID, to.Address)
	}
	t.sendMu.RLock()
	defer t.sendMu.RUnlock()
	if t.lc.Closed() {
		return transport.ErrClosed
	}
	t.mu.Lock()
	t.ids[to.ID] = to.Address
	t.peer(to.Address).sent++
	t.mu.Unlock()
	t.system.Root.Send(actor.NewPID(to.Address, ReceiverName(t.cfg.ReceiverPrefix, to.ID)), env)
	return nil
}

// peer returns the state of address, creating it. Caller holds mu.
func (t *Transport) peer(address string) *peerState {
	p := t.peers[address]
	if p == nil {
		p = &peerState{}
		t.peers[address] = p
	}
	return p
}

func (t *Transport) setState(address string, s transport.ConnState, errText string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peer(address)
	if p.state != s {
		p.state, p.since = s, time.Now()
	}
	if errText != "" {
		p.lastErr = errText
	}
}

// onEvent tracks connection state and drops from the EventStream.
func (t *Transport) onEvent(evt any) {
	switch e := evt.(type) {
	case *premote.EndpointConnectedEvent:
		t.setState(e.Address, transport.ConnConnected, "")
	case *premote.EndpointTerminatedEvent:
		t.setState(e.Address, transport.ConnDisconnected, "")
	case *actor.DeadLetterEvent:
		if e.PID == nil || e.PID.Address == t.addr || !strings.HasPrefix(e.PID.Id, t.cfg.ReceiverPrefix+"-") {
			return
		}
		t.mu.Lock()
		t.peer(e.PID.Address).dropped++
		t.mu.Unlock()
	}
}

// receive is the receiver actor: it decodes envelopes and delivers them.
func (t *Transport) receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *messages.Envelope:
		t.inbound(msg)
	case actor.SystemMessage, actor.AutoReceiveMessage:
	default:
		t.unexpected.Add(1)
	}
}

func (t *Transport) inbound(e *messages.Envelope) {
	m, err := t.codec.Unwrap(e)
	switch {
	case err == nil:
	case isOversized(err):
		t.oversized.Add(1)
		return
	default:
		t.undecodable.Add(1)
		return
	}
	if t.lc.Deliver(m) {
		t.received.Add(1)
	} else {
		t.late.Add(1)
	}
}

// Close implements transport.Transport: it stops delivering, closes the
// connections both ways and stops the actor system.
func (t *Transport) Close() error {
	if !t.lc.Close() {
		return nil
	}
	t.sendMu.Lock()
	defer t.sendMu.Unlock()
	t.shutdown()
	return nil
}

func (t *Transport) shutdown() {
	if t.receiver != nil {
		t.system.Root.Stop(t.receiver)
	}
	// protoactor's graceful Shutdown stops its endpoint manager and then
	// nils its connection map while connection goroutines may still
	// publish EndpointTerminatedEvent into it: a nil-map panic in a
	// goroutine we cannot recover. Instead, keep the manager alive and
	// ask it to tear down every outbound endpoint (the same event a lost
	// connection publishes: its writer stops and closes the gRPC client
	// connection), then stop the gRPC server hard, which ends every
	// inbound stream; peers see a lost connection and reconnect later.
	t.mu.Lock()
	addrs := make([]string, 0, len(t.peers))
	for a := range t.peers {
		if a != t.addr {
			addrs = append(addrs, a)
		}
	}
	t.mu.Unlock()
	for _, a := range addrs {
		t.system.EventStream.Publish(&premote.EndpointTerminatedEvent{Address: a})
	}
	t.remote.Shutdown(false)
	for _, s := range t.subs {
		t.system.EventStream.Unsubscribe(s)
	}
	t.system.Shutdown()
}

// Stats implements transport.StatsReporter.
func (t *Transport) Stats() transport.Stats {
	return transport.Stats{
		Sent:               t.sent.Load(),
		SendErrors:         t.sendErrs.Load(),
		Received:           t.received.Load(),
		DroppedUndecodable: t.undecodable.Load(),
		DroppedOversized:   t.oversized.Load(),
		DroppedClosed:      t.late.Load(),
		DroppedUnexpected:  t.unexpected.Load(),
		RejectedHandshakes: t.rejected.Load(),
		RefusedCalls:       t.refusedCalls.Load(),
		RefusedCompressed:  t.refusedCompression.Load(),
		RefusedIdentity:    t.refusedIdentity.Load(),
		DroppedForged:      t.forged.Load(),
		RecoveredPanics:    t.recovered.Load(),
	}
}

// PeerStatus implements transport.PeerStatuser for every peer sent to.
// Dropped counts messages protoactor dead-lettered because the peer's
// connection was not established.
func (t *Transport) PeerStatus() map[uint64]transport.PeerState {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[uint64]transport.PeerState, len(t.ids))
	for id, addr := range t.ids {
		p := t.peer(addr)
		out[id] = transport.PeerState{ID: id, Address: addr, State: p.state, Since: p.since,
			LastError: p.lastErr, Sent: p.sent, Dropped: p.dropped}
	}
	return out
}

// dialContext dials peers for grpc, recording dial errors per address.
func (t *Transport) dialContext(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.setState(addr, transport.ConnDisconnected, err.Error())
	}
	return c, err
}

// checkOwnIdentity: see Config.ClusterID.
func (t *Transport) checkOwnIdentity() error {
	if !t.bindIdentity || t.cfg.ClusterID == 0 {
		return nil
	}
	_, cert := t.tls.current()
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return fmt.Errorf("remote: Config.CertFile = %q: %w", t.cfg.CertFile, err)
	}
	want := Identity{ClusterID: t.cfg.ClusterID, NodeID: t.cfg.ID}
	got, err := t.cfg.PeerIdentity(leaf)
	if err != nil {
		return fmt.Errorf("remote: Config.CertFile = %q: %w (want %v)", t.cfg.CertFile, err, want)
	}
	if got != want {
		return fmt.Errorf("remote: Config.CertFile = %q is the certificate of %v, not of this node %v", t.cfg.CertFile, got, want)
	}
	return nil
}

// ReloadCertificates reloads CAFile, CertFile and KeyFile now. New
// connections (both directions) use the new material; established ones
// keep theirs. The transport also reloads by itself when a handshake finds
// a file changed; this is for callers that want the error (for example
// on SIGHUP). On error the previous material stays in use. Without TLS it
// does nothing.
func (t *Transport) ReloadCertificates() error {
	if t.tls == nil {
		return nil
	}
	_, err := t.tls.refresh(true)
	return err
}

// refreshTLS reloads changed TLS files before a handshake; a failed
// reload is logged (once a minute) and the previous material is used.
func (t *Transport) refreshTLS() {
	loaded, err := t.tls.refresh(false)
	switch {
	case err != nil:
		if t.logLimit.allow("\x00tls-reload", time.Now()) {
			t.cfg.Logger.Warn("remote: reloading the TLS files failed; the previous certificate stays in use", "node", t.cfg.ID, "error", err)
		}
	case loaded:
		t.cfg.Logger.Info("remote: reloaded the TLS files", "node", t.cfg.ID)
	}
}

// serverCreds makes each inbound handshake with the current TLS files,
// and counts and logs refused handshakes.
type serverCreds struct {
	credentials.TransportCredentials // Info and OverrideServerName
	t                                *Transport
}

func (c *serverCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	c.t.refreshTLS()
	out, info, err := credentials.NewTLS(c.t.tls.serverConfig(&c.t.cfg)).ServerHandshake(conn)
	if err != nil {
		c.t.rejected.Add(1)
		c.t.cfg.Logger.Warn("remote: refused inbound connection", "node", c.t.cfg.ID,
			"remote", conn.RemoteAddr().String(), "error", err)
	}
	return out, info, err
}

func (c *serverCreds) Clone() credentials.TransportCredentials {
	return &serverCreds{c.TransportCredentials.Clone(), c.t}
}

// clientCreds makes each outbound handshake with the current TLS files,
// and records failures as the peer's last error.
type clientCreds struct {
	credentials.TransportCredentials // Info and OverrideServerName
	t                                *Transport
}

func (c *clientCreds) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	c.t.refreshTLS()
	out, info, err := credentials.NewTLS(c.t.tls.clientConfig(&c.t.cfg)).ClientHandshake(ctx, authority, conn)
	if err != nil {
		c.t.setState(conn.RemoteAddr().String(), transport.ConnDisconnected, err.Error())
	}
	return out, info, err
}

func (c *clientCreds) Clone() credentials.TransportCredentials {
	return &clientCreds{c.TransportCredentials.Clone(), c.t}
}
