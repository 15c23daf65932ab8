// Package otlp sets up the OpenTelemetry SDK to export spans over OTLP/gRPC, for
// example to Jaeger. It is a package of its own so that importing actors or tracing
// pulls only the OpenTelemetry API: an application that exports its spans some other
// way, or not at all, does not link the SDK, the exporter or gRPC.
//
//	shutdown, tp, err := otlp.Setup(ctx, otlp.Options{ServiceName: "bank", NodeID: 1})
//	...
//	cfg.TracerProvider = tp
//	defer shutdown(context.Background())
package otlp

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/flotilla-raft/flotilla/tracing"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	// The same semconv version as resource.Default() of the SDK in go.mod: merging
	// resources with different schema URLs fails ("conflicting Schema URL").
	// TestResourceSchemaMatchesSDK fails when an SDK upgrade moves it.
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// Options configure Setup. The zero value exports to the endpoint that the
// standard OTEL_EXPORTER_OTLP_* environment variables name (default localhost:4317).
type Options struct {
	// ServiceName is the resource's service.name. Default: "flotilla".
	// OTEL_SERVICE_NAME, when set, wins.
	ServiceName string
	// ServiceVersion is the resource's service.version; left out when empty.
	ServiceVersion string
	// NodeID is the Raft node id, recorded as raft.node_id and as
	// service.instance.id "n<id>" so Jaeger tells the nodes of one service apart.
	// Left out when 0 (one process running many nodes).
	NodeID uint64
	// Attributes are added to the resource. OTEL_RESOURCE_ATTRIBUTES, when set, wins.
	Attributes []attribute.KeyValue

	// Endpoint is the OTLP gRPC endpoint, "host:port" or a URL
	// ("http://localhost:4317" implies Insecure). Default: the OTEL_EXPORTER_OTLP_*
	// environment variables, then localhost:4317.
	Endpoint string
	// Insecure uses plaintext gRPC (OTEL_EXPORTER_OTLP_INSECURE=true does the same).
	Insecure bool
	// ExporterOptions are passed to otlptracegrpc.New after the ones above.
	ExporterOptions []otlptracegrpc.Option
	// BatchOptions configure the batch span processor.
	BatchOptions []sdktrace.BatchSpanProcessorOption
	// Sampler, when set, replaces the SDK's default: parent-based always-on, or what
	// OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG name.
	Sampler sdktrace.Sampler
	// SpanProcessors are registered beside the exporter's batch processor, for example
	// a tracetest.SpanRecorder in a test.
	SpanProcessors []sdktrace.SpanProcessor
}

// Configured reports whether spans have somewhere to go: endpoint is set, or the
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT variable is. The
// examples call Setup only then, so that a run without a collector exports nothing
// (rather than retrying against localhost:4317).
func Configured(endpoint string) bool {
	return endpoint != "" || os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// Setup builds a TracerProvider that exports spans over OTLP/gRPC through a batch
// span processor, with a resource naming the service and node. It does not install
// the provider globally: hand it to actors.Config.TracerProvider, tracing.NewTracer (or otel.SetTracerProvider).
//
// Setup does not wait for the collector: an unreachable endpoint shows up as export
// errors (through otel.SetErrorHandler), not here. shutdown flushes the spans not yet
// exported and stops the exporter; it gives up when its ctx is done.
func Setup(ctx context.Context, opts Options) (shutdown func(context.Context) error, provider *sdktrace.TracerProvider, err error) {
	res, err := Resource(ctx, opts)
	if err != nil {
		return nil, nil, err
	}
	var eopts []otlptracegrpc.Option
	if opts.Endpoint != "" {
		if strings.Contains(opts.Endpoint, "://") {
			eopts = append(eopts, otlptracegrpc.WithEndpointURL(opts.Endpoint))
		} else {
			eopts = append(eopts, otlptracegrpc.WithEndpoint(opts.Endpoint))
		}
	}
	if opts.Insecure {
		eopts = append(eopts, otlptracegrpc.WithInsecure())
	}
	eopts = append(eopts, opts.ExporterOptions...)
	exp, err := otlptracegrpc.New(ctx, eopts...)
	if err != nil {
		return nil, nil, fmt.Errorf("otlp: exporter: %w", err)
	}
	popts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithBatcher(exp, opts.BatchOptions...),
	}
	if opts.Sampler != nil {
		popts = append(popts, sdktrace.WithSampler(opts.Sampler))
	}
	for _, sp := range opts.SpanProcessors {
		popts = append(popts, sdktrace.WithSpanProcessor(sp))
	}
	tp := sdktrace.NewTracerProvider(popts...)
	return tp.Shutdown, tp, nil
}

// Resource is the resource Setup gives its provider: telemetry SDK and host
// attributes (with the host's address as "ip", see AttrHostIP), service.name, service.version, service.instance.id and raft.node_id
// from opts, then opts.Attributes, then OTEL_RESOURCE_ATTRIBUTES and
// OTEL_SERVICE_NAME (later ones win), all under one semconv schema URL.
func Resource(ctx context.Context, opts Options) (*resource.Resource, error) {
	name := opts.ServiceName
	if name == "" {
		name = "flotilla"
	}
	attrs := []attribute.KeyValue{semconv.ServiceName(name), AttrHostIP.String(hostIP())}
	if opts.ServiceVersion != "" {
		attrs = append(attrs, semconv.ServiceVersion(opts.ServiceVersion))
	}
	if opts.NodeID != 0 {
		attrs = append(attrs,
			semconv.ServiceInstanceID(fmt.Sprintf("n%d", opts.NodeID)),
			tracing.AttrNodeID.Int64(int64(opts.NodeID)))
	}
	attrs = append(attrs, opts.Attributes...)
	res, err := resource.New(ctx,
		resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithAttributes(attrs...),
		resource.WithFromEnv(),
	)
	if err != nil && !(errors.Is(err, resource.ErrPartialResource) && res != nil) {
		return nil, fmt.Errorf("otlp: resource: %w", err)
	}
	return res, nil
}
