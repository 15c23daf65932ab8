package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"golang.org/x/net/netutil"

	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/cluster/transport/remote"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence/pebblestore"
	"github.com/flotilla-raft/flotilla/tracing"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// apiPortOffset derives a default API port from a Raft port.
const apiPortOffset = 1000

// raftGroup is the id of the ledger's Raft group in the Pebble database.
const raftGroup = 1

// serverConfig is the parsed command line of `banking server`.
type serverConfig struct {
	id            uint64
	clusterID     uint64
	listen        string // Raft (gRPC) listen address
	advertise     string // Raft address peers dial ("" = listen)
	api           string // client API listen address
	apiAdvertise  string // client API address others are told
	peers         map[uint64]string
	peerAPIs      map[uint64]string
	dataDir       string
	insecure      bool
	ca, cert, key string
	tick          time.Duration
	electionTicks uint
	logLevel      slog.Level
	metricsAddr   string // Prometheus /metrics listen address, "" = off
	otlpEndpoint  string // OTLP/gRPC trace collector, "" = OTEL_EXPORTER_OTLP_* or off
	// tracerProvider, when set (tests), replaces the OTLP exporter.
	tracerProvider trace.TracerProvider
	join           bool // start with no configuration: wait to be added by AddMember
}

func parseServerFlags(args []string, stderr io.Writer) (*serverConfig, error) {
	fs := flag.NewFlagSet("banking server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		id        = fs.Uint64("id", 0, "this node's Raft id (non-zero, unique in the cluster)")
		clusterID = fs.Uint64("cluster-id", 1, "cluster id stamped on every Raft message")
		listen    = fs.String("listen", "", "Raft (gRPC) listen address, host:port")
		advertise = fs.String("advertise", "", "Raft address the peers dial, when --listen binds every interface")
		api       = fs.String("api", "", "client API (HTTP) listen address (default: the --listen host, port + 1000)")
		apiAdv    = fs.String("api-advertise", "", "client API address given to clients in redirects (default: --api, or the --advertise host with the --api port)")
		peers     = fs.String("peers", "", "the other voters: id=host:port,... (their Raft addresses)")
		peerAPIs  = fs.String("peer-api", "", "the other voters' client API addresses: id=host:port,... (default: each Raft port + 1000)")
		data      = fs.String("data", "", "data directory (the Pebble database; created if missing)")
		insecure  = fs.Bool("insecure", false, "plaintext gRPC between the nodes (explicit opt-in; otherwise --ca, --cert, --key)")
		ca        = fs.String("ca", "", "PEM file of the CA that signs the nodes' certificates (mutual TLS)")
		cert      = fs.String("cert", "", "PEM certificate of this node (server and client)")
		key       = fs.String("key", "", "PEM private key of this node")
		tick      = fs.Duration("tick", 50*time.Millisecond, "Raft tick")
		election  = fs.Uint("election-ticks", 10, "election timeout in ticks (heartbeat: 1 tick)")
		level     = fs.String("log-level", "info", "log level: debug, info, warn, error")
		metrics   = fs.String("metrics-addr", "", "serve the node's metrics for Prometheus at http://ADDR/metrics (host:port; default off)")
		otlpAddr  = fs.String("otlp-endpoint", "", "export traces over OTLP/gRPC to this collector, e.g. localhost:4317 for Jaeger (default: $OTEL_EXPORTER_OTLP_ENDPOINT, else off)")
		join      = fs.Bool("join", false, "join a running cluster: start empty and wait for the leader (add this node with `banking client add-server`); --peers then only names the others' addresses for redirects")
	)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	c := &serverConfig{id: *id, clusterID: *clusterID, listen: *listen, advertise: *advertise, dataDir: *data,
		insecure: *insecure, ca: *ca, cert: *cert, key: *key, tick: *tick, electionTicks: *election,
		metricsAddr: *metrics, otlpEndpoint: *otlpAddr, join: *join}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.id == 0 {
		bad("--id is required and must be non-zero")
	}
	if c.dataDir == "" {
		bad("--data is required (the node's data directory)")
	}
	lhost, lport, err := splitAddr(c.listen)
	if err != nil {
		bad("--listen %q: %v", c.listen, err)
	}
	c.api = *api
	if c.api == "" && err == nil {
		if lport+apiPortOffset > 65535 {
			bad("--listen port %d: the default API port (+%d) would exceed 65535; set --api", lport, apiPortOffset)
		} else {
			c.api = net.JoinHostPort(lhost, strconv.Itoa(lport+apiPortOffset))
		}
	}
	if c.api != "" {
		if _, _, err := splitAddr(c.api); err != nil {
			bad("--api %q: %v", c.api, err)
		}
	}
	c.apiAdvertise = *apiAdv
	if c.apiAdvertise == "" && c.api != "" {
		c.apiAdvertise = c.api
		ah, ap, err1 := splitAddr(c.api)
		if err1 == nil && isWildcardHost(ah) {
			if h, _, err2 := splitAddr(c.advertise); err2 == nil {
				c.apiAdvertise = net.JoinHostPort(h, strconv.Itoa(ap))
			} else {
				bad("--api %q binds every interface: set --api-advertise (or --advertise)", c.api)
			}
		}
	}
	if c.peers, err = parseIDAddrs(*peers); err != nil {
		bad("--peers: %v", err)
	} else if len(c.peers) == 0 && !c.join {
		bad("--peers is required: the other voters as id=host:port,...")
	}
	if _, dup := c.peers[c.id]; dup && c.id != 0 {
		bad("--peers lists this node's own id %d: list only the other voters", c.id)
	}
	if c.peerAPIs, err = parseIDAddrs(*peerAPIs); err != nil {
		bad("--peer-api: %v", err)
		c.peerAPIs = map[uint64]string{}
	}
	for pid, addr := range c.peers {
		if _, ok := c.peerAPIs[pid]; ok {
			continue
		}
		h, p, err := splitAddr(addr)
		if err != nil {
			continue // reported by parseIDAddrs
		}
		if p+apiPortOffset > 65535 {
			bad("--peers: node %d's port %d + %d exceeds 65535: give its API address with --peer-api", pid, p, apiPortOffset)
			continue
		}
		c.peerAPIs[pid] = net.JoinHostPort(h, strconv.Itoa(p+apiPortOffset))
	}
	for pid := range c.peerAPIs {
		if _, ok := c.peers[pid]; !ok {
			bad("--peer-api names node %d, which is not in --peers", pid)
		}
	}
	if c.insecure && (c.ca != "" || c.cert != "" || c.key != "") {
		bad("--insecure and --ca/--cert/--key are exclusive: choose plaintext or mutual TLS")
	}
	if !c.insecure && (c.ca == "" || c.cert == "" || c.key == "") {
		bad("the nodes talk over mutual TLS by default: give --ca, --cert and --key, or opt in to plaintext with --insecure")
	}
	if c.tick <= 0 {
		bad("--tick %v must be positive", c.tick)
	}
	if c.electionTicks < 3 {
		bad("--election-ticks %d: want at least 3", c.electionTicks)
	}
	if c.metricsAddr != "" {
		if _, _, err := splitAddr(c.metricsAddr); err != nil {
			bad("--metrics-addr %q: %v", c.metricsAddr, err)
		}
	}
	if err := c.logLevel.UnmarshalText([]byte(*level)); err != nil {
		bad("--log-level %q: want debug, info, warn or error", *level)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if c.advertise == "" {
		c.advertise = c.listen
	}
	return c, nil
}

// splitAddr splits host:port and checks the port.
func splitAddr(addr string) (string, int, error) {
	if addr == "" {
		return "", 0, errors.New("empty address, want host:port")
	}
	h, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("not host:port: %v", err)
	}
	p, err := strconv.Atoi(ps)
	if err != nil || p <= 0 || p > 65535 {
		return "", 0, fmt.Errorf("port %q: want a number from 1 to 65535", ps)
	}
	return h, p, nil
}

func isWildcardHost(h string) bool {
	ip := net.ParseIP(h)
	return h == "" || ip != nil && ip.IsUnspecified()
}

// parseIDAddrs parses "id=host:port,id=host:port".
func parseIDAddrs(s string) (map[uint64]string, error) {
	out := map[uint64]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, fmt.Errorf("%q is not id=host:port", part)
		}
		id, err := strconv.ParseUint(k, 10, 64)
		if err != nil || id == 0 {
			return nil, fmt.Errorf("%q: the id %q is not a non-zero number", part, k)
		}
		if _, _, err := splitAddr(v); err != nil {
			return nil, fmt.Errorf("%q: %v", part, err)
		}
		if _, dup := out[id]; dup {
			return nil, fmt.Errorf("node %d is listed twice", id)
		}
		out[id] = v
	}
	return out, nil
}

// server is one running ledger node: the Raft node actor, its Pebble
// store, its gRPC transport and the HTTP client API.
type server struct {
	cfg    *serverConfig
	log    *slog.Logger
	db     *pebblestore.DB
	ledger *Ledger
	sys    *actor.ActorSystem
	node   *actor.PID
	done   chan struct{} // closed when the node actor has terminated
	failed chan error    // the node stopped on a failure
	apis   map[uint64]string
	http   *http.Server
	tel    *telemetry
	tr     *remote.Transport
}

func runServer(args []string, stderr io.Writer) int {
	cfg, err := parseServerFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "banking server: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.logLevel}))
	s, err := startServer(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "banking server: %v\n", err)
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	for {
		select {
		case got := <-sig:
			if got == syscall.SIGHUP {
				// The transport also reloads changed TLS files at the next
				// handshake; SIGHUP reports a broken file at once.
				if err := s.tr.ReloadCertificates(); err != nil {
					log.Error("reloading the TLS files failed; the previous ones stay in use", "err", err)
				} else {
					log.Info("reloaded the TLS files")
				}
				continue
			}
			log.Info("stopping", "signal", got.String())
			s.shutdown()
			return 0
		case err := <-s.failed:
			fmt.Fprintf(stderr, "banking server: node %d stopped: %v\n", cfg.id, err)
			s.shutdown()
			return 1
		}
	}
}

func startServer(cfg *serverConfig, log *slog.Logger) (_ *server, err error) {
	base := log // the node actor adds its own "node" attribute
	log = log.With("node", cfg.id)
	s := &server{cfg: cfg, log: log, done: make(chan struct{}), failed: make(chan error, 1),
		apis: map[uint64]string{cfg.id: cfg.apiAdvertise}}
	for id, a := range cfg.peerAPIs {
		s.apis[id] = a
	}
	// The API port first: a taken port fails before anything else starts.
	ln, err := net.Listen("tcp", cfg.api)
	if err != nil {
		return nil, fmt.Errorf("client API: %w", err)
	}
	defer func() {
		if err != nil {
			ln.Close()
		}
	}()
	if err := os.MkdirAll(cfg.dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	warnOnly := slog.New(levelFloor{log.Handler(), slog.LevelWarn}) // Pebble, protoactor and gRPC are chatty
	s.db, err = pebblestore.Open(cfg.dataDir, pebblestore.Options{Logger: warnOnly})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.db.Close()
		}
	}()
	group, err := s.db.Group(raftGroup)
	if err != nil {
		return nil, err
	}
	if s.ledger, err = NewLedger(group); err != nil {
		return nil, err
	}
	if s.tel, err = startTelemetry(cfg, log); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.tel.shutdown()
		}
	}()
	rcfg := remote.DefaultConfig()
	rcfg.ID, rcfg.ClusterID, rcfg.ListenAddr = cfg.id, cfg.clusterID, cfg.listen
	rcfg.Logger = slog.New(levelFloor{base.Handler(), slog.LevelWarn}) // the transport adds "node"
	if cfg.advertise != cfg.listen {
		rcfg.AdvertisedAddr = cfg.advertise
	}
	rcfg.Insecure, rcfg.CAFile, rcfg.CertFile, rcfg.KeyFile = cfg.insecure, cfg.ca, cfg.cert, cfg.key
	tr, err := remote.New(rcfg)
	if err != nil {
		return nil, err
	}
	s.tr = tr

	boot := &messages.ClusterConfig{Settings: &messages.Settings{PreVote: true, CheckQuorum: true,
		ElectionTicks: uint32(cfg.electionTicks), HeartbeatTicks: 1}}
	boot.Voters = append(boot.Voters, &messages.Member{Id: cfg.id, Address: cfg.advertise})
	for id, a := range cfg.peers {
		boot.Voters = append(boot.Voters, &messages.Member{Id: id, Address: a})
	}
	slices.SortFunc(boot.Voters, func(a, b *messages.Member) int { return cmp.Compare(a.Id, b.Id) })

	ncfg := actors.DefaultConfig()
	ncfg.ID, ncfg.ClusterID, ncfg.Address = cfg.id, cfg.clusterID, cfg.advertise
	ncfg.Bootstrap = boot
	if cfg.join {
		ncfg.Bootstrap = nil // the leader replicates the configuration to it
	}
	ncfg.Transport = tr
	ncfg.LogStore = group
	ncfg.StateMachine = s.ledger
	ncfg.NoAutoSnapshots = true // the ledger keeps no snapshots: the log is never compacted (README, Limits)
	ncfg.TickInterval = cfg.tick
	ncfg.Logger = base
	ncfg.TracerProvider, ncfg.MeterProvider = s.tel.tracerProvider, s.tel.meterProvider
	if err := ncfg.Validate(); err != nil {
		tr.Close()
		return nil, err
	}

	s.sys = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return warnOnly }))
	started := make(chan *actor.PID, 1)
	startErr := make(chan error, 1)
	s.sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor {
		return &serverActor{s: s, ncfg: ncfg, started: started, startErr: startErr}
	}))
	select {
	case s.node = <-started:
	case err := <-startErr:
		tr.Close()
		return nil, err
	}

	mux := http.NewServeMux()
	mux.HandleFunc("POST "+pathCommands, s.handleCommand)
	mux.HandleFunc("GET "+pathBalance, s.handleBalance)
	mux.HandleFunc("GET "+pathBalances, s.handleBalances)
	mux.HandleFunc("GET "+pathStatus, s.handleStatus)
	mux.HandleFunc("POST "+pathMembers, s.handleAddMember)
	mux.HandleFunc("DELETE "+pathMembers, s.handleRemoveMember)
	s.http = newAPIServer(mux, defaultAPILimits)
	go func() {
		if err := s.http.Serve(netutil.LimitListener(ln, defaultAPILimits.maxConns)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("client API stopped", "err", err)
		}
	}()
	log.Info("server started", "raft", cfg.advertise, "api", cfg.apiAdvertise, "data", cfg.dataDir,
		"voters", len(boot.Voters), "insecure", cfg.insecure)
	return s, nil
}

// apiLimits bound what clients can hold on the client API: a client that
// sends its request slowly, never reads the response, or keeps an idle
// connection open is disconnected, and at most maxConns connections are
// served at once (more wait in the listen backlog).
type apiLimits struct {
	readHeader, read, write, idle time.Duration
	maxConns                      int
}

// defaultAPILimits: a request (headers and body) must arrive within 10 s
// and its response be written within 15 s (longer than proposeTimeout and
// readTimeout, so a slow commit is answered, not cut); idle keep-alive
// connections close after 60 s.
var defaultAPILimits = apiLimits{readHeader: 5 * time.Second, read: 10 * time.Second, write: 15 * time.Second,
	idle: 60 * time.Second, maxConns: 1024}

// newAPIServer is the client API's HTTP server with lim's timeouts; serve
// it on netutil.LimitListener(ln, lim.maxConns).
func newAPIServer(h http.Handler, lim apiLimits) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: lim.readHeader, ReadTimeout: lim.read,
		WriteTimeout: lim.write, IdleTimeout: lim.idle, MaxHeaderBytes: 64 << 10}
}

// shutdown stops the node in order (a leader hands over first), then the
// API and the database.
func (s *server) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.http.Shutdown(ctx)
	if _, err := actors.Request[*actors.Stopped](s.sys.Root, s.node, &actors.Stop{}, 10*time.Second); err != nil {
		s.log.Warn("orderly stop failed", "err", err)
	}
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.log.Warn("the node actor did not terminate within 10s")
	}
	if err := s.db.Close(); err != nil {
		s.log.Warn("close database", "err", err)
	}
	s.tel.shutdown()
}

// serverActor is the application actor: the Raft node is its child, and
// it receives the node's events.
type serverActor struct {
	s        *server
	ncfg     actors.Config
	node     *actor.PID
	started  chan<- *actor.PID
	startErr chan<- error
}

func (a *serverActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		cfg := a.ncfg
		cfg.Subscribers = []*actor.PID{ctx.Self()}
		props, err := actors.Props(cfg)
		if err != nil {
			a.startErr <- err
			return
		}
		a.node = ctx.Spawn(props)
		a.started <- a.node
	case *actors.LeaderChanged:
		a.s.log.Info("leader changed", "term", msg.Term, "leader", msg.Leader)
	case *actors.NodeStopped:
		if msg.Err != nil {
			select {
			case a.s.failed <- fmt.Errorf("%s: %w", msg.Reason, msg.Err):
			default:
			}
		}
	case *actor.Terminated:
		if msg.Who.Equal(a.node) {
			close(a.s.done)
			select {
			case a.s.failed <- errors.New("the Raft node actor terminated"):
			default:
			}
		}
	}
}

// levelFloor drops records below a level.
type levelFloor struct {
	slog.Handler
	min slog.Level
}

func (l levelFloor) Enabled(ctx context.Context, lv slog.Level) bool {
	return lv >= l.min && l.Handler.Enabled(ctx, lv)
}

func (l levelFloor) WithAttrs(as []slog.Attr) slog.Handler {
	return levelFloor{l.Handler.WithAttrs(as), l.min}
}

func (l levelFloor) WithGroup(g string) slog.Handler {
	return levelFloor{l.Handler.WithGroup(g), l.min}
}

// ---- HTTP handlers ----

const (
	proposeTimeout = 3 * time.Second
	readTimeout    = 3 * time.Second
)

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers err from the node as the API's error.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var nl *actors.NotLeaderError
	switch {
	case errors.As(err, &nl):
		if nl.Leader == 0 || nl.Leader == s.cfg.id {
			writeJSON(w, http.StatusServiceUnavailable, ErrorResponse{Error: errNoLeader,
				Message: fmt.Sprintf("node %d knows no leader right now (election in progress); retry shortly", s.cfg.id)})
			return
		}
		api := s.apiOf(nl.Leader, nl.LeaderAddress)
		if api != "" {
			u := *r.URL
			u.Scheme, u.Host = "http", api
			w.Header().Set("Location", u.String())
		}
		writeJSON(w, http.StatusTemporaryRedirect, ErrorResponse{Error: errNotLeader, LeaderID: nl.Leader, LeaderAPI: api,
			Message: fmt.Sprintf("node %d is not the leader; node %d is (client API %s)", s.cfg.id, nl.Leader, api)})
	case errors.Is(err, actors.ErrStaleConfig):
		writeJSON(w, http.StatusConflict, ErrorResponse{Error: errStaleConfig, Message: fmt.Sprintf("node %d: %v", s.cfg.id, err)})
	case errors.Is(err, actors.ErrCatchUpTimeout):
		writeJSON(w, http.StatusUnprocessableEntity, ErrorResponse{Error: errCatchUpTimeout, Message: fmt.Sprintf("node %d: %v", s.cfg.id, err)})
	case errors.Is(err, actors.ErrInvalidMembership):
		writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: errInvalid, Message: fmt.Sprintf("node %d: %v", s.cfg.id, err)})
	case errors.Is(err, actors.ErrOutcomeUnknown), errors.Is(err, actors.ErrDuplicate):
		writeJSON(w, http.StatusGatewayTimeout, ErrorResponse{Error: errOutcomeUnknown,
			Message: fmt.Sprintf("node %d did not learn the outcome in time; retry with the same client id and seq", s.cfg.id)})
	case errors.Is(err, actors.ErrRetry), errors.Is(err, actors.ErrStopped), errors.Is(err, actors.ErrPaused):
		writeJSON(w, http.StatusServiceUnavailable, ErrorResponse{Error: errRetry, Message: fmt.Sprintf("node %d: %v; retry", s.cfg.id, err)})
	default:
		writeJSON(w, http.StatusInternalServerError, ErrorResponse{Error: errInternal, Message: fmt.Sprintf("node %d: %v", s.cfg.id, err)})
	}
}

func (s *server) handleCommand(w http.ResponseWriter, r *http.Request) {
	var req CommandRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: errInvalid, Message: fmt.Sprintf("the body is not a command: %v", err)})
		return
	}
	if err := req.Command.Validate(); err != nil {
		writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: errInvalid, Message: err.Error()})
		return
	}
	if (req.ClientID == 0) != (req.Seq == 0) {
		writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: errInvalid, Message: "give both client_id and seq (non-zero), or neither"})
		return
	}
	data, _ := json.Marshal(req.Command)
	ctx, span := s.tel.startCommand(r, req.Command)
	defer span.End()
	res, err := actors.ProposeAndWait(s.sys.Root, s.node, &actors.Propose{Data: data, ClientID: req.ClientID, Sequence: req.Seq,
		TraceParent: tracing.Inject(ctx)}, proposeTimeout)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		s.writeError(w, r, err)
		return
	}
	result, ok := res.Result.(Result)
	if !ok {
		s.writeError(w, r, fmt.Errorf("the state machine answered %T", res.Result))
		return
	}
	writeJSON(w, http.StatusOK, CommandResponse{Index: res.Index, Term: res.Term, Node: s.cfg.id, Result: result})
}

// read runs a linearizable read (ReadIndex) of q.
func (s *server) read(q any) (*actors.ReadResponse, error) {
	res, err := actors.Request[*actors.ReadResponse](s.sys.Root, s.node, &actors.Read{Query: q}, readTimeout)
	if err != nil {
		return nil, err
	}
	return res, res.Err
}

func (s *server) handleBalance(w http.ResponseWriter, r *http.Request) {
	account := r.URL.Query().Get("account")
	if err := validName("account", account); err != nil {
		writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: errInvalid, Message: err.Error()})
		return
	}
	res, err := s.read(BalanceQuery{Account: account})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ans, _ := res.Result.(BalanceAnswer)
	if !ans.Exists {
		writeJSON(w, http.StatusNotFound, ErrorResponse{Error: errNoSuchAccount, Message: fmt.Sprintf("account %q does not exist", account)})
		return
	}
	writeJSON(w, http.StatusOK, BalanceResponse{Account: account, Balance: ans.Balance, ReadIndex: res.Index, Node: s.cfg.id})
}

func (s *server) handleBalances(w http.ResponseWriter, r *http.Request) {
	if stale, _ := strconv.ParseBool(r.URL.Query().Get("stale")); stale {
		writeJSON(w, http.StatusOK, BalancesResponse{Balances: s.ledger.Balances(), Stale: true, Node: s.cfg.id})
		return
	}
	res, err := s.read(BalancesQuery{})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	b, _ := res.Result.(map[string]int64)
	writeJSON(w, http.StatusOK, BalancesResponse{Balances: b, ReadIndex: res.Index, Node: s.cfg.id})
}

func (s *server) handleStatus(w http.ResponseWriter, r *http.Request) {
	st, err := actors.Request[*actors.Status](s.sys.Root, s.node, &actors.GetStatus{}, readTimeout)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := StatusResponse{ID: s.cfg.id, RaftAddr: s.cfg.advertise, APIAddr: s.cfg.apiAdvertise, Role: st.Role.String(),
		Term: st.Term, Leader: st.Leader, LeaderAPI: s.apiOf(st.Leader, st.LeaderAddress), Commit: st.Commit, Applied: st.Applied,
		LastIndex: st.LastIndex, Peers: st.Peers, ConfigIndex: st.ConfigIndex, Removed: st.Removed}
	out.Members, out.Learners = s.memberInfos(st.Config)
	for _, p := range st.Progress { // the leader's view: each member's lag
		for _, ms := range [][]MemberInfo{out.Members, out.Learners} {
			for i := range ms {
				if ms[i].ID == p.ID {
					ms[i].Lag = &p.Lag
				}
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// apiOf is the client API address of node id, whose Raft address is
// raftAddr: from --peer-api, or the Raft port + 1000 (a server added at
// run time).
func (s *server) apiOf(id uint64, raftAddr string) string {
	if a := s.apis[id]; a != "" || id == 0 {
		return a
	}
	h, p, err := splitAddr(raftAddr)
	if err != nil || p+apiPortOffset > 65535 {
		return ""
	}
	return net.JoinHostPort(h, strconv.Itoa(p+apiPortOffset))
}

func (s *server) memberInfos(cc *messages.ClusterConfig) (voters, learners []MemberInfo) {
	for _, m := range cc.GetVoters() {
		voters = append(voters, MemberInfo{ID: m.Id, RaftAddr: m.Address, APIAddr: s.apiOf(m.Id, m.Address)})
	}
	for _, m := range cc.GetLearners() {
		learners = append(learners, MemberInfo{ID: m.Id, RaftAddr: m.Address, APIAddr: s.apiOf(m.Id, m.Address)})
	}
	return voters, learners
}

// memberTimeout bounds a membership change, catch-up included.
const memberTimeout = 60 * time.Second

func (s *server) handleAddMember(w http.ResponseWriter, r *http.Request) {
	var req MemberRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: errInvalid, Message: fmt.Sprintf("the body is not a member request: %v", err)})
		return
	}
	if _, _, err := splitAddr(req.RaftAddr); err != nil || req.ID == 0 {
		writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: errInvalid, Message: fmt.Sprintf("want a non-zero id and a raft_addr host:port, got %d and %q", req.ID, req.RaftAddr)})
		return
	}
	res, err := actors.Request[*actors.MembershipResponse](s.sys.Root, s.node,
		&actors.AddMember{ID: req.ID, Address: req.RaftAddr, Voter: req.Voter, ExpectedConfigIndex: req.ExpectedConfigIndex}, memberTimeout)
	s.writeMembership(w, r, res, err)
}

func (s *server) handleRemoveMember(w http.ResponseWriter, r *http.Request) {
	id, err1 := strconv.ParseUint(r.URL.Query().Get("id"), 10, 64)
	var expected uint64
	var err2 error
	if e := r.URL.Query().Get("expected_config_index"); e != "" {
		expected, err2 = strconv.ParseUint(e, 10, 64)
	}
	if err1 != nil || err2 != nil || id == 0 {
		writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: errInvalid, Message: "want ?id=N (non-zero) and optionally &expected_config_index=I"})
		return
	}
	res, err := actors.Request[*actors.MembershipResponse](s.sys.Root, s.node, &actors.RemoveMember{ID: id, ExpectedConfigIndex: expected}, memberTimeout)
	s.writeMembership(w, r, res, err)
}

func (s *server) writeMembership(w http.ResponseWriter, r *http.Request, res *actors.MembershipResponse, err error) {
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := MemberResponse{ConfigIndex: res.Index, Node: s.cfg.id}
	out.Voters, out.Learners = s.memberInfos(res.Config)
	writeJSON(w, http.StatusOK, out)
}
