package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/cluster/transport/remote"
	"github.com/flotilla-raft/flotilla/messages"
)

// entrySize is the size of every proposed command, in bytes.
const entrySize = 128

// proposeTimeout bounds one ProposeAndWait of the load.
const proposeTimeout = 10 * time.Second

// request is one command from the driver to a node process, a JSON line on
// the node's standard input.
type request struct {
	ID int    `json:"id"`
	Op string `json:"op"` // status, load, wait, heap
	// load: N entries from Clients concurrent clients whose ClientIDs
	// start at ClientBase.
	N          uint64 `json:"n,omitempty"`
	Clients    int    `json:"clients,omitempty"`
	ClientBase uint64 `json:"client_base,omitempty"`
	// wait: answer once the node applied Index.
	Index uint64 `json:"index,omitempty"`
	// heap: write a heap profile to Path.
	Path string `json:"path,omitempty"`
}

// response answers a request (same ID), a JSON line on the node's standard
// output.
type response struct {
	ID  int    `json:"id"`
	Err string `json:"err,omitempty"`
	// status and wait
	Leader    bool   `json:"leader,omitempty"`
	Commit    uint64 `json:"commit,omitempty"`
	Applied   uint64 `json:"applied,omitempty"`
	LastIndex uint64 `json:"last_index,omitempty"`
	// FirstIndex is the first index the log holds (above it: compacted).
	FirstIndex uint64 `json:"first_index,omitempty"`
	Count      uint64 `json:"count,omitempty"` // commands applied by the state machine
	// GoHeap is the Go heap's objects (live and not yet swept), GoMapped
	// what the Go runtime holds from the OS (all its classes less the
	// heap released): RSS less GoMapped is memory outside the Go runtime
	// (Pebble's block cache and memtables, allocated with C malloc).
	GoHeap   uint64 `json:"go_heap,omitempty"`
	GoMapped uint64 `json:"go_mapped,omitempty"`
	Hash     uint64 `json:"hash,omitempty"` // chained FNV-1a of their data
	// load
	Done    uint64  `json:"done,omitempty"`
	Retries uint64  `json:"retries,omitempty"`
	Seconds float64 `json:"seconds,omitempty"`
}

// nodeConfig is the parsed command line of `logbench node`.
type nodeConfig struct {
	id            uint64
	listen        string
	peers         map[uint64]string
	dataDir       string
	snapshotEvery int64 // < 0: the library's default
}

func parseNodeFlags(args []string, stderr io.Writer) (*nodeConfig, error) {
	fs := flag.NewFlagSet("logbench node", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &nodeConfig{}
	fs.Uint64Var(&c.id, "id", 0, "this node's Raft id")
	fs.StringVar(&c.listen, "listen", "", "Raft (gRPC) address, 127.0.0.1:port")
	peers := fs.String("peers", "", "the other voters: id=host:port,...")
	fs.StringVar(&c.dataDir, "data", "", "data directory (Pebble)")
	fs.Int64Var(&c.snapshotEvery, "snapshot-every", -1, "Config.SnapshotEvery; 0: no automatic snapshots (NoAutoSnapshots); negative: the library's default")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	var err error
	if c.peers, err = parsePeers(*peers); err != nil {
		return nil, err
	}
	var errs []error
	if c.id == 0 {
		errs = append(errs, errors.New("logbench node: -id is required"))
	}
	if c.listen == "" {
		errs = append(errs, errors.New("logbench node: -listen is required"))
	}
	if c.dataDir == "" {
		errs = append(errs, errors.New("logbench node: -data is required"))
	}
	return c, errors.Join(errs...)
}

func parsePeers(s string) (map[uint64]string, error) {
	out := map[uint64]string{}
	if s == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		var id uint64
		var addr string
		if _, err := fmt.Sscanf(kv, "%d=%s", &id, &addr); err != nil || id == 0 {
			return nil, fmt.Errorf("logbench node: -peers %q: want id=host:port", kv)
		}
		out[id] = addr
	}
	return out, nil
}

// runNode runs one node as users run it (the README's path): actors.Props
// of DefaultConfig with a DataDir (Pebble), the remote gRPC transport on
// loopback, spawned by an application actor; then it serves the driver's
// requests from in until in closes.
func runNode(args []string, in io.Reader, out, stderr io.Writer) int {
	c, err := parseNodeFlags(args, stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("node", c.id)
	rcfg := remote.DefaultConfig()
	rcfg.ID, rcfg.ListenAddr, rcfg.Insecure, rcfg.Logger = c.id, c.listen, true, log
	tr, err := remote.New(rcfg)
	if err != nil {
		fmt.Fprintf(stderr, "logbench node %d: transport: %v\n", c.id, err)
		return 1
	}
	boot := &messages.ClusterConfig{Settings: &messages.Settings{PreVote: true, CheckQuorum: true, ElectionTicks: 10, HeartbeatTicks: 1}}
	boot.Voters = append(boot.Voters, &messages.Member{Id: c.id, Address: c.listen})
	for id, a := range c.peers {
		boot.Voters = append(boot.Voters, &messages.Member{Id: id, Address: a})
	}
	sm := newCounter()
	cfg := actors.DefaultConfig()
	cfg.ID, cfg.Address, cfg.Bootstrap = c.id, c.listen, boot
	cfg.Transport, cfg.StateMachine, cfg.DataDir, cfg.Logger = tr, sm, c.dataDir, log
	if c.snapshotEvery == 0 {
		cfg.NoAutoSnapshots = true // SnapshotEvery 0 is the default, not off
	} else if c.snapshotEvery > 0 {
		cfg.SnapshotEvery = uint64(c.snapshotEvery)
	}

	system := actor.NewActorSystem()
	started := make(chan *actor.PID, 1)
	stopped := make(chan error, 1)
	system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor {
		return &application{cfg: cfg, started: started, stopped: stopped}
	}))
	var node *actor.PID
	select {
	case node = <-started:
	case err := <-stopped:
		fmt.Fprintf(stderr, "logbench node %d: %v\n", c.id, err)
		return 1
	}

	var outMu sync.Mutex
	enc := json.NewEncoder(out)
	reply := func(r response) {
		outMu.Lock()
		defer outMu.Unlock()
		_ = enc.Encode(r)
	}
	lines := make(chan request)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			var r request
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				fmt.Fprintf(stderr, "logbench node %d: bad request %q: %v\n", c.id, sc.Text(), err)
				continue
			}
			lines <- r
		}
	}()
	srv := &nodeServer{system: system, node: node, sm: sm}
	for {
		select {
		case err := <-stopped:
			fmt.Fprintf(stderr, "logbench node %d stopped: %v\n", c.id, err)
			return 1
		case r, ok := <-lines:
			if !ok {
				return 0 // the driver is done with this node
			}
			go func() {
				res := srv.handle(r)
				res.ID = r.ID
				reply(res)
			}()
		}
	}
}

// application is the application's actor: it spawns the Raft node as its
// child (README's tour) and reports when the node stops.
type application struct {
	cfg     actors.Config
	started chan<- *actor.PID
	stopped chan<- error
}

func (a *application) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		a.cfg.Subscribers = []*actor.PID{ctx.Self()}
		props, err := actors.Props(a.cfg)
		if err != nil {
			a.stopped <- err
			return
		}
		a.started <- ctx.Spawn(props)
	case *actors.NodeStopped:
		select {
		case a.stopped <- fmt.Errorf("node stopped: %s: %v", msg.Reason, msg.Err):
		default:
		}
	}
}

// nodeServer answers the driver's requests on one node.
type nodeServer struct {
	system *actor.ActorSystem
	node   *actor.PID
	sm     *counter
}

func (s *nodeServer) handle(r request) response {
	switch r.Op {
	case "status":
		return s.status()
	case "wait":
		deadline := time.Now().Add(30 * time.Minute)
		for {
			res := s.status()
			if res.Err == "" && res.Applied >= r.Index {
				return res
			}
			if time.Now().After(deadline) {
				return response{Err: fmt.Sprintf("applied %d, not %d, after 30 minutes", res.Applied, r.Index)}
			}
			time.Sleep(2 * time.Millisecond) // polling the node's status, as an operator would
		}
	case "load":
		return s.load(r.N, r.Clients, r.ClientBase)
	case "heap":
		runtime.GC()
		f, err := os.Create(r.Path)
		if err != nil {
			return response{Err: err.Error()}
		}
		defer f.Close()
		if err := pprof.WriteHeapProfile(f); err != nil {
			return response{Err: err.Error()}
		}
		return response{}
	}
	return response{Err: fmt.Sprintf("unknown op %q", r.Op)}
}

func (s *nodeServer) status() response {
	st, err := actors.Request[*actors.Status](s.system.Root, s.node, &actors.GetStatus{}, 5*time.Second)
	if err != nil {
		return response{Err: err.Error()}
	}
	count, hash := s.sm.state()
	heap, mapped := goMemory()
	return response{Leader: st.Role == actors.Leader, Commit: st.Commit, Applied: st.Applied,
		LastIndex: st.LastIndex, FirstIndex: st.FirstIndex, Count: count, Hash: hash, GoHeap: heap, GoMapped: mapped}
}

// goMemory reads the Go heap's objects and the memory the Go runtime holds
// from the OS (runtime/metrics).
func goMemory() (heap, mapped uint64) {
	m := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(m)
	return m[0].Value.Uint64(), m[1].Value.Uint64() - m[2].Value.Uint64()
}

// load proposes n commands of entrySize bytes from clients goroutines, each
// a client with its own ClientID and increasing Sequence, each waiting for
// its command to be applied (ProposeAndWait) before the next. A transient
// refusal (ErrRetry, which backpressure wraps too) or an expired wait is
// retried with the same sequence (applied once) after a short pause; any
// other error ends the load.
func (s *nodeServer) load(n uint64, clients int, base uint64) response {
	var claimed, done, retries atomic.Uint64
	var failed atomic.Pointer[error]
	start := time.Now()
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			cid := base + uint64(i)
			for seq := uint64(1); failed.Load() == nil && claimed.Add(1) <= n; seq++ {
				data := make([]byte, entrySize) // the node keeps it: one per command
				binary.BigEndian.PutUint64(data[0:], cid)
				binary.BigEndian.PutUint64(data[8:], seq)
				for attempt := 0; ; attempt++ {
					_, err := actors.ProposeAndWait(s.system.Root, s.node,
						&actors.Propose{Data: data, ClientID: cid, Sequence: seq}, proposeTimeout)
					if err == nil || errors.Is(err, actors.ErrDuplicate) {
						done.Add(1)
						break
					}
					if attempt < 1000 && (errors.Is(err, actors.ErrRetry) || errors.Is(err, actors.ErrOutcomeUnknown)) {
						retries.Add(1)
						// A refusal under load (backpressure) asks the
						// proposer to retry later: back off a little.
						time.Sleep(time.Duration(min(attempt+1, 50)) * time.Millisecond)
						continue
					}
					err = fmt.Errorf("client %d seq %d: %w", cid, seq, err)
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	res := response{Done: done.Load(), Retries: retries.Load(), Seconds: time.Since(start).Seconds()}
	if p := failed.Load(); p != nil {
		res.Err = (*p).Error()
	}
	return res
}

// counter is the benchmark's state machine: small state (a count and a
// chained hash of every command), snapshotted as 16 bytes. Apply runs on
// the node's applier; Snapshot and Restore may run elsewhere, hence the
// mutex.
type counter struct {
	mu    sync.Mutex
	count uint64
	hash  uint64
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func newCounter() *counter { return &counter{hash: fnvOffset} }

func (c *counter) Apply(e *messages.Entry) any {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.count++
	h := c.hash
	for _, b := range e.Data {
		h ^= uint64(b)
		h *= fnvPrime
	}
	c.hash = h
	return nil
}

func (c *counter) Snapshot() ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, c.count), c.hash), nil
}

func (c *counter) Restore(data []byte) error {
	if len(data) != 16 {
		return fmt.Errorf("logbench: snapshot of %d bytes, want 16", len(data))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.count, c.hash = binary.BigEndian.Uint64(data), binary.BigEndian.Uint64(data[8:])
	return nil
}

func (c *counter) state() (count, hash uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.count, c.hash
}
