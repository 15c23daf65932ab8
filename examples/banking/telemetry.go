package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/flotilla-raft/flotilla/tracing"
	"github.com/flotilla-raft/flotilla/tracing/otlp"
	promclient "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// telemetry is what a server exports: its traces over OTLP/gRPC (to Jaeger,
// for example) when an endpoint is configured, and its metrics in the
// Prometheus text format on --metrics-addr (GET /metrics).
type telemetry struct {
	tracerProvider trace.TracerProvider // noop when tracing is off
	meterProvider  metric.MeterProvider // noop when metrics are off
	tracer         trace.Tracer
	metricsAddr    string // the bound metrics address, "" when off
	shutdowns      []func(context.Context) error
}

// serviceName is the trace service of node id: one per node, so Jaeger shows
// which server each span ran on.
func serviceName(id uint64) string { return fmt.Sprintf("banking-%d", id) }

// otlpInsecure: an endpoint without a scheme (localhost:4317) is plaintext
// gRPC, as Jaeger serves it; https:// gives TLS.
func otlpInsecure(endpoint string) bool {
	return endpoint != "" && !strings.Contains(endpoint, "://")
}

func startTelemetry(cfg *serverConfig, log *slog.Logger) (_ *telemetry, err error) {
	t := &telemetry{tracerProvider: tracenoop.NewTracerProvider(), meterProvider: metricnoop.NewMeterProvider()}
	defer func() {
		if err != nil {
			t.shutdown()
		}
	}()
	switch {
	case cfg.tracerProvider != nil: // tests
		t.tracerProvider = cfg.tracerProvider
	default:
		endpoint := cfg.otlpEndpoint
		if !otlp.Configured(endpoint) {
			break
		}
		shutdown, tp, err := otlp.Setup(context.Background(), otlp.Options{
			ServiceName: serviceName(cfg.id), NodeID: cfg.id, Endpoint: endpoint, Insecure: otlpInsecure(endpoint),
			Attributes: []attribute.KeyValue{attribute.String("banking.api", cfg.apiAdvertise), attribute.String("banking.raft", cfg.advertise)},
		})
		if err != nil {
			return nil, err
		}
		t.tracerProvider = tp
		t.shutdowns = append(t.shutdowns, shutdown)
		log.Info("exporting traces over OTLP", "service", serviceName(cfg.id), "endpoint", cmpOr(endpoint, "from OTEL_EXPORTER_OTLP_*"))
	}
	t.tracer = t.tracerProvider.Tracer("github.com/flotilla-raft/flotilla/examples/banking")

	if cfg.metricsAddr != "" {
		reg := promclient.NewRegistry()
		exp, err := prometheus.New(prometheus.WithRegisterer(reg))
		if err != nil {
			return nil, fmt.Errorf("prometheus exporter: %w", err)
		}
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
		t.meterProvider = mp
		t.shutdowns = append(t.shutdowns, mp.Shutdown)
		ln, err := net.Listen("tcp", cfg.metricsAddr)
		if err != nil {
			return nil, fmt.Errorf("--metrics-addr: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics endpoint stopped", "err", err)
			}
		}()
		t.shutdowns = append(t.shutdowns, srv.Shutdown)
		t.metricsAddr = ln.Addr().String()
		log.Info("serving metrics", "url", "http://"+t.metricsAddr+"/metrics")
	}
	return t, nil
}

// shutdown flushes the spans not yet exported and stops the metrics endpoint.
func (t *telemetry) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := len(t.shutdowns) - 1; i >= 0; i-- {
		_ = t.shutdowns[i](ctx)
	}
	t.shutdowns = nil
}

// startCommand starts the span of one client command, a child of the
// request's traceparent header when it has one; the proposal's spans on
// every node join its trace (Propose.TraceParent).
func (t *telemetry) startCommand(r *http.Request, c Command) (context.Context, trace.Span) {
	ctx := tracing.Extract(r.Context(), r.Header.Get("traceparent"))
	return t.tracer.Start(ctx, "banking.command "+c.Op, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("banking.op", c.Op), attribute.String("banking.account", c.Account),
			attribute.String("banking.from", c.From), attribute.String("banking.to", c.To), attribute.Int64("banking.amount", c.Amount)))
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
