package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-raft/flotilla/internal/testutil"
	"github.com/flotilla-raft/flotilla/tracing"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// A one-node server with --metrics-addr serves the node's metrics to
// Prometheus, and a command's span is the parent of the proposal's spans.
func TestServerExportsMetricsAndTraces(t *testing.T) {
	addrs, err := testutil.FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	rec := tracetest.NewSpanRecorder()
	cfg := &serverConfig{id: 1, clusterID: 1, listen: addrs[0], advertise: addrs[0], api: addrs[1], apiAdvertise: addrs[1],
		peers: map[uint64]string{}, peerAPIs: map[uint64]string{}, dataDir: filepath.Join(t.TempDir(), "n1"), insecure: true,
		tick: 10 * time.Millisecond, electionTicks: 5, metricsAddr: addrs[2],
		tracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))}
	s, err := startServer(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.shutdown)

	cl := testClient(t, cfg.api)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, cmd := range []Command{{Op: OpOpen, Account: "alice"}, {Op: OpDeposit, Account: "alice", Amount: 5}} {
		if _, err := cl.Command(ctx, cmd); err != nil {
			t.Fatalf("%+v: %v", cmd, err)
		}
	}
	if _, err := cl.Balance(ctx, "alice"); err != nil {
		t.Fatal(err)
	}

	resp, err := http.Get("http://" + s.tel.metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s\n%s", resp.Status, body)
	}
	for _, want := range []string{
		`raft_proposal_commit_duration_seconds_count{`,
		`raft_read_duration_seconds_count{`,
		`raft_term{`,
		`raft_applied_index{`,
		`raft_node_id="1"`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// The deposit's trace: banking.command → raft.propose → raft.apply.
	var cmd sdktrace.ReadOnlySpan
	for _, sp := range rec.Ended() {
		if sp.Name() == "banking.command deposit" {
			cmd = sp
		}
	}
	if cmd == nil {
		t.Fatalf("no banking.command deposit span among %d", len(rec.Ended()))
	}
	found := map[string]bool{}
	for _, sp := range rec.Ended() {
		if sp.SpanContext().TraceID() == cmd.SpanContext().TraceID() {
			found[sp.Name()] = true
		}
	}
	for _, want := range []string{tracing.SpanPropose, tracing.SpanApply} {
		if !found[want] {
			t.Errorf("the deposit's trace has no %s span: %v", want, found)
		}
	}
}

func TestOTLPInsecure(t *testing.T) {
	for endpoint, want := range map[string]bool{"localhost:4317": true, "http://localhost:4317": false, "https://collector:4317": false, "": false} {
		if got := otlpInsecure(endpoint); got != want {
			t.Errorf("otlpInsecure(%q) = %v, want %v", endpoint, got, want)
		}
	}
}
