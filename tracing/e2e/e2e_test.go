package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/cluster/transport/remote"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/tracing"
	"github.com/flotilla-raft/flotilla/tracing/jaegertest"
	"github.com/flotilla-raft/flotilla/tracing/otlp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

const (
	envNode    = "FLOTILLA_E2E_NODE"  // "id" when this process is a node
	envPeers   = "FLOTILLA_E2E_PEERS" // "1=host:port,2=...,3=..."
	envAPI     = "FLOTILLA_E2E_API"   // the node's control address
	envDir     = "FLOTILLA_E2E_DIR"
	envOTLP    = "FLOTILLA_E2E_OTLP"
	service    = "flotilla-e2e"
	nodesCount = 3
)

// TestMain runs this binary as a node process when asked to.
func TestMain(m *testing.M) {
	if id := os.Getenv(envNode); id != "" {
		if err := runNode(id); err != nil {
			fmt.Fprintln(os.Stderr, "node:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type counter struct {
	mu sync.Mutex
	n  int
}

func (c *counter) Apply(*messages.Entry) any { c.mu.Lock(); defer c.mu.Unlock(); c.n++; return c.n }

type nodeStatus struct {
	Role   string `json:"role"`
	Leader uint64 `json:"leader"`
	Term   uint64 `json:"term"`
}

// runNode is one node process: the gRPC transport, Pebble, OTLP export,
// and a small HTTP control API for the test (status, propose).
func runNode(idText string) error {
	id, err := strconv.ParseUint(idText, 10, 64)
	if err != nil {
		return err
	}
	boot := &messages.ClusterConfig{Settings: &messages.Settings{PreVote: true, CheckQuorum: true, ElectionTicks: 10, HeartbeatTicks: 1}}
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
		ServiceName: service, NodeID: id, Endpoint: os.Getenv(envOTLP), Insecure: true,
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

	mux := http.NewServeMux()
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		st, err := actors.Request[*actors.Status](sys.Root, node, &actors.GetStatus{}, 2*time.Second)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		_ = json.NewEncoder(w).Encode(nodeStatus{Role: st.Role.String(), Leader: st.Leader, Term: st.Term})
	})
	mux.HandleFunc("/propose", func(w http.ResponseWriter, r *http.Request) {
		res, err := actors.ProposeAndWait(sys.Root, node, &actors.Propose{Data: []byte("traced")}, 5*time.Second)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprint(w, res.Index)
	})
	srv := &http.Server{Addr: os.Getenv(envAPI), Handler: mux}
	go func() { _ = srv.ListenAndServe() }()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
	_, _ = actors.Request[*actors.Stopped](sys.Root, node, &actors.Stop{}, 5*time.Second)
	_ = srv.Close()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return shutdown(sctx) // flushes the spans
}

func freeAddrs(t *testing.T, n int) []string {
	var out []string
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	for _, l := range ls {
		l.Close()
	}
	return out
}

func getText(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return string(b), err
}

// poll calls f until it returns nil or the deadline passes.
func poll(t *testing.T, what string, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, d, err)
		}
		<-tick.C
	}
}

func tag(s jaegertest.Span, key string) string {
	for _, kv := range s.Tags {
		if kv.Key == key {
			return fmt.Sprint(kv.Value)
		}
	}
	return ""
}

// TestProposalTraceInJaeger: three processes over gRPC, one proposal, one
// trace in Jaeger holding the leader's append, both followers' appends, the
// commit and the apply on all three nodes, with the right parents.
func TestProposalTraceInJaeger(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: three processes and a real Jaeger")
	}
	j := jaegertest.Start(t) // skips when the binary is absent, unless FLOTILLA_REQUIRE_JAEGER is set
	raftAddrs, apiAddrs := freeAddrs(t, nodesCount), freeAddrs(t, nodesCount)
	var peers []string
	for i, a := range raftAddrs {
		peers = append(peers, fmt.Sprintf("%d=%s", i+1, a))
	}
	dir := t.TempDir()
	for i := range nodesCount {
		id := i + 1
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envNode+"="+strconv.Itoa(id), envPeers+"="+strings.Join(peers, ","),
			envAPI+"="+apiAddrs[i], envDir+"="+filepath.Join(dir, strconv.Itoa(id)), envOTLP+"="+j.OTLPEndpoint())
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("node %d exited: %v\n%s", id, err, out.String())
				}
			case <-time.After(20 * time.Second):
				_ = cmd.Process.Kill()
				t.Errorf("node %d did not stop within 20s\n%s", id, out.String())
			}
		})
	}

	var leader uint64
	poll(t, "a leader all three agree on", 60*time.Second, func() error {
		var seen []uint64
		for _, a := range apiAddrs {
			body, err := getText("http://" + a + "/status")
			if err != nil {
				return err
			}
			var st nodeStatus
			if err := json.Unmarshal([]byte(body), &st); err != nil {
				return err
			}
			seen = append(seen, st.Leader)
		}
		if seen[0] == 0 || seen[0] != seen[1] || seen[1] != seen[2] {
			return fmt.Errorf("leaders seen: %v", seen)
		}
		leader = seen[0]
		return nil
	})
	index, err := getText("http://" + apiAddrs[leader-1] + "/propose")
	if err != nil {
		t.Fatalf("propose on leader %d: %v", leader, err)
	}
	t.Logf("leader %d committed the proposal at index %s", leader, index)

	var tr jaegertest.Trace
	poll(t, "the proposal's whole trace in Jaeger", 60*time.Second, func() error {
		traces, err := j.Traces(service)
		if err != nil {
			return err
		}
		for _, cand := range traces {
			if p, ok := cand.Span(tracing.SpanPropose); ok && tag(p, string(tracing.AttrIndex)) == index {
				tr = cand
				return checkTrace(cand, leader)
			}
		}
		return errors.New("no trace with the proposal yet")
	})
	t.Logf("trace %s as Jaeger returns it:\n%s", tr.TraceID, renderTree(tr))
}

// checkTrace asserts the structure of the proposal's trace.
func checkTrace(tr jaegertest.Trace, leader uint64) error {
	byID := map[string]jaegertest.Span{}
	for _, s := range tr.Spans {
		byID[s.SpanID] = s
	}
	parent := func(s jaegertest.Span) (jaegertest.Span, bool) {
		for _, r := range s.References {
			if r.RefType == jaegertest.ChildOf {
				p, ok := byID[r.SpanID]
				return p, ok
			}
		}
		return jaegertest.Span{}, false
	}
	nodes := func(name string) map[string]bool {
		out := map[string]bool{}
		for _, s := range tr.Spans {
			if s.OperationName == name {
				out[tag(s, string(tracing.AttrNodeID))] = true
			}
		}
		return out
	}
	L := strconv.FormatUint(leader, 10)
	var problems []string
	want := func(name string, n int, mustLeader bool) {
		got := nodes(name)
		if len(got) < n || (mustLeader && !got[L]) {
			problems = append(problems, fmt.Sprintf("%s on nodes %v, want %d node(s)%s", name, keys(got), n, map[bool]string{true: " incl. the leader " + L}[mustLeader]))
		}
	}
	want(tracing.SpanLeaderAppend, 1, true)
	want(tracing.SpanFollowerAppend, 2, false)
	want(tracing.SpanCommit, 1, true)
	want(tracing.SpanApply, 3, true)
	if nodes(tracing.SpanFollowerAppend)[L] {
		problems = append(problems, "the leader recorded a follower append")
	}
	for _, s := range tr.Spans {
		p, ok := parent(s)
		switch s.OperationName {
		case tracing.SpanLeaderAppend, tracing.SpanApply, tracing.SpanCommit, tracing.SpanReplicate:
			if !ok || p.OperationName != tracing.SpanPropose {
				problems = append(problems, fmt.Sprintf("%s on node %s is not a child of %s (parent %q)", s.OperationName, tag(s, string(tracing.AttrNodeID)), tracing.SpanPropose, p.OperationName))
			}
		case tracing.SpanFollowerAppend:
			if !ok || p.OperationName != tracing.SpanReplicate {
				problems = append(problems, fmt.Sprintf("%s on node %s is not a child of %s (parent %q)", s.OperationName, tag(s, string(tracing.AttrNodeID)), tracing.SpanReplicate, p.OperationName))
			}
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// renderTree prints the trace as an indented tree (children by start time;
// links shown as "follows").
func renderTree(tr jaegertest.Trace) string {
	children := map[string][]jaegertest.Span{}
	var roots []jaegertest.Span
	ids := map[string]bool{}
	for _, s := range tr.Spans {
		ids[s.SpanID] = true
	}
	for _, s := range tr.Spans {
		p := ""
		for _, r := range s.References {
			if r.RefType == jaegertest.ChildOf && ids[r.SpanID] {
				p = r.SpanID
			}
		}
		if p == "" {
			roots = append(roots, s)
		} else {
			children[p] = append(children[p], s)
		}
	}
	var b strings.Builder
	var walk func(s jaegertest.Span, depth int)
	walk = func(s jaegertest.Span, depth int) {
		extra := ""
		if p := tag(s, string(tracing.AttrPeer)); p != "" {
			extra += " peer=" + p
		}
		if i := tag(s, string(tracing.AttrIndex)); i != "" {
			extra += " index=" + i
		}
		links := 0
		for _, r := range s.References {
			if r.RefType == jaegertest.FollowsFrom {
				links++
			}
		}
		if links > 0 {
			extra += fmt.Sprintf(" links=%d", links)
		}
		fmt.Fprintf(&b, "%s%s [node %s]%s\n", strings.Repeat("  ", depth), s.OperationName, tag(s, string(tracing.AttrNodeID)), extra)
		kids := children[s.SpanID]
		sort.Slice(kids, func(i, j int) bool { return kids[i].StartTime < kids[j].StartTime })
		for _, k := range kids {
			walk(k, depth+1)
		}
	}
	sort.Slice(roots, func(i, j int) bool { return roots[i].StartTime < roots[j].StartTime })
	for _, r := range roots {
		walk(r, 0)
	}
	return b.String()
}
