package e2e

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/cluster/transport/remote"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/tracing/otlp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/protobuf/proto"
)

// Environment of a node process (this test binary, run by the test).
const (
	envNode  = "FLOTILLA_E2E_NODE"  // "id" when this process is a node
	envPeers = "FLOTILLA_E2E_PEERS" // "1=host:port,2=...,3=..."
	envAPI   = "FLOTILLA_E2E_API"   // the node's control address
	envDir   = "FLOTILLA_E2E_DIR"
	envOTLP  = "FLOTILLA_E2E_OTLP"
)

// serviceOf is the service name of node id: one per node, as tracing's
// package documentation recommends, so Jaeger shows which node did what.
func serviceOf(id uint64) string { return fmt.Sprintf("flotilla-node-%d", id) }

// counter is the state machine of a node process: it counts commands, and
// snapshots its count.
type counter struct {
	mu sync.Mutex
	n  uint64
}

func (c *counter) Apply(*messages.Entry) any { c.mu.Lock(); defer c.mu.Unlock(); c.n++; return c.n }

func (c *counter) Query(any) (any, error) { c.mu.Lock(); defer c.mu.Unlock(); return c.n, nil }

func (c *counter) Snapshot() ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return binary.AppendUvarint(nil, c.n), nil
}

func (c *counter) Restore(b []byte) error {
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return errors.New("counter: corrupt snapshot")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n = n
	return nil
}

type nodeStatus struct {
	Role    string `json:"role"`
	Leader  uint64 `json:"leader"`
	Term    uint64 `json:"term"`
	Commit  uint64 `json:"commit"`
	Applied uint64 `json:"applied"`
	// MinMatch is, on the leader, the lowest match index of its peers: what
	// every follower has acknowledged.
	MinMatch uint64 `json:"min_match"`
}

// runNode is one node process: the gRPC transport, Pebble, OTLP export to
// Jaeger under the node's own service name, and a small HTTP control API
// for the test: /status, /propose?n=N, /read, /snapshot, /config (a
// settings change through the log), /transfer?to=ID.
func runNode(idText string) error {
	id, err := strconv.ParseUint(idText, 10, 64)
	if err != nil {
		return err
	}
	// 25 ticks of 20 ms: an election timeout of 0.5–1 s, long enough that a
	// loaded CI machine does not start elections of its own in the middle of
	// the transfer whose trace the test reads.
	boot := &messages.ClusterConfig{Settings: &messages.Settings{PreVote: true, CheckQuorum: true, ElectionTicks: 25, HeartbeatTicks: 1}}
	var listen string
	for _, p := range strings.Split(os.Getenv(envPeers), ",") {
		k, addr, _ := strings.Cut(p, "=")
		pid, _ := strconv.ParseUint(k, 10, 64)
		boot.Voters = append(boot.Voters, &messages.Member{Id: pid, Address: addr})
		if pid == id {
			listen = addr
		}
	}
	ctx := context.Background()
	shutdown, tp, err := otlp.Setup(ctx, otlp.Options{
		ServiceName: serviceOf(id), NodeID: id, Endpoint: os.Getenv(envOTLP), Insecure: true,
		BatchOptions: []sdktrace.BatchSpanProcessorOption{sdktrace.WithBatchTimeout(100 * time.Millisecond)},
	})
	if err != nil {
		return err
	}
	rc := remote.DefaultConfig()
	rc.ID, rc.ListenAddr, rc.Insecure = id, listen, true
	tr, err := remote.New(rc)
	if err != nil {
		return err
	}
	sys := actor.NewActorSystem()
	cfg := actors.DefaultConfig()
	cfg.ID, cfg.Address, cfg.Bootstrap = id, listen, boot
	cfg.Transport, cfg.DataDir, cfg.StateMachine = tr, os.Getenv(envDir), &counter{}
	cfg.TracerProvider = tp
	cfg.TickInterval = 20 * time.Millisecond
	props, err := actors.Props(cfg)
	if err != nil {
		return err
	}
	node := sys.Root.Spawn(props)
	const wait = 5 * time.Second

	mux := http.NewServeMux()
	answer := func(w http.ResponseWriter, v any, err error) {
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprint(w, v)
	}
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		st, err := actors.Request[*actors.Status](sys.Root, node, &actors.GetStatus{}, wait)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		ns := nodeStatus{Role: st.Role.String(), Leader: st.Leader, Term: st.Term, Commit: st.Commit, Applied: st.Applied}
		seen := false
		for _, pr := range st.Progress {
			if pr.ID != id && (!seen || pr.Match < ns.MinMatch) {
				ns.MinMatch, seen = pr.Match, true
			}
		}
		_ = json.NewEncoder(w).Encode(ns)
	})
	mux.HandleFunc("/propose", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.FormValue("n"))
		var last uint64
		for range max(n, 1) {
			res, err := actors.ProposeAndWait(sys.Root, node, &actors.Propose{Data: []byte("traced")}, wait)
			if err != nil {
				answer(w, nil, err)
				return
			}
			last = res.Index
		}
		answer(w, last, nil)
	})
	mux.HandleFunc("/read", func(w http.ResponseWriter, r *http.Request) {
		res, err := actors.Request[*actors.ReadResponse](sys.Root, node, &actors.Read{}, wait)
		if err != nil {
			answer(w, nil, err)
			return
		}
		answer(w, res.Index, nil)
	})
	mux.HandleFunc("/snapshot", func(w http.ResponseWriter, r *http.Request) {
		res, err := actors.Request[*actors.TakeSnapshotResponse](sys.Root, node, &actors.TakeSnapshot{}, wait)
		if err != nil {
			answer(w, nil, err)
			return
		}
		answer(w, res.Index, nil)
	})
	mux.HandleFunc("/config", func(w http.ResponseWriter, r *http.Request) {
		st, err := actors.Request[*actors.Status](sys.Root, node, &actors.GetStatus{}, wait)
		if err != nil {
			answer(w, nil, err)
			return
		}
		cc := proto.Clone(st.Config).(*messages.ClusterConfig)
		cc.Settings.ElectionTicks += 2
		res, err := actors.Request[*actors.ChangeConfigResponse](sys.Root, node, &actors.ChangeConfig{Config: cc}, wait)
		if err != nil {
			answer(w, nil, err)
			return
		}
		answer(w, res.Index, nil)
	})
	mux.HandleFunc("/transfer", func(w http.ResponseWriter, r *http.Request) {
		to, _ := strconv.ParseUint(r.FormValue("to"), 10, 64)
		res, err := actors.Request[*actors.TransferLeadershipResponse](sys.Root, node, &actors.TransferLeadership{To: to}, wait)
		if err != nil {
			answer(w, nil, err)
			return
		}
		answer(w, res.Leader, nil)
	})
	srv := &http.Server{Addr: os.Getenv(envAPI), Handler: mux}
	go func() { _ = srv.ListenAndServe() }()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
	_, _ = actors.Request[*actors.Stopped](sys.Root, node, &actors.Stop{}, wait)
	_ = srv.Close()
	sctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	return shutdown(sctx) // flushes the spans
}
