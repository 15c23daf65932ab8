package actors_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/flotilla-raft/flotilla/actors"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// BenchmarkPropose measures one proposal's round trip (propose, replicate
// to a quorum, commit, apply, answer) on a 3-node in-process cluster, with
// tracing off (noop provider), by default (the global provider, no SDK
// installed) and on (every span recorded in memory), and with tracing off
// and metrics recorded by the SDK (metrics=on; the others use the global
// meter provider, which records nothing):
//
//	go test -run '^$' -bench BenchmarkPropose -benchmem ./actors/
func BenchmarkPropose(b *testing.B) {
	for _, tc := range []struct {
		name string
		tp   func() trace.TracerProvider
		mp   func() metric.MeterProvider
	}{
		{"tracing=off", func() trace.TracerProvider { return noop.NewTracerProvider() }, nil},
		// The default (Config.TracerProvider nil): the global provider, with
		// no SDK installed by the application.
		{"tracing=default", func() trace.TracerProvider { return otel.GetTracerProvider() }, nil},
		{"tracing=on", func() trace.TracerProvider {
			return sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tracetest.NewSpanRecorder()))
		}, nil},
		{"tracing=off,metrics=on", func() trace.TracerProvider { return noop.NewTracerProvider() }, func() metric.MeterProvider {
			return sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c := newClusterWith(b, 3, func(c *cluster) {
				c.tp = tc.tp()
				if tc.mp != nil {
					mp := tc.mp()
					c.configure = func(_ uint64, cfg *actors.Config) { cfg.MeterProvider = mp }
				}
			})
			lead := c.waitLeader()
			data := make([]byte, 128)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				_, err := actors.ProposeAndWait(c.sys.Root, c.node(lead), &actors.Propose{Data: data}, 5*time.Second)
				if err != nil {
					b.Fatal(fmt.Errorf("propose %d: %w", i, err))
				}
			}
		})
	}
}
