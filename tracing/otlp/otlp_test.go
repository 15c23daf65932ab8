package otlp_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/flotilla-raft/flotilla/tracing"
	"github.com/flotilla-raft/flotilla/tracing/otlp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/grpc"
)

// fakeCollector is an in-process OTLP/gRPC trace receiver.
type fakeCollector struct {
	collectortrace.UnimplementedTraceServiceServer
	addr string

	mu   sync.Mutex
	reqs []*collectortrace.ExportTraceServiceRequest
}

func startCollector(t *testing.T) *fakeCollector {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &fakeCollector{addr: lis.Addr().String()}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, c)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return c
}

func (c *fakeCollector) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	c.reqs = append(c.reqs, req)
	c.mu.Unlock()
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// received returns the span names and the resource attributes of the last batch.
func (c *fakeCollector) received() (names []string, res map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	res = map[string]string{}
	for _, req := range c.reqs {
		for _, rs := range req.GetResourceSpans() {
			for _, kv := range rs.GetResource().GetAttributes() {
				res[kv.GetKey()] = anyString(kv.GetValue())
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					names = append(names, s.GetName())
				}
			}
		}
	}
	return names, res
}

func anyString(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return attribute.Int64Value(x.IntValue).String()
	default:
		return v.String()
	}
}

// exportOne starts and ends one span through a Tracer on provider, then shuts the
// provider down, which flushes the batch processor.
func exportOne(t *testing.T, shutdown func(context.Context) error, tp *sdktrace.TracerProvider) {
	t.Helper()
	_, span := tracing.NewTracer(tp, 3).Start(context.Background(), tracing.SpanPropose, tracing.Attrs{Term: 1})
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

func TestSetupExportsOverOTLP(t *testing.T) {
	c := startCollector(t)
	rec := tracetest.NewSpanRecorder()
	shutdown, tp, err := otlp.Setup(context.Background(), otlp.Options{
		ServiceName: "bank", ServiceVersion: "1.2.3", NodeID: 3,
		Attributes: []attribute.KeyValue{attribute.String("deployment.environment.name", "test")},
		Endpoint:   c.addr, Insecure: true,
		SpanProcessors: []sdktrace.SpanProcessor{rec},
	})
	if err != nil {
		t.Fatal(err)
	}
	exportOne(t, shutdown, tp)

	names, res := c.received()
	if len(names) != 1 || names[0] != tracing.SpanPropose {
		t.Fatalf("collector received spans %v, want [%s]", names, tracing.SpanPropose)
	}
	for k, v := range map[string]string{
		"service.name": "bank", "service.version": "1.2.3", "service.instance.id": "n3",
		"raft.node_id": "3", "deployment.environment.name": "test", "telemetry.sdk.language": "go",
	} {
		if res[k] != v {
			t.Errorf("resource %s = %q, want %q (all: %v)", k, res[k], v, res)
		}
	}
	if len(rec.Ended()) != 1 {
		t.Errorf("extra span processor saw %d spans, want 1", len(rec.Ended()))
	}
}

func TestSetupHonoursEnvEndpoint(t *testing.T) {
	c := startCollector(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+c.addr) // http:// means plaintext
	t.Setenv("OTEL_SERVICE_NAME", "from-env")
	shutdown, tp, err := otlp.Setup(context.Background(), otlp.Options{ServiceName: "bank"})
	if err != nil {
		t.Fatal(err)
	}
	exportOne(t, shutdown, tp)
	names, res := c.received()
	if len(names) != 1 {
		t.Fatalf("collector at OTEL_EXPORTER_OTLP_ENDPOINT received %v, want one span", names)
	}
	if res["service.name"] != "from-env" {
		t.Errorf("service.name = %q, want OTEL_SERVICE_NAME to win", res["service.name"])
	}
}

func TestSetupUnreachableEndpointDoesNotHang(t *testing.T) {
	// A port that was free a moment ago: nothing listens there.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+addr)

	start := time.Now()
	shutdown, tp, err := otlp.Setup(context.Background(), otlp.Options{ServiceName: "bank", NodeID: 1})
	if err != nil {
		t.Fatalf("Setup with an unreachable endpoint: %v (it must not dial eagerly)", err)
	}
	_, span := tp.Tracer("test").Start(context.Background(), "lost")
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_ = shutdown(ctx) // an export error or ctx's deadline: either is fine, hanging is not
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Setup and shutdown took %v with an unreachable collector", d)
	}
}

func TestResourceSchemaMatchesSDK(t *testing.T) {
	// resource.Default() and ours must share a schema URL, or merging them fails with
	// "conflicting Schema URL". When an SDK upgrade moves resource.Default() to a newer
	// semconv, move the import in otlp.go with it.
	if got, want := resource.Default().SchemaURL(), semconv.SchemaURL; got != want {
		t.Fatalf("resource.Default() schema %q, tracing uses %q: update the semconv import", got, want)
	}
	res, err := otlp.Resource(context.Background(), otlp.Options{NodeID: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := resource.Merge(resource.Default(), res); err != nil {
		t.Fatalf("merge with resource.Default(): %v", err)
	}
	if v, _ := res.Set().Value(semconv.ServiceNameKey); v.AsString() != "flotilla" {
		t.Errorf("default service.name = %q, want flotilla", v.AsString())
	}
}

func TestConfigured(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	if otlp.Configured("") {
		t.Error("Configured with no endpoint and no variable")
	}
	if !otlp.Configured("localhost:4317") {
		t.Error("not Configured with an endpoint")
	}
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://localhost:4317")
	if !otlp.Configured("") {
		t.Error("not Configured with OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	}
}
