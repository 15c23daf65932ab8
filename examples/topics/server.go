package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/cluster/transport/remote"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence/pebblestore"
	"github.com/flotilla-raft/flotilla/tracing/otlp"
)

// raftGroup is the id of the assignment table's Raft group in the Pebble
// database of the Raft log.
const raftGroup = 1

// serverConfig is the parsed command line of `topics server`.
type serverConfig struct {
	id            uint64
	raft, api     string
	peers         map[uint64]peerAddrs
	join          bool
	dataDir       string
	insecure      bool
	ca, cert, key string
	tick          time.Duration
	grace         time.Duration
	partitions    int
	logLevel      slog.Level
	otlpEndpoint  string
}

// peerAddrs are a founding broker's Raft and API addresses.
type peerAddrs struct{ raft, api string }

func parseServerFlags(args []string, stderr io.Writer) (*serverConfig, error) {
	fs := flag.NewFlagSet("topics server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		id         = fs.Uint64("id", 0, "this broker's id (non-zero, unique; its Raft node id)")
		raftAddr   = fs.String("raft", "", "Raft (gRPC) address, host:port: listened on and given to the peers")
		api        = fs.String("api", "", "broker API (HTTP) address, host:port: listened on and given to clients")
		peers      = fs.String("peers", "", "the other founding brokers, none for a one-broker cluster: id=raft-host:port/api-host:port,...")
		join       = fs.Bool("join", false, "start with no configuration and wait to be added (topics add) instead of founding a cluster")
		data       = fs.String("data", "", "data directory (Raft log and messages, each in its own Pebble; created if missing)")
		insecure   = fs.Bool("insecure", false, "plaintext gRPC between the brokers (explicit opt-in; otherwise --ca, --cert, --key)")
		ca         = fs.String("ca", "", "PEM file of the CA that signs the brokers' certificates (mutual TLS)")
		cert       = fs.String("cert", "", "PEM certificate of this broker (its identity: topics certs)")
		key        = fs.String("key", "", "PEM private key of this broker")
		tick       = fs.Duration("tick", 50*time.Millisecond, "Raft tick (election timeout: 10 ticks)")
		grace      = fs.Duration("grace", 2*time.Second, "how long a broker may be unheard from before the leader moves its partitions")
		partitions = fs.Int("partitions", 3, "partitions of a topic created by its first message")
		otlpAddr   = fs.String("otlp-endpoint", "", "export the broker's Raft spans over OTLP/gRPC as service topics-ID, e.g. localhost:4317 for Jaeger (plaintext; https://... for TLS; default: $OTEL_EXPORTER_OTLP_ENDPOINT, else off)")
		level      = fs.String("log-level", "info", "log level of the broker: debug, info, warn, error (Raft, Pebble and gRPC: warn or above)")
	)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	c := &serverConfig{id: *id, raft: *raftAddr, api: *api, join: *join, dataDir: *data, insecure: *insecure,
		ca: *ca, cert: *cert, key: *key, tick: *tick, grace: *grace, partitions: *partitions, otlpEndpoint: *otlpAddr}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if fs.NArg() > 0 {
		bad("unexpected arguments %q", fs.Args())
	}
	if c.id == 0 {
		bad("--id is required and must be non-zero")
	}
	if c.dataDir == "" {
		bad("--data is required (the broker's data directory)")
	}
	if err := checkAddr(c.raft); err != nil {
		bad("--raft %q: %v", c.raft, err)
	}
	if err := checkAddr(c.api); err != nil {
		bad("--api %q: %v", c.api, err)
	}
	var err error
	if c.peers, err = parsePeers(*peers); err != nil {
		bad("--peers: %v", err)
	}

	if _, dup := c.peers[c.id]; dup {
		bad("--peers lists this broker's own id %d: list only the others", c.id)
	}
	if c.insecure && (c.ca != "" || c.cert != "" || c.key != "") {
		bad("--insecure and --ca/--cert/--key are exclusive: choose plaintext or mutual TLS")
	}
	if !c.insecure && (c.ca == "" || c.cert == "" || c.key == "") {
		bad("the brokers talk over mutual TLS by default: give --ca, --cert and --key, or opt in to plaintext with --insecure")
	}
	if c.tick <= 0 {
		bad("--tick %v must be positive", c.tick)
	}
	if c.grace < 10*c.tick {
		bad("--grace %v must be at least an election timeout (10 ticks = %v)", c.grace, 10*c.tick)
	}
	if c.partitions < 1 || c.partitions > MaxPartitions {
		bad("--partitions %d: want 1 to %d", c.partitions, MaxPartitions)
	}
	if err := c.logLevel.UnmarshalText([]byte(*level)); err != nil {
		bad("--log-level %q: want debug, info, warn or error", *level)
	}
	return c, errors.Join(errs...)
}

func checkAddr(addr string) error {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want host:port (%v)", err)
	}
	if h == "" || p == "" || p == "0" {
		return errors.New("want an explicit host and a non-zero port (it is given to others)")
	}
	return nil
}

// parsePeers parses "id=raft/api,...".
func parsePeers(s string) (map[uint64]peerAddrs, error) {
	out := map[uint64]peerAddrs{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		r, a, ok2 := strings.Cut(v, "/")
		if !ok || !ok2 {
			return nil, fmt.Errorf("%q is not id=raft-host:port/api-host:port", part)
		}
		var id uint64
		if _, err := fmt.Sscan(k, &id); err != nil || id == 0 {
			return nil, fmt.Errorf("%q: the id %q is not a non-zero number", part, k)
		}
		if checkAddr(r) != nil || checkAddr(a) != nil {
			return nil, fmt.Errorf("%q: want host:port addresses", part)
		}
		if _, dup := out[id]; dup {
			return nil, fmt.Errorf("broker %d is listed twice", id)
		}
		out[id] = peerAddrs{raft: r, api: a}
	}
	return out, nil
}

func runServer(args []string, stderr io.Writer) int {
	cfg, err := parseServerFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "topics server: %v\n", err)
		return 2
	}
	s, err := startServer(cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "topics server: %v\n", err)
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case got := <-sig:
		s.log.Info("stopping", "signal", got.String())
		s.shutdown()
		return 0
	case err := <-s.failed:
		fmt.Fprintf(stderr, "topics server: broker %d stopped: %v\n", cfg.id, err)
		s.shutdown()
		return 1
	}
}

// server is one running broker: its application actor with the Raft node
// as child, the Raft log's Pebble, the message store's Pebble, and the
// broker API.
type server struct {
	cfg    *serverConfig
	log    *slog.Logger
	db     *pebblestore.DB
	msgs   *store
	table  *Table
	sys    *actor.ActorSystem
	broker *actor.PID // the application actor: requests for Raft go through it
	failed chan error
	http   *http.Server
	client *http.Client

	changed chan struct{} // the table changed: look for handovers to run
	stop    chan struct{}
	wg      sync.WaitGroup

	// rebalances counts the assign entries this broker proposed, as
	// leader, that committed (reported in /v1/status).
	rebalances atomic.Uint64
	// badRequests counts requests refused as invalid (reported in /v1/status).
	badRequests atomic.Uint64
	// removed: the node learned it is no member (MemberRemoved).
	removed atomic.Bool
	// stopTracing flushes and stops the OTLP exporter (nil: none).
	stopTracing func(context.Context) error
}

func startServer(cfg *serverConfig, stderr io.Writer) (_ *server, err error) {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.logLevel})).With("broker", cfg.id)
	s := &server{cfg: cfg, log: log, table: NewTable(), failed: make(chan error, 1),
		client:  &http.Client{Timeout: 3 * time.Second},
		changed: make(chan struct{}, 1), stop: make(chan struct{})}
	ln, err := net.Listen("tcp", cfg.api)
	if err != nil {
		return nil, fmt.Errorf("broker API: %w", err)
	}
	defer func() {
		if err != nil {
			ln.Close()
		}
	}()
	// Raft, Pebble, protoactor and gRPC are chatty: warnings and errors
	// only, unless --log-level asks for less.
	warnOnly := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: max(cfg.logLevel, slog.LevelWarn)})).With("broker", cfg.id)
	if s.db, err = pebblestore.Open(filepath.Join(cfg.dataDir, "raft"), pebblestore.Options{Logger: warnOnly}); err != nil {
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
	if s.msgs, err = openStore(filepath.Join(cfg.dataDir, "messages"), warnOnly); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.msgs.close()
		}
	}()
	rcfg := remote.DefaultConfig()
	rcfg.ID, rcfg.ClusterID, rcfg.ListenAddr = cfg.id, 1, cfg.raft
	rcfg.Logger = warnOnly
	rcfg.Insecure, rcfg.CAFile, rcfg.CertFile, rcfg.KeyFile = cfg.insecure, cfg.ca, cfg.cert, cfg.key
	tr, err := remote.New(rcfg)
	if err != nil {
		return nil, err
	}
	ncfg := actors.DefaultConfig()
	ncfg.ID, ncfg.ClusterID, ncfg.Address = cfg.id, 1, cfg.raft
	if !cfg.join {
		boot := &messages.ClusterConfig{Settings: &messages.Settings{PreVote: true, CheckQuorum: true,
			ElectionTicks: 10, HeartbeatTicks: 1}}
		boot.Voters = append(boot.Voters, &messages.Member{Id: cfg.id, Address: cfg.raft})
		for id, p := range cfg.peers {
			boot.Voters = append(boot.Voters, &messages.Member{Id: id, Address: p.raft})
		}
		slices.SortFunc(boot.Voters, func(a, b *messages.Member) int { return cmp.Compare(a.Id, b.Id) })
		ncfg.Bootstrap = boot
	}
	ncfg.Transport, ncfg.LogStore, ncfg.StateMachine = tr, group, s.table
	ncfg.TickInterval, ncfg.Logger = cfg.tick, warnOnly
	ncfg.CatchUpTimeout = 20 * time.Second
	if otlp.Configured(cfg.otlpEndpoint) {
		name := fmt.Sprintf("topics-%d", cfg.id)
		shutdown, tp, err := otlp.Setup(context.Background(), otlp.Options{ServiceName: name, NodeID: cfg.id,
			Endpoint: cfg.otlpEndpoint, Insecure: cfg.otlpEndpoint != "" && !strings.Contains(cfg.otlpEndpoint, "://")})
		if err != nil {
			tr.Close()
			return nil, err
		}
		ncfg.TracerProvider, s.stopTracing = tp, shutdown
		log.Info("exporting traces over OTLP", "service", name)
	}
	if err := ncfg.Validate(); err != nil {
		tr.Close()
		return nil, err
	}
	s.sys = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return warnOnly }))
	started := make(chan error, 1)
	s.broker = s.sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor {
		return newBrokerActor(s, ncfg, started)
	}))
	if err := <-started; err != nil {
		tr.Close()
		return nil, err
	}
	s.http = &http.Server{Handler: s.routes(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 15 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 64 << 10}
	go func() {
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("broker API stopped", "err", err)
		}
	}()
	s.wg.Add(1)
	go s.handovers()
	log.Info("broker started", "raft", cfg.raft, "api", cfg.api, "data", cfg.dataDir, "join", cfg.join, "insecure", cfg.insecure)
	return s, nil
}

// shutdown stops the API, the node (a leader hands over first), then the
// stores.
func (s *server) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.http.Shutdown(ctx)
	close(s.stop)
	s.wg.Wait()
	if _, err := actors.Request[*actors.Stopped](s.sys.Root, s.broker, &actors.Stop{}, 10*time.Second); err != nil {
		s.log.Warn("orderly stop failed", "err", err)
	}
	s.sys.Root.Stop(s.broker)
	if err := s.db.Close(); err != nil {
		s.log.Warn("close the Raft log", "err", err)
	}
	if err := s.msgs.close(); err != nil {
		s.log.Warn("close the message store", "err", err)
	}
	if s.stopTracing != nil {
		if err := s.stopTracing(ctx); err != nil {
			s.log.Warn("flush traces", "err", err)
		}
	}
}

// notifyChanged wakes the handover loop (never blocks).
func (s *server) notifyChanged() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}
