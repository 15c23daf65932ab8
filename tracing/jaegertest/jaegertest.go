// Package jaegertest runs a real Jaeger v2 (in-memory storage) for end-to-end tracing
// tests, and reads traces back through Jaeger's HTTP query API.
//
//	j := jaegertest.Start(t) // skips when the binary is absent
//	shutdown, tp, _ := otlp.Setup(ctx, otlp.Options{Endpoint: j.OTLPEndpoint(), Insecure: true, ...})
//	... spans ...
//	_ = shutdown(ctx)
//	tr := j.WaitForTrace(t, traceID, 3)
//
// The binary is built from Jaeger's Go module by tools/jaeger/build.sh (`make
// jaeger`) into .cache/jaeger/jaeger; $FLOTILLA_JAEGER_BIN overrides the path. When
// the binary is absent the test is skipped, unless $FLOTILLA_REQUIRE_JAEGER is set: then
// it fails at once. Start never builds Jaeger itself: the first build takes minutes
// (tens on a busy machine) and would outlive the test's timeout.
//
// Connect reads the query API of a Jaeger that is already running (tracing/cmd/tracetree
// uses it), and Trace.Tree prints a trace as an indented tree of spans.
//
// StartWithUI(t, dir) also serves the real Jaeger UI from its built assets (the
// binary built from the Go module has none): UIAssets finds them at
// ../shared/jaeger-ui/build beside the module's root, or at $FLOTILLA_JAEGER_UI.
//
// Each Jaeger listens on free loopback ports given in a generated config file (Jaeger
// v2 is an OpenTelemetry collector: ports are set in its YAML config, not by flags),
// so tests may run several at once.
package jaegertest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-raft/flotilla/internal/testutil"
)

// Environment variables read by Start.
const (
	// EnvBin overrides the path of the Jaeger binary.
	EnvBin = "FLOTILLA_JAEGER_BIN"
	// EnvRequire, when set to anything, makes a missing binary a failure instead of
	// a skip.
	EnvRequire = "FLOTILLA_REQUIRE_JAEGER"
	// EnvUI overrides the path of the built Jaeger UI (StartWithUI).
	EnvUI = "FLOTILLA_JAEGER_UI"
)

// StartTimeout bounds how long Start waits for Jaeger to serve its query API and
// accept OTLP connections.
var StartTimeout = 60 * time.Second

// ErrNotFound is returned by Trace when Jaeger has no trace with that id (yet).
var ErrNotFound = errors.New("jaegertest: trace not found")

// Jaeger is a running Jaeger process, stopped in the Cleanup of the test that
// started it.
type Jaeger struct {
	otlpGRPC, otlpHTTP, query string // host:port
	cmd                       *exec.Cmd
	exited                    chan struct{} // closed when the process has exited
	out                       *testutil.SyncBuffer
	client                    *http.Client
}

// OTLPEndpoint is the OTLP/gRPC endpoint, host:port, plaintext.
func (j *Jaeger) OTLPEndpoint() string { return j.otlpGRPC }

// OTLPHTTPEndpoint is the OTLP/HTTP endpoint, host:port, plaintext.
func (j *Jaeger) OTLPHTTPEndpoint() string { return j.otlpHTTP }

// QueryURL is the base URL of the HTTP query API (…/api/services, …/api/traces).
func (j *Jaeger) QueryURL() string { return "http://" + j.query }

// Output returns what Jaeger has logged so far.
func (j *Jaeger) Output() string { return j.out.String() }

// Start runs Jaeger for the duration of t; see the package documentation for where the
// binary comes from and when t is skipped.
func Start(t testing.TB) *Jaeger {
	t.Helper()
	return startWith(t, "")
}

// StartWithUI is Start with Jaeger serving the real UI from the built assets in
// directory ui (jaeger_query's ui.assets_path) at QueryURL; see UIAssets.
func StartWithUI(t testing.TB, ui string) *Jaeger {
	t.Helper()
	return startWith(t, ui)
}

// UIAssets returns the directory of the built Jaeger UI: $FLOTILLA_JAEGER_UI, or
// ../shared/jaeger-ui/build beside the module's root (where a checkout finds the
// shared folder). The error says where it looked.
func UIAssets() (string, error) {
	p := os.Getenv(EnvUI)
	if p == "" {
		root, err := moduleRoot()
		if err != nil {
			return "", err
		}
		p = filepath.Join(root, "..", "shared", "jaeger-ui", "build")
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(abs, "index.html")); err != nil {
		return "", fmt.Errorf("no built Jaeger UI at %s (set %s)", abs, EnvUI)
	}
	return abs, nil
}

func startWith(t testing.TB, ui string) *Jaeger {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		if os.Getenv(EnvRequire) == "" {
			t.Skipf("jaegertest: %v; run `make jaeger` first, or set %s (set %s=1 to make this a failure)", err, EnvBin, EnvRequire)
		}
		t.Fatalf("jaegertest: %s is set and %v; run `make jaeger` first (tests never build it), or set %s", EnvRequire, err, EnvBin)
	}
	// A free port found here may be taken before Jaeger binds it: try again then.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		j, err := start(t, bin, ui)
		if err == nil {
			return j
		}
		lastErr = err
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	t.Fatalf("jaegertest: %v", lastErr)
	return nil
}

func start(t testing.TB, bin, ui string) (*Jaeger, error) {
	ports, err := testutil.FreePorts(4)
	if err != nil {
		return nil, err
	}
	j := &Jaeger{
		otlpGRPC: ports[0], otlpHTTP: ports[1], query: ports[2],
		exited: make(chan struct{}),
		out:    &testutil.SyncBuffer{},
		client: &http.Client{Timeout: 5 * time.Second},
	}
	cfg := filepath.Join(t.TempDir(), "jaeger.yaml")
	if err := os.WriteFile(cfg, []byte(config(j.otlpGRPC, j.otlpHTTP, j.query, ports[3], ui)), 0o644); err != nil {
		return nil, err
	}
	j.cmd = exec.Command(bin, "--config", "file:"+cfg)
	j.cmd.Stdout, j.cmd.Stderr = j.out, j.out
	if err := j.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() { _ = j.cmd.Wait(); close(j.exited) }()
	t.Cleanup(func() {
		j.stop()
		if t.Failed() {
			t.Logf("jaegertest: Jaeger output:\n%s", j.Output())
		}
	})
	if err := j.waitReady(); err != nil {
		j.stop()
		return nil, err
	}
	return j, nil
}

// config is Jaeger's all-in-one configuration (in-memory storage, OTLP receiver,
// query API, and the UI from directory ui when not empty) on the given loopback
// ports, without its other receivers, its metrics endpoint or its self-tracing.
func config(otlpGRPC, otlpHTTP, query, queryGRPC, ui string) string {
	uiConf := ""
	if ui != "" {
		uiConf = fmt.Sprintf("    ui:\n      assets_path: %q\n", ui)
	}
	return fmt.Sprintf(`service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: memstore
    enable_tracing: false
%s    http:
      endpoint: %q
    grpc:
      endpoint: %q
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %q
      http:
        endpoint: %q
processors:
  batch:
    timeout: 50ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`, uiConf, query, queryGRPC, otlpGRPC, otlpHTTP)
}

// waitReady polls the query API and the OTLP port until both answer, the process
// exits, or StartTimeout passes.
func (j *Jaeger) waitReady() error {
	deadline := time.Now().Add(StartTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if _, err := j.Services(); err != nil {
			last = fmt.Errorf("query API %s: %w", j.QueryURL(), err)
		} else if c, err := net.DialTimeout("tcp", j.otlpGRPC, time.Second); err != nil {
			last = fmt.Errorf("OTLP/gRPC %s: %w", j.otlpGRPC, err)
		} else {
			c.Close()
			return nil
		}
		select {
		case <-j.exited:
			return fmt.Errorf("Jaeger exited before it was ready (%v):\n%s", j.cmd.ProcessState, j.Output())
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("Jaeger not ready after %v: %v\noutput:\n%s", StartTimeout, last, j.Output())
		}
	}
}

// stop interrupts Jaeger and kills it if it has not exited within 10 seconds.
func (j *Jaeger) stop() {
	select {
	case <-j.exited:
		return
	default:
	}
	_ = j.cmd.Process.Signal(os.Interrupt)
	select {
	case <-j.exited:
	case <-time.After(10 * time.Second):
		_ = j.cmd.Process.Kill()
		<-j.exited
	}
}

// Binary returns the path of the Jaeger binary: $FLOTILLA_JAEGER_BIN, or
// .cache/jaeger/jaeger in the module's root. The error says where it looked.
func Binary() (string, error) {
	if p := os.Getenv(EnvBin); p != "" {
		if isExecutable(p) {
			return p, nil
		}
		return "", fmt.Errorf("%s=%s is not an executable file", EnvBin, p)
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	p := filepath.Join(root, ".cache", "jaeger", "jaeger")
	if !isExecutable(p) {
		return "", fmt.Errorf("no Jaeger binary at %s", p)
	}
	return p, nil
}

// moduleRoot walks up from the working directory (a test's package directory) to
// the directory holding tools/jaeger/build.sh, under which `make jaeger` puts the binary.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "tools", "jaeger", "build.sh")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no tools/jaeger/build.sh above %s: set %s", dir, EnvBin)
		}
	}
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// getJSON decodes the query API's answer to path into v; a 404 is ErrNotFound.
func (j *Jaeger) getJSON(path string, v any) error {
	resp, err := j.client.Get(j.QueryURL() + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusNotFound {
		return ErrNotFound
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, bytes.TrimSpace(body))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: decoding: %w", path, err)
	}
	return nil
}

type response[T any] struct {
	Data   T `json:"data"`
	Errors []struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
	} `json:"errors"`
}

func (r response[T]) err() error {
	if len(r.Errors) == 0 {
		return nil
	}
	return fmt.Errorf("jaeger: %d: %s", r.Errors[0].Code, r.Errors[0].Msg)
}

// Services lists the services Jaeger has received spans from.
func (j *Jaeger) Services() ([]string, error) {
	var r response[[]string]
	if err := j.getJSON("/api/services", &r); err != nil {
		return nil, err
	}
	return r.Data, r.err()
}

// Traces returns up to 100 recent traces with spans from service.
func (j *Jaeger) Traces(service string) ([]Trace, error) {
	var r response[[]Trace]
	q := url.Values{"service": {service}, "limit": {"100"}, "lookback": {"1h"}}
	if err := j.getJSON("/api/traces?"+q.Encode(), &r); err != nil {
		return nil, err
	}
	return r.Data, r.err()
}

// TracesOf returns up to limit recent traces holding a span called operation
// recorded by service.
func (j *Jaeger) TracesOf(service, operation string, limit int) ([]Trace, error) {
	var r response[[]Trace]
	q := url.Values{"service": {service}, "operation": {operation}, "limit": {fmt.Sprint(limit)}, "lookback": {"1h"}}
	if err := j.getJSON("/api/traces?"+q.Encode(), &r); err != nil {
		return nil, err
	}
	return r.Data, r.err()
}

// Trace returns the trace with id (32 hex digits), or ErrNotFound.
func (j *Jaeger) Trace(id string) (Trace, error) {
	var r response[[]Trace]
	if err := j.getJSON("/api/traces/"+url.PathEscape(id), &r); err != nil {
		return Trace{}, err
	}
	if err := r.err(); err != nil {
		return Trace{}, err
	}
	if len(r.Data) == 0 {
		return Trace{}, ErrNotFound
	}
	return r.Data[0], nil
}

// WaitForTrace polls Trace(id) until it holds at least spans spans, failing t with
// what it last saw after 30 seconds (export and ingestion are asynchronous).
func (j *Jaeger) WaitForTrace(t testing.TB, id string, spans int) Trace {
	t.Helper()
	var tr Trace
	err := poll(30*time.Second, func() error {
		var err error
		if tr, err = j.Trace(id); err != nil {
			return err
		}
		if len(tr.Spans) < spans {
			return fmt.Errorf("%d of %d spans arrived: %v", len(tr.Spans), spans, tr.OperationNames())
		}
		return nil
	})
	if err != nil {
		t.Fatalf("jaegertest: trace %s: %v", id, err)
	}
	return tr
}

func poll(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		<-tick.C
	}
}

// Trace is one trace as Jaeger's query API returns it.
type Trace struct {
	TraceID   string             `json:"traceID"`
	Spans     []Span             `json:"spans"`
	Processes map[string]Process `json:"processes"`
	Warnings  []string           `json:"warnings"`
}

// Span is one span of a Trace. Times are in microseconds.
type Span struct {
	TraceID       string      `json:"traceID"`
	SpanID        string      `json:"spanID"`
	OperationName string      `json:"operationName"`
	References    []Reference `json:"references"`
	StartTime     int64       `json:"startTime"`
	Duration      int64       `json:"duration"`
	Tags          []KeyValue  `json:"tags"`
	ProcessID     string      `json:"processID"`
	Warnings      []string    `json:"warnings"`
}

// Reference types: Jaeger shows a parent as CHILD_OF and a span link as FOLLOWS_FROM.
const (
	ChildOf     = "CHILD_OF"
	FollowsFrom = "FOLLOWS_FROM"
)

// Reference is a span's reference to another span, possibly in another trace.
type Reference struct {
	RefType string `json:"refType"`
	TraceID string `json:"traceID"`
	SpanID  string `json:"spanID"`
}

// Process is the resource of the spans that name it: the service and its tags.
type Process struct {
	ServiceName string     `json:"serviceName"`
	Tags        []KeyValue `json:"tags"`
}

// KeyValue is a tag. Value is a string, float64 (numbers), or bool, as decoded
// from JSON; Type says what Jaeger stored ("string", "int64", "bool", ...).
type KeyValue struct {
	Key   string `json:"key"`
	Type  string `json:"type"`
	Value any    `json:"value"`
}

// Span returns the first span called name, or false.
func (tr Trace) Span(name string) (Span, bool) {
	for _, s := range tr.Spans {
		if s.OperationName == name {
			return s, true
		}
	}
	return Span{}, false
}

// OperationNames lists the span names, for failure messages.
func (tr Trace) OperationNames() []string {
	var out []string
	for _, s := range tr.Spans {
		out = append(out, s.OperationName)
	}
	return out
}

// Process returns the process (resource) of s.
func (tr Trace) Process(s Span) Process { return tr.Processes[s.ProcessID] }

// Parent returns the span id of s's CHILD_OF reference, or "" for a root.
func (s Span) Parent() string {
	for _, r := range s.References {
		if r.RefType == ChildOf {
			return r.SpanID
		}
	}
	return ""
}

// Links returns s's FOLLOWS_FROM references (its span links).
func (s Span) Links() []Reference {
	var out []Reference
	for _, r := range s.References {
		if r.RefType == FollowsFrom {
			out = append(out, r)
		}
	}
	return out
}

// Tag returns the value of s's tag key.
func (s Span) Tag(key string) (any, bool) { return tag(s.Tags, key) }

// Tag returns the value of p's tag key.
func (p Process) Tag(key string) (any, bool) { return tag(p.Tags, key) }

func tag(kvs []KeyValue, key string) (any, bool) {
	for _, kv := range kvs {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return nil, false
}
